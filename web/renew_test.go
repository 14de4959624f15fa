package web

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.step.sm/crypto/minica"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/ca"
)

// enrollKey enrolls id over the handler with a fresh key and returns the
// certificate and the key; the clock then moves on a second, so that a
// renewal is newer than it.
func (f *fixture) enrollKey(t *testing.T, id string) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rec := do(f.srv.HTTPSHandler(), "POST", api.EnrollPath, f.token(t, id), "application/x-pem-file", csrPEMFor(t, key, id))
	if rec.Code != http.StatusCreated {
		t.Fatalf("enroll %s: %d %s", id, rec.Code, rec.Body)
	}
	var out api.EnrollResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(time.Second)
	return pemCerts(t, out.Certificate)[0], key
}

func csrPEMFor(t *testing.T, key crypto.Signer, cn string) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// doTLS is do over a TLS connection whose client presented chain.
func doTLS(h http.Handler, chain []*x509.Certificate, method, path, auth, ctype, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.TLS = &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: chain}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func decodeIssued(t *testing.T, rec *httptest.ResponseRecorder) api.EnrollResponse {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q (body %s), want application/json", ct, rec.Body)
	}
	var out api.EnrollResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRenewHandler(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPSHandler()
	leaf, key := f.enrollKey(t, "dev-1")
	chain := []*x509.Certificate{leaf, f.authty.Intermediate()}

	rec := doTLS(h, chain, "POST", api.RenewPath, "", "", "")
	if rec.Code != http.StatusCreated {
		t.Fatalf("renew: %d %s, want 201", rec.Code, rec.Body)
	}
	first := decodeIssued(t, rec)
	certs := pemCerts(t, first.Chain)
	if first.DeviceID != "dev-1" || first.ParentSerial != leaf.SerialNumber.Text(16) || len(certs) != 2 ||
		certs[0].SerialNumber.Text(16) != first.Serial || !certs[1].Equal(f.authty.Intermediate()) {
		t.Errorf("renew answer = %+v: want dev-1, parent_serial %s, chain = leaf then intermediate", first, leaf.SerialNumber.Text(16))
	}
	if !certs[0].PublicKey.(*ecdsa.PublicKey).Equal(key.Public()) {
		t.Error("renewal without a CSR changed the key")
	}
	renewAfter, err := time.Parse(time.RFC3339, first.RenewAfter)
	if err != nil || first.RenewalInfo == nil ||
		renewAfter.Before(first.RenewalInfo.SuggestedWindow.Start) || renewAfter.After(first.RenewalInfo.SuggestedWindow.End) {
		t.Errorf("renew_after %q, renewal_info %+v: want an RFC 3339 time inside the window", first.RenewAfter, first.RenewalInfo)
	}

	rec = doTLS(h, chain, "POST", api.RenewPath, "", "", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("retry: %d %s, want 200", rec.Code, rec.Body)
	}
	if again := decodeIssued(t, rec); again.Serial != first.Serial {
		t.Errorf("retry serial = %s, want the first renewal's %s", again.Serial, first.Serial)
	}

	newKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	newest := pemCerts(t, first.Certificate)[0]
	newChain := []*x509.Certificate{newest, f.authty.Intermediate()}
	rec = doTLS(h, newChain, "POST", api.RenewPath, "", "application/x-pem-file", csrPEMFor(t, newKey, "dev-1"))
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("rekey within renew_min_interval: %d %s, want 429", rec.Code, rec.Body)
	}
	if p := problemOf(t, rec); p.Type != api.ProblemTypePrefix+"rateLimited" {
		t.Errorf("429 problem type = %q, want rateLimited", p.Type)
	}
	if got := rec.Header().Get("Retry-After"); got != "3600" {
		t.Errorf("429 Retry-After = %q, want 3600 (renewed just now, ca.renew_min_interval 1h)", got)
	}

	f.clock.Add(time.Hour)
	rec = doTLS(h, newChain, "POST", api.RenewPath, "", "application/x-pem-file", csrPEMFor(t, newKey, "dev-1"))
	if rec.Code != http.StatusCreated {
		t.Fatalf("rekey: %d %s, want 201", rec.Code, rec.Body)
	}
	rekeyed := decodeIssued(t, rec)
	if c := pemCerts(t, rekeyed.Certificate)[0]; !c.PublicKey.(*ecdsa.PublicKey).Equal(newKey.Public()) || rekeyed.ParentSerial != first.Serial {
		t.Errorf("rekey answer: parent %s, new key %v; want parent %s and the CSR's key", rekeyed.ParentSerial,
			c.PublicKey.(*ecdsa.PublicKey).Equal(newKey.Public()), first.Serial)
	}

	big := strings.Repeat("A", 70<<10)
	for _, tc := range []struct {
		name        string
		chain       []*x509.Certificate
		auth, ctype string
		body        string
		status      int
		kind        string
	}{
		{"fail/older-certificate", chain, "", "", "", 409, "conflict"},
		{"fail/no-credential", nil, "", "", "", 401, "unauthorized"},
		{"fail/garbage-token", nil, "Bearer not.a.jwt", "", "", 401, "unauthorized"},
		{"fail/basic-auth", chain, "Basic ZGV2OnB3", "", "", 401, "unauthorized"},
		{"fail/csr-other-device", newChain, "", "application/x-pem-file", csrPEM(t, "dev-2"), 400, "badCSR"},
		{"fail/not-a-csr", newChain, "", "application/x-pem-file", "hello", 400, "malformed"},
		{"fail/wrong-type", newChain, "", "image/png", "x", 400, "malformed"},
		{"fail/too-large", newChain, "", "application/x-pem-file", big, 413, "tooLarge"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.clock.Add(pastRetryWindow)
			rec := doTLS(h, tc.chain, "POST", api.RenewPath, tc.auth, tc.ctype, tc.body)
			if rec.Code != tc.status {
				t.Fatalf("status = %d (body %s), want %d", rec.Code, rec.Body, tc.status)
			}
			if p := problemOf(t, rec); p.Type != api.ProblemTypePrefix+tc.kind || p.Hint == "" {
				t.Errorf("problem = %+v, want type %s with a hint", p, tc.kind)
			}
			if tc.status == 401 && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}

	// Revoking the device: its newest certificate is refused with 403.
	if rec := do(h, "POST", "/v1/admin/devices/dev-1/revoke", f.admin, "application/json", `{"reason":"cessationOfOperation"}`); rec.Code != 200 {
		t.Fatalf("revoke device: %d %s", rec.Code, rec.Body)
	}
	rekeyedChain := []*x509.Certificate{pemCerts(t, rekeyed.Certificate)[0], f.authty.Intermediate()}
	rec = doTLS(h, rekeyedChain, "POST", api.RenewPath, "", "", "")
	if p := problemOf(t, rec); rec.Code != 403 || !strings.Contains(p.Hint, "reset") {
		t.Errorf("renewal of a revoked device: %d %+v, want 403 whose hint says to reset the device", rec.Code, p)
	}

	// The admin listing shows the lineage.
	rec = do(h, "GET", "/v1/admin/certificates?device_id=dev-1", f.admin, "", "")
	var page api.CertificatePage
	if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil || rec.Code != 200 {
		t.Fatalf("list certificates: %d %s", rec.Code, rec.Body)
	}
	parents := map[string]string{}
	for _, c := range page.Certificates {
		parents[c.Serial] = c.ParentSerial
	}
	if parents[leaf.SerialNumber.Text(16)] != "" || parents[first.Serial] != leaf.SerialNumber.Text(16) || parents[rekeyed.Serial] != first.Serial {
		t.Errorf("parent_serial by serial = %v, want enrollment <- renewal <- rekey", parents)
	}
	rec = do(h, "GET", "/v1/admin/certificates/"+first.Serial, f.admin, "", "")
	if !strings.Contains(rec.Body.String(), `"parent_serial":"`+leaf.SerialNumber.Text(16)+`"`) {
		t.Errorf("GET certificate %s = %s, want its parent_serial", first.Serial, rec.Body)
	}
}

// pastRetryWindow moves the clock past the retry window and the rate
// limit between the refusal cases, so that each is judged on its own.
const pastRetryWindow = 25 * time.Hour

func TestRenewalInfoHandler(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPSHandler()
	leaf, _ := f.enrollKey(t, "dev-1")
	path := api.RenewalInfoPath + leaf.SerialNumber.Text(16)
	for _, method := range []string{"GET", "HEAD"} {
		rec := do(h, method, path, "", "", "")
		if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%s %s: %d %q, want 200 JSON", method, path, rec.Code, rec.Header().Get("Content-Type"))
		}
		secs, err := strconv.Atoi(rec.Header().Get("Retry-After"))
		if err != nil || secs > 6*3600 || secs < 5*3600 {
			t.Errorf("%s Retry-After = %q, want about 6 hours in seconds", method, rec.Header().Get("Retry-After"))
		}
		if method == "HEAD" {
			if rec.Body.Len() != 0 {
				t.Errorf("HEAD answered a body")
			}
			continue
		}
		var info api.RenewalInfo
		if err := json.Unmarshal(rec.Body.Bytes(), &info); err != nil {
			t.Fatal(err)
		}
		w := info.SuggestedWindow
		life := leaf.NotAfter.Sub(leaf.NotBefore)
		if !w.Start.After(leaf.NotBefore.Add(life/2)) || !w.End.Before(leaf.NotAfter) || !w.Start.Before(w.End) {
			t.Errorf("window %s..%s, want around two thirds of %s..%s", w.Start, w.End, leaf.NotBefore, leaf.NotAfter)
		}
	}

	// An admin's renew-now moves the window to now, for the device or the
	// whole fleet.
	f.clock.Add(time.Hour)
	rec := do(h, "POST", "/v1/admin/devices/dev-1/renew-now", f.admin, "", "")
	if rec.Code != 200 {
		t.Fatalf("renew-now: %d %s", rec.Code, rec.Body)
	}
	var now api.RenewNowResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &now); err != nil || now.DeviceID != "dev-1" || now.At != f.clock.Now().Format(time.RFC3339) {
		t.Errorf("renew-now answer = %s, want device dev-1 at %s", rec.Body, f.clock.Now().Format(time.RFC3339))
	}
	var info api.RenewalInfo
	json.Unmarshal(do(h, "GET", path, "", "", "").Body.Bytes(), &info)
	if !info.SuggestedWindow.Start.Equal(f.clock.Now()) {
		t.Errorf("after renew-now the window starts %s, want now %s", info.SuggestedWindow.Start, f.clock.Now())
	}
	other, _ := f.enrollKey(t, "dev-2")
	f.clock.Add(time.Hour)
	rec = do(h, "POST", "/v1/admin/devices/renew-now", f.admin, "", "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"at":"`+f.clock.Now().Format(time.RFC3339)+`"`) || strings.Contains(rec.Body.String(), "device_id") {
		t.Fatalf("fleet renew-now: %d %s, want 200 with the time and no device", rec.Code, rec.Body)
	}
	json.Unmarshal(do(h, "GET", api.RenewalInfoPath+other.SerialNumber.Text(16), "", "", "").Body.Bytes(), &info)
	if !info.SuggestedWindow.Start.Equal(f.clock.Now()) {
		t.Errorf("after the fleet's renew-now dev-2's window starts %s, want now %s", info.SuggestedWindow.Start, f.clock.Now())
	}

	for _, tc := range []struct {
		name, method, path, auth string
		status                   int
	}{
		{"fail/bad-serial", "GET", api.RenewalInfoPath + "xyz", "", 400},
		{"fail/unknown-serial", "GET", api.RenewalInfoPath + "abcdef", "", 404},
		{"fail/renew-now-no-admin", "POST", "/v1/admin/devices/dev-1/renew-now", "", 401},
		{"fail/fleet-renew-now-no-admin", "POST", "/v1/admin/devices/renew-now", "", 401},
		{"fail/renew-now-unknown", "POST", "/v1/admin/devices/nobody/renew-now", f.admin, 404},
		{"fail/renew-now-bad-id", "POST", "/v1/admin/devices/a%20b/renew-now", f.admin, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(h, tc.method, tc.path, tc.auth, "", "")
			if rec.Code != tc.status {
				t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.path, rec.Code, rec.Body, tc.status)
			}
			problemOf(t, rec)
		})
	}
}

// TestHTTPSClientAuth runs the HTTPS handler behind the listener's own TLS
// configuration: a client without a certificate enrolls as before, a
// device renews with its certificate, and another CA's certificate fails
// the handshake.
func TestHTTPSClientAuth(t *testing.T) {
	f := newFixture(t)
	srv, _, roots := f.httpsListener(t)
	client := func(cert *tls.Certificate, version uint16) *http.Client {
		cfg := &tls.Config{RootCAs: roots, MinVersion: version, MaxVersion: version}
		if cert != nil {
			// Sent whatever CAs the server names (curl does the same; Go
			// would otherwise send none that the server's list leaves out).
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
	}
	post := func(c *http.Client, path, auth, body string) (int, string, error) {
		req, err := http.NewRequestWithContext(t.Context(), "POST", srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		req.Header.Set("Content-Type", "application/x-pem-file")
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		name := map[uint16]string{tls.VersionTLS12: "tls1.2", tls.VersionTLS13: "tls1.3"}[version]
		t.Run(name, func(t *testing.T) {
			id := "dev-" + name
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			status, body, err := post(client(nil, version), api.EnrollPath, f.token(t, id), csrPEMFor(t, key, id))
			if err != nil || status != http.StatusCreated {
				t.Fatalf("enroll without a client certificate: %d %s %v, want 201", status, body, err)
			}
			var out api.EnrollResponse
			json.Unmarshal([]byte(body), &out)
			f.clock.Add(time.Second)
			leaf := pemCerts(t, out.Certificate)[0]
			cert := &tls.Certificate{Certificate: [][]byte{leaf.Raw, f.authty.IntermediateDER()}, PrivateKey: key, Leaf: leaf}
			status, body, err = post(client(cert, version), api.RenewPath, "", "")
			if err != nil || status != http.StatusCreated {
				t.Fatalf("renew over mutual TLS: %d %s %v, want 201", status, body, err)
			}

			other, err := minica.New()
			if err != nil {
				t.Fatal(err)
			}
			otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			otherLeaf, err := other.Sign(&x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: id},
				PublicKey: otherKey.Public(), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
				KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			if err != nil {
				t.Fatal(err)
			}
			foreign := &tls.Certificate{Certificate: [][]byte{otherLeaf.Raw, other.Intermediate.Raw}, PrivateKey: otherKey}
			// With TLS 1.3 the client's handshake ends before the server
			// judged its certificate: the alert arrives with the answer.
			// crypto/tls exports no type for a received alert.
			if status, body, err := post(client(foreign, version), api.RenewPath, "", ""); err == nil {
				t.Errorf("renew with another CA's certificate: %d %s, want the handshake refused", status, body)
			}
		})
	}
}

// httpsListener serves f's HTTPS handler behind the listener's own TLS
// configuration (ServerCert, asking for fleet client certificates), on a
// loopback port until the test ends. It returns the server, its
// ServerCert and a pool with the fleet's root for clients. Real TLS checks
// certificates against the wall clock, so f's clock follows it from here
// (the test CA is valid from testNow on).
func (f *fixture) httpsListener(t *testing.T) (*httptest.Server, *ServerCert, *x509.CertPool) {
	t.Helper()
	f.clock.Add(time.Since(f.clock.Now()))
	sc, err := NewServerCert(t.Context(), f.authty, ServerCertConfig{
		DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
		NewKey:    func() (crypto.Signer, error) { return ca.GenerateKey(ca.KeyECP256) },
		Now:       f.clock.Now,
		ClientCAs: []*x509.Certificate{f.authty.Intermediate()},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(f.srv.HTTPSHandler())
	srv.TLS = sc.TLSConfig()
	// httptest serves its own certificate unless one is given.
	srv.TLS.Certificates = []tls.Certificate{*sc.Current()}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(f.authty.Root())
	return srv, sc, roots
}
