package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetca/fleetca/bench/benchutil"
)

// TestMain lets startBare start this test binary as the bare server, as
// it starts enrollload.
func TestMain(m *testing.M) {
	if dir := os.Getenv(bareEnv); dir != "" {
		os.Exit(serveBare(dir))
	}
	os.Exit(m.Run())
}

// TestBareIssue checks the bare server's floor I: a P-256 CSR gets a
// certificate for its CN from the bare issuer, in native's answer; what
// is not a good P-256 CSR gets an error and no certificate.
func TestBareIssue(t *testing.T) {
	b, _, err := newBareCA()
	if err != nil {
		t.Fatal(err)
	}
	csrPEM := func(key any, cn string) []byte {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	}
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	good := csrPEM(p256, "b-00000042")
	block, _ := pem.Decode(good)
	tampered := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: append(block.Bytes[:len(block.Bytes)-1:len(block.Bytes)-1], block.Bytes[len(block.Bytes)-1]^1)})
	for _, tc := range []struct {
		name, body, wantErr string
	}{
		{"ok", string(good), ""},
		{"fail/not-pem", "hello", "not a PEM CERTIFICATE REQUEST"},
		{"fail/certificate-pem", b.issuerPEM, "not a PEM CERTIFICATE REQUEST"},
		{"fail/bad-signature", string(tampered), "signature"},
		{"fail/p384", string(csrPEM(p384, "b-00000042")), "not P-256"},
		{"fail/rsa", string(csrPEM(rsaKey, "b-00000042")), "not P-256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			answer, err := b.issue([]byte(tc.body), time.Now())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || answer != nil {
					t.Fatalf("issue() = %q, %v; want no answer and an error with %q", answer, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cert, err := benchutil.ParseEnrollment(answer, "b-00000042")
			if err != nil {
				t.Fatal(err)
			}
			if err := cert.CheckSignatureFrom(b.issuer); err != nil {
				t.Errorf("the certificate is not the bare issuer's: %v", err)
			}
			if !p256.PublicKey.Equal(cert.PublicKey) {
				t.Error("the certificate is not for the CSR's key")
			}
		})
	}
}

// TestBareHTTP checks the bare server's HTTP surface: only POST
// /v1/enroll with its token is served.
func TestBareHTTP(t *testing.T) {
	b, token, err := newBareCA()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(b)
	defer srv.Close()
	csr, err := benchutil.NewCSR("b-00000001")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method, path, auth, body string
		want                           int
	}{
		{"ok", http.MethodPost, "/v1/enroll", "Bearer " + token, string(csr), http.StatusCreated},
		{"fail/wrong-token", http.MethodPost, "/v1/enroll", "Bearer " + token + "x", string(csr), http.StatusUnauthorized},
		{"fail/no-token", http.MethodPost, "/v1/enroll", "", string(csr), http.StatusUnauthorized},
		{"fail/get", http.MethodGet, "/v1/enroll", "Bearer " + token, "", http.StatusMethodNotAllowed},
		{"fail/path", http.MethodPost, "/v1/renew", "Bearer " + token, string(csr), http.StatusNotFound},
		{"fail/bad-csr", http.MethodPost, "/v1/enroll", "Bearer " + token, "not a CSR", http.StatusBadRequest},
		{"fail/too-big", http.MethodPost, "/v1/enroll", "Bearer " + token, strings.Repeat("a", maxBareCSR+1), http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("%s %s = %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
			}
			if tc.want == http.StatusCreated && resp.ContentLength <= 0 {
				t.Errorf("the answer has no Content-Length (%d): net/http chunked it", resp.ContentLength)
			}
		})
	}
}

// TestStartBare starts the bare server as its own process, as the
// benchmark does, and enrolls through the load's sender over its TLS.
func TestStartBare(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bare, err := startBare(ctx, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bare.stop()
	if bare.pid <= 0 || bare.token == "" || len(bare.roots) != 1 || !strings.HasPrefix(bare.url, "https://127.0.0.1:") {
		t.Fatalf("startBare() = %+v, want a pid, a token, a root and a loopback https URL", bare)
	}
	s, err := newSender(bare.url+bareClient.path, bare.roots, 1, "h1")
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if err := s.reopen(); err != nil {
		t.Fatal(err)
	}
	gen := &generator{bareToken: bare.token}
	jobs, err := gen.make(ctx, bareClient, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		body, err := s.post(ctx, 0, bareClient, j.req, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := checkAnswer(bareClient, body, j.id); err != nil {
			t.Error(err)
		}
	}
	bad := jobs[0].req
	bad.auth = "Bearer nope"
	if _, err := s.post(ctx, 0, bareClient, bad, false); err == nil || !strings.Contains(err.Error(), "status 401") {
		t.Errorf("a wrong token = %v, want status 401", err)
	}
	if err := bare.alive(); err != nil {
		t.Fatal(err)
	}
}

// TestChildAlive checks that a child that exited is reported, with its
// log, even before anything reaped it, and that stop ends one that runs.
func TestChildAlive(t *testing.T) {
	dir := t.TempDir()
	gone, err := startChild(t.Context(), "a child", filepath.Join(dir, "gone.log"), "sh", nil, "-c", "echo bye from the child; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	<-gone.exited
	if err := gone.alive(); err == nil || !strings.Contains(err.Error(), "a child exited") || !strings.Contains(err.Error(), "bye from the child") {
		t.Errorf("alive() after exit = %v, want that it exited, with its log", err)
	}
	running, err := startChild(t.Context(), "a sleeper", filepath.Join(dir, "running.log"), "sleep", nil, "60")
	if err != nil {
		t.Fatal(err)
	}
	if err := running.alive(); err != nil {
		t.Errorf("alive() while it runs = %v, want nil", err)
	}
	running.stop()
	if err := running.alive(); err == nil {
		t.Error("alive() after stop = nil, want an error")
	}
}
