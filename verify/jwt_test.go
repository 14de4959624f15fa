package verify

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.step.sm/crypto/jose"
	"go.step.sm/crypto/minica"

	"github.com/fleetca/fleetca/api"
)

const testAud = "https://api.example.com"

// jwtDevice is a device key and the certificate that certifies it.
type jwtDevice struct {
	key  crypto.Signer
	cert *x509.Certificate
}

func (d jwtDevice) kid() string { return api.KeyID(d.cert.Raw) }

// jwtFleet is a CA, its devices' keys and a key-set server.
type jwtFleet struct {
	ca      *testCA
	serial  int64
	mu      sync.Mutex
	devices map[string][]jwtDevice
	fetches atomic.Int32
	// notModified counts 304s; down makes the server answer 503.
	notModified atomic.Int32
	down        atomic.Bool
	keys        *httptest.Server
}

func newJWTFleet(t *testing.T) *jwtFleet {
	f := &jwtFleet{ca: newTestCA(t), devices: map[string][]jwtDevice{}}
	f.keys = httptest.NewServer(http.HandlerFunc(f.serveKeys))
	t.Cleanup(f.keys.Close)
	return f
}

// add certifies a new key of kind ("p256", "p384", "rsa", "ed25519") for id.
func (f *jwtFleet) add(t *testing.T, id, kind string) jwtDevice {
	t.Helper()
	var key crypto.Signer
	switch kind {
	case "p256":
		key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		key, _ = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "rsa":
		key, _ = rsa.GenerateKey(rand.Reader, 2048)
	case "ed25519":
		_, key, _ = ed25519.GenerateKey(rand.Reader)
	}
	f.mu.Lock()
	f.serial++
	serial := f.serial
	f.mu.Unlock()
	cert, err := f.ca.Sign(&x509.Certificate{SerialNumber: big.NewInt(serial), PublicKey: key.Public(),
		Subject:     pkix.Name{CommonName: id},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Fatal(err)
	}
	d := jwtDevice{key: key, cert: cert}
	f.mu.Lock()
	f.devices[id] = append(f.devices[id], d)
	f.mu.Unlock()
	return d
}

func (f *jwtFleet) serveKeys(w http.ResponseWriter, r *http.Request) {
	f.fetches.Add(1)
	if f.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	id, ok := strings.CutPrefix(r.URL.Path, "/v1/devices/")
	id, ok2 := strings.CutSuffix(id, "/keys")
	f.mu.Lock()
	devs, known := f.devices[id]
	f.mu.Unlock()
	if !ok || !ok2 || !known {
		http.NotFound(w, r)
		return
	}
	var set jose.JSONWebKeySet
	for _, d := range devs {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: d.key.Public(), KeyID: d.kid(), Use: "sig",
			Certificates: []*x509.Certificate{d.cert, f.ca.Intermediate}})
	}
	b, _ := json.Marshal(set)
	etag := `"` + api.KeyID(b)[:16] + `"`
	if r.Header.Get("If-None-Match") == etag {
		f.notModified.Add(1)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("ETag", etag)
	w.Write(b)
}

// sign makes a token with d's key; hdr may set "kid" ("-" leaves it out),
// "x5c" (true) and "alg".
func sign(t *testing.T, d jwtDevice, claims map[string]any, hdr map[string]any) string {
	t.Helper()
	alg := jose.SignatureAlgorithm("")
	if a, ok := hdr["alg"]; ok {
		alg = jose.SignatureAlgorithm(a.(string))
	}
	var key any = d.key
	if alg == jose.HS256 {
		key = d.cert.RawSubjectPublicKeyInfo
	}
	opts := new(jose.SignerOptions).WithType("JWT")
	if kid, ok := hdr["kid"]; !ok {
		opts.WithHeader("kid", d.kid())
	} else if kid != "-" {
		opts.WithHeader("kid", kid)
	}
	if x5cIntermediate, ok := hdr["x5c"].(*x509.Certificate); ok {
		opts.WithHeader("x5c", []string{base64.StdEncoding.EncodeToString(d.cert.Raw), base64.StdEncoding.EncodeToString(x5cIntermediate.Raw)})
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jose.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// unsigned makes an alg:none token.
func unsigned(claims map[string]any) string {
	h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "."
}

func TestVerifyDeviceJWT(t *testing.T) {
	f := newJWTFleet(t)
	now := time.Now().Truncate(time.Second).Add(time.Hour) // minica's CAs start at the real now
	d1 := f.add(t, "dev-1", "p256")
	d1rsa := f.add(t, "dev-1", "rsa")
	d2 := f.add(t, "dev-2", "p384")
	d3 := f.add(t, "dev-3", "ed25519")
	revoked := f.add(t, "dev-4", "p256")
	other := newTestCA(t) // another fleet
	stranger := jwtDevice{key: d1.key}
	var err error
	stranger.cert, err = other.Sign(&x509.Certificate{SerialNumber: big.NewInt(99), PublicKey: d1.key.Public(),
		Subject: pkix.Name{CommonName: "dev-1"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Fatal(err)
	}
	checker := newJWTChecker(t, f.ca, now, revoked.cert.SerialNumber.Int64())
	v := newTestJWTVerifier(t, f, checker, func() time.Time { return now })

	claims := func(id string, mod func(map[string]any)) map[string]any {
		c := map[string]any{"aud": testAud + "/devices/" + id, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		if mod != nil {
			mod(c)
		}
		return c
	}
	set := func(k string, val any) func(map[string]any) { return func(c map[string]any) { c[k] = val } }
	for _, tc := range []struct {
		name   string
		token  string
		device string // want, on success
		kid    string
		reason string // want, on failure
	}{
		{name: "ok/es256-kid", token: sign(t, d1, claims("dev-1", nil), nil), device: "dev-1", kid: d1.kid()},
		{name: "ok/rs256-second-key", token: sign(t, d1rsa, claims("dev-1", nil), nil), device: "dev-1", kid: d1rsa.kid()},
		{name: "ok/es384-no-kid-one-key", token: sign(t, d2, claims("dev-2", nil), map[string]any{"kid": "-"}), device: "dev-2", kid: d2.kid()},
		{name: "ok/eddsa", token: sign(t, d3, claims("dev-3", nil), nil), device: "dev-3", kid: d3.kid()},
		{name: "ok/x5c", token: sign(t, d1, claims("dev-1", nil), map[string]any{"x5c": f.ca.Intermediate, "kid": "-"}), device: "dev-1", kid: d1.kid()},
		{name: "ok/thumbprint-kid", token: sign(t, d2, claims("dev-2", nil), map[string]any{"kid": thumbprint(t, d2)}), device: "dev-2", kid: d2.kid()},
		{name: "ok/sub-is-device", token: sign(t, d1, claims("dev-1", set("sub", "dev-1")), nil), device: "dev-1", kid: d1.kid()},
		{name: "ok/aud-list", token: sign(t, d1, claims("dev-1", set("aud", []string{"x", testAud + "/devices/dev-1"})), nil), device: "dev-1", kid: d1.kid()},
		{name: "ok/expired-within-skew", token: sign(t, d1, claims("dev-1", set("exp", now.Add(-9*time.Minute).Unix())), nil), device: "dev-1", kid: d1.kid()},
		{name: "ok/iat-future-within-skew", token: sign(t, d1, claims("dev-1", set("iat", now.Add(9*time.Minute).Unix())), nil), device: "dev-1", kid: d1.kid()},
		{name: "ok/no-iat-exp-within-max", token: sign(t, d1, claims("dev-1", func(c map[string]any) { delete(c, "iat") }), nil), device: "dev-1", kid: d1.kid()},

		{name: "fail/garbage", token: "not.a.jwt", reason: ReasonMalformed},
		{name: "fail/empty", token: "", reason: ReasonMalformed},
		{name: "fail/json-serialization", token: `{"payload":"e30","signatures":[]}`, reason: ReasonMalformed},
		{name: "fail/no-exp", token: sign(t, d1, claims("dev-1", func(c map[string]any) { delete(c, "exp") }), nil), reason: ReasonMalformed},
		{name: "fail/alg-none", token: unsigned(claims("dev-1", nil)), reason: ReasonBadAlgorithm},
		{name: "fail/hs256-public-key-secret", token: sign(t, d1, claims("dev-1", nil), map[string]any{"alg": "HS256"}), reason: ReasonBadAlgorithm},
		{name: "fail/es384-on-p256-key", token: retag(t, sign(t, d1, claims("dev-1", nil), nil), "ES384"), reason: ReasonBadAlgorithm},
		{name: "fail/wrong-aud", token: sign(t, d1, claims("dev-1", set("aud", "https://other.example.com/devices/dev-1")), nil), reason: ReasonBadAudience},
		{name: "fail/aud-no-device", token: sign(t, d1, claims("dev-1", set("aud", testAud)), nil), reason: ReasonBadAudience},
		{name: "fail/aud-two-devices", token: sign(t, d1, claims("dev-1", set("aud", []string{testAud + "/devices/dev-1", testAud + "/devices/dev-2"})), nil), reason: ReasonBadAudience},
		{name: "fail/sub-other-device", token: sign(t, d1, claims("dev-1", set("sub", "dev-2")), nil), reason: ReasonBadAudience},
		{name: "fail/expired", token: sign(t, d1, claims("dev-1", set("exp", now.Add(-11*time.Minute).Unix())), nil), reason: ReasonExpired},
		{name: "fail/nbf-future", token: sign(t, d1, claims("dev-1", set("nbf", now.Add(11*time.Minute).Unix())), nil), reason: ReasonNotYetValid},
		{name: "fail/iat-future", token: sign(t, d1, claims("dev-1", set("iat", now.Add(11*time.Minute).Unix())), nil), reason: ReasonNotYetValid},
		{name: "fail/lifetime", token: sign(t, d1, claims("dev-1", set("exp", now.Add(24*time.Hour+time.Second).Unix())), nil), reason: ReasonLifetime},
		{name: "fail/far-future-exp-no-iat", token: sign(t, d1, claims("dev-1", func(c map[string]any) {
			delete(c, "iat")
			c["exp"] = now.Add(100 * 24 * time.Hour).Unix()
		}), nil), reason: ReasonLifetime},
		{name: "fail/kid-of-other-device", token: sign(t, d1, claims("dev-1", nil), map[string]any{"kid": d2.kid()}), reason: ReasonUnknownKey},
		{name: "fail/no-kid-two-keys", token: sign(t, d1, claims("dev-1", nil), map[string]any{"kid": "-"}), reason: ReasonUnknownKey},
		{name: "fail/unknown-device", token: sign(t, d1, claims("dev-9", nil), nil), reason: ReasonUnknownKey},
		{name: "fail/rs256-on-p256-key", token: sign(t, jwtDevice{key: d1rsa.key, cert: d1.cert}, claims("dev-1", nil), nil), reason: ReasonBadAlgorithm},
		{name: "fail/wrong-key-same-type", token: sign(t, jwtDevice{key: revoked.key, cert: d1.cert}, claims("dev-1", nil), nil), reason: ReasonBadSignature},
		{name: "fail/revoked", token: sign(t, revoked, claims("dev-4", nil), nil), reason: ReasonRevoked},
		{name: "fail/revoked-x5c", token: sign(t, revoked, claims("dev-4", nil), map[string]any{"x5c": f.ca.Intermediate}), reason: ReasonRevoked},
		{name: "fail/x5c-other-fleet", token: sign(t, stranger, claims("dev-1", nil), map[string]any{"x5c": other.Intermediate}), reason: ReasonBadChain},
		{name: "fail/x5c-other-device", token: sign(t, d2, claims("dev-1", nil), map[string]any{"x5c": f.ca.Intermediate}), reason: ReasonUnknownKey},
		{name: "fail/x5c-kid-mismatch", token: sign(t, d1, claims("dev-1", nil), map[string]any{"x5c": f.ca.Intermediate, "kid": d1rsa.kid()}), reason: ReasonUnknownKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := v.VerifyDeviceJWT(t.Context(), tc.token, testAud)
			if tc.reason != "" {
				var je *JWTError
				if !errors.As(err, &je) {
					t.Fatalf("VerifyDeviceJWT() = %+v, %v; want a JWTError %s", got, err, tc.reason)
				}
				if je.Reason != tc.reason {
					t.Fatalf("VerifyDeviceJWT() reason = %s (%s), want %s", je.Reason, je.Detail, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("VerifyDeviceJWT() = %v, want success", err)
			}
			if got.DeviceID != tc.device || got.KeyID != tc.kid || got.Certificate.Subject.CommonName != tc.device {
				t.Errorf("VerifyDeviceJWT() = %s %s, want %s %s", got.DeviceID, got.KeyID, tc.device, tc.kid)
			}
			if got.Expiry.IsZero() {
				t.Errorf("VerifyDeviceJWT() Expiry is zero")
			}
		})
	}
}

// TestVerifyDeviceJWTCache: a cached result is refused once its certificate
// is revoked, once the revocation data is stale, and once it expires.
func TestVerifyDeviceJWTCache(t *testing.T) {
	f := newJWTFleet(t)
	clk := &clock{t: time.Now().Truncate(time.Second).Add(time.Hour)}
	d := f.add(t, "dev-1", "p256")
	d2 := f.add(t, "dev-2", "p256")
	crlPath := filepath.Join(t.TempDir(), "crl.der")
	writeCRL := func(serials ...int64) {
		if err := os.WriteFile(crlPath, f.ca.crl(t, clk.Now().Unix(), clk.Now(), 2*time.Hour, serials...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCRL()
	zero := time.Duration(0)
	checker, err := NewChecker(CheckerConfig{CRL: crlPath, Issuer: f.ca.Intermediate, Grace: &zero}, CheckerDeps{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := checker.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	v := newTestJWTVerifier(t, f, checker, clk.Now)
	claims := map[string]any{"aud": testAud + "/devices/dev-1", "iat": clk.Now().Unix(), "exp": clk.Now().Add(90 * time.Minute).Unix()}
	tok := sign(t, d, claims, nil)
	claims2 := map[string]any{"aud": testAud + "/devices/dev-2", "iat": clk.Now().Unix(), "exp": clk.Now().Add(5 * time.Hour).Unix()}
	tok2 := sign(t, d2, claims2, nil)
	reason := func(tok string) string {
		t.Helper()
		_, err := v.VerifyDeviceJWT(t.Context(), tok, testAud)
		if je, ok := errors.AsType[*JWTError](err); ok {
			return je.Reason
		}
		if err != nil {
			t.Fatal(err)
		}
		return ""
	}
	for i := range 2 {
		if r := reason(tok); r != "" {
			t.Fatalf("verify #%d: reason %s, want success", i, r)
		}
		if r := reason(tok2); r != "" {
			t.Fatalf("verify #%d of dev-2: reason %s, want success", i, r)
		}
	}
	if n := f.fetches.Load(); n != 2 {
		t.Errorf("key-set fetches = %d, want 2 (one per device, then the cache)", n)
	}
	// Cached for one audience base, the token is still checked for another.
	if _, err := v.VerifyDeviceJWT(t.Context(), tok, "https://other.example.com"); err == nil {
		t.Errorf("a token cached for %s was accepted for another audience base", testAud)
	} else if je, ok := errors.AsType[*JWTError](err); !ok || je.Reason != ReasonBadAudience {
		t.Errorf("cached token, other audience base: %v, want %s", err, ReasonBadAudience)
	}
	if r := reason(tok); r != "" {
		t.Errorf("the token for its own audience after another's refusal: reason %q, want success", r)
	}
	writeCRL(d.cert.SerialNumber.Int64())
	if err := checker.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r := reason(tok); r != ReasonRevoked {
		t.Errorf("cached token after revocation: reason %q, want %s", r, ReasonRevoked)
	}
	if r := reason(tok2); r != "" {
		t.Errorf("dev-2 after dev-1's revocation: reason %q, want success", r)
	}
	clk.Add(2*time.Hour + time.Second) // the CRL is past its nextUpdate, no grace
	if r := reason(tok2); r != ReasonUnavailable {
		t.Errorf("cached token with a stale CRL: reason %q, want %s", r, ReasonUnavailable)
	}
	writeCRL(d.cert.SerialNumber.Int64())
	if err := checker.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r := reason(tok2); r != "" {
		t.Errorf("cached token with a fresh CRL: reason %q, want success", r)
	}
	clk.Add(3*time.Hour + JWTSkew)
	if r := reason(tok2); r != ReasonExpired {
		t.Errorf("cached token past exp+skew: reason %q, want %s", r, ReasonExpired)
	}
}

// TestVerifyDeviceJWTRefetch: an unknown kid refetches the key set, at most
// once per KeysRefetch, so a key certified since the last fetch is found.
func TestVerifyDeviceJWTRefetch(t *testing.T) {
	f := newJWTFleet(t)
	clk := &clock{t: time.Now().Truncate(time.Second).Add(time.Hour)}
	d := f.add(t, "dev-1", "p256")
	v := newTestJWTVerifier(t, f, newJWTChecker(t, f.ca, clk.Now()), clk.Now)
	claims := func() map[string]any {
		return map[string]any{"aud": testAud + "/devices/dev-1", "iat": clk.Now().Unix(), "exp": clk.Now().Add(time.Hour).Unix()}
	}
	if _, err := v.VerifyDeviceJWT(t.Context(), sign(t, d, claims(), nil), testAud); err != nil {
		t.Fatal(err)
	}
	stranger := jwtDevice{key: d.key, cert: d.cert}
	unknown := sign(t, stranger, claims(), map[string]any{"kid": strings.Repeat("ab", 32)})
	clk.Add(10 * time.Second)
	for range 3 {
		if _, err := v.VerifyDeviceJWT(t.Context(), unknown, testAud); err == nil {
			t.Fatal("unknown kid accepted")
		}
	}
	if n := f.fetches.Load(); n != 2 {
		t.Errorf("fetches after three unknown kids = %d, want 2 (the first, one refetch)", n)
	}
	d2 := f.add(t, "dev-1", "p256")
	newKey := sign(t, d2, claims(), nil)
	if _, err := v.VerifyDeviceJWT(t.Context(), newKey, testAud); err == nil {
		t.Error("a new key was found before KeysRefetch passed; want it to wait")
	}
	clk.Add(10 * time.Second)
	if _, err := v.VerifyDeviceJWT(t.Context(), sign(t, d2, claims(), nil), testAud); err != nil {
		t.Errorf("a new key after KeysRefetch: %v, want success", err)
	}
}

// A request that is cancelled (a client hanging up) while its token's key
// set is fetched does not leave that set failed: the device's next token
// is accepted, not refused as unavailable until KeysRefetch passes.
func TestVerifyDeviceJWTCancelledFetch(t *testing.T) {
	f := newJWTFleet(t)
	clk := &clock{t: time.Now().Truncate(time.Second).Add(time.Hour)}
	d := f.add(t, "dev-1", "p256")
	v := newTestJWTVerifier(t, f, newJWTChecker(t, f.ca, clk.Now()), clk.Now)
	claims := map[string]any{"aud": testAud + "/devices/dev-1", "iat": clk.Now().Unix(), "exp": clk.Now().Add(time.Hour).Unix()}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, _ = v.VerifyDeviceJWT(ctx, sign(t, d, claims, nil), testAud) // whatever it answers the cancelled caller
	claims["jti"] = "second"
	if _, err := v.VerifyDeviceJWT(t.Context(), sign(t, d, claims, nil), testAud); err != nil {
		t.Errorf("the next token after a cancelled request: %v, want accepted", err)
	}
}

// TestVerifyDeviceJWTKeySetAge: a key set is revalidated (a conditional
// GET, 304) after KeysMaxAge; while the CA cannot be reached the set last
// fetched serves for an hour more, then the device's tokens are refused as
// unavailable (fail closed), until the CA answers again.
func TestVerifyDeviceJWTKeySetAge(t *testing.T) {
	f := newJWTFleet(t)
	clk := &clock{t: time.Now().Truncate(time.Second).Add(time.Hour)}
	d := f.add(t, "dev-1", "p256")
	checker := newJWTChecker(t, f.ca, clk.Now())
	roots := x509.NewCertPool()
	roots.AddCert(f.ca.Root)
	v, err := NewJWTVerifier(JWTConfig{Checker: checker, Roots: roots, KeysURL: f.keys.URL, Now: clk.Now, Client: f.keys.Client(),
		KeysMaxAge: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	reason := func() string {
		t.Helper()
		// A new token each time: the result cache is not what is tested.
		tok := sign(t, d, map[string]any{"aud": testAud + "/devices/dev-1", "iat": clk.Now().Unix(), "exp": clk.Now().Add(time.Hour).Unix()}, nil)
		_, err := v.VerifyDeviceJWT(t.Context(), tok, testAud)
		if je, ok := errors.AsType[*JWTError](err); ok {
			return je.Reason
		}
		if err != nil {
			t.Fatal(err)
		}
		return ""
	}
	if r := reason(); r != "" {
		t.Fatalf("first token: %s", r)
	}
	clk.Add(5 * time.Minute)
	if r := reason(); r != "" || f.notModified.Load() != 1 {
		t.Fatalf("after KeysMaxAge: reason %q, %d 304s; want success after one 304", r, f.notModified.Load())
	}
	f.down.Store(true)
	clk.Add(5 * time.Minute)
	if r := reason(); r != "" {
		t.Errorf("CA down, set 5m old: reason %q, want success from the set last fetched", r)
	}
	clk.Add(time.Hour)
	if r := reason(); r != ReasonUnavailable {
		t.Errorf("CA down, set 1h5m old: reason %q, want %s", r, ReasonUnavailable)
	}
	f.down.Store(false)
	clk.Add(10 * time.Second)
	if r := reason(); r != "" {
		t.Errorf("CA back: reason %q, want success", r)
	}
}

func TestNewJWTVerifierConfig(t *testing.T) {
	f := newJWTFleet(t)
	checker := newJWTChecker(t, f.ca, time.Now())
	roots := x509.NewCertPool()
	for _, tc := range []struct {
		name string
		cfg  JWTConfig
		ok   bool
	}{
		{"ok/defaults", JWTConfig{Checker: checker, Roots: roots}, true},
		{"ok/keys-url", JWTConfig{Checker: checker, Roots: roots, KeysURL: "http://ca.example:8080"}, true},
		{"fail/no-checker", JWTConfig{Roots: roots}, false},
		{"fail/no-roots", JWTConfig{Checker: checker}, false},
		{"fail/keys-url-file", JWTConfig{Checker: checker, Roots: roots, KeysURL: "http://ca.example:8080/crl"}, false},
		{"fail/lifetime-short", JWTConfig{Checker: checker, Roots: roots, MaxLifetime: time.Second}, false},
		{"fail/lifetime-long", JWTConfig{Checker: checker, Roots: roots, MaxLifetime: 1000 * time.Hour}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewJWTVerifier(tc.cfg)
			if (err == nil) != tc.ok {
				t.Errorf("NewJWTVerifier() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// FuzzVerifyDeviceJWT: no token panics the parse path, and none is accepted.
func FuzzVerifyDeviceJWT(f *testing.F) {
	ca, err := minica.New()
	if err != nil {
		f.Fatal(err)
	}
	crlPath := filepath.Join(f.TempDir(), "crl.der")
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now(),
		NextUpdate: time.Now().Add(time.Hour)}, ca.Intermediate, ca.Signer)
	if err != nil {
		f.Fatal(err)
	}
	os.WriteFile(crlPath, der, 0o644)
	checker, err := NewChecker(CheckerConfig{CRL: crlPath, Issuer: ca.Intermediate}, CheckerDeps{})
	if err != nil {
		f.Fatal(err)
	}
	checker.Refresh(f.Context())
	roots := x509.NewCertPool()
	roots.AddCert(ca.Root)
	v, err := NewJWTVerifier(JWTConfig{Checker: checker, Roots: roots})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("eyJhbGciOiJFUzI1NiIsIng1YyI6WyJNSUlCIl19.eyJhdWQiOiJodHRwczovL2EvZGV2aWNlcy9kIiwiZXhwIjoxfQ.AAAA")
	f.Add(`{"payload":"e30","signatures":[{"protected":"eyJhbGciOiJFUzI1NiJ9","signature":"AA"}]}`)
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, token string) {
		if _, err := v.VerifyDeviceJWT(t.Context(), token, "https://a"); err == nil {
			t.Fatalf("VerifyDeviceJWT(%q) accepted a token no device signed", token)
		}
	})
}

func newJWTChecker(t *testing.T, ca *testCA, now time.Time, revoked ...int64) *Checker {
	t.Helper()
	path := filepath.Join(t.TempDir(), "crl.der")
	if err := os.WriteFile(path, ca.crl(t, 1, now.Add(-time.Minute), 24*time.Hour, revoked...), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := NewChecker(CheckerConfig{CRL: path, Issuer: ca.Intermediate}, CheckerDeps{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	return c
}

func newTestJWTVerifier(t *testing.T, f *jwtFleet, checker *Checker, now func() time.Time) *JWTVerifier {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(f.ca.Root)
	v, err := NewJWTVerifier(JWTConfig{Checker: checker, Roots: roots, KeysURL: f.keys.URL, Now: now, Client: f.keys.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func thumbprint(t *testing.T, d jwtDevice) string {
	t.Helper()
	tp, err := (&jose.JSONWebKey{Key: d.key.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(tp)
}

// retag rewrites a token's alg without re-signing it.
func retag(t *testing.T, tok, alg string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	h, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(h, &m)
	m["alg"] = alg
	h, _ = json.Marshal(m)
	parts[0] = base64.RawURLEncoding.EncodeToString(h)
	return strings.Join(parts, ".")
}
