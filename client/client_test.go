package client

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.step.sm/crypto/minica"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
)

func TestNewRefusesWhatIsNotHTTPS(t *testing.T) {
	root := selfSignedCert(t)
	for _, tc := range []struct {
		name, url string
		ok        bool
	}{
		{"ok/https", "https://127.0.0.1:8443", true},
		{"ok/https-trailing-slash", "https://ca.example.com:8443/", true},
		{"fail/http", "http://127.0.0.1:8080", false},
		{"fail/no-scheme", "127.0.0.1:8443", false},
		{"fail/empty", "", false},
		{"fail/credentials", "https://user:pw@127.0.0.1:8443", false},
		{"fail/query", "https://127.0.0.1:8443/?token=x", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(Config{URL: tc.url, Roots: []*x509.Certificate{root}})
			if tc.ok {
				if err != nil {
					t.Fatalf("New(%q) = %v, want nil", tc.url, err)
				}
				if strings.HasSuffix(c.URL(), "/") {
					t.Errorf("URL() = %q, want no final slash", c.URL())
				}
				return
			}
			if k, ok := fault.KindOf(err); !ok || k != fault.Malformed {
				t.Fatalf("New(%q) = %v, want a Malformed fault", tc.url, err)
			}
			if strings.Contains(err.Error(), "pw") {
				t.Errorf("New(%q) error %q repeats the URL's password", tc.url, err)
			}
		})
	}
	if _, err := New(Config{URL: "https://127.0.0.1:8443"}); err == nil {
		t.Error("New without roots = nil error, want one")
	}
}

// TestProblemsComeBackAsFaults: a problem answer becomes the fault it
// stands for, kind, detail and hint; anything else says what came back.
func TestProblemsComeBackAsFaults(t *testing.T) {
	for _, tc := range []struct {
		name       string
		status     int
		body       string
		kind       fault.Kind
		detail     string
		hintSuffix string
	}{
		{"unauthorized", 401, `{"type":"urn:fleetca:problem:unauthorized","title":"Unauthorized","status":401,"detail":"the token is spent","hint":"ask for a new one"}`,
			fault.Unauthorized, "the token is spent", "ask for a new one"},
		{"every-kind/badCSR", 400, `{"type":"urn:fleetca:problem:badCSR","status":400,"detail":"d"}`, fault.BadCSR, "d", ""},
		{"internal-carries-request-id", 500, `{"type":"urn:fleetca:problem:internal","status":500,"detail":"failed","hint":"retry","request_id":"r-17"}`,
			fault.Unavailable, "failed", "request_id r-17"},
		{"unknown-type-4xx", 405, `{"type":"urn:fleetca:problem:methodNotAllowed","status":405,"detail":"no"}`, fault.Malformed, "no", ""},
		{"not-a-problem", 502, `<html>bad gateway</html>`, fault.Unavailable, "the CA answered 502 Bad Gateway to GET /v1/admin/devices", ""},
		{"not-a-problem/rate-limited", 429, `<html>slow down</html>`, fault.RateLimited, "the CA answered 429 Too Many Requests to GET /v1/admin/devices", "try again later"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", api.ProblemContentType)
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			})
			_, err := c.ListDevices(t.Context())
			var fe *fault.Error
			if !errors.As(err, &fe) {
				t.Fatalf("ListDevices = %v, want a *fault.Error", err)
			}
			if fe.Kind != tc.kind || fe.Detail != tc.detail || !strings.HasSuffix(fe.Hint, tc.hintSuffix) {
				t.Errorf("fault = {%v %q %q}, want {%v %q ...%q}", fe.Kind, fe.Detail, fe.Hint, tc.kind, tc.detail, tc.hintSuffix)
			}
		})
	}
}

// TestProblemPointerComesBackAsField: the request member a problem points
// at becomes the fault's Field, so that the CLI can name its flag.
func TestProblemPointerComesBackAsField(t *testing.T) {
	c := testServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", api.ProblemContentType)
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"type":"urn:fleetca:problem:malformed","status":400,"detail":"the token TTL 1s is outside 1m0s to 720h0m0s","hint":"give a ttl in that range","pointer":"#/ttl"}`))
	})
	_, err := c.ListDevices(t.Context())
	fe, ok := errors.AsType[*fault.Error](err)
	if !ok || fe.Kind != fault.Malformed || fe.Field != "ttl" || fe.Hint != "give a ttl in that range" {
		t.Errorf("ListDevices = %#v, want a Malformed fault with Field ttl and the hint as sent", err)
	}
}

func TestListFollowsPagesAndSendsTheAdminToken(t *testing.T) {
	var afters []string
	c := testServer(t, func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("Authorization"); got != "Bearer admin-secret" {
			t.Errorf("Authorization = %q, want the admin token", got)
		}
		if r.URL.Path != "/v1/admin/tokens" {
			t.Errorf("path = %q, want /v1/admin/tokens", r.URL.Path)
		}
		after := r.URL.Query().Get("after")
		afters = append(afters, after)
		page := api.TokenPage{Tokens: []api.Token{{ID: "t1"}, {ID: "t2"}}, Next: "t2"}
		if after == "t2" {
			page = api.TokenPage{Tokens: []api.Token{{ID: "t3"}}}
		}
		json.NewEncoder(w).Encode(page)
	})
	got, err := c.ListTokens(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[2].ID != "t3" || strings.Join(afters, ",") != ",t2" {
		t.Errorf("ListTokens = %v after %q, want t1 t2 t3 in two pages", got, afters)
	}
}

func TestAdminCallsNeedAToken(t *testing.T) {
	c, err := New(Config{URL: "https://127.0.0.1:1", Roots: []*x509.Certificate{selfSignedCert(t)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListDevices(t.Context()); !errors.Is(err, &fault.Error{Kind: fault.Unauthorized}) {
		t.Errorf("ListDevices without a token = %v, want Unauthorized (and no request)", err)
	}
}

func TestBootstrapKeepsOnlyThePinnedRoot(t *testing.T) {
	root := selfSignedCert(t)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != api.RootsPEMPath {
			http.NotFound(w, r)
			return
		}
		pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: root.Raw})
	}))
	t.Cleanup(srv.Close)
	sum := sha256.Sum256(root.Raw)
	got, err := Bootstrap(t.Context(), srv.URL, sum[:])
	if err != nil || !got.Equal(root) {
		t.Fatalf("Bootstrap(right fingerprint) = %v, %v, want the root", got, err)
	}
	wrong := sha256.Sum256([]byte("another root"))
	if _, err := Bootstrap(t.Context(), srv.URL, wrong[:]); !errors.Is(err, &fault.Error{Kind: fault.Forbidden}) {
		t.Errorf("Bootstrap(wrong fingerprint) = %v, want Forbidden", err)
	}
	if _, err := Bootstrap(t.Context(), strings.Replace(srv.URL, "https:", "http:", 1), sum[:]); !errors.Is(err, &fault.Error{Kind: fault.Malformed}) {
		t.Errorf("Bootstrap(http URL) = %v, want Malformed before connecting", err)
	}
}

func TestParseFingerprint(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"ok/plain", hex, true},
		{"ok/upper-colons", strings.ToUpper(strings.Join(strings.SplitAfterN(hex, "", 64), ":")), true},
		{"fail/short", hex[:62], false},
		{"fail/not-hex", strings.Repeat("zz", 32), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFingerprint(tc.in)
			if (err == nil) != tc.ok {
				t.Errorf("ParseFingerprint(%q) = %v, want ok=%v", tc.in, err, tc.ok)
			}
		})
	}
}

// testServer starts a TLS server with handler and returns a client of it
// that trusts its certificate and carries an admin token.
func testServer(t *testing.T, handler http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewTLSServer(handler)
	t.Cleanup(srv.Close)
	c, err := New(Config{URL: srv.URL, Roots: []*x509.Certificate{srv.Certificate()}, AdminToken: "admin-secret"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func selfSignedCert(t *testing.T) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestEnrollChecksWhatItGets: the certificate comes back only if it chains
// to the trusted root and certifies the CSR's key.
func TestEnrollChecksWhatItGets(t *testing.T) {
	mca, err := minica.New()
	if err != nil {
		t.Fatal(err)
	}
	csrFor := func() (*x509.CertificateRequest, []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev-1"}}, key)
		if err != nil {
			t.Fatal(err)
		}
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil {
			t.Fatal(err)
		}
		return csr, der
	}
	mine, mineDER := csrFor()
	other, _ := csrFor()
	issue := func(csr *x509.CertificateRequest, ca *minica.CA) string {
		leaf, err := ca.Sign(&x509.Certificate{Subject: csr.Subject, PublicKey: csr.PublicKey,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature})
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})) +
			string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Intermediate.Raw}))
	}
	stranger, err := minica.New()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		chain string
		kind  fault.Kind
	}{
		{"ok", issue(mine, mca), 0},
		{"fail/other-key", issue(other, mca), fault.Forbidden},
		{"fail/other-ca", issue(mine, stranger), fault.Forbidden},
		{"fail/no-chain", "", fault.Malformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != api.EnrollPath || r.Header.Get("Authorization") != "Bearer tok" {
					t.Errorf("request %s %s with %q, want POST %s with the token", r.Method, r.URL.Path, r.Header.Get("Authorization"), api.EnrollPath)
				}
				w.WriteHeader(http.StatusCreated)
				json.NewEncoder(w).Encode(api.EnrollResponse{DeviceID: "dev-1", Chain: tc.chain})
			}))
			t.Cleanup(srv.Close)
			c, err := New(Config{URL: srv.URL, Roots: []*x509.Certificate{srv.Certificate(), mca.Root}})
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Enroll(t.Context(), "tok", mineDER)
			if tc.kind == 0 {
				if err != nil || len(got.Certs) != 2 || got.DeviceID != "dev-1" {
					t.Fatalf("Enroll = %+v, %v, want the checked chain", got, err)
				}
				return
			}
			if k, ok := fault.KindOf(err); !ok || k != tc.kind {
				t.Errorf("Enroll = %v, want a %v fault", err, tc.kind)
			}
		})
	}
}

// TestUnreachableSaysWhy: the one line a user reads names what the
// network said, not Go's error chain.
func TestUnreachableSaysWhy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	plain := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(plain.Close)
	for _, tc := range []struct {
		name, url, detail string
		kind              fault.Kind
	}{
		{"refused", "https://" + addr, "cannot reach the CA at https://" + addr + ": nothing listens there", fault.Unavailable},
		{"plain-http-listener", "https://" + strings.TrimPrefix(plain.URL, "http://"), "does not speak TLS", fault.Malformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(Config{URL: tc.url, Roots: []*x509.Certificate{selfSignedCert(t)}, AdminToken: "x"})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.ListDevices(t.Context())
			var fe *fault.Error
			if !errors.As(err, &fe) || fe.Kind != tc.kind || !strings.Contains(fe.Detail, tc.detail) {
				t.Errorf("ListDevices(%s) = %v, want a %v fault saying %q", tc.url, err, tc.kind, tc.detail)
			}
		})
	}
}

func TestRenewNow(t *testing.T) {
	var paths []string
	c := testServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.Header.Get("Authorization") != "Bearer admin-secret" {
			t.Errorf("%s with Authorization %q, want POST with the admin token", r.Method, r.Header.Get("Authorization"))
		}
		paths = append(paths, r.URL.Path)
		json.NewEncoder(w).Encode(api.RenewNowResponse{At: "2026-11-23T12:00:00Z"})
	})
	if _, err := c.RenewNow(t.Context(), "dev 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RenewNowFleet(t.Context()); err != nil {
		t.Fatal(err)
	}
	if want := "/v1/admin/devices/dev 1/renew-now,/v1/admin/devices/renew-now"; strings.Join(paths, ",") != want {
		t.Errorf("paths = %q, want %q", paths, want)
	}
	if _, err := c.RenewNow(t.Context(), ""); !errors.Is(err, &fault.Error{Kind: fault.Malformed}) {
		t.Errorf("RenewNow(\"\") = %v, want Malformed (never the whole fleet by mistake)", err)
	}
}
