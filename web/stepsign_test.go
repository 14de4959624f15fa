package web

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/enroll"
	"github.com/fleetca/fleetca/internal/fault"
)

// stepToken mints a step token for id through the service, as the admin
// API does for format "step".
func (f *fixture) stepToken(t *testing.T, id string) string {
	t.Helper()
	s, _, err := f.svc.CreateToken(t.Context(), enroll.TokenRequest{DeviceID: id, Format: enroll.StepTokenFormat})
	if err != nil {
		t.Fatal(err)
	}
	return string(s)
}

// stepCSR is the CSR `step ca certificate ID` makes: CN = ID and a DNS SAN
// = ID (the token's sans), unless dns says otherwise.
func stepCSR(t *testing.T, key *ecdsa.PrivateKey, cn string, dns ...string) string {
	t.Helper()
	if dns == nil {
		dns = []string{cn}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: dns}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func TestStepSign(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPSHandler()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// The admin API mints step tokens with "format":"step".
	rec := do(h, "POST", "/v1/admin/tokens", f.admin, "application/json", `{"device_id":"dev-1","format":"step"}`)
	if rec.Code != 201 || !strings.Contains(rec.Body.String(), `"token":"ey`) {
		t.Fatalf("POST /v1/admin/tokens format step = %d %s, want 201 with a JWT", rec.Code, rec.Body)
	}
	for _, tc := range []struct{ body, want string }{
		{`{"device_pattern":"dev-*","format":"step"}`, "pattern"},
		{`{"device_id":"dev-1","format":"step","uses":2}`, "one use"},
		{`{"device_id":"dev-1","format":"jwt"}`, "format"},
	} {
		rec := do(h, "POST", "/v1/admin/tokens", f.admin, "application/json", tc.body)
		if p := problemOf(t, rec); rec.Code != 400 || !strings.Contains(p.Detail, tc.want) {
			t.Errorf("POST /v1/admin/tokens %s = %d %+v, want 400 about %q", tc.body, rec.Code, p, tc.want)
		}
	}

	tok := f.stepToken(t, "dev-2")
	for _, tc := range []struct {
		name   string
		body   api.StepSignRequest
		status int
		want   string // in the message
	}{
		{"fail/no-token", api.StepSignRequest{CSR: stepCSR(t, key, "dev-2")}, 401, "missing"},
		{"fail/fleetca-token", api.StepSignRequest{CSR: stepCSR(t, key, "dev-2"), OTT: f.token(t, "dev-2")}, 401, "JWT"},
		{"fail/not-after", api.StepSignRequest{CSR: stepCSR(t, key, "dev-2"), OTT: tok, NotAfter: "20s"}, 400, "validity"},
		{"fail/other-cn", api.StepSignRequest{CSR: stepCSR(t, key, "dev-3", "dev-2"), OTT: tok}, 400, "dev-3"},
		{"fail/other-dns", api.StepSignRequest{CSR: stepCSR(t, key, "dev-2", "evil.example"), OTT: tok}, 400, "evil.example"},
		{"fail/two-dns", api.StepSignRequest{CSR: stepCSR(t, key, "dev-2", "dev-2", "dev-2"), OTT: tok}, 400, "DNS"},
		{"fail/no-csr", api.StepSignRequest{OTT: tok}, 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(h, "POST", api.StepSignPath, "", "application/json", mustJSON(t, tc.body))
			if e := stepErrorOf(t, rec); rec.Code != tc.status || !strings.Contains(e.Message, tc.want) {
				t.Errorf("sign = %d %+v, want %d with %q in the message", rec.Code, e, tc.status, tc.want)
			}
		})
	}
	// The refusals spent nothing: the token still works, under /1.0/.
	body := mustJSON(t, api.StepSignRequest{CSR: stepCSR(t, key, "dev-2"), OTT: tok})
	out := decodeStep(t, do(h, "POST", api.StepPrefix+api.StepSignPath, "", "application/json", body))
	crt := pemCerts(t, out.ServerPEM)[0]
	inter := pemCert(f.authty.IntermediateDER())
	if crt.Subject.CommonName != "dev-2" || len(crt.DNSNames) != 0 || len(crt.URIs) != 1 ||
		crt.URIs[0].String() != "spiffe://fleet.test/device/dev-2" || out.CaPEM != inter || len(out.CertChainPEM) != 2 {
		t.Errorf("sign: certificate CN %q DNS %v URIs %v, want fleetca's profile (CN, spiffe URI) and the chain", crt.Subject.CommonName, crt.DNSNames, crt.URIs)
	}
	// Spent once.
	rec = do(h, "POST", api.StepSignPath, "", "application/json", body)
	if e := stepErrorOf(t, rec); rec.Code != 401 || !strings.Contains(e.Message, "used up") {
		t.Errorf("sign with a spent token = %d %+v, want 401 saying it is used up", rec.Code, e)
	}
}

func TestStepRevoke(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPSHandler()
	leaf, _ := f.enrollKey(t, "dev-1")
	other, _ := f.enrollKey(t, "dev-2")
	chain := []*x509.Certificate{leaf, f.authty.Intermediate()}
	own := mustJSON(t, api.StepRevokeRequest{Serial: leaf.SerialNumber.String(), ReasonCode: 1, Passive: true})
	for _, tc := range []struct {
		name   string
		chain  []*x509.Certificate
		body   string
		status int
		want   string
	}{
		{"fail/no-client-certificate", nil, own, 401, "mutual TLS"},
		// Issue 13 asks for the token form: a malformed token is refused as one.
		{"fail/token-malformed", nil, mustJSON(t, api.StepRevokeRequest{Serial: "1", OTT: "ey.x.y"}), 401, "not a signed JWT"},
		{"fail/other-serial", chain, mustJSON(t, api.StepRevokeRequest{Serial: other.SerialNumber.String()}), 403, "only itself"},
		{"fail/hex-serial", chain, mustJSON(t, api.StepRevokeRequest{Serial: leaf.SerialNumber.Text(16) + "zz"}), 400, "decimal"},
		{"fail/not-json", chain, "hello", 400, ""},
		{"fail/bad-reason", chain, mustJSON(t, api.StepRevokeRequest{Serial: leaf.SerialNumber.String(), ReasonCode: 99}), 400, "reason"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := doTLS(h, tc.chain, "POST", api.StepRevokePath, "", "application/json", tc.body)
			if e := stepErrorOf(t, rec); rec.Code != tc.status || !strings.Contains(e.Message, tc.want) {
				t.Errorf("revoke = %d %+v, want %d with %q in the message", rec.Code, e, tc.status, tc.want)
			}
		})
	}
	rec := doTLS(h, chain, "POST", api.StepPrefix+api.StepRevokePath, "", "application/json", own)
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"status":"ok"}` {
		t.Fatalf("revoke own certificate = %d %s, want 200 {\"status\":\"ok\"}", rec.Code, rec.Body)
	}
	c, err := f.store.GetCertificate(t.Context(), leaf.SerialNumber)
	if err != nil || c.RevokedAt.IsZero() || c.Reason != 1 {
		t.Errorf("after /revoke the certificate is %+v (%v), want revoked with reason 1 (keyCompromise)", c, err)
	}
	events, err := f.store.ListAudit(t.Context(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range events {
		if e.Action == "certificate.revoke" && e.Serial == leaf.SerialNumber.Text(16) {
			found = e.Actor == "device:dev-1"
		}
	}
	if !found {
		t.Errorf("audit log %+v: want certificate.revoke by device:dev-1", events)
	}
	rec = doTLS(h, chain, "POST", api.StepRevokePath, "", "application/json", own)
	if rec.Code != 409 || !strings.Contains(rec.Body.String(), "already revoked") {
		t.Errorf("revoke again = %d %s, want 409 already revoked", rec.Code, rec.Body)
	}
}

// revokeToken mints a step revocation token for serial.
func (f *fixture) revokeToken(t *testing.T, serial *big.Int) (string, string) {
	t.Helper()
	s, tok, err := f.svc.CreateToken(t.Context(), enroll.TokenRequest{Format: enroll.StepTokenFormat, RevokeSerial: serial})
	if err != nil {
		t.Fatalf("CreateToken(revoke %s): %v", serial.Text(16), err)
	}
	return string(s), tok.ID
}

// TestStepRevokeToken: step ca revoke SERIAL --token T. The token revokes
// the serial its sub names, once; every refusal keeps it unspent; the
// audit row names the token.
func TestStepRevokeToken(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPSHandler()
	leaf, _ := f.enrollKey(t, "dev-1")
	other, _ := f.enrollKey(t, "dev-2")
	tok, _ := f.revokeToken(t, leaf.SerialNumber)
	signTok := f.stepToken(t, "dev-9")
	body := func(serial *big.Int, ott string, reason int) string {
		return mustJSON(t, api.StepRevokeRequest{Serial: serial.String(), OTT: ott, ReasonCode: reason, Reason: "lost", Passive: true})
	}
	// A token for a certificate revoked before it is used.
	gone, _ := f.enrollKey(t, "dev-3")
	goneTok, goneID := f.revokeToken(t, gone.SerialNumber)
	if _, err := f.svc.RevokeToken(t.Context(), goneID); err != nil {
		t.Fatal(err)
	}
	expiring, _ := f.revokeToken(t, other.SerialNumber)

	for _, tc := range []struct {
		name   string
		body   string
		status int
		want   string
		setup  func()
	}{
		{"fail/other-serial", body(other.SerialNumber, tok, 1), 403, "revokes certificate " + leaf.SerialNumber.String(), nil},
		{"fail/hex-serial", mustJSON(t, api.StepRevokeRequest{Serial: leaf.SerialNumber.Text(16) + "zz", OTT: tok}), 400, "decimal", nil},
		{"fail/sign-token", body(leaf.SerialNumber, signTok, 1), 401, "revoke URL (aud)", nil},
		{"fail/bad-reason", body(leaf.SerialNumber, tok, 99), 400, "reason", nil},
		{"fail/token-revoked-by-admin", body(gone.SerialNumber, goneTok, 1), 401, "revoked by an admin", nil},
		{"fail/token-expired", body(other.SerialNumber, expiring, 1), 401, "expired", func() { f.clock.Add(25 * time.Hour) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			rec := do(h, "POST", api.StepRevokePath, "", "application/json", tc.body)
			if e := stepErrorOf(t, rec); rec.Code != tc.status || !strings.Contains(e.Message, tc.want) {
				t.Errorf("revoke = %d %+v, want %d with %q in the message", rec.Code, e, tc.status, tc.want)
			}
		})
	}
	for _, c := range []*x509.Certificate{leaf, other, gone} {
		if rec, err := f.store.GetCertificate(t.Context(), c.SerialNumber); err != nil || !rec.RevokedAt.IsZero() {
			t.Fatalf("certificate %s after refused revocations: %+v (%v), want unrevoked", c.Subject.CommonName, rec, err)
		}
	}

	// The refusals spent nothing: the token revokes its certificate, once.
	tok, tokID := f.revokeToken(t, leaf.SerialNumber) // the first one expired with the clock
	rec := do(h, "POST", api.StepPrefix+api.StepRevokePath, "", "application/json", body(leaf.SerialNumber, tok, 1))
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"status":"ok"}` {
		t.Fatalf("revoke with a token = %d %s, want 200 {\"status\":\"ok\"}", rec.Code, rec.Body)
	}
	c, err := f.store.GetCertificate(t.Context(), leaf.SerialNumber)
	if err != nil || c.RevokedAt.IsZero() || c.Reason != 1 {
		t.Errorf("after /revoke the certificate is %+v (%v), want revoked with reason 1", c, err)
	}
	rec = do(h, "POST", api.StepRevokePath, "", "application/json", body(leaf.SerialNumber, tok, 1))
	if e := stepErrorOf(t, rec); rec.Code != 401 || !strings.Contains(e.Message, "used up") {
		t.Errorf("revoke with a spent token = %d %+v, want 401 saying it is used up", rec.Code, e)
	}
	// No token for a certificate revoked already.
	if _, _, err := f.svc.CreateToken(t.Context(), enroll.TokenRequest{Format: enroll.StepTokenFormat, RevokeSerial: leaf.SerialNumber}); !isKind(err, fault.AlreadyRevoked) {
		t.Errorf("CreateToken(revoke a revoked certificate) error = %v, want AlreadyRevoked", err)
	}
	events, err := f.store.ListAudit(t.Context(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range events {
		found = found || e.Action == "certificate.revoke" && e.Actor == "token:"+tokID && e.Serial == leaf.SerialNumber.Text(16)
	}
	if !found {
		t.Errorf("no certificate.revoke audit row by token:%s", tokID)
	}
}
