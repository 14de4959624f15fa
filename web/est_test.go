package web

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/enroll"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// estCSR is base64 DER of a CSR for cn with key, with the SANs of tmpl.
func estCSR(t *testing.T, key crypto.Signer, subject pkix.Name, uris ...*url.URL) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: subject, URIs: uris}, key)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

// mangle spreads spaces, tabs and CRLFs through a base64 body, as RFC 8951
// §3 says a receiver must tolerate.
func mangle(b64 string) string {
	var sb strings.Builder
	for i := 0; i < len(b64); i += 10 {
		sb.WriteString(b64[i:min(i+10, len(b64))])
		sb.WriteString([]string{"\r\n", " ", "\t", "\n  "}[(i/10)%4])
	}
	return sb.String()
}

func doEST(h http.Handler, chain []*x509.Certificate, method, op, user, pass, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, api.ESTPrefix+"/"+op, strings.NewReader(body))
	if chain != nil {
		req.TLS = &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: chain}
	}
	if user != "" || pass != "" {
		req.SetBasicAuth(user, pass)
	}
	req.Header.Set("Content-Type", "application/pkcs10")
	req.Header.Set("Content-Transfer-Encoding", "base64")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// estCerts checks an EST certs-only answer and returns its certificates.
func estCerts(t *testing.T, rec *httptest.ResponseRecorder, ctype string) []*x509.Certificate {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d (body %s), want 200", rec.Code, rec.Body)
	}
	h := rec.Header()
	if h.Get("Content-Type") != ctype || h.Get("Content-Transfer-Encoding") != "base64" ||
		h.Get("Content-Length") != strconv.Itoa(rec.Body.Len()) {
		t.Fatalf("headers = %v, want %s, base64 and the Content-Length", h, ctype)
	}
	der, err := DecodeESTBody(rec.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	p7, err := pkcs7.Parse(der)
	if err != nil {
		t.Fatal(err)
	}
	return p7.Certificates
}

func TestESTCACertsAndCSRAttrs(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPSHandler()
	for _, path := range []string{api.ESTPrefix + "/cacerts", api.ESTPrefix + "/fleet/cacerts"} {
		rec := do(h, "GET", path, "", "", "")
		certs := estCerts(t, rec, "application/pkcs7-mime")
		if len(certs) != 2 || !certs[1].Equal(f.authty.Root()) || string(certs[0].Raw) != string(f.authty.IntermediateDER()) {
			t.Errorf("%s: %d certificates, want the intermediate and the root", path, len(certs))
		}
	}
	rec := do(h, "GET", api.ESTPrefix+"/other/cacerts", "", "", "")
	if p := problemOf(t, rec); rec.Code != 404 || !strings.Contains(p.Hint, "web.est_label") {
		t.Errorf("unknown label: %d %+v, want 404 naming web.est_label", rec.Code, p)
	}

	rec = do(h, "GET", api.ESTPrefix+"/csrattrs", "", "", "")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/csrattrs" || rec.Header().Get("Content-Transfer-Encoding") != "base64" {
		t.Fatalf("csrattrs: %d %v", rec.Code, rec.Header())
	}
	der, err := DecodeESTBody(rec.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var attrs []asn1.RawValue
	if rest, err := asn1.Unmarshal(der, &attrs); err != nil || len(rest) != 0 {
		t.Fatalf("csrattrs is not a SEQUENCE: %v", err)
	}
	var cn asn1.ObjectIdentifier
	if _, err := asn1.Unmarshal(attrs[0].FullBytes, &cn); err != nil || !cn.Equal(asn1.ObjectIdentifier{2, 5, 4, 3}) {
		t.Errorf("first csrattr = %v (%v), want commonName", cn, err)
	}

	rec = doEST(h, nil, "POST", "serverkeygen", "", "", "")
	if p := problemOf(t, rec); rec.Code != 501 || p.Hint == "" {
		t.Errorf("serverkeygen: %d %+v, want 501 with a hint", rec.Code, p)
	}
}

func TestESTSimpleEnroll(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPSHandler()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	body := mangle(estCSR(t, key, pkix.Name{CommonName: "dev-1"}))
	tok := f.token(t, "dev-1")
	audit, _ := f.store.ListAudit(t.Context(), 0, 1000)

	// The credential-less first request: 401, Basic challenge, empty body,
	// nothing spent or audited.
	rec := doEST(h, nil, "POST", "simpleenroll", "", "", body)
	if rec.Code != 401 || rec.Header().Get("WWW-Authenticate") != `Basic realm="fleetca"` || rec.Body.Len() != 0 {
		t.Fatalf("no credentials: %d %v %q, want 401 with a Basic challenge and no body", rec.Code, rec.Header(), rec.Body)
	}
	if after, _ := f.store.ListAudit(t.Context(), 0, 1000); len(after) != len(audit) {
		t.Errorf("the challenge wrote %d audit rows", len(after)-len(audit))
	}

	// Refusals that burn nothing.
	for _, c := range []struct {
		name, user, pass, body string
		status                 int
	}{
		{"user is not the CN", "dev-2", tok, body, 400},
		{"wrong password", "dev-1", "fleetca_enroll_wrong", body, 401},
		{"not base64", "dev-1", tok, "!!!", 400},
		{"empty user", "", tok, body, 401},
	} {
		rec := doEST(h, nil, "POST", "simpleenroll", c.user, c.pass, c.body)
		if rec.Code != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, rec.Code, rec.Body, c.status)
		}
		problemOf(t, rec)
		if rec.Code == 401 && rec.Header().Get("WWW-Authenticate") != `Basic realm="fleetca"` {
			t.Errorf("%s: WWW-Authenticate = %q", c.name, rec.Header().Get("WWW-Authenticate"))
		}
	}

	rec = doEST(h, nil, "POST", "simpleenroll", "dev-1", tok, body)
	certs := estCerts(t, rec, "application/pkcs7-mime; smime-type=certs-only")
	if len(certs) != 1 || certs[0].Subject.CommonName != "dev-1" {
		t.Fatalf("simpleenroll answered %d certificates", len(certs))
	}

	// A replayed Basic password is refused.
	rec = doEST(h, nil, "POST", "simpleenroll", "dev-1", tok, body)
	if p := problemOf(t, rec); rec.Code != 401 {
		t.Errorf("replay: %d %+v, want 401", rec.Code, p)
	}

	// A pattern token: the device ID is the user and the CN; another CN
	// than the user is refused before the token is looked at.
	pat, _, err := f.svc.CreateToken(t.Context(), enroll.TokenRequest{DevicePattern: "line-*", Uses: 2})
	if err != nil {
		t.Fatal(err)
	}
	patKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	patBody := estCSR(t, patKey, pkix.Name{CommonName: "line-7"})
	if rec := doEST(h, nil, "POST", "simpleenroll", "line-8", string(pat), patBody); rec.Code != 400 {
		t.Errorf("pattern token, user is not the CN: %d %s, want 400", rec.Code, rec.Body)
	}
	rec = doEST(h, nil, "POST", "simpleenroll", "line-7", string(pat), patBody)
	if certs := estCerts(t, rec, "application/pkcs7-mime; smime-type=certs-only"); certs[0].Subject.CommonName != "line-7" {
		t.Errorf("pattern token enrolled %q, want line-7", certs[0].Subject.CommonName)
	}
}

func TestESTSimpleReenroll(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPSHandler()
	leaf, key := f.enrollKey(t, "dev-1")
	chain := []*x509.Certificate{leaf}

	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, c := range []struct {
		name  string
		chain []*x509.Certificate
		body  string
		kind  fault.Kind
	}{
		{"no client certificate", nil, estCSR(t, key, leaf.Subject), fault.Unauthorized},
		{"subject differs", chain, estCSR(t, key, pkix.Name{CommonName: "dev-2"}), fault.BadCSR},
		{"subject has more", chain, estCSR(t, key, pkix.Name{CommonName: "dev-1", Organization: []string{"x"}}), fault.BadCSR},
		{"SAN differs", chain, estCSR(t, key, leaf.Subject, &url.URL{Scheme: "spiffe", Host: "fleet.test", Path: "/device/dev-2"}), fault.BadCSR},
		{"not a CSR", chain, base64.StdEncoding.EncodeToString([]byte("nope")), fault.BadCSR},
	} {
		rec := doEST(h, c.chain, "POST", "simplereenroll", "", "", c.body)
		p := problemOf(t, rec)
		if p.Type != api.ProblemTypePrefix+c.kind.String() {
			t.Errorf("%s: %d %+v, want %s", c.name, rec.Code, p, c.kind)
		}
	}

	// Same key, with the certificate's SANs: a renewal of the same key.
	rec := doEST(h, chain, "POST", "simplereenroll", "", "", mangle(estCSR(t, key, leaf.Subject, leaf.URIs...)))
	renewed := estCerts(t, rec, "application/pkcs7-mime; smime-type=certs-only")[0]
	if renewed.SerialNumber.Cmp(leaf.SerialNumber) == 0 || string(renewed.RawSubjectPublicKeyInfo) != string(leaf.RawSubjectPublicKeyInfo) {
		t.Fatalf("renewal: serial %v, same key %v", renewed.SerialNumber, string(renewed.RawSubjectPublicKeyInfo) == string(leaf.RawSubjectPublicKeyInfo))
	}
	f.clock.Add(enroll.RetryWindow)

	// A new key, without SANs: a rekey.
	rec = doEST(h, []*x509.Certificate{renewed}, "POST", "simplereenroll", "", "", estCSR(t, other, renewed.Subject))
	rekeyed := estCerts(t, rec, "application/pkcs7-mime; smime-type=certs-only")[0]
	if string(rekeyed.RawSubjectPublicKeyInfo) == string(renewed.RawSubjectPublicKeyInfo) || rekeyed.Subject.CommonName != "dev-1" {
		t.Errorf("rekey kept the key or changed the subject: %v", rekeyed.Subject)
	}

	// A revoked device's certificate cannot reenroll: 403, problem JSON.
	f.clock.Add(enroll.RetryWindow)
	if rec := do(h, "POST", "/v1/admin/devices/dev-1/revoke", f.admin, "application/json", `{"reason":"cessationOfOperation"}`); rec.Code != 200 {
		t.Fatalf("revoke device: %d %s", rec.Code, rec.Body)
	}
	rec = doEST(h, []*x509.Certificate{rekeyed}, "POST", "simplereenroll", "", "", estCSR(t, other, rekeyed.Subject))
	if p := problemOf(t, rec); rec.Code != 403 {
		t.Errorf("reenroll of a revoked device: %d %+v, want 403", rec.Code, p)
	}
}

// FuzzDecodeESTBody: no panic; a refusal is fault.Malformed; what is
// accepted is what the body's base64, without its whitespace, decodes to
// (non-zero padding bits are tolerated, as base64.StdEncoding does).
func FuzzDecodeESTBody(f *testing.F) {
	f.Add([]byte("AAAA\r\nBBBB"))
	f.Add([]byte(" MIIB\tAA== \n"))
	f.Add([]byte(""))
	f.Add([]byte(" 001="))
	f.Fuzz(func(t *testing.T, body []byte) {
		der, err := DecodeESTBody(body)
		if err != nil {
			if k, ok := fault.KindOf(err); !ok || k != fault.Malformed {
				t.Fatalf("refusal kind = %v (%v), want Malformed", k, err)
			}
			return
		}
		want, _ := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(body)), ""))
		if len(der) == 0 || string(der) != string(want) {
			t.Fatalf("accepted %q as %x", body, der)
		}
	})
}

// TestESTSimpleReenrollRefusesCertificate: a client certificate that may
// not renew over EST is refused 403 with problem JSON and no Basic
// challenge (simplereenroll takes no other credential, so a 401 would only
// send an EST client, Bouncy Castle's among them, to retry with a password
// it does not need), and nothing is written. Expiry follows /v1/renew's
// rules over mutual TLS: an expired certificate renews only with a renewal
// token (which EST has no form for), within ca.renew_after_expiry, so EST
// refuses it within the grace as past it, and says which. (Over a real
// listener the TLS handshake refuses an expired or foreign certificate
// first; this is the handler's answer when one gets through.)
func TestESTSimpleReenrollRefusesCertificate(t *testing.T) {
	f := newFixture(t, func(c *enroll.Config) { c.RenewAfterExpiry = 24 * time.Hour })
	h := f.srv.HTTPSHandler()
	leaf, key := f.enrollKey(t, "dev-1")

	// Another CA's certificate for the same device, key and names.
	otherCA, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: leaf.SerialNumber, Subject: leaf.Subject, URIs: leaf.URIs,
		NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), otherCA)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		cert *x509.Certificate
		at   time.Time
		// detail is a part of the problem's detail.
		detail string
	}{
		{"fail/another-ca", foreign, f.clock.Now(), "is not a device certificate this CA issued"},
		{"fail/expired-within-grace", leaf, leaf.NotAfter.Add(time.Hour), "expired at"},
		{"fail/expired-past-grace", leaf, leaf.NotAfter.Add(48 * time.Hour), "more than ca.renew_after_expiry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.clock.Add(tc.at.Sub(f.clock.Now()))
			before := f.certCount(t, "dev-1")
			rec := doEST(h, []*x509.Certificate{tc.cert}, "POST", "simplereenroll", "", "", estCSR(t, key, leaf.Subject))
			p := problemOf(t, rec)
			if rec.Code != http.StatusForbidden || p.Type != api.ProblemTypePrefix+fault.Forbidden.String() || !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("simplereenroll = %d %+v, want 403 forbidden saying %q", rec.Code, p, tc.detail)
			}
			if wa := rec.Header().Get("WWW-Authenticate"); wa != "" {
				t.Errorf("WWW-Authenticate = %q, want none: simplereenroll takes no password", wa)
			}
			if after := f.certCount(t, "dev-1"); after != before {
				t.Errorf("a refused simplereenroll changed dev-1's certificates from %d to %d", before, after)
			}
		})
	}
}

// certCount is how many certificates the store holds for device id.
func (f *fixture) certCount(t *testing.T, id string) int {
	t.Helper()
	cs, err := f.store.ListCertificates(t.Context(), id, store.Page{Limit: store.MaxPageLimit})
	if err != nil {
		t.Fatal(err)
	}
	return len(cs)
}
