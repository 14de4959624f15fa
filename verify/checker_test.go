package verify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.step.sm/crypto/minica"

	"github.com/fleetca/fleetca/api"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// testCA is a minica CA with helpers to mint leaves and CRLs.
type testCA struct {
	*minica.CA
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	ca, err := minica.New()
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{ca}
}

func (c *testCA) leaf(t testing.TB, serial int64) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cert, err := c.Sign(&x509.Certificate{SerialNumber: big.NewInt(serial), PublicKey: key.Public(),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// crl signs a CRL numbered n, valid [thisUpdate, thisUpdate+life), revoking serials.
func (c *testCA) crl(t testing.TB, n int64, thisUpdate time.Time, life time.Duration, serials ...int64) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(n), ThisUpdate: thisUpdate, NextUpdate: thisUpdate.Add(life)}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: big.NewInt(s), RevocationTime: thisUpdate.Add(-time.Minute), ReasonCode: int(api.ReasonKeyCompromise)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, c.Intermediate, c.Signer)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// crlServer serves the CRL in *cur with an ETag, counting 200s and 304s,
// at every path but the partitions' discovery document (404: none).
type crlServer struct {
	mu        sync.Mutex
	cur       []byte
	ok, not   atomic.Int32
	etagCount int
}

func (s *crlServer) set(b []byte) { s.mu.Lock(); s.cur = b; s.etagCount++; s.mu.Unlock() }

func (s *crlServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == api.PartitionsPath {
		http.NotFound(w, r) // a CA without partitions
		return
	}
	s.mu.Lock()
	b, etag := s.cur, `"`+big.NewInt(int64(s.etagCount)).String()+`"`
	s.mu.Unlock()
	if r.Header.Get("If-None-Match") == etag {
		s.not.Add(1)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	s.ok.Add(1)
	w.Header().Set("ETag", etag)
	w.Header().Set("Content-Type", "application/pkix-crl")
	w.Write(b)
}

func refusal(err error) Refusal {
	var re *RefusedError
	if errors.As(err, &re) {
		return re.Refusal
	}
	return 0
}

func TestCRLChecker(t *testing.T) {
	ca := newTestCA(t)
	good, bad := ca.leaf(t, 1001), ca.leaf(t, 1002)
	srv := &crlServer{}
	srv.set(ca.crl(t, 5, t0, 24*time.Hour, 1002))
	hs := httptest.NewServer(srv)
	defer hs.Close()
	now := t0.Add(time.Minute)
	c, err := NewChecker(CheckerConfig{CRL: hs.URL, Issuer: ca.Intermediate, Grace: new(time.Hour)},
		CheckerDeps{Client: hs.Client(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if got := refusal(c.Check(t.Context(), good)); got != NoData {
		t.Fatalf("before any CRL: refusal = %v, want no_data", got)
	}
	if err := c.Refresh(t.Context()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if err := c.Check(t.Context(), good); err != nil {
		t.Errorf("Check(good) = %v, want nil", err)
	}
	err = c.Check(t.Context(), bad)
	var re *RefusedError
	if !errors.As(err, &re) || re.Refusal != Revoked || re.Reason != api.ReasonKeyCompromise || !re.RevokedAt.Equal(t0.Add(-time.Minute)) {
		t.Errorf("Check(revoked) = %v, want revoked keyCompromise at t0-1m", err)
	}
	other := newTestCA(t).leaf(t, 1001)
	if got := refusal(c.Check(t.Context(), other)); got != WrongIssuer {
		t.Errorf("another CA's certificate: refusal = %v, want wrong_issuer", got)
	}

	t.Run("conditional-get", func(t *testing.T) {
		if err := c.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
		if srv.not.Load() != 1 {
			t.Errorf("304s = %d, want 1: the unchanged CRL must be fetched conditionally", srv.not.Load())
		}
	})
	t.Run("older-number-refused", func(t *testing.T) {
		srv.set(ca.crl(t, 4, t0, 24*time.Hour))
		if err := c.Refresh(t.Context()); err == nil {
			t.Error("Refresh accepted CRL 4 after CRL 5")
		}
		if got := refusal(c.Check(t.Context(), bad)); got != Revoked {
			t.Errorf("after a refused CRL: refusal = %v, want still revoked", got)
		}
	})
	t.Run("bad-signature-refused", func(t *testing.T) {
		srv.set(newTestCA(t).crl(t, 9, t0, 24*time.Hour))
		if err := c.Refresh(t.Context()); err == nil {
			t.Error("Refresh accepted a CRL signed by another CA")
		}
		if c.CurrentCRL().Number.Int64() != 5 {
			t.Errorf("CRL in use = %v, want 5", c.CurrentCRL().Number)
		}
	})
	t.Run("stale-fails-closed", func(t *testing.T) {
		srv.set([]byte("garbage"))
		now = t0.Add(24*time.Hour + time.Hour) // nextUpdate + grace: still usable
		if err := c.Check(t.Context(), good); err != nil {
			t.Errorf("within grace: %v", err)
		}
		now = now.Add(time.Second)
		c.Refresh(t.Context())
		if got := refusal(c.Check(t.Context(), good)); got != Stale {
			t.Errorf("past grace with no fresh CRL: refusal = %v, want stale", got)
		}
		srv.set(ca.crl(t, 6, now, 24*time.Hour))
		if err := c.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := c.Check(t.Context(), bad); err != nil {
			t.Errorf("CRL 6 no longer lists 1002: Check = %v, want nil", err)
		}
	})
}

func TestCRLCheckerFile(t *testing.T) {
	ca := newTestCA(t)
	path := filepath.Join(t.TempDir(), "crl.pem")
	der := ca.crl(t, 1, t0, time.Hour, 7)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := NewChecker(CheckerConfig{CRL: path, Issuer: ca.Intermediate}, CheckerDeps{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := refusal(c.Check(t.Context(), ca.leaf(t, 7))); got != Revoked {
		t.Errorf("refusal = %v, want revoked", got)
	}
}

func TestNewCheckerConfig(t *testing.T) {
	ca := newTestCA(t)
	for _, tc := range []struct {
		name string
		cfg  CheckerConfig
	}{
		{"fail/neither", CheckerConfig{Issuer: ca.Intermediate}},
		{"fail/both", CheckerConfig{CRL: "x", OCSP: "aia", Issuer: ca.Intermediate}},
		{"fail/grace", CheckerConfig{CRL: "x", Issuer: ca.Intermediate, Grace: new(-time.Second)}},
		{"fail/refresh", CheckerConfig{CRL: "x", Issuer: ca.Intermediate, Refresh: time.Millisecond}},
		{"fail/no-issuer", CheckerConfig{CRL: "x"}},
		{"fail/crl-url-names-the-crl", CheckerConfig{CRL: "http://ca:8080/crl", Issuer: ca.Intermediate}},
		{"fail/crl-url-names-the-root-crl", CheckerConfig{CRL: "http://ca:8080/root.crl", Issuer: ca.Intermediate}},
		{"fail/feed-without-crl", CheckerConfig{OCSP: "aia", Feed: "https://ca:8443", Issuer: ca.Intermediate}},
		{"fail/feed-not-https", CheckerConfig{CRL: "http://ca:8080", Feed: "http://ca:8443", Issuer: ca.Intermediate}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewChecker(tc.cfg, CheckerDeps{}); err == nil {
				t.Errorf("NewChecker(%+v) = nil error", tc.cfg)
			}
		})
	}
}

// FuzzParseCRL: arbitrary bytes never panic, and whatever is accepted is a
// CRL signed by the issuer whose entries can be looked up.
func FuzzParseCRL(f *testing.F) {
	ca := newTestCA(f)
	f.Add(ca.crl(f, 1, t0, time.Hour))
	f.Add(ca.crl(f, 2, t0, time.Hour, 1, 2, 3))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: ca.crl(f, 3, t0, time.Hour, 4)}))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		crl, err := ParseCRL(b, ca.Intermediate)
		if err != nil {
			return
		}
		if crl.Number == nil || crl.NextUpdate.Before(crl.ThisUpdate) {
			t.Fatalf("accepted CRL without number or with nextUpdate before thisUpdate")
		}
	})
}
