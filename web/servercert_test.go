package web

import (
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetca/fleetca/api"
)

func TestIssueServerCertHandler(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPSHandler()
	const path = "/v1/admin/certificates/server"
	body := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	t.Run("ok", func(t *testing.T) {
		rec := do(h, "POST", path, f.admin, "application/json",
			body(api.ServerCertRequest{CSR: csrPEM(t, ""), DNS: []string{"proxy.example.com"}, IPs: []string{"127.0.0.1"}}))
		if rec.Code != http.StatusCreated || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("status %d type %q body %s, want 201 JSON", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
		}
		var out api.ServerCertResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatal(err)
		}
		certs := pemCerts(t, out.Chain)
		if len(certs) != 2 || !strings.HasPrefix(out.Chain, out.Certificate) || !certs[1].Equal(f.authty.Intermediate()) {
			t.Fatalf("chain has %d certificates, want the leaf then the intermediate", len(certs))
		}
		leaf := certs[0]
		if got := leaf.SerialNumber.Text(16); got != out.Serial {
			t.Errorf("serial = %s, want %s (the leaf's)", out.Serial, got)
		}
		if _, err := time.Parse(time.RFC3339, out.NotAfter); err != nil {
			t.Errorf("not_after %q is not RFC 3339", out.NotAfter)
		}
		roots := x509.NewCertPool()
		roots.AddCert(f.authty.Root())
		inter := x509.NewCertPool()
		inter.AddCert(certs[1])
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "proxy.example.com", Roots: roots, Intermediates: inter, CurrentTime: testNow,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("server certificate does not verify for proxy.example.com: %v", err)
		}
		if !slices.EqualFunc(leaf.IPAddresses, []net.IP{net.IPv4(127, 0, 0, 1)}, net.IP.Equal) {
			t.Errorf("IP SANs = %v, want [127.0.0.1]", leaf.IPAddresses)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: testNow,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
			t.Errorf("server certificate verifies for clientAuth, want it refused (it must not pass a device check)")
		}
		rec = do(h, "GET", "/v1/admin/audit", f.admin, "", "")
		if !strings.Contains(rec.Body.String(), `"action":"certificate.server_issue"`) || !strings.Contains(rec.Body.String(), out.Serial) {
			t.Errorf("audit = %s, want a certificate.server_issue row with serial %s", rec.Body, out.Serial)
		}
		if rec := do(h, "GET", "/v1/admin/certificates/"+out.Serial, f.admin, "", ""); rec.Code != http.StatusNotFound {
			t.Errorf("GET /v1/admin/certificates/%s = %d, want 404: server certificates are not device certificates", out.Serial, rec.Code)
		}
	})

	for _, tc := range []struct {
		name, auth, body string
		status           int
		kind             string
	}{
		{"fail/no-auth", "", body(api.ServerCertRequest{CSR: csrPEM(t, ""), DNS: []string{"proxy.example.com"}}), 401, "unauthorized"},
		{"fail/enrollment-token", f.token(t, "x"), body(api.ServerCertRequest{CSR: csrPEM(t, ""), DNS: []string{"proxy.example.com"}}), 401, "unauthorized"},
		{"fail/unknown-field", f.admin, `{"csr":"x","dns":["a"],"cn":"b"}`, 400, "malformed"},
		{"fail/not-pem", f.admin, body(api.ServerCertRequest{CSR: "hello", DNS: []string{"proxy.example.com"}}), 400, "malformed"},
		{"fail/bad-ip", f.admin, body(api.ServerCertRequest{CSR: csrPEM(t, ""), IPs: []string{"256.0.0.1"}}), 400, "malformed"},
		{"fail/no-names", f.admin, body(api.ServerCertRequest{CSR: csrPEM(t, "")}), 400, "malformed"},
		{"fail/bad-dns", f.admin, body(api.ServerCertRequest{CSR: csrPEM(t, ""), DNS: []string{"not a host"}}), 400, "malformed"},
		{"fail/csr-names-other", f.admin, body(api.ServerCertRequest{CSR: csrPEM(t, "evil.example.com"), DNS: []string{"proxy.example.com"}}), 400, "badCSR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(h, "POST", path, tc.auth, "application/json", tc.body)
			if rec.Code != tc.status {
				t.Fatalf("status = %d (body %s), want %d", rec.Code, rec.Body, tc.status)
			}
			if p := problemOf(t, rec); p.Type != api.ProblemTypePrefix+tc.kind {
				t.Errorf("type = %q, want %s", p.Type, api.ProblemTypePrefix+tc.kind)
			}
		})
	}
	if rec := do(f.srv.HTTPHandler(), "POST", path, f.admin, "application/json", body(api.ServerCertRequest{CSR: csrPEM(t, ""), DNS: []string{"a.example"}})); rec.Code != http.StatusNotFound {
		t.Errorf("POST %s on the HTTP listener = %d, want 404", path, rec.Code)
	}
}
