package enroll

import (
	"crypto/x509"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// TestEnrollFixtures enrolls every CSR fixture with a token for dev-1 (or a
// pattern token, for the device-ID syntax cases) and checks the outcome, and
// that a refusal writes nothing and keeps the token's use.
func TestEnrollFixtures(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		pattern bool       // use a pattern token "*" instead of a dev-1 token
		want    fault.Kind // 0: accepted
	}{
		{name: "ok/p256", file: "csr-p256.pem"},
		{name: "ok/p384", file: "csr-p384.pem"},
		{name: "ok/rsa2048", file: "csr-rsa2048.pem"},
		{name: "ok/rsa3072", file: "csr-rsa3072.pem"},
		{name: "ok/ed25519", file: "csr-ed25519.pem"},
		{name: "ok/p256-uri", file: "csr-p256-uri.pem"},
		{name: "ok/empty-subject", file: "csr-p256-empty-subject.pem"},
		{name: "fail/rsa1024", file: "csr-rsa1024.pem", want: fault.BadKey},
		{name: "fail/rsa1536", file: "csr-rsa1536.pem", want: fault.BadKey},
		{name: "fail/p224", file: "csr-p224.pem", want: fault.BadKey},
		{name: "fail/p521", file: "csr-p521.pem", want: fault.BadKey},
		{name: "fail/secp256k1", file: "csr-secp256k1.pem", want: fault.BadKey},
		{name: "fail/dsa", file: "csr-dsa2048.pem", want: fault.BadKey},
		{name: "fail/bad-signature", file: "csr-bad-signature.pem", want: fault.BadCSR},
		{name: "fail/extra-dns", file: "csr-extra-dns.pem", want: fault.BadCSR},
		{name: "fail/other-cn", file: "csr-other-cn.pem", want: fault.BadCSR},
		{name: "fail/extra-ou", file: "csr-extra-ou.pem", want: fault.BadCSR},
		{name: "fail/ip-san", file: "csr-ip-san.pem", want: fault.BadCSR},
		{name: "fail/email-san", file: "csr-email-san.pem", want: fault.BadCSR},
		{name: "fail/wrong-uri", file: "csr-wrong-uri.pem", want: fault.BadCSR},
		{name: "fail/two-uris", file: "csr-two-uris.pem", want: fault.BadCSR},
		{name: "fail/bad-device-id", file: "csr-bad-device-id.pem", pattern: true, want: fault.BadCSR},
		{name: "fail/long-device-id", file: "csr-long-device-id.pem", pattern: true, want: fault.BadCSR},
		// Extension requests (issue 12 #6): what a device gets anyway is
		// accepted; anything more is refused, not dropped.
		{name: "ok/challenge-password", file: "csr-challenge-password.pem"},
		{name: "ok/ext-ca-false", file: "csr-ext-ca-false.pem"},
		{name: "ok/ext-ku-digitalsignature", file: "csr-ext-ku-digitalsignature.pem"},
		{name: "ok/ext-eku-clientauth", file: "csr-ext-eku-clientauth.pem"},
		{name: "fail/ext-ca-true", file: "csr-ext-ca-true.pem", want: fault.BadCSR},
		{name: "fail/ext-ku-keycertsign", file: "csr-ext-ku-keycertsign.pem", want: fault.BadCSR},
		{name: "fail/ext-ku-keyencipherment", file: "csr-ext-ku-keyencipherment.pem", want: fault.BadCSR},
		{name: "fail/ext-eku-serverauth", file: "csr-ext-eku-serverauth.pem", want: fault.BadCSR},
		{name: "fail/ext-unknown", file: "csr-ext-unknown.pem", want: fault.BadCSR},
		{name: "fail/ext-eku-twice", file: "csr-ext-eku-twice.pem", want: fault.BadCSR},
		{name: "fail/not-a-csr", file: "not-a-csr.pem", want: fault.BadCSR},
		{name: "fail/truncated", file: "csr-truncated.pem", want: fault.BadCSR},
		{name: "fail/certificate", file: "cert-not-csr.pem", want: fault.BadCSR},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := TokenRequest{DeviceID: "dev-1"}
			if tc.pattern {
				req = TokenRequest{DevicePattern: "*", AnyDevice: true}
			}
			// A fresh dev-1 per case: each accepted case enrolls dev-1 again,
			// which max_active_certificates would refuse after three.
			f := newFixture(t, Config{})
			secret, _ := f.token(t, req)
			res, err := f.svc.Enroll(t.Context(), string(secret), readCSR(t, tc.file))
			if got := kindOf(err); got != tc.want || (err != nil && tc.want == 0) {
				t.Fatalf("Enroll(%s) kind = %v (err %v), want %v", tc.file, got, err, tc.want)
			}
			if tc.want == 0 {
				if res.DeviceID != "dev-1" || res.Certificate.Subject.CommonName != "dev-1" {
					t.Errorf("Enroll(%s) device = %q, CN %q, want dev-1", tc.file, res.DeviceID, res.Certificate.Subject.CommonName)
				}
				if got := f.spent(t, secret); got != 1 {
					t.Errorf("token spent = %d after success, want 1", got)
				}
				return
			}
			if got := f.spent(t, secret); got != 0 {
				t.Errorf("token spent = %d after a refusal, want 0", got)
			}
			if devs, _ := f.store.ListDevices(t.Context(), store.Page{}); len(devs) != 0 {
				t.Errorf("devices after a refusal = %v, want none", devs)
			}
		})
	}
}

func TestEnrollToken(t *testing.T) {
	f := newFixture(t, Config{})
	csr, _ := newCSR(t, "dev-t")
	good, tok := f.token(t, TokenRequest{DeviceID: "dev-t", TTL: new(time.Hour)})

	unknown, err := newSecret(EnrollTokenPrefix)
	if err != nil {
		t.Fatal(err)
	}
	revoked, rtok := f.token(t, TokenRequest{DeviceID: "dev-t"})
	if _, err := f.svc.RevokeToken(t.Context(), rtok.ID); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	if _, err := f.svc.RevokeToken(t.Context(), rtok.ID); kindOf(err) != fault.AlreadyRevoked {
		t.Errorf("second RevokeToken kind = %v, want AlreadyRevoked", kindOf(err))
	}
	if _, err := f.svc.RevokeToken(t.Context(), "0000000000000000"); kindOf(err) != fault.NotFound {
		t.Errorf("RevokeToken(unknown) kind = %v, want NotFound", kindOf(err))
	}

	for _, tc := range []struct {
		name, token string
	}{
		{"fail/empty", ""},
		{"fail/no-prefix", string(good)[len(EnrollTokenPrefix):]},
		{"fail/admin-prefix", AdminTokenPrefix + string(good)[len(EnrollTokenPrefix):]},
		{"fail/short", string(good)[:len(good)-1]},
		{"fail/bad-base64", string(good)[:len(good)-1] + "*"},
		{"fail/unknown", string(unknown)},
		{"fail/revoked", string(revoked)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := f.svc.Enroll(t.Context(), tc.token, csr); kindOf(err) != fault.Unauthorized {
				t.Errorf("Enroll(%s) kind = %v (err %v), want Unauthorized", tc.name, kindOf(err), err)
			}
		})
	}

	t.Run("fail/expired-at-ttl", func(t *testing.T) {
		f.clock.Add(time.Hour) // exactly ExpiresAt
		defer f.clock.Add(-time.Hour)
		if _, err := f.svc.Enroll(t.Context(), string(good), csr); kindOf(err) != fault.Unauthorized {
			t.Errorf("Enroll at ExpiresAt kind = %v, want Unauthorized", kindOf(err))
		}
	})
	t.Run("ok/just-before-expiry", func(t *testing.T) {
		f.clock.Add(time.Hour - time.Second)
		defer f.clock.Add(-(time.Hour - time.Second))
		if _, err := f.svc.Enroll(t.Context(), string(good), csr); err != nil {
			t.Fatalf("Enroll 1s before expiry: %v", err)
		}
	})
	t.Run("fail/used-up", func(t *testing.T) {
		csr2, _ := newCSR(t, "dev-t")
		if _, err := f.svc.Enroll(t.Context(), string(good), csr2); kindOf(err) != fault.Unauthorized {
			t.Errorf("second use of a 1-use token: kind = %v, want Unauthorized", kindOf(err))
		}
	})
	if got := f.spent(t, good); got != tok.Uses {
		t.Errorf("spent = %d, want %d", got, tok.Uses)
	}
}

func TestEnrollPatternToken(t *testing.T) {
	f := newFixture(t, Config{})
	secret, _ := f.token(t, TokenRequest{DevicePattern: "line3-*", Uses: 10})
	enroll := func(t *testing.T, cn string) (*Result, error) {
		csr, _ := newCSR(t, cn)
		return f.svc.Enroll(t.Context(), string(secret), csr)
	}
	res, err := enroll(t, "line3-0001")
	if err != nil {
		t.Fatalf("Enroll(line3-0001): %v", err)
	}
	if want := "spiffe://fleet.test/device/line3-0001"; len(res.Certificate.URIs) != 1 || res.Certificate.URIs[0].String() != want {
		t.Errorf("URIs = %v, want [%s]", res.Certificate.URIs, want)
	}
	for _, tc := range []struct {
		name, cn string
		want     fault.Kind
	}{
		{"fail/no-match", "line4-0001", fault.Forbidden},
		{"fail/exists", "line3-0001", fault.Conflict},
		{"fail/no-cn", "", fault.BadCSR},
		{"fail/bad-id", "line3-a b", fault.BadCSR},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := enroll(t, tc.cn); kindOf(err) != tc.want {
				t.Errorf("Enroll(CN=%q) kind = %v (err %v), want %v", tc.cn, kindOf(err), err, tc.want)
			}
		})
	}
	if got := f.spent(t, secret); got != 1 {
		t.Errorf("spent = %d, want 1: refusals must not burn uses", got)
	}
}

func TestEnrollMaxActive(t *testing.T) {
	f := newFixture(t, Config{MaxActiveCertificates: 2})
	secret, _ := f.token(t, TokenRequest{DeviceID: "dev-m", Uses: 5})
	for i := range 2 {
		csr, _ := newCSR(t, "dev-m")
		if _, err := f.svc.Enroll(t.Context(), string(secret), csr); err != nil {
			t.Fatalf("enrollment %d: %v", i+1, err)
		}
	}
	csr, _ := newCSR(t, "dev-m")
	if _, err := f.svc.Enroll(t.Context(), string(secret), csr); kindOf(err) != fault.Conflict {
		t.Fatalf("third enrollment kind = %v (err %v), want Conflict", kindOf(err), err)
	}
	// Once the first two expire (device_validity, 90 days by default), the
	// device may enroll again with a new token.
	f.clock.Add(2160*time.Hour + time.Minute)
	again, _ := f.token(t, TokenRequest{DeviceID: "dev-m"})
	if _, err := f.svc.Enroll(t.Context(), string(again), csr); err != nil {
		t.Fatalf("enrollment after the others expired: %v", err)
	}
}

func TestEnrollKeyInUse(t *testing.T) {
	f := newFixture(t, Config{})
	a, _ := f.token(t, TokenRequest{DeviceID: "dev-a", Uses: 2})
	b, _ := f.token(t, TokenRequest{DeviceID: "dev-b"})
	_, key := newCSR(t, "dev-a")
	if _, err := f.svc.Enroll(t.Context(), string(a), csrFor(t, key, "dev-a")); err != nil {
		t.Fatalf("Enroll(dev-a): %v", err)
	}
	if _, err := f.svc.Enroll(t.Context(), string(b), csrFor(t, key, "dev-b")); kindOf(err) != fault.Conflict {
		t.Errorf("Enroll(dev-b, dev-a's key) kind = %v, want Conflict", kindOf(err))
	}
	if _, err := f.svc.Enroll(t.Context(), string(a), csrFor(t, key, "dev-a")); err != nil {
		t.Errorf("Enroll(dev-a, its own key again) = %v, want success", err)
	}
	if got := f.spent(t, b); got != 0 {
		t.Errorf("dev-b token spent = %d after refusal, want 0", got)
	}
}

// TestEnrollRevokedDeviceAndBlockedKey: a revoked device cannot enroll
// until it is reset, and a key blocked by keyCompromise is refused for any
// device, both without burning the token.
func TestEnrollRevokedDeviceAndBlockedKey(t *testing.T) {
	f := newFixture(t, Config{})
	first, _ := f.token(t, TokenRequest{DeviceID: "dev-r"})
	_, key := newCSR(t, "dev-r")
	if _, err := f.svc.Enroll(t.Context(), string(first), csrFor(t, key, "dev-r")); err != nil {
		t.Fatal(err)
	}
	now := f.clock.Now()
	if _, err := f.store.Revoke(t.Context(), store.RevokeRequest{DeviceID: "dev-r", At: now, Reason: 1, BlockKeys: true,
		Audit: store.AuditEvent{Time: now, Action: "device.revoke", Actor: "admin"}}); err != nil {
		t.Fatal(err)
	}
	again, _ := f.token(t, TokenRequest{DeviceID: "dev-r"})
	fresh, _ := newCSR(t, "dev-r")
	if _, err := f.svc.Enroll(t.Context(), string(again), fresh); kindOf(err) != fault.Forbidden {
		t.Errorf("revoked device enrolls: kind = %v (err %v), want Forbidden", kindOf(err), err)
	}
	other, _ := f.token(t, TokenRequest{DeviceID: "dev-s"})
	if _, err := f.svc.Enroll(t.Context(), string(other), csrFor(t, key, "dev-s")); kindOf(err) != fault.Forbidden {
		t.Errorf("blocked key for another device: kind = %v (err %v), want Forbidden", kindOf(err), err)
	}
	if f.spent(t, again) != 0 || f.spent(t, other) != 0 {
		t.Error("a refusal burnt a token")
	}
	if _, err := f.store.ResetDevice(t.Context(), "dev-r", now, store.AuditEvent{Time: now, Action: "device.reset", Actor: "admin"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Enroll(t.Context(), string(again), fresh); err != nil {
		t.Errorf("after reset, with a new key: %v", err)
	}
}

// TestEnrollConcurrentOneUse races 32 enrollments on a 1-use token: exactly
// one certificate, 31 refusals, one device, one audit row.
func TestEnrollConcurrentOneUse(t *testing.T) {
	f := newFixture(t, Config{})
	secret, _ := f.token(t, TokenRequest{DeviceID: "dev-race"})
	const n = 32
	csrs := make([][]byte, n)
	for i := range csrs {
		csrs[i], _ = newCSR(t, "dev-race")
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { _, errs[i] = f.svc.Enroll(t.Context(), string(secret), csrs[i]) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case kindOf(err) != fault.Unauthorized:
			t.Errorf("racing Enroll error = %v, want Unauthorized (used up)", err)
		}
	}
	if ok != 1 {
		t.Errorf("successes = %d, want 1", ok)
	}
	certs, err := f.store.ListCertificates(t.Context(), "dev-race", store.Page{})
	if err != nil || len(certs) != 1 {
		t.Errorf("certificates = %d (err %v), want 1", len(certs), err)
	}
}

func TestCreateToken(t *testing.T) {
	f := newFixture(t, Config{})
	for _, tc := range []struct {
		name string
		req  TokenRequest
		want fault.Kind
	}{
		{"ok/device", TokenRequest{DeviceID: "dev-1"}, 0},
		{"ok/pattern-shift", TokenRequest{DevicePattern: "line3-*", Uses: 5000, TTL: new(8 * time.Hour)}, 0},
		{"fail/neither", TokenRequest{}, fault.Malformed},
		{"fail/both", TokenRequest{DeviceID: "a", DevicePattern: "a*"}, fault.Malformed},
		{"fail/bad-id", TokenRequest{DeviceID: "-dev"}, fault.Malformed},
		{"fail/id-too-long", TokenRequest{DeviceID: string(make65())}, fault.Malformed},
		{"fail/bad-glob", TokenRequest{DevicePattern: "line[3"}, fault.Malformed},
		{"fail/slash-glob", TokenRequest{DevicePattern: "a/*"}, fault.Malformed},
		{"fail/ttl-too-long", TokenRequest{DeviceID: "d", TTL: new(10000 * time.Hour)}, fault.Malformed},
		{"fail/ttl-too-short", TokenRequest{DeviceID: "d", TTL: new(time.Second)}, fault.Malformed},
		{"fail/uses-negative", TokenRequest{DeviceID: "d", Uses: -1}, fault.Malformed},
		{"fail/uses-too-many", TokenRequest{DeviceID: "d", Uses: 100_001}, fault.Malformed},
		// A zero TTL is refused, not read as the default (issue 12 #7).
		{"fail/ttl-zero", TokenRequest{DeviceID: "d", TTL: new(time.Duration(0))}, fault.Malformed},
		{"fail/ttl-negative", TokenRequest{DeviceID: "d", TTL: new(-time.Hour)}, fault.Malformed},
		{"ok/ttl-min", TokenRequest{DeviceID: "d", TTL: new(time.Minute)}, 0},
		{"ok/ttl-max", TokenRequest{DeviceID: "d", TTL: new(720 * time.Hour)}, 0},
		// A pattern that matches every ID needs any_device (issue 12 #8).
		{"fail/star-without-any-device", TokenRequest{DevicePattern: "*", Uses: 10}, fault.Malformed},
		{"ok/star-with-any-device", TokenRequest{DevicePattern: "*", AnyDevice: true, Uses: 10}, 0},
		{"fail/any-device-narrow-pattern", TokenRequest{DevicePattern: "line3-*", AnyDevice: true}, fault.Malformed},
		{"fail/any-device-one-device", TokenRequest{DeviceID: "dev-1", AnyDevice: true}, fault.Malformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			secret, tok, err := f.svc.CreateToken(t.Context(), tc.req)
			if kindOf(err) != tc.want || (tc.want == 0 && err != nil) {
				t.Fatalf("CreateToken(%+v) kind = %v (err %v), want %v", tc.req, kindOf(err), err, tc.want)
			}
			if tc.want != 0 {
				return
			}
			h, err := ParseToken(EnrollTokenPrefix, string(secret))
			if err != nil || h != tok.Hash || tok.ID != TokenID(h) {
				t.Errorf("minted token does not parse to its stored hash: %v", err)
			}
			ttl := 24 * time.Hour // enroll.default_token_ttl
			if tc.req.TTL != nil {
				ttl = *tc.req.TTL
			}
			if want := f.clock.Now().Add(ttl); !tok.ExpiresAt.Equal(want) {
				t.Errorf("ExpiresAt = %v, want %v", tok.ExpiresAt, want)
			}
		})
	}
}

func make65() []byte {
	b := make([]byte, 65)
	for i := range b {
		b[i] = 'a'
	}
	return b
}

func TestAuthenticateAdmin(t *testing.T) {
	f := newFixture(t, Config{})
	if err := f.svc.AuthenticateAdmin(t.Context(), "x", "127.0.0.1"); kindOf(err) != fault.Unavailable {
		t.Errorf("before any admin token: kind = %v, want Unavailable", kindOf(err))
	}
	admin, err := f.svc.MintAdminToken(t.Context())
	if err != nil {
		t.Fatalf("MintAdminToken: %v", err)
	}
	if err := f.svc.AuthenticateAdmin(t.Context(), string(admin), "127.0.0.1"); err != nil {
		t.Errorf("AuthenticateAdmin(right token) = %v", err)
	}
	other, _ := newSecret(AdminTokenPrefix)
	enrollTok, _ := newSecret(EnrollTokenPrefix)
	for _, bad := range []string{"", "nope", string(other), string(enrollTok)} {
		if err := f.svc.AuthenticateAdmin(t.Context(), bad, "127.0.0.1"); kindOf(err) != fault.Unauthorized {
			t.Errorf("AuthenticateAdmin(bad) kind = %v, want Unauthorized", kindOf(err))
		}
	}
	evs, err := f.store.ListAudit(t.Context(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, ev := range evs {
		if ev.Action == "admin.auth_failed" {
			failed++
		}
	}
	if failed != 4 {
		t.Errorf("audited admin failures = %d, want 4", failed)
	}
}

func TestSecretLogsRedacted(t *testing.T) {
	s := Secret(EnrollTokenPrefix + "x")
	if got := s.LogValue().String(); got != "REDACTED" {
		t.Errorf("LogValue = %q, want REDACTED", got)
	}
}

// TestEnrolledCertificate checks what Enroll returns against what it stored.
func TestEnrolledCertificate(t *testing.T) {
	f := newFixture(t, Config{})
	secret, tok := f.token(t, TokenRequest{DeviceID: "dev-c"})
	csr, key := newCSR(t, "")
	res, err := f.svc.Enroll(t.Context(), string(secret), csr)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := f.store.GetCertificate(t.Context(), res.Certificate.SerialNumber)
	if err != nil {
		t.Fatalf("GetCertificate: %v", err)
	}
	parsed, err := x509.ParseCertificate(stored.DER)
	if err != nil || !parsed.Equal(res.Certificate) {
		t.Errorf("stored DER differs from the returned certificate (err %v)", err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(key.Public())
	got, _ := x509.MarshalPKIXPublicKey(res.Certificate.PublicKey)
	if string(pub) != string(got) {
		t.Error("certificate does not certify the CSR's key")
	}
	evs, _ := f.store.ListAudit(t.Context(), 0, 100)
	last := evs[len(evs)-1]
	if last.Action != "certificate.issue" || last.DeviceID != "dev-c" || last.TokenID != tok.ID || last.Serial != SerialHex(res.Certificate) {
		t.Errorf("last audit event = %+v, want certificate.issue for dev-c", last)
	}
	if dev, err := f.store.GetDevice(t.Context(), "dev-c"); err != nil || dev.Status != store.DeviceActive {
		t.Errorf("device = %+v, %v; want active", dev, err)
	}
	if errors.Is(err, store.ErrNotFound) {
		t.Error("device not recorded")
	}
}

// TestTokenRequestErrorsNameTheField: a refused token request names the
// request field it is about, so that web can point at it and the CLI can
// name its flag; the hint itself names no flag.
func TestTokenRequestErrorsNameTheField(t *testing.T) {
	f := newFixture(t, Config{})
	for _, tc := range []struct {
		name  string
		req   TokenRequest
		field string
	}{
		{"bad-id", TokenRequest{DeviceID: "-dev"}, "device_id"},
		{"bad-glob", TokenRequest{DevicePattern: "line[3"}, "device_pattern"},
		{"ttl-too-long", TokenRequest{DeviceID: "d", TTL: new(10000 * time.Hour)}, "ttl"},
		{"uses-too-many", TokenRequest{DeviceID: "d", Uses: 100_001}, "uses"},
		{"ttl-zero", TokenRequest{DeviceID: "d", TTL: new(time.Duration(0))}, "ttl"},
		{"ttl-negative", TokenRequest{DeviceID: "d", TTL: new(-time.Minute)}, "ttl"},
		{"any-device-missing", TokenRequest{DevicePattern: "?*"}, "any_device"},
		{"any-device-narrow", TokenRequest{DevicePattern: "a*", AnyDevice: true}, "any_device"},
		{"both", TokenRequest{DeviceID: "a", DevicePattern: "a*"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := f.svc.CreateToken(t.Context(), tc.req)
			fe, ok := errors.AsType[*fault.Error](err)
			if !ok || fe.Field != tc.field {
				t.Fatalf("CreateToken(%+v) = %#v, want a fault with Field %q", tc.req, err, tc.field)
			}
			if strings.Contains(fe.Hint, "--") {
				t.Errorf("CreateToken(%+v) hint %q names a flag", tc.req, fe.Hint)
			}
		})
	}
}
