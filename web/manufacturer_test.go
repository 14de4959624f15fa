package web

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/enroll"
)

// mfrCA is a manufacturer CA made by a test.
type mfrCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newMfrCA(t *testing.T) mfrCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Acme Factory CA"},
		NotBefore: testNow.AddDate(-1, 0, 0), NotAfter: time.Now().AddDate(10, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return mfrCA{cert: c, key: key}
}

func (m mfrCA) pem() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: m.cert.Raw}))
}

// idevid issues a device certificate with the CN and EKUs, and returns it
// with its key.
func (m mfrCA) idevid(t *testing.T, serial int64, cn string, eku ...x509.ExtKeyUsage) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: testNow.AddDate(0, -1, 0), NotAfter: time.Now().AddDate(5, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: eku}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, m.cert, key.Public(), m.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

func mfrJSON(t *testing.T, req api.ManufacturerRequest) string {
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestManufacturerAdminAPI(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPSHandler()
	acme := newMfrCA(t)
	auth := f.admin
	const ctype = "application/json"

	rec := do(h, "POST", api.ManufacturersPath, "", ctype, mfrJSON(t, api.ManufacturerRequest{Name: "acme", CA: acme.pem(), DeviceIDFrom: "cn"}))
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("POST manufacturers without admin token = %d, want 401", rec.Code)
	}
	rec = do(h, "POST", api.ManufacturersPath, auth, ctype, mfrJSON(t, api.ManufacturerRequest{Name: "acme", CA: acme.pem(), DeviceIDFrom: "ou"}))
	if p := problemOf(t, rec); rec.Code != http.StatusBadRequest || !strings.Contains(p.Detail, "device_id_from") {
		t.Errorf("POST with device_id_from ou = %d %+v, want 400 naming device_id_from", rec.Code, p)
	}
	rec = do(h, "POST", api.ManufacturersPath, auth, ctype, mfrJSON(t, api.ManufacturerRequest{Name: "acme", CA: acme.pem(), DeviceIDFrom: "cn", DevicePattern: "acme-*"}))
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST manufacturers = %d %s, want 201", rec.Code, rec.Body)
	}
	var m api.Manufacturer
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil || m.Name != "acme" || m.DevicePattern != "acme-*" || len(m.CASHA256) != 1 {
		t.Errorf("POST manufacturers answer = %+v, %v", m, err)
	}
	rec = do(h, "POST", api.ManufacturersPath, auth, ctype, mfrJSON(t, api.ManufacturerRequest{Name: "acme", CA: acme.pem(), DeviceIDFrom: "cn"}))
	if rec.Code != http.StatusConflict {
		t.Errorf("POST the same name again = %d, want 409", rec.Code)
	}
	rec = do(h, "GET", api.ManufacturersPath, auth, "", "")
	var list api.ManufacturerList
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || rec.Code != http.StatusOK || len(list.Manufacturers) != 1 {
		t.Errorf("GET manufacturers = %d %s, want one", rec.Code, rec.Body)
	}
	if rec := do(h, "DELETE", api.ManufacturersPath+"/acme", auth, "", ""); rec.Code != http.StatusNoContent {
		t.Errorf("DELETE acme = %d %s, want 204", rec.Code, rec.Body)
	}
	if rec := do(h, "DELETE", api.ManufacturersPath+"/acme", auth, "", ""); rec.Code != http.StatusNotFound {
		t.Errorf("DELETE acme again = %d, want 404", rec.Code)
	}
}

func TestEnrollManufacturerHandler(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPSHandler()
	acme := newMfrCA(t)
	if _, err := f.svc.AddManufacturer(t.Context(), enrollMfr("acme", acme.pem())); err != nil {
		t.Fatal(err)
	}
	leaf, _ := acme.idevid(t, 10, "acme-1")
	rec := doTLS(h, []*x509.Certificate{leaf}, "POST", api.EnrollPath, "", "application/x-pem-file", csrPEM(t, "acme-1"))
	if rec.Code != http.StatusCreated {
		t.Fatalf("enroll with a manufacturer certificate = %d %s, want 201", rec.Code, rec.Body)
	}
	if out := decodeIssued(t, rec); out.DeviceID != "acme-1" {
		t.Errorf("device_id = %q, want acme-1", out.DeviceID)
	}
	rec = doTLS(h, []*x509.Certificate{leaf}, "POST", api.EnrollPath, "", "application/x-pem-file", csrPEM(t, "acme-1"))
	if p := problemOf(t, rec); rec.Code != http.StatusConflict || !strings.Contains(p.Hint, "reset") {
		t.Errorf("second enrollment = %d %+v, want 409 with a hint to reset the device", rec.Code, p)
	}
	other, _ := newMfrCA(t).idevid(t, 11, "acme-2")
	rec = doTLS(h, []*x509.Certificate{other}, "POST", api.EnrollPath, "", "application/x-pem-file", csrPEM(t, "acme-2"))
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("enrollment with another CA's certificate = %d, want 401", rec.Code)
	}
	// A token wins over a certificate.
	rec = doTLS(h, []*x509.Certificate{leaf}, "POST", api.EnrollPath, "Bearer "+f.token(t, "dev-9"), "application/x-pem-file", csrPEM(t, "dev-9"))
	if rec.Code != http.StatusCreated {
		t.Errorf("enrollment with a token and a manufacturer certificate = %d %s, want 201", rec.Code, rec.Body)
	}
	if rec := do(h, "POST", api.EnrollPath, "", "application/x-pem-file", csrPEM(t, "acme-3")); rec.Code != http.StatusUnauthorized {
		t.Errorf("enrollment with neither = %d, want 401", rec.Code)
	}
}

// TestHTTPSManufacturerClientAuth: once manufacturer CAs are set, the
// listener accepts their devices' certificates (with an EKU lacking
// clientAuth too), still accepts the fleet's own for renewal, and still
// refuses another CA's.
func TestHTTPSManufacturerClientAuth(t *testing.T) {
	f := newFixture(t)
	srv, sc, roots := f.httpsListener(t)
	post := func(cert *tls.Certificate, path, auth, body string) (int, string, error) {
		cfg := &tls.Config{RootCAs: roots}
		if cert != nil {
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
		req, _ := http.NewRequestWithContext(t.Context(), "POST", srv.URL+path, strings.NewReader(body))
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
	acme := newMfrCA(t)
	leaf, key := acme.idevid(t, 20, "acme-1", x509.ExtKeyUsageServerAuth)
	idevid := &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key}
	if status, body, err := post(idevid, api.EnrollPath, "", csrPEM(t, "acme-1")); err == nil {
		t.Fatalf("enroll with a manufacturer certificate before the manufacturer is known: %d %s, want the handshake refused", status, body)
	}

	if _, err := f.svc.AddManufacturer(t.Context(), enrollMfr("acme", acme.pem())); err != nil {
		t.Fatal(err)
	}
	setCAs := func() {
		cas, err := f.svc.ManufacturerCAs(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		sc.SetManufacturerCAs(cas) // what serve wires as enroll.Deps.ManufacturerCAs
	}
	setCAs()
	status, body, err := post(idevid, api.EnrollPath, "", csrPEM(t, "acme-1"))
	if err != nil || status != http.StatusCreated {
		t.Fatalf("enroll with a manufacturer certificate: %d %s %v, want 201", status, body, err)
	}

	// The fleet's own certificates still renew.
	devKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	status, body, err = post(nil, api.EnrollPath, f.token(t, "dev-1"), csrPEMFor(t, devKey, "dev-1"))
	if err != nil || status != http.StatusCreated {
		t.Fatalf("enroll with a token: %d %s %v", status, body, err)
	}
	var out api.EnrollResponse
	json.Unmarshal([]byte(body), &out)
	f.clock.Add(time.Second)
	devLeaf := pemCerts(t, out.Certificate)[0]
	dev := &tls.Certificate{Certificate: [][]byte{devLeaf.Raw, f.authty.IntermediateDER()}, PrivateKey: devKey}
	if status, body, err := post(dev, api.RenewPath, "", ""); err != nil || status != http.StatusCreated {
		t.Fatalf("renew over mutual TLS: %d %s %v, want 201", status, body, err)
	}
	// Another CA's certificate still fails the handshake.
	stranger, skey := newMfrCA(t).idevid(t, 21, "acme-2")
	if status, body, err := post(&tls.Certificate{Certificate: [][]byte{stranger.Raw}, PrivateKey: skey}, api.EnrollPath, "", csrPEM(t, "acme-2")); err == nil {
		t.Errorf("enroll with another CA's certificate: %d %s, want the handshake refused", status, body)
	}
	// Removing the manufacturer closes the door at the TLS layer again.
	if err := f.svc.RemoveManufacturer(t.Context(), "acme"); err != nil {
		t.Fatal(err)
	}
	setCAs()
	leaf2, key2 := acme.idevid(t, 22, "acme-3")
	if status, body, err := post(&tls.Certificate{Certificate: [][]byte{leaf2.Raw}, PrivateKey: key2}, api.EnrollPath, "", csrPEM(t, "acme-3")); err == nil {
		t.Errorf("enroll after the manufacturer's removal: %d %s, want the handshake refused", status, body)
	}
}

func enrollMfr(name, caPEM string) enroll.ManufacturerRequest {
	return enroll.ManufacturerRequest{Name: name, CAPEM: caPEM, DeviceIDFrom: "cn"}
}

// TestESTSimpleEnrollManufacturer: EST simpleenroll without an
// Authorization header enrolls with the TLS client's manufacturer
// certificate, once; a certificate no manufacturer issued is a 401 that
// still challenges for Basic.
func TestESTSimpleEnrollManufacturer(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPSHandler()
	acme := newMfrCA(t)
	if _, err := f.svc.AddManufacturer(t.Context(), enrollMfr("acme", acme.pem())); err != nil {
		t.Fatal(err)
	}
	path := api.ESTPrefix + "/" + api.ESTOpSimpleEnroll
	body := func(cn string) string {
		b, _ := pem.Decode([]byte(csrPEM(t, cn)))
		return base64.StdEncoding.EncodeToString(b.Bytes)
	}
	leaf, _ := acme.idevid(t, 30, "acme-est")
	rec := doTLS(h, []*x509.Certificate{leaf}, "POST", path, "", "application/pkcs10", body("acme-est"))
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/pkcs7-mime") {
		t.Fatalf("EST simpleenroll with a manufacturer certificate = %d %q %s, want 200 certs-only", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	if _, err := f.store.GetDevice(t.Context(), "acme-est"); err != nil {
		t.Errorf("device acme-est after EST enrollment: %v", err)
	}
	rec = doTLS(h, []*x509.Certificate{leaf}, "POST", path, "", "application/pkcs10", body("acme-est"))
	if rec.Code != http.StatusConflict {
		t.Errorf("EST simpleenroll again = %d %s, want 409", rec.Code, rec.Body)
	}
	stranger, _ := newMfrCA(t).idevid(t, 31, "acme-x")
	rec = doTLS(h, []*x509.Certificate{stranger}, "POST", path, "", "application/pkcs10", body("acme-x"))
	if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != `Basic realm="`+api.ESTRealm+`"` {
		t.Errorf("EST simpleenroll with another CA's certificate = %d, WWW-Authenticate %q, want 401 with the Basic challenge",
			rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
}

// TestStepSignManufacturer: step's /sign with no ott enrolls with the TLS
// client's manufacturer certificate, once, in step's JSON; its refusals
// come in step's error body.
func TestStepSignManufacturer(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPSHandler()
	acme := newMfrCA(t)
	if _, err := f.svc.AddManufacturer(t.Context(), enrollMfr("acme", acme.pem())); err != nil {
		t.Fatal(err)
	}
	path := api.StepPrefix + api.StepSignPath
	body := func(cn, extra string) string {
		b, _ := json.Marshal(csrPEM(t, cn))
		return `{"csr":` + string(b) + `,"ott":""` + extra + `}`
	}
	leaf, _ := acme.idevid(t, 40, "acme-step")
	rec := doTLS(h, []*x509.Certificate{leaf}, "POST", path, "", "application/json", body("acme-step", ""))
	var out api.StepSignResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &out); rec.Code != http.StatusCreated || err != nil || out.ServerPEM == "" || len(out.CertChainPEM) != 2 {
		t.Fatalf("/sign with a manufacturer certificate = %d %s, want 201 with step's crt, ca and certChain", rec.Code, rec.Body)
	}
	if _, err := f.store.GetDevice(t.Context(), "acme-step"); err != nil {
		t.Errorf("device acme-step after /sign: %v", err)
	}

	fleetLeaf, _ := f.enrollKey(t, "dev-1")
	stranger, _ := newMfrCA(t).idevid(t, 41, "acme-x")
	second, _ := acme.idevid(t, 42, "acme-two")
	for _, tc := range []struct {
		name   string
		chain  []*x509.Certificate
		body   string
		status int
		// message is a part of step's message.
		message string
	}{
		{"fail/used-before", []*x509.Certificate{leaf}, body("acme-step", ""), http.StatusConflict, "reset"},
		{"fail/another-ca", []*x509.Certificate{stranger}, body("acme-x", ""), http.StatusUnauthorized, ""},
		{"fail/fleet-certificate", []*x509.Certificate{fleetLeaf}, body("dev-1", ""), http.StatusUnauthorized, ""},
		{"fail/validity", []*x509.Certificate{second}, body("acme-two", `,"notAfter":"2h"`), http.StatusBadRequest, "notAfter"},
		{"fail/csr-other-device", []*x509.Certificate{second}, body("acme-three", ""), http.StatusBadRequest, "acme-three"},
		{"fail/no-token-no-certificate", nil, body("acme-two", ""), http.StatusUnauthorized, "ott"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rec *httptest.ResponseRecorder
			if tc.chain == nil {
				rec = do(h, "POST", path, "", "application/json", tc.body)
			} else {
				rec = doTLS(h, tc.chain, "POST", path, "", "application/json", tc.body)
			}
			var e api.StepError
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || rec.Code != tc.status || e.Status != tc.status || !strings.Contains(e.Message, tc.message) {
				t.Errorf("/sign = %d %s, want %d with a step message containing %q", rec.Code, rec.Body, tc.status, tc.message)
			}
		})
	}
	if _, err := f.store.GetDevice(t.Context(), "acme-two"); err == nil {
		t.Errorf("device acme-two exists after refused /sign requests")
	}
}
