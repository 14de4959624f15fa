package web

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/enroll"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/revocation"
	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/boltstore"
)

var testNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// caDir holds one CA for the package's tests; set by TestMain.
var caDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fleetca-web-test-")
	if err != nil {
		panic(err)
	}
	if _, err := ca.Init(context.Background(), ca.InitOptions{Dir: dir, Name: "Web Test", Now: testNow.Add(-time.Hour)}); err != nil {
		panic(err)
	}
	caDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// clock is a settable test clock; it stands still unless moved.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is a Server on a real CA, enroll service and bbolt store.
type fixture struct {
	clock  *clock
	srv    *Server
	svc    *enroll.Service
	store  *boltstore.Store
	admin  string
	reg    *prometheus.Registry
	authty *ca.Authority
	rev    *revocation.Service
	// stepKey is the step provisioner key of svc.
	stepKey *ecdsa.PrivateKey
}

// newFixture makes a server on a fresh CA and store; opts change the
// enroll configuration.
func newFixture(t *testing.T, opts ...func(*enroll.Config)) *fixture {
	t.Helper()
	return newPartitionedFixture(t, 1, opts...)
}

// newPartitionedFixture is newFixture with revocation.crl_partitions n.
func newPartitionedFixture(t *testing.T, n int, opts ...func(*enroll.Config)) *fixture {
	t.Helper()
	clk := &clock{t: testNow}
	now := clk.Now
	authority, err := ca.New(t.Context(), ca.Config{}.WithDefaults(), ca.Deps{Dir: caDir, PublicURL: "http://127.0.0.1:8080", TrustDomain: "fleet.test",
		CRLPartitions: n, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "db"), boltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg := prometheus.NewRegistry()
	var rev *revocation.Service
	stepKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecfg := enroll.Config{TrustDomain: "fleet.test", RenewURLs: enroll.RenewURLs([]string{"127.0.0.1"}, "8443")}
	for _, o := range opts {
		o(&ecfg)
	}
	svc, err := enroll.New(ecfg,
		enroll.Deps{Store: st, CA: authority, Now: now, Metrics: reg,
			Revoked: func(ctx context.Context, revs []store.Revocation) { rev.Applied(ctx, revs) },
			Step:    &enroll.StepProvisioner{Name: "fleetca", Key: stepKey, SignURLs: enroll.StepSignURLs([]string{"127.0.0.1"}, "8443")}})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := svc.MintAdminToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rev, err = revocation.New(t.Context(), revocation.Config{CRLPartitions: n}, revocation.Deps{Store: st, CA: authority,
		PublicURL: "http://127.0.0.1:8080", RootCRLPath: filepath.Join(t.TempDir(), "root.crl"), Now: now, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{}, Deps{Enroll: svc, CA: authority, Records: st, Revocation: rev, Now: now, Metrics: reg,
		Version: testVersion})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{clock: clk, srv: srv, svc: svc, store: st, admin: string(admin), reg: reg, authty: authority, rev: rev, stepKey: stepKey}
}

func (f *fixture) token(t *testing.T, id string) string {
	t.Helper()
	s, _, err := f.svc.CreateToken(t.Context(), enroll.TokenRequest{DeviceID: id})
	if err != nil {
		t.Fatal(err)
	}
	return string(s)
}

func csrPEM(t *testing.T, cn string) string {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// do sends a request to a handler and returns the recorder.
func do(h http.Handler, method, path, auth, ctype, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// problemOf decodes a problem response, checking its media type.
// serverCSRJSON is a server-certificate request for no names, with a good
// CSR.
func serverCSRJSON(t *testing.T) string {
	t.Helper()
	csr, err := os.ReadFile(filepath.Join("..", "testdata", "csr-p256-empty-subject.pem"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(api.ServerCertRequest{CSR: string(csr)})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func problemOf(t *testing.T, rec *httptest.ResponseRecorder) api.Problem {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json (body %s)", ct, rec.Body)
	}
	var p api.Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem body: %v", err)
	}
	if p.Status != rec.Code || p.Title == "" || p.Detail == "" || p.RequestID == "" {
		t.Errorf("problem = %+v, want status %d with title, detail and request_id", p, rec.Code)
	}
	return p
}

func TestEveryKindHasAProblem(t *testing.T) {
	for _, k := range fault.Kinds {
		row, ok := problemKinds[k]
		if !ok || row.status < 400 || row.title == "" {
			t.Errorf("kind %v: problem row = %+v, %v; want a 4xx/5xx row", k, row, ok)
		}
	}
}

func TestProblemFor(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		status   int
		typ      string
		internal bool
	}{
		{"fault", fault.New(fault.BadKey, "d", "h"), 400, "badKey", false},
		{"wrapped-fault", errors.Join(errors.New("ctx"), fault.New(fault.Conflict, "d", "")), 409, "conflict", false},
		{"rate-limited", &fault.Error{Kind: fault.RateLimited, Detail: "d", RetryAfter: time.Minute}, 429, "rateLimited", false},
		{"store-not-found", store.ErrNotFound, 404, "notFound", false},
		{"store-conflict", store.ErrTokenUsedUp, 409, "conflict", false},
		{"echo-404", echo.ErrNotFound, 404, "notFound", false},
		{"echo-405", echo.ErrMethodNotAllowed, 405, "methodNotAllowed", false},
		{"echo-413", echo.ErrStatusRequestEntityTooLarge, 413, "tooLarge", false},
		{"internal", errors.New("disk on fire /secret/path"), 500, "internal", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, internal := problemFor(tc.err)
			if p.Status != tc.status || p.Type != api.ProblemTypePrefix+tc.typ || internal != tc.internal {
				t.Errorf("problemFor(%v) = %+v internal=%v, want %d %s internal=%v", tc.err, p, internal, tc.status, tc.typ, tc.internal)
			}
			if tc.internal && strings.Contains(p.Detail, "secret") {
				t.Errorf("internal error text leaked into the problem: %q", p.Detail)
			}
		})
	}
}

func TestEnrollHandler(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPSHandler()
	t.Run("ok/pem", func(t *testing.T) {
		rec := do(h, "POST", "/v1/enroll", f.token(t, "dev-1"), "application/x-pem-file", csrPEM(t, "dev-1"))
		if rec.Code != http.StatusCreated || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("status %d type %q body %s, want 201 JSON", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
		}
		var out api.EnrollResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatal(err)
		}
		certs := pemCerts(t, out.Chain)
		if out.DeviceID != "dev-1" || len(certs) != 2 || !strings.HasPrefix(out.Chain, out.Certificate) ||
			certs[0].SerialNumber.Text(16) != out.Serial || !certs[1].Equal(f.authty.Intermediate()) {
			t.Errorf("response = %+v: want dev-1, chain = leaf then intermediate", out)
		}
		if _, err := time.Parse(time.RFC3339, out.NotAfter); err != nil {
			t.Errorf("not_after %q is not RFC 3339", out.NotAfter)
		}
	})
	t.Run("ok/pkcs10-base64", func(t *testing.T) {
		block, _ := pem.Decode([]byte(csrPEM(t, "dev-2")))
		b64 := base64.StdEncoding.EncodeToString(block.Bytes)
		rec := do(h, "POST", "/v1/enroll", f.token(t, "dev-2"), "application/pkcs10", b64[:40]+"\r\n"+b64[40:])
		if rec.Code != http.StatusCreated {
			t.Fatalf("status %d body %s, want 201", rec.Code, rec.Body)
		}
	})
	t.Run("ok/json", func(t *testing.T) {
		body, _ := json.Marshal(map[string]string{"csr": csrPEM(t, "dev-3")})
		if rec := do(h, "POST", "/v1/enroll", f.token(t, "dev-3"), "application/json", string(body)); rec.Code != http.StatusCreated {
			t.Fatalf("status %d body %s, want 201", rec.Code, rec.Body)
		}
	})
	t.Run("ok/curl-default-type", func(t *testing.T) {
		if rec := do(h, "POST", "/v1/enroll", f.token(t, "dev-4"), "application/x-www-form-urlencoded", csrPEM(t, "dev-4")); rec.Code != http.StatusCreated {
			t.Fatalf("status %d body %s, want 201", rec.Code, rec.Body)
		}
	})
	big := strings.Repeat("A", 70<<10)
	for _, tc := range []struct {
		name, auth, ctype, body, method, path string
		status                                int
		kind                                  string
	}{
		{"fail/no-auth", "", "application/x-pem-file", "x", "POST", "/v1/enroll", 401, "unauthorized"},
		{"fail/wrong-type", "tok", "image/png", "x", "POST", "/v1/enroll", 400, "malformed"},
		{"fail/bad-type", "tok", "a/b/c; ;", "x", "POST", "/v1/enroll", 400, "malformed"},
		{"fail/not-pem", "tok", "application/x-pem-file", "hello", "POST", "/v1/enroll", 400, "malformed"},
		{"fail/cert-pem", "tok", "application/x-pem-file", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "POST", "/v1/enroll", 400, "malformed"},
		{"fail/form-not-pem", "tok", "application/x-www-form-urlencoded", "a=b", "POST", "/v1/enroll", 400, "malformed"},
		{"fail/json-extra-field", "tok", "application/json", `{"csr":"x","evil":1}`, "POST", "/v1/enroll", 400, "malformed"},
		{"fail/too-large", "tok", "application/x-pem-file", big, "POST", "/v1/enroll", 413, "tooLarge"},
		{"fail/bad-token", "fca_et_nope", "application/x-pem-file", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", "POST", "/v1/enroll", 401, "unauthorized"},
		{"fail/no-route", "", "", "", "GET", "/nope", 404, "notFound"},
		{"fail/wrong-method", "", "", "", "GET", "/v1/enroll", 405, "methodNotAllowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(h, tc.method, tc.path, tc.auth, tc.ctype, tc.body)
			if rec.Code != tc.status {
				t.Fatalf("status = %d (body %s), want %d", rec.Code, rec.Body, tc.status)
			}
			if p := problemOf(t, rec); p.Type != api.ProblemTypePrefix+tc.kind {
				t.Errorf("type = %q, want %s", p.Type, api.ProblemTypePrefix+tc.kind)
			}
			if tc.status == 401 && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if got := testutil.ToFloat64(f.srv.requests.WithLabelValues("https", "/v1/enroll", "POST", "201")); got != 4 {
		t.Errorf("fleetca_web_requests_total{201} = %v, want 4", got)
	}
}

func TestAdminAPI(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPSHandler()
	if rec := do(h, "GET", "/v1/admin/devices", "", "", ""); rec.Code != 401 {
		t.Fatalf("no admin token: status %d, want 401", rec.Code)
	}
	if rec := do(h, "GET", "/v1/admin/devices", f.token(t, "x"), "", ""); rec.Code != 401 {
		t.Fatalf("enrollment token as admin: status %d, want 401", rec.Code)
	}
	rec := do(h, "POST", "/v1/admin/tokens", f.admin, "application/json", `{"device_pattern":"line3-*","ttl":"8h","uses":5000}`)
	if rec.Code != 201 || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("create token: status %d body %s", rec.Code, rec.Body)
	}
	var tok api.Token
	json.Unmarshal(rec.Body.Bytes(), &tok)
	if !strings.HasPrefix(tok.Token, enroll.EnrollTokenPrefix) || tok.Uses != 5000 || tok.ID == "" {
		t.Fatalf("token = %+v", tok)
	}
	if rec := do(h, "POST", "/v1/enroll", tok.Token, "application/x-pem-file", csrPEM(t, "line3-1")); rec.Code != 201 {
		t.Fatalf("enroll with the new token: %d %s", rec.Code, rec.Body)
	}
	// A batch: one one-use token per device, in order, secrets included.
	rec = do(h, "POST", "/v1/admin/tokens/batch", f.admin, "application/json", `{"device_ids":["b-1","b-2","b-3"],"ttl":"2h"}`)
	var batch api.TokenBatch
	if err := json.Unmarshal(rec.Body.Bytes(), &batch); rec.Code != 201 || err != nil || len(batch.Tokens) != 3 || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("create a token batch: status %d body %s, want 201 with 3 tokens", rec.Code, rec.Body)
	}
	for i, bt := range batch.Tokens {
		if want := fmt.Sprintf("b-%d", i+1); bt.DeviceID != want || bt.Uses != 1 || !strings.HasPrefix(bt.Token, enroll.EnrollTokenPrefix) {
			t.Errorf("batch token %d = %+v, want a one-use token of %s", i, bt, want)
		}
	}
	if rec := do(h, "POST", "/v1/enroll", batch.Tokens[1].Token, "application/x-pem-file", csrPEM(t, "b-2")); rec.Code != 201 {
		t.Fatalf("enroll with a batch token: %d %s", rec.Code, rec.Body)
	}
	// any_device passes through, and comes back on the token.
	rec = do(h, "POST", "/v1/admin/tokens", f.admin, "application/json", `{"device_pattern":"?*","any_device":true,"uses":2}`)
	var anyTok api.Token
	if err := json.Unmarshal(rec.Body.Bytes(), &anyTok); rec.Code != 201 || err != nil || !anyTok.AnyDevice {
		t.Fatalf("create an any_device token: status %d body %s, want 201 with any_device", rec.Code, rec.Body)
	}
	if tok.AnyDevice {
		t.Errorf("token for line3-* has any_device set")
	}
	for _, tc := range []struct{ name, path, want string }{
		{"devices", "/v1/admin/devices", `"id":"line3-1"`},
		{"device", "/v1/admin/devices/line3-1", `"status":"active"`},
		{"certs", "/v1/admin/certificates?device_id=line3-1", `"device_id":"line3-1"`},
		{"tokens", "/v1/admin/tokens", `"spent":1`},
		{"audit", "/v1/admin/audit", `"action":"certificate.issue"`},
	} {
		t.Run("ok/"+tc.name, func(t *testing.T) {
			rec := do(h, "GET", tc.path, f.admin, "", "")
			if rec.Code != 200 || !strings.Contains(rec.Body.String(), tc.want) {
				t.Errorf("GET %s = %d %s, want 200 containing %s", tc.path, rec.Code, rec.Body, tc.want)
			}
			if strings.Contains(rec.Body.String(), tok.Token) {
				t.Errorf("GET %s leaks the token secret", tc.path)
			}
		})
	}
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		pointer                  string // the problem's pointer to the request member, if any
	}{
		{"fail/unknown-device", "GET", "/v1/admin/devices/nope", "", 404, ""},
		{"fail/bad-device-id", "GET", "/v1/admin/devices/a%20b", "", 400, ""},
		{"fail/bad-device-id-query", "GET", "/v1/admin/certificates?device_id=-x", "", 400, ""},
		{"fail/bad-serial", "GET", "/v1/admin/certificates/xyz", "", 400, ""},
		{"fail/unknown-serial", "GET", "/v1/admin/certificates/abcdef", "", 404, ""},
		{"fail/bad-limit", "GET", "/v1/admin/devices?limit=0", "", 400, ""},
		{"fail/bad-after-serial", "GET", "/v1/admin/certificates?after=zz", "", 400, ""},
		{"fail/token-both", "POST", "/v1/admin/tokens", `{"device_id":"a","device_pattern":"b*"}`, 400, ""},
		{"fail/token-bad-ttl", "POST", "/v1/admin/tokens", `{"device_id":"a","ttl":"soon"}`, 400, "#/ttl"},
		{"fail/token-ttl-too-long", "POST", "/v1/admin/tokens", `{"device_id":"a","ttl":"100000h"}`, 400, "#/ttl"},
		{"fail/token-ttl-zero", "POST", "/v1/admin/tokens", `{"device_id":"a","ttl":"0s"}`, 400, "#/ttl"},
		{"fail/token-ttl-negative", "POST", "/v1/admin/tokens", `{"device_id":"a","ttl":"-5m"}`, 400, "#/ttl"},
		{"fail/token-any-pattern", "POST", "/v1/admin/tokens", `{"device_pattern":"*"}`, 400, "#/any_device"},
		{"fail/token-any-device-narrow", "POST", "/v1/admin/tokens", `{"device_pattern":"a*","any_device":true}`, 400, "#/any_device"},
		{"fail/token-uses-too-many", "POST", "/v1/admin/tokens", `{"device_id":"a","uses":100000001}`, 400, "#/uses"},
		{"fail/token-uses-a-string", "POST", "/v1/admin/tokens", `{"device_id":"a","uses":"5"}`, 400, "#/uses"},
		{"fail/token-bad-device-id", "POST", "/v1/admin/tokens", `{"device_id":"a b"}`, 400, "#/device_id"},
		{"fail/token-bad-pattern", "POST", "/v1/admin/tokens", `{"device_pattern":"a/*"}`, 400, "#/device_pattern"},
		{"fail/token-unknown-field", "POST", "/v1/admin/tokens", `{"device":"a"}`, 400, "#/device"},
		{"fail/token-not-json", "POST", "/v1/admin/tokens", `{"device_id":`, 400, ""},
		{"fail/token-empty-body", "POST", "/v1/admin/tokens", ``, 400, ""},
		{"fail/token-revoke-bad-serial", "POST", "/v1/admin/tokens", `{"format":"step","revoke_serial":"xyz"}`, 400, "#/revoke_serial"},
		{"fail/token-revoke-unknown-serial", "POST", "/v1/admin/tokens", `{"format":"step","revoke_serial":"abcdef"}`, 404, "#/revoke_serial"},
		{"fail/token-revoke-not-step", "POST", "/v1/admin/tokens", `{"revoke_serial":"abcdef"}`, 400, "#/format"},
		{"fail/token-revoke-and-device", "POST", "/v1/admin/tokens", `{"format":"step","revoke_serial":"abcdef","device_id":"a"}`, 400, "#/revoke_serial"},
		{"fail/batch-empty", "POST", "/v1/admin/tokens/batch", `{"device_ids":[]}`, 400, "#/device_ids"},
		{"fail/batch-bad-id", "POST", "/v1/admin/tokens/batch", `{"device_ids":["a","b c"]}`, 400, "#/device_ids"},
		{"fail/batch-repeated-id", "POST", "/v1/admin/tokens/batch", `{"device_ids":["a","a"]}`, 400, "#/device_ids"},
		{"fail/batch-bad-ttl", "POST", "/v1/admin/tokens/batch", `{"device_ids":["a"],"ttl":"soon"}`, 400, "#/ttl"},
		{"fail/batch-ttl-zero", "POST", "/v1/admin/tokens/batch", `{"device_ids":["a"],"ttl":"0s"}`, 400, "#/ttl"},
		{"fail/batch-unknown-format", "POST", "/v1/admin/tokens/batch", `{"device_ids":["a"],"format":"x"}`, 400, "#/format"},
		{"fail/batch-uses", "POST", "/v1/admin/tokens/batch", `{"device_ids":["a"],"uses":2}`, 400, "#/uses"},
		{"fail/server-cert-no-names", "POST", "/v1/admin/certificates/server", serverCSRJSON(t), 400, "#/dns"},
		{"fail/revoke-unknown-token", "POST", "/v1/admin/tokens/0000/revoke", "", 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(h, tc.method, tc.path, f.admin, "application/json", tc.body)
			if rec.Code != tc.status {
				t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.path, rec.Code, rec.Body, tc.status)
			}
			if p := problemOf(t, rec); p.Pointer != tc.pointer {
				t.Errorf("%s %s problem pointer = %q, want %q (%+v)", tc.method, tc.path, p.Pointer, tc.pointer, p)
			}
		})
	}
}

func TestHTTPListener(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPHandler()
	for _, tc := range []struct {
		path, ctype string
		body        []byte
	}{
		{"/roots.pem", "application/x-pem-file", f.authty.RootPEM()},
		{"/chain.pem", "application/x-pem-file", f.authty.ChainPEM()},
		{"/intermediate.crt", "application/pkix-cert", f.authty.IntermediateDER()},
	} {
		rec := do(h, "GET", tc.path, "", "", "")
		if rec.Code != 200 || rec.Header().Get("Content-Type") != tc.ctype || rec.Body.String() != string(tc.body) {
			t.Errorf("GET %s = %d %q, want 200 %s with the CA's bytes", tc.path, rec.Code, rec.Header().Get("Content-Type"), tc.ctype)
		}
	}
	if rec := do(h, "GET", "/healthz", "", "", ""); rec.Code != 200 {
		t.Errorf("healthz = %d", rec.Code)
	}
	if rec := do(h, "POST", "/v1/enroll", "", "", ""); rec.Code != 404 {
		t.Errorf("enrollment on the HTTP listener = %d, want 404", rec.Code)
	}
	// Metrics are served on a listener of their own (issue 12, defect 10).
	for _, h := range []http.Handler{h, f.srv.HTTPSHandler()} {
		if rec := do(h, "GET", "/metrics", "", "", ""); rec.Code != 404 || strings.Contains(rec.Body.String(), "fleetca_web_requests_total") {
			t.Errorf("GET /metrics = %d %s, want 404: metrics are not on the public listeners", rec.Code, rec.Body)
		} else {
			problemOf(t, rec)
		}
	}
}

func pemCerts(t *testing.T, s string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	rest := []byte(s)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return out
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

// FuzzDecodeCSRBody: no panic; a refusal is fault.Malformed; what is
// accepted is a PEM or base64 form of the returned bytes.
func FuzzDecodeCSRBody(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "*.pem"))
	types := []string{"application/x-pem-file", "application/pkcs10", "application/json", "", "application/x-www-form-urlencoded", "text/plain; charset=utf-8"}
	for i, file := range files {
		b, _ := os.ReadFile(file)
		f.Add(types[i%len(types)], b)
	}
	f.Add("application/json", []byte(`{"csr":"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}`))
	f.Add("application/pkcs10", []byte("AAAA\r\nBBBB"))
	f.Fuzz(func(t *testing.T, ctype string, body []byte) {
		der, err := DecodeCSRBody(ctype, body)
		if err != nil {
			if k, ok := fault.KindOf(err); !ok || k != fault.Malformed {
				t.Fatalf("refusal kind = %v (%v), want Malformed", k, err)
			}
			return
		}
		if len(der) == 0 && !strings.Contains(string(body), "REQUEST") {
			t.Fatalf("accepted an empty CSR from %q", body)
		}
	})
}

// TestAdminJSONStrict: the admin API takes one JSON object, sent as
// application/json, and a refused body changes nothing (issue 12, defect 3).
func TestAdminJSONStrict(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPSHandler()
	for _, tc := range []struct {
		name, ctype, body, detail string
	}{
		{"fail/trailing-object", "application/json", `{"device_id":"a10"} {"device_id":"a11"}`, "data after its object"},
		{"fail/trailing-brace", "application/json", `{"device_id":"a10"}}`, "data after its object"},
		{"fail/trailing-garbage", "application/json", "{\"device_id\":\"a10\"}\n x", "data after its object"},
		{"fail/member-twice", "application/json", `{"device_id":"a10","device_id":"a11"}`, `member "device_id" more than once`},
		{"fail/member-twice-other-case", "application/json", `{"device_pattern":"a1*","Device_Pattern":"*"}`, `member "Device_Pattern" more than once`},
		{"fail/text-plain", "text/plain", `{"device_id":"a10"}`, "application/json was expected"},
		{"fail/form", "application/x-www-form-urlencoded", `{"device_id":"a10"}`, "application/json was expected"},
		{"fail/no-content-type", "", `{"device_id":"a10"}`, "application/json was expected"},
		{"fail/bad-content-type", "application/", `{"device_id":"a10"}`, "application/json was expected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(h, "POST", "/v1/admin/tokens", f.admin, tc.ctype, tc.body)
			if rec.Code != 400 {
				t.Fatalf("POST /v1/admin/tokens %s %q = %d %s, want 400", tc.ctype, tc.body, rec.Code, rec.Body)
			}
			p := problemOf(t, rec)
			if p.Type != api.ProblemTypePrefix+fault.Malformed.String() || !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("problem = %+v, want malformed saying %q", p, tc.detail)
			}
		})
	}
	ts, err := f.svc.ListTokens(t.Context(), store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 0 {
		t.Errorf("refused requests minted %d tokens, want 0: %+v", len(ts), ts)
	}
	for _, ctype := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON"} {
		if rec := do(h, "POST", "/v1/admin/tokens", f.admin, ctype, "{\"device_id\":\"a10\"}\r\n"); rec.Code != 201 {
			t.Errorf("POST /v1/admin/tokens as %q = %d %s, want 201", ctype, rec.Code, rec.Body)
		}
	}
	// The enrollment decoder refuses what follows its object the same way.
	if _, err := DecodeCSRBody("application/json", []byte(`{"csr":"x"}}`)); !isKind(err, fault.Malformed) {
		t.Errorf("DecodeCSRBody(trailing brace) = %v, want Malformed", err)
	}
}

// isKind reports whether err is a fault of kind k.
func isKind(err error, k fault.Kind) bool {
	got, ok := fault.KindOf(err)
	return ok && got == k
}

// FuzzDecodeAdminJSON: the admin decoder never panics, refuses with
// Malformed only, and what it accepts is one object that re-encodes to the
// value it decoded.
func FuzzDecodeAdminJSON(f *testing.F) {
	for _, s := range []string{`{"device_id":"a10"}`, `{"device_id":"a10"} {"device_id":"a11"}`, `{"device_id":"a10"}}`,
		`{"device_pattern":"line-*","ttl":"8h","uses":5}`, `{"uses":"5"}`, `[]`, `{"x":1}`, ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req api.TokenRequest
		err := decodeStrict(body, &req, adminJSONHint)
		if err != nil {
			if !isKind(err, fault.Malformed) {
				t.Fatalf("decodeStrict(%q) = %v, want Malformed", body, err)
			}
			return
		}
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		var again api.TokenRequest
		if err := decodeStrict(b, &again, adminJSONHint); err != nil || again != req {
			t.Fatalf("re-decoding %s = %+v, %v; want %+v", b, again, err, req)
		}
	})
}
