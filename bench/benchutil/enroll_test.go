package benchutil

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestMakeCSRs(t *testing.T) {
	csrs, err := MakeCSRs(t.Context(), "t-", 41, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(csrs) != 5 {
		t.Fatalf("MakeCSRs(n=5) made %d CSRs", len(csrs))
	}
	for i, b := range csrs {
		block, _ := pem.Decode(b)
		if block == nil || block.Type != "CERTIFICATE REQUEST" {
			t.Fatalf("CSR %d is not PEM: %q", i, b)
		}
		csr, err := x509.ParseCertificateRequest(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if err := csr.CheckSignature(); err != nil {
			t.Errorf("CSR %d: %v", i, err)
		}
		if want := DeviceID("t-", 41+i); csr.Subject.CommonName != want {
			t.Errorf("CSR %d CN = %q, want %q", i, csr.Subject.CommonName, want)
		}
		if _, ok := csr.PublicKey.(*ecdsa.PublicKey); !ok || csr.PublicKeyAlgorithm != x509.ECDSA {
			t.Errorf("CSR %d key = %T, want P-256", i, csr.PublicKey)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := MakeCSRs(ctx, "t-", 1, 3); !errors.Is(err, context.Canceled) {
		t.Errorf("MakeCSRs(canceled) error = %v, want context.Canceled", err)
	}
}

func TestMakeKeysAndCSRs(t *testing.T) {
	keys, csrs, err := MakeKeysAndCSRs(t.Context(), "t-", 7, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 || len(csrs) != 3 {
		t.Fatalf("MakeKeysAndCSRs(n=3) made %d keys and %d CSRs", len(keys), len(csrs))
	}
	for i, b := range csrs {
		block, _ := pem.Decode(b)
		if block == nil {
			t.Fatalf("CSR %d is not PEM", i)
		}
		csr, err := x509.ParseCertificateRequest(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if !keys[i].PublicKey.Equal(csr.PublicKey) {
			t.Errorf("key %d is not CSR %d's key", i, i)
		}
		if want := DeviceID("t-", 7+i); csr.Subject.CommonName != want {
			t.Errorf("CSR %d CN = %q, want %q", i, csr.Subject.CommonName, want)
		}
	}
}

func TestParseEnrollment(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial := big.NewInt(0xabc123)
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "b-00000001"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<31, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	body := func(id, serial, cert string) []byte {
		b, err := json.Marshal(map[string]string{"device_id": id, "serial": serial, "certificate": cert, "chain": ""})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name     string
		body     []byte
		id       string
		wantFail bool
	}{
		{"ok/matches", body("b-00000001", "abc123", certPEM), "b-00000001", false},
		{"fail/other-device", body("b-00000001", "abc123", certPEM), "b-00000002", true},
		{"fail/device-id-not-cn", body("b-00000002", "abc123", certPEM), "b-00000002", true},
		{"fail/serial", body("b-00000001", "abc124", certPEM), "b-00000001", true},
		{"fail/no-pem", body("b-00000001", "abc123", "not PEM"), "b-00000001", true},
		{"fail/not-json", []byte("<html>"), "b-00000001", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cert, err := ParseEnrollment(tc.body, tc.id)
			if (err != nil) != tc.wantFail {
				t.Fatalf("ParseEnrollment(%q) error = %v, want failure %v", tc.id, err, tc.wantFail)
			}
			if !tc.wantFail && cert.SerialNumber.Cmp(serial) != 0 {
				t.Errorf("ParseEnrollment() serial = %x, want %x", cert.SerialNumber, serial)
			}
		})
	}
}

func TestPostCSR(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-pem-file":
			http.Error(w, "bad request shape", http.StatusBadRequest)
		case r.Header.Get("Authorization") != "Bearer good":
			http.Error(w, "  token refused  ", http.StatusUnauthorized)
		default:
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"device_id":"b-1"}`))
		}
	}))
	defer srv.Close()
	client := NewClient([]*x509.Certificate{srv.Certificate()}, 1, "h1")
	defer client.CloseIdleConnections()

	tests := []struct {
		name, token string
		keep        bool
		want        string // the body, or the start of the error
		wantFail    bool
	}{
		{"ok/keep", "good", true, `{"device_id":"b-1"}`, false},
		{"ok/drop", "good", false, "", false},
		{"fail/401", "bad", true, "status 401: token refused", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body, err := PostCSR(t.Context(), client, srv.URL+"/v1/enroll", tc.token, []byte("csr"), tc.keep)
			if (err != nil) != tc.wantFail {
				t.Fatalf("PostCSR() error = %v, want failure %v", err, tc.wantFail)
			}
			if tc.wantFail {
				if !strings.HasPrefix(err.Error(), tc.want) {
					t.Errorf("PostCSR() error = %q, want %q", err, tc.want)
				}
				return
			}
			if string(body) != tc.want {
				t.Errorf("PostCSR() = %q, want %q", body, tc.want)
			}
		})
	}
}
