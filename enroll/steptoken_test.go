package enroll

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"math/big"
	"strings"
	"testing"
	"time"

	"go.step.sm/crypto/jose"

	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// testStepURLs are the sign URLs of the step tests' HTTPS listener.
var testStepURLs = StepSignURLs([]string{"ca.fleet.test", "127.0.0.1"}, "8443")

func newTestStepVerifier(t testing.TB) *stepVerifier {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v, err := newStepVerifier(&StepProvisioner{Name: "fleetca", Key: key, SignURLs: testStepURLs}, []byte("root der"))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// signStep signs claims as a step token with key and kid.
func signStep(t testing.TB, key *ecdsa.PrivateKey, kid string, c jose.Claims, extra stepClaims) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, new(jose.SignerOptions).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jose.Signed(signer).Claims(c).Claims(extra).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestStepTokenMintAndParse(t *testing.T) {
	v := newTestStepVerifier(t)
	now := testStart
	tok, h, err := v.mint(store.Token{DeviceID: "dev-1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	// What the step CLI reads: header kid, iss, aud, sub, sans, sha.
	jwt, err := jose.ParseSigned(string(tok))
	if err != nil {
		t.Fatal(err)
	}
	var c jose.Claims
	var extra stepClaims
	if err := jwt.UnsafeClaimsWithoutVerification(&c, &extra); err != nil {
		t.Fatal(err)
	}
	if hd := jwt.Headers[0]; hd.KeyID != v.kid || hd.Algorithm != "ES256" || hd.ExtraHeaders["typ"] != "JWT" {
		t.Errorf("header = %+v, want ES256, typ JWT, kid %s", hd, v.kid)
	}
	if c.Issuer != "fleetca" || c.Subject != "dev-1" || len(c.Audience) != 1 || c.Audience[0] != "https://ca.fleet.test:8443/1.0/sign" ||
		len(c.ID) != 64 || !c.Expiry.Time().Equal(now.Add(time.Hour)) || !c.NotBefore.Time().Equal(now) || !c.IssuedAt.Time().Equal(now) {
		t.Errorf("claims = %+v, want iss fleetca, sub dev-1, aud the first sign URL, a 256-bit jti, nbf/iat now, exp in 1h", c)
	}
	if len(extra.SANs) != 1 || extra.SANs[0] != "dev-1" || extra.SHA != v.rootSHA || len(v.rootSHA) != 64 {
		t.Errorf("sans, sha = %v, %q; want [dev-1] and the root's SHA-256", extra.SANs, extra.SHA)
	}
	id, got, err := v.parse(string(tok), now.Add(time.Minute))
	if err != nil || id != "dev-1" || got != h || got != stepJTIHash(c.ID) {
		t.Errorf("parse = %q, %x, %v; want dev-1 and the minted hash", id, got, err)
	}
}

func TestStepTokenRefusals(t *testing.T) {
	v := newTestStepVerifier(t)
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := testStart
	good := func() jose.Claims {
		return jose.Claims{Issuer: "fleetca", Subject: "dev-1", Audience: jose.Audience{"https://127.0.0.1:8443/sign"}, ID: "j1",
			NotBefore: jose.NewNumericDate(now), IssuedAt: jose.NewNumericDate(now), Expiry: jose.NewNumericDate(now.Add(5 * time.Minute))}
	}
	sans := stepClaims{SANs: []string{"dev-1"}}
	with := func(f func(*jose.Claims)) jose.Claims { c := good(); f(&c); return c }
	for _, tc := range []struct {
		name string
		tok  string
		at   time.Time
		want string // in the refusal; "" = accepted
	}{
		{"ok", signStep(t, v.key, v.kid, good(), sans), now, ""},
		{"ok/aud-without-port", signStep(t, v.key, v.kid, with(func(c *jose.Claims) { c.Audience = jose.Audience{"https://ca.fleet.test/1.0/sign"} }), sans), now, ""},
		{"ok/no-sans", signStep(t, v.key, v.kid, good(), stepClaims{}), now, ""},
		{"ok/expired-within-leeway", signStep(t, v.key, v.kid, good(), sans), now.Add(5*time.Minute + 30*time.Second), ""},
		{"fail/empty", "", now, "missing"},
		{"fail/garbage", "not.a.jwt", now, "signed JWT"},
		{"fail/other-kid", signStep(t, v.key, "someone-else", good(), sans), now, "kid"},
		{"fail/other-key", signStep(t, other, v.kid, good(), sans), now, "signature"},
		{"fail/iss", signStep(t, v.key, v.kid, with(func(c *jose.Claims) { c.Issuer = "step" }), sans), now, "issued by"},
		{"fail/aud-renew", signStep(t, v.key, v.kid, with(func(c *jose.Claims) { c.Audience = jose.Audience{"https://127.0.0.1:8443/renew"} }), sans), now, "aud"},
		{"fail/aud-other-host", signStep(t, v.key, v.kid, with(func(c *jose.Claims) { c.Audience = jose.Audience{"https://evil.test:8443/sign"} }), sans), now, "aud"},
		{"fail/aud-other-port", signStep(t, v.key, v.kid, with(func(c *jose.Claims) { c.Audience = jose.Audience{"https://127.0.0.1:9443/sign"} }), sans), now, "aud"},
		{"fail/expired", signStep(t, v.key, v.kid, good(), sans), now.Add(7 * time.Minute), "expired"},
		{"fail/not-yet", signStep(t, v.key, v.kid, good(), sans), now.Add(-2 * time.Minute), "not valid yet"},
		{"fail/no-exp", signStep(t, v.key, v.kid, with(func(c *jose.Claims) { c.Expiry = nil }), sans), now, "no nbf or exp"},
		{"fail/sub", signStep(t, v.key, v.kid, with(func(c *jose.Claims) { c.Subject = "../etc" }), sans), now, "sub"},
		{"fail/sans", signStep(t, v.key, v.kid, good(), stepClaims{SANs: []string{"dev-1", "dev-2"}}), now, "SAN"},
		{"fail/no-jti", signStep(t, v.key, v.kid, with(func(c *jose.Claims) { c.ID = "" }), sans), now, "jti"},
		{"fail/huge", strings.Repeat("a", MaxStepTokenBytes+1), now, "bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, h, err := v.parse(tc.tok, tc.at)
			if tc.want == "" {
				if err != nil || id != "dev-1" || h != stepJTIHash("j1") {
					t.Errorf("parse = %q, %v; want dev-1 and the hash of jti j1", id, err)
				}
				return
			}
			if k, ok := fault.KindOf(err); !ok || k != fault.Unauthorized || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parse error = %v, want Unauthorized with %q", err, tc.want)
			}
		})
	}
}

// TestStepRevokeTokenRefusals: a revocation token is a step token for the
// revoke URL whose sub is a serial in decimal, and nothing else.
func TestStepRevokeTokenRefusals(t *testing.T) {
	v := newTestStepVerifier(t)
	now := testStart
	serial, _ := new(big.Int).SetString("308893286343609293989051180431574390766", 10)
	minted, mintedHash, err := v.mintRevoke(store.Token{CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, serial)
	if err != nil {
		t.Fatal(err)
	}
	good := func() jose.Claims {
		return jose.Claims{Issuer: "fleetca", Subject: serial.String(), Audience: jose.Audience{"https://127.0.0.1:8443/1.0/revoke"}, ID: "j1",
			NotBefore: jose.NewNumericDate(now), IssuedAt: jose.NewNumericDate(now), Expiry: jose.NewNumericDate(now.Add(5 * time.Minute))}
	}
	with := func(f func(*jose.Claims)) jose.Claims { c := good(); f(&c); return c }
	signTok, _, err := v.mint(store.Token{DeviceID: "dev-1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, tok string
		want      string // in the refusal; "" = accepted
	}{
		{"ok/minted", string(minted), ""},
		{"ok/revoke-without-1.0", signStep(t, v.key, v.kid, with(func(c *jose.Claims) { c.Audience = jose.Audience{"https://ca.fleet.test:8443/revoke"} }), stepClaims{}), ""},
		{"fail/sign-token", string(signTok), "revoke URL (aud)"},
		{"fail/aud-sign", signStep(t, v.key, v.kid, with(func(c *jose.Claims) { c.Audience = jose.Audience{"https://127.0.0.1:8443/1.0/sign"} }), stepClaims{}), "aud"},
		{"fail/sub-device", signStep(t, v.key, v.kid, with(func(c *jose.Claims) { c.Subject = "dev-1" }), stepClaims{}), "decimal"},
		{"fail/sub-hex", signStep(t, v.key, v.kid, with(func(c *jose.Claims) { c.Subject = serial.Text(16) }), stepClaims{}), "decimal"},
		{"fail/sub-leading-zero", signStep(t, v.key, v.kid, with(func(c *jose.Claims) { c.Subject = "0" + serial.String() }), stepClaims{}), "decimal"},
		{"fail/sub-negative", signStep(t, v.key, v.kid, with(func(c *jose.Claims) { c.Subject = "-5" }), stepClaims{}), "decimal"},
		{"fail/sans", signStep(t, v.key, v.kid, good(), stepClaims{SANs: []string{"dev-1"}}), "SANs"},
		{"fail/expired", signStep(t, v.key, v.kid, with(func(c *jose.Claims) { c.Expiry = jose.NewNumericDate(now.Add(-2 * time.Minute)) }), stepClaims{}), "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, h, err := v.parseRevoke(tc.tok, now)
			if tc.want == "" {
				if err != nil || got.Cmp(serial) != 0 || (tc.name == "ok/minted" && h != mintedHash) {
					t.Errorf("parseRevoke = %v, %v; want serial %s", got, err, serial)
				}
				return
			}
			if k, ok := fault.KindOf(err); !ok || k != fault.Unauthorized || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseRevoke error = %v, want Unauthorized with %q", err, tc.want)
			}
		})
	}
	// A revocation token is no sign token either.
	if _, _, err := v.parse(string(minted), now); err == nil || !strings.Contains(err.Error(), "sign URL (aud)") {
		t.Errorf("parse(revocation token) error = %v, want a refusal for its aud", err)
	}
}

// FuzzParseStepToken feeds arbitrary strings to the step token parser,
// seeded with a valid token. Invariants: no panic; a refusal is
// fault.Unauthorized and never repeats the token; an accepted token names
// a device.
func FuzzParseStepToken(f *testing.F) {
	v := newTestStepVerifier(f)
	tok, _, err := v.mint(store.Token{DeviceID: "dev-1", CreatedAt: testStart, ExpiresAt: testStart.Add(time.Hour)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(tok))
	f.Add("")
	f.Add("e30.e30.")
	f.Fuzz(func(t *testing.T, s string) {
		id, _, err := v.parse(s, testStart)
		if err != nil {
			if k, ok := fault.KindOf(err); !ok || k != fault.Unauthorized {
				t.Fatalf("refusal is not Unauthorized: %v", err)
			}
			if len(s) > 8 && strings.Contains(err.Error(), s) {
				t.Fatalf("refusal repeats the token: %v", err)
			}
			return
		}
		if id == "" {
			t.Fatal("accepted a token without a device")
		}
	})
}
