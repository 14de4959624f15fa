package web

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.step.sm/crypto/jose"

	"github.com/fleetca/fleetca/api"
)

// testVersion is the fixture's Deps.Version.
const testVersion = "fleetca v1.2.3 test"

// stepErrorOf decodes a step error body: application/json with status and
// message, the status the response's and the message fleetca's detail with
// its hint in parentheses.
func stepErrorOf(t *testing.T, rec *httptest.ResponseRecorder) api.StepError {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q (body %s), want application/json", ct, rec.Body)
	}
	var e api.StepError
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("step error body %s: %v", rec.Body, err)
	}
	if e.Status != rec.Code || e.Message == "" || !strings.HasSuffix(e.Message, ")") {
		t.Errorf("step error = %+v, want status %d and a message ending with its hint", e, rec.Code)
	}
	return e
}

func decodeStep(t *testing.T, rec *httptest.ResponseRecorder) api.StepSignResponse {
	t.Helper()
	if rec.Code != 201 {
		t.Fatalf("status = %d (body %s), want 201", rec.Code, rec.Body)
	}
	var out api.StepSignResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// stepRenewalToken is the token `step ca renew --mtls=false` signs: the
// chain in x5cInsecure, iss step-ca-client/1.0, sub the CN, no jti.
func stepRenewalToken(t *testing.T, chain []*x509.Certificate, key crypto.Signer, aud string, now time.Time) string {
	t.Helper()
	x5c := make([]string, len(chain))
	for i, c := range chain {
		x5c[i] = base64.StdEncoding.EncodeToString(c.Raw)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey(jose.X5cInsecureKey), x5c))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jose.Signed(signer).Claims(jose.Claims{Issuer: "step-ca-client/1.0", Subject: chain[0].Subject.CommonName,
		Audience: jose.Audience{aud}, NotBefore: jose.NewNumericDate(now), IssuedAt: jose.NewNumericDate(now),
		Expiry: jose.NewNumericDate(now.Add(5 * time.Minute))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestStepDocuments(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPSHandler()
	root := f.authty.Root()
	sum := sha256.Sum256(root.Raw)
	fp := hex.EncodeToString(sum[:])
	rootPEM := pemCert(root.Raw)
	for _, prefix := range []string{"", api.StepPrefix} {
		for _, tc := range []struct {
			path   string
			status int
			want   string
		}{
			{"/health", 200, `{"status":"ok"}`},
			{"/version", 200, `{"version":"` + testVersion + `"}`},
			{"/roots", 201, mustJSON(t, api.StepRootsResponse{Certificates: []string{rootPEM}})},
			{"/root/" + fp, 200, mustJSON(t, api.StepRootResponse{RootPEM: rootPEM})},
			{"/root/" + strings.ToUpper(fp), 200, mustJSON(t, api.StepRootResponse{RootPEM: rootPEM})},
		} {
			rec := do(h, "GET", prefix+tc.path, "", "", "")
			if rec.Code != tc.status || strings.TrimSpace(rec.Body.String()) != tc.want {
				t.Errorf("GET %s%s = %d %s, want %d %s", prefix, tc.path, rec.Code, rec.Body, tc.status, tc.want)
			}
		}
		rec := do(h, "GET", prefix+"/root/"+strings.Repeat("0", 64), "", "", "")
		if e := stepErrorOf(t, rec); rec.Code != 404 || !strings.Contains(e.Message, "fingerprint") {
			t.Errorf("GET %s/root/<unknown> = %d %+v, want 404 naming the fingerprint", prefix, rec.Code, e)
		}
	}
	// echo's own errors on step paths take step's shape too.
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", api.StepRenewPath, 405},
		{"GET", api.StepPrefix + api.StepRekeyPath, 405},
		{"GET", api.StepPrefix + "/provisioners", 404},
	} {
		rec := do(h, tc.method, tc.path, "", "", "")
		if stepErrorOf(t, rec); rec.Code != tc.status {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.path, rec.Code, tc.status)
		}
	}
	// fleetca's own routes keep problem JSON.
	rec := do(h, "GET", api.RenewalInfoPath+"zz", "", "", "")
	if p := problemOf(t, rec); rec.Code != 400 || p.Hint == "" {
		t.Errorf("fleetca route error = %d %+v, want a 400 problem", rec.Code, p)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStepRenew(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPSHandler()
	inter := f.authty.Intermediate()
	leaf, key := f.enrollKey(t, "dev-1")
	chain := []*x509.Certificate{leaf, inter}

	// Over mutual TLS: 201 with step's shape; the retry (either mount
	// point) answers 201 too, with the same certificate.
	first := decodeStep(t, doTLS(h, chain, "POST", api.StepRenewPath, "", "", ""))
	crt := pemCerts(t, first.ServerPEM)[0]
	wantChain := []string{first.ServerPEM, pemCert(inter.Raw)}
	if first.CaPEM != pemCert(inter.Raw) || !cmp.Equal(first.CertChainPEM, wantChain) {
		t.Errorf("renew answer ca/certChain = %q %q, want the intermediate, and leaf then intermediate", first.CaPEM, first.CertChainPEM)
	}
	if crt.Subject.CommonName != "dev-1" || !crt.PublicKey.(*ecdsa.PublicKey).Equal(key.Public()) {
		t.Errorf("renewed certificate CN %q, same key %v: want dev-1, the same key", crt.Subject.CommonName, crt.PublicKey.(*ecdsa.PublicKey).Equal(key.Public()))
	}
	again := decodeStep(t, doTLS(h, chain, "POST", api.StepPrefix+api.StepRenewPath, "", "", ""))
	if again.ServerPEM != first.ServerPEM {
		t.Error("retry over /1.0/renew returned another certificate, want the first renewal's")
	}

	// The token form (step's x5cInsecure token, no jti), on the renewed
	// certificate, with either audience; spent once.
	f.clock.Add(pastRetryWindow)
	crtChain := []*x509.Certificate{crt, inter}
	tok := stepRenewalToken(t, crtChain, key, "https://127.0.0.1:8443/1.0/renew", f.clock.Now())
	rec := doTLS(h, nil, "POST", api.StepRenewPath, "Bearer "+tok, "", "")
	byToken := pemCerts(t, decodeStep(t, rec).ServerPEM)[0]
	if byToken.Equal(crt) || !byToken.PublicKey.(*ecdsa.PublicKey).Equal(key.Public()) {
		t.Error("renewal by token: want a new certificate for the same key")
	}
	f.clock.Add(pastRetryWindow)
	byTokenChain := []*x509.Certificate{byToken, inter}
	for _, tc := range []struct {
		name   string
		chain  []*x509.Certificate
		auth   string
		status int
		want   string // in the message
	}{
		{"fail/token-used", nil, "Bearer " + tok, 401, "renewal token"},
		{"fail/token-aud", nil, "Bearer " + stepRenewalToken(t, byTokenChain, key, "https://127.0.0.1:8443/1.0/sign", f.clock.Now()), 401, "aud"},
		{"fail/no-credential", nil, "", 401, ""},
		{"fail/old-certificate", chain, "", 409, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := doTLS(h, tc.chain, "POST", api.StepRenewPath, tc.auth, "", "")
			if e := stepErrorOf(t, rec); rec.Code != tc.status || !strings.Contains(e.Message, tc.want) {
				t.Errorf("renew = %d %+v, want %d with %q in the message", rec.Code, e, tc.status, tc.want)
			}
		})
	}
	ok := stepRenewalToken(t, byTokenChain, key, "https://127.0.0.1:8443/renew", f.clock.Now())
	decodeStep(t, doTLS(h, nil, "POST", api.StepPrefix+api.StepRenewPath, "Bearer "+ok, "", ""))

	// A revoked device: 403, fleetca's detail and hint in the message.
	if rec := do(h, "POST", "/v1/admin/devices/dev-1/revoke", f.admin, "application/json", `{"reason":"cessationOfOperation"}`); rec.Code != 200 {
		t.Fatalf("revoke device: %d %s", rec.Code, rec.Body)
	}
	f.clock.Add(pastRetryWindow)
	rec = doTLS(h, byTokenChain, "POST", api.StepRenewPath, "", "", "")
	if e := stepErrorOf(t, rec); rec.Code != 403 || !strings.Contains(e.Message, "reset") {
		t.Errorf("renewal of a revoked device = %d %+v, want 403 whose message says to reset the device", rec.Code, e)
	}
}

func TestStepRekey(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPSHandler()
	leaf, _ := f.enrollKey(t, "dev-1")
	chain := []*x509.Certificate{leaf, f.authty.Intermediate()}
	newKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	body := mustJSON(t, api.StepRekeyRequest{CSR: csrPEMFor(t, newKey, "dev-1")})
	for _, tc := range []struct {
		name   string
		chain  []*x509.Certificate
		body   string
		status int
	}{
		{"fail/no-client-certificate", nil, body, 401},
		{"fail/not-json", chain, "hello", 400},
		{"fail/not-a-csr", chain, `{"csr":"hello"}`, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := doTLS(h, tc.chain, "POST", api.StepRekeyPath, "", "application/json", tc.body)
			if stepErrorOf(t, rec); rec.Code != tc.status {
				t.Errorf("rekey = %d %s, want %d", rec.Code, rec.Body, tc.status)
			}
		})
	}
	out := decodeStep(t, doTLS(h, chain, "POST", api.StepPrefix+api.StepRekeyPath, "", "application/json", body))
	if crt := pemCerts(t, out.ServerPEM)[0]; !crt.PublicKey.(*ecdsa.PublicKey).Equal(newKey.Public()) || crt.Subject.CommonName != "dev-1" {
		t.Error("rekey: want a certificate for dev-1 with the CSR's key")
	}
}
