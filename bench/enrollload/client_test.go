package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/fleetca/fleetca/api"
)

func TestParseClients(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"native", []string{"native"}, false},
		{"est", []string{"est"}, false},
		{"step", []string{"step"}, false},
		{"all", []string{"native", "est", "step"}, false},
		{"", nil, true},
		{"EST", nil, true},
		{"native,est", nil, true},
	}
	for _, tc := range tests {
		got, err := parseClients(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("parseClients(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		var names []string
		for _, k := range got {
			names = append(names, k.name)
		}
		if !slices.Equal(names, tc.want) {
			t.Errorf("parseClients(%q) = %q, want %q", tc.in, names, tc.want)
		}
	}
}

// TestNewCSR checks the CSRs each client makes: CN = the device ID, and a
// DNS SAN with it only in step's, as the step CLI puts the token's sans
// there.
func TestNewCSR(t *testing.T) {
	for _, k := range clientKinds {
		der, err := newCSR(k, "b-00000042")
		if err != nil {
			t.Fatal(err)
		}
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil {
			t.Fatalf("newCSR(%s) is not a CSR: %v", k.name, err)
		}
		if err := csr.CheckSignature(); err != nil {
			t.Errorf("newCSR(%s) signature: %v", k.name, err)
		}
		var wantDNS []string
		if k == stepClient {
			wantDNS = []string{"b-00000042"}
		}
		if csr.Subject.CommonName != "b-00000042" || !slices.Equal(csr.DNSNames, wantDNS) {
			t.Errorf("newCSR(%s) = CN %q DNS %q, want CN b-00000042 DNS %q", k.name, csr.Subject.CommonName, csr.DNSNames, wantDNS)
		}
	}
}

// TestNewRequest checks each client's request as it goes on the wire:
// its media type, its credentials and that the body carries the CSR.
func TestNewRequest(t *testing.T) {
	const id, token = "b-00000007", "fct_secret"
	csr, err := newCSR(nativeClient, id)
	if err != nil {
		t.Fatal(err)
	}
	csrPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))

	r, err := newRequest(nativeClient, id, token, csr)
	if err != nil {
		t.Fatal(err)
	}
	if r.contentType != "application/x-pem-file" || r.auth != "Bearer "+token || string(r.body) != csrPEM {
		t.Errorf("native request = %q %q %q, want the PEM CSR with the bearer token", r.contentType, r.auth, r.body)
	}

	r, err = newRequest(estClient, id, token, csr)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/", nil)
	req.Header.Set("Authorization", r.auth)
	user, pw, ok := req.BasicAuth()
	body, err := base64.StdEncoding.DecodeString(string(r.body))
	if r.contentType != "application/pkcs10" || !ok || user != id || pw != token || err != nil || string(body) != string(csr) {
		t.Errorf("est request = %q Basic %q:%q (%v), body decodes to the CSR: %v (%v); want application/pkcs10, %s:%s, the base64 DER CSR",
			r.contentType, user, pw, ok, string(body) == string(csr), err, id, token)
	}

	r, err = newRequest(stepClient, id, token, csr)
	if err != nil {
		t.Fatal(err)
	}
	var sr api.StepSignRequest
	if err := json.Unmarshal(r.body, &sr); err != nil {
		t.Fatalf("step request body %q: %v", r.body, err)
	}
	if r.contentType != "application/json" || r.auth != "" || sr.CSR != csrPEM || sr.OTT != token || sr.NotBefore != "" || sr.NotAfter != "" {
		t.Errorf("step request = %q auth %q body %q, want JSON {csr: PEM, ott: token} and no Authorization", r.contentType, r.auth, r.body)
	}
}

// TestSenderPost checks that a sender, raw HTTP/1.1 or net/http's HTTP/2,
// sends the request as built and takes only the kind's success status:
// EST's 200, not 201.
func TestSenderPost(t *testing.T) {
	for _, proto := range []string{"h1", "h2"} {
		t.Run(proto, func(t *testing.T) {
			var got struct{ method, path, ctype, auth, body, proto string }
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got.method, got.path, got.ctype, got.auth, got.body, got.proto = r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), string(b), r.Proto
				if r.Header.Get("X-Created") != "" || r.Header.Get("Authorization") == "" {
					w.WriteHeader(http.StatusCreated)
				}
				io.WriteString(w, "answer")
			}))
			srv.EnableHTTP2 = true
			srv.StartTLS()
			defer srv.Close()
			s, err := newSender(srv.URL+"/v1/x", []*x509.Certificate{srv.Certificate()}, 2, proto)
			if err != nil {
				t.Fatal(err)
			}
			defer s.close()
			r := request{contentType: "application/pkcs10", auth: "Basic eDp5", body: []byte("Q1NS")}
			if err := s.reopen(); err != nil {
				t.Fatal(err)
			}
			srv.CloseClientConnections() // as a server closes idle connections between phases
			if err := s.reopen(); err != nil {
				t.Fatal(err)
			}

			body, err := s.post(t.Context(), 1, estClient, r, true)
			if err != nil || string(body) != "answer" {
				t.Fatalf("post(est, 200) = %q, %v; want the answer", body, err)
			}
			wantProto := map[string]string{"h1": "HTTP/1.1", "h2": "HTTP/2.0"}[proto]
			if got.method != http.MethodPost || got.path != "/v1/x" || got.ctype != r.contentType || got.auth != r.auth || got.body != string(r.body) || got.proto != wantProto {
				t.Errorf("post sent %+v, want POST /v1/x over %s with %+v", got, wantProto, r)
			}
			if body, err := s.post(t.Context(), 0, estClient, r, false); err != nil || body != nil {
				t.Errorf("post(est, 200, keep=false) = %q, %v; want no body, no error", body, err)
			}
			if _, err := s.post(t.Context(), 0, stepClient, r, true); err == nil || !strings.Contains(err.Error(), "status 200: answer") {
				t.Errorf("post(step, 200) error = %v, want status 200 with the body", err)
			}
			if _, err := s.post(t.Context(), 1, nativeClient, request{contentType: "application/json"}, false); err != nil {
				t.Errorf("post(native, 201) = %v, want success", err)
			}
			if got.auth != "" || got.body != "" {
				t.Errorf("post without auth and body sent Authorization %q, body %q", got.auth, got.body)
			}
		})
	}
}

// testIssuer is a CA and a device certificate it issued, for the answer
// checks.
type testIssuer struct {
	ca, leaf *x509.Certificate
}

func newTestIssuer(t *testing.T, id string, skid []byte) testIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Bench Intermediate"},
		NotBefore: now, NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		SubjectKeyId: skid}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: id},
		NotBefore: now, NotAfter: now.Add(time.Hour)}, ca, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(leafDER)
	if err != nil {
		t.Fatal(err)
	}
	return testIssuer{ca: ca, leaf: leaf}
}

func certPEM(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

// base64Lines is base64 in lines of 76 columns, as fleetca and est write
// it.
func base64Lines(der []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(der)
	var b strings.Builder
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\n")
	return []byte(b.String())
}

func TestCheckEST(t *testing.T) {
	const id = "b-00000001"
	iss := newTestIssuer(t, id, []byte{1, 2, 3, 4})
	certsOnly := func(certs ...*x509.Certificate) []byte {
		var der []byte
		for _, c := range certs {
			der = append(der, c.Raw...)
		}
		p7, err := pkcs7.DegenerateCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return p7
	}
	tests := []struct {
		name    string
		body    []byte
		id      string
		wantErr bool
	}{
		{"ok/76-columns", base64Lines(certsOnly(iss.leaf)), id, false},
		{"ok/one-line", []byte(base64.StdEncoding.EncodeToString(certsOnly(iss.leaf))), id, false},
		{"ok/spaces-and-tabs", []byte(" \t" + strings.ReplaceAll(string(base64Lines(certsOnly(iss.leaf))), "\n", " \t\n")), id, false},
		{"fail/other-device", base64Lines(certsOnly(iss.leaf)), "b-00000002", true},
		{"fail/ca-too", base64Lines(certsOnly(iss.leaf, iss.ca)), id, true},
		{"fail/ca-only", base64Lines(certsOnly(iss.ca)), "Bench Intermediate", true},
		{"fail/der-not-base64", certsOnly(iss.leaf), id, true},
		{"fail/not-pkcs7", base64Lines(iss.leaf.Raw), id, true},
		{"fail/empty", nil, id, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cert, err := checkAnswer(estClient, tc.body, tc.id)
			if (err != nil) != tc.wantErr {
				t.Fatalf("checkAnswer(est) error = %v, want error %v", err, tc.wantErr)
			}
			if err == nil && !cert.Equal(iss.leaf) {
				t.Errorf("checkAnswer(est) = %v, want the device's certificate", cert.Subject)
			}
		})
	}
}

func TestCheckStep(t *testing.T) {
	const id = "b-00000001"
	iss := newTestIssuer(t, id, []byte{1, 2, 3, 4})
	other := newTestIssuer(t, id, []byte{9, 9}) // another CA of the same name
	leaf, ca := certPEM(iss.leaf), certPEM(iss.ca)
	body := func(r api.StepSignResponse) []byte {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name    string
		body    []byte
		id      string
		wantErr bool
	}{
		{"ok", body(api.StepSignResponse{ServerPEM: leaf, CaPEM: ca, CertChainPEM: []string{leaf, ca}}), id, false},
		{"fail/other-device", body(api.StepSignResponse{ServerPEM: leaf, CaPEM: ca, CertChainPEM: []string{leaf, ca}}), "b-00000002", true},
		{"fail/chain-reversed", body(api.StepSignResponse{ServerPEM: leaf, CaPEM: ca, CertChainPEM: []string{ca, leaf}}), id, true},
		{"fail/chain-leaf-only", body(api.StepSignResponse{ServerPEM: leaf, CaPEM: ca, CertChainPEM: []string{leaf}}), id, true},
		{"fail/ca-not-issuer", body(api.StepSignResponse{ServerPEM: leaf, CaPEM: certPEM(other.ca), CertChainPEM: []string{leaf, certPEM(other.ca)}}), id, true},
		{"fail/ca-is-leaf", body(api.StepSignResponse{ServerPEM: leaf, CaPEM: leaf, CertChainPEM: []string{leaf, leaf}}), id, true},
		{"fail/no-crt", body(api.StepSignResponse{CaPEM: ca, CertChainPEM: []string{ca}}), id, true},
		{"fail/fleetca-json", body(api.StepSignResponse{}), id, true},
		{"fail/not-json", []byte(leaf), id, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cert, err := checkAnswer(stepClient, tc.body, tc.id)
			if (err != nil) != tc.wantErr {
				t.Fatalf("checkAnswer(step) error = %v, want error %v", err, tc.wantErr)
			}
			if err == nil && !cert.Equal(iss.leaf) {
				t.Errorf("checkAnswer(step) = %v, want the device's certificate", cert.Subject)
			}
		})
	}
}

func TestCheckNative(t *testing.T) {
	const id = "b-00000001"
	iss := newTestIssuer(t, id, []byte{1, 2, 3, 4})
	ok, err := json.Marshal(api.EnrollResponse{DeviceID: id, Serial: "2", Certificate: certPEM(iss.leaf)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := checkAnswer(nativeClient, ok, id); err != nil {
		t.Errorf("checkAnswer(native) = %v, want the enrollment accepted", err)
	}
	if _, err := checkAnswer(nativeClient, ok, "b-00000002"); err == nil {
		t.Error("checkAnswer(native) of another device's answer succeeded, want an error")
	}
}
