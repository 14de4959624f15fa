package web

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/ocsp"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/ca"
)

// enrolled enrolls a device through the handler and returns its certificate.
func (f *fixture) enrolled(t *testing.T, id string) *x509.Certificate {
	t.Helper()
	rec := do(f.srv.HTTPSHandler(), "POST", "/v1/enroll", f.token(t, id), "application/x-pem-file", csrPEM(t, id))
	if rec.Code != http.StatusCreated {
		t.Fatalf("enroll %s: %d %s", id, rec.Code, rec.Body)
	}
	var out api.EnrollResponse
	json.Unmarshal(rec.Body.Bytes(), &out)
	return pemCerts(t, out.Certificate)[0]
}

func (f *fixture) ocspStatus(t *testing.T, leaf *x509.Certificate, get bool) (int, *httptest.ResponseRecorder) {
	t.Helper()
	der, err := ocsp.CreateRequest(leaf, f.authty.Intermediate(), &ocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		t.Fatal(err)
	}
	var rec *httptest.ResponseRecorder
	if get {
		rec = do(f.srv.HTTPHandler(), "GET", "/ocsp/"+url.PathEscape(base64.StdEncoding.EncodeToString(der)), "", "", "")
	} else {
		rec = do(f.srv.HTTPHandler(), "POST", "/ocsp", "", "application/ocsp-request", string(der))
	}
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/ocsp-response" {
		t.Fatalf("OCSP: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	resp, err := ocsp.ParseResponseForCert(rec.Body.Bytes(), leaf, f.authty.Intermediate())
	if err != nil {
		t.Fatalf("parse OCSP response: %v", err)
	}
	return resp.Status, rec
}

func TestRevokeAndOCSP(t *testing.T) {
	f := newFixture(t)
	leaf := f.enrolled(t, "dev-1")
	for _, get := range []bool{false, true} {
		if st, rec := f.ocspStatus(t, leaf, get); st != ocsp.Good || !strings.Contains(rec.Header().Get("Cache-Control"), "max-age=") ||
			rec.Header().Get("ETag") == "" || rec.Header().Get("Last-Modified") == "" || rec.Header().Get("Expires") == "" {
			t.Errorf("before revoke (GET=%v): status %d, headers %v; want good with RFC 5019 caching headers", get, st, rec.Header())
		}
	}
	h := f.srv.HTTPSHandler()
	path := "/v1/admin/certificates/" + leaf.SerialNumber.Text(16) + "/revoke"
	rec := do(h, "POST", path, f.admin, "application/json", `{"reason":"keyCompromise"}`)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"reason":"keyCompromise"`) {
		t.Fatalf("revoke: %d %s", rec.Code, rec.Body)
	}
	if st, _ := f.ocspStatus(t, leaf, false); st != ocsp.Revoked {
		t.Errorf("OCSP right after revoke: status %d, want revoked", st)
	}
	for _, tc := range []struct {
		name, path, body string
		status           int
		kind             string
	}{
		{"fail/again", path, `{"reason":"keyCompromise"}`, 409, "alreadyRevoked"},
		{"fail/bad-reason", path, `{"reason":"lost"}`, 400, "malformed"},
		{"fail/remove-from-crl", path, `{"reason":"removeFromCRL"}`, 400, "malformed"},
		{"fail/unknown-serial", "/v1/admin/certificates/abcdef/revoke", "", 404, "notFound"},
		{"fail/unknown-device", "/v1/admin/devices/nope/revoke", "", 404, "notFound"},
		{"fail/reset-active", "/v1/admin/devices/dev-1/reset", "", 409, "conflict"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(h, "POST", tc.path, f.admin, "application/json", tc.body)
			if rec.Code != tc.status {
				t.Fatalf("%s = %d %s, want %d", tc.path, rec.Code, rec.Body, tc.status)
			}
			if p := problemOf(t, rec); p.Type != api.ProblemTypePrefix+tc.kind {
				t.Errorf("type = %s, want %s", p.Type, tc.kind)
			}
		})
	}
	second := f.enrolled(t, "dev-2")
	if rec := do(h, "POST", "/v1/admin/devices/dev-2/revoke", f.admin, "", ""); rec.Code != 200 || !strings.Contains(rec.Body.String(), second.SerialNumber.Text(16)) {
		t.Fatalf("revoke device: %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "POST", "/v1/enroll", f.token(t, "dev-2"), "application/x-pem-file", csrPEM(t, "dev-2")); rec.Code != 403 {
		t.Errorf("enroll a revoked device: %d, want 403", rec.Code)
	}
	if rec := do(h, "POST", "/v1/admin/devices/dev-2/reset", f.admin, "", ""); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"status":"active"`) {
		t.Errorf("reset: %d %s", rec.Code, rec.Body)
	}
}

func TestOCSPRefusals(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPHandler()
	for _, tc := range []struct {
		name, method, path, ctype, body string
		want                            []byte
	}{
		{"garbage-post", "POST", "/ocsp", "application/ocsp-request", "garbage", ocsp.MalformedRequestErrorResponse},
		{"wrong-type", "POST", "/ocsp", "text/plain", "x", ocsp.MalformedRequestErrorResponse},
		{"escaped-garbage-get", "GET", "/ocsp/%21%21%21", "", "", ocsp.MalformedRequestErrorResponse},
		{"base64-garbage-get", "GET", "/ocsp/" + base64.StdEncoding.EncodeToString([]byte("garbage")), "", "", ocsp.MalformedRequestErrorResponse},
		{"not-base64", "GET", "/ocsp/" + strings.Repeat("!", 10), "", "", ocsp.MalformedRequestErrorResponse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(h, tc.method, tc.path, "", tc.ctype, tc.body)
			if rec.Code != 200 || rec.Body.String() != string(tc.want) {
				t.Errorf("%s %s = %d %x, want 200 %x", tc.method, tc.path, rec.Code, rec.Body.Bytes(), tc.want)
			}
		})
	}
	if rec := do(h, "POST", "/ocsp", "", "application/ocsp-request", strings.Repeat("A", 5000)); rec.Code != 413 {
		t.Errorf("oversized OCSP request: %d, want 413", rec.Code)
	}
}

func TestCRLEndpoints(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPHandler()
	rec := do(h, "GET", "/crl", "", "", "")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/pkix-crl" || rec.Header().Get("ETag") == "" || rec.Header().Get("Last-Modified") == "" {
		t.Fatalf("GET /crl = %d %v", rec.Code, rec.Header())
	}
	crl, err := x509.ParseRevocationList(rec.Body.Bytes())
	if err != nil || crl.CheckSignatureFrom(f.authty.Intermediate()) != nil {
		t.Fatalf("CRL does not parse or verify: %v", err)
	}
	req := httptest.NewRequest("GET", "/crl", nil)
	req.Header.Set("If-None-Match", rec.Header().Get("ETag"))
	rec2 := httptest.NewRecorder()
	h.ServeHTTP(rec2, req)
	if rec2.Code != http.StatusNotModified {
		t.Errorf("conditional GET with the ETag = %d, want 304", rec2.Code)
	}
	if rec := do(h, "GET", "/crl.pem", "", "", ""); rec.Code != 200 || !strings.HasPrefix(rec.Body.String(), "-----BEGIN X509 CRL-----") {
		t.Errorf("GET /crl.pem = %d", rec.Code)
	}
	rec = do(h, "GET", "/root.crl", "", "", "")
	if rec.Code != 200 {
		t.Fatalf("GET /root.crl = %d %s", rec.Code, rec.Body)
	}
	root, err := x509.ParseRevocationList(rec.Body.Bytes())
	if err != nil || root.CheckSignatureFrom(f.authty.Root()) != nil {
		t.Errorf("root CRL does not verify against the root: %v", err)
	}
}

func TestRevocationFeed(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPSHandler()
	leaf := f.enrolled(t, "dev-1")
	if rec := do(h, "POST", "/v1/admin/devices/dev-1/revoke", f.admin, "application/json", `{"reason":"keyCompromise"}`); rec.Code != 200 {
		t.Fatalf("revoke: %d", rec.Code)
	}
	rec := do(h, "GET", "/v1/revocations?since=0", "", "", "")
	var out api.FeedResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || rec.Code != 200 {
		t.Fatalf("feed: %d %s", rec.Code, rec.Body)
	}
	if len(out.Revocations) != 1 || out.Revocations[0].Serial != leaf.SerialNumber.Text(16) || out.Revocations[0].Reason != 1 || out.Last != out.Revocations[0].Seq {
		t.Errorf("feed = %+v, want dev-1's certificate, keyCompromise", out)
	}
	rec = do(h, "GET", "/v1/revocations?since="+strconv.FormatUint(out.Last, 10)+"&wait=1ms", "", "", "")
	json.Unmarshal(rec.Body.Bytes(), &out)
	if rec.Code != 200 || len(out.Revocations) != 0 || out.Last == 0 {
		t.Errorf("feed after the last = %d %s, want none and last kept", rec.Code, rec.Body)
	}
	// The Checker asks for pages of 10000, above the admin lists' 1000.
	if rec := do(h, "GET", "/v1/revocations?since=0&limit=10000", "", "", ""); rec.Code != 200 {
		t.Errorf("feed ?limit=10000 = %d %s, want 200", rec.Code, rec.Body)
	}
	for _, q := range []string{"since=-1", "since=x", "wait=soon", "wait=-1s", "limit=0", "limit=100001"} {
		if rec := do(h, "GET", "/v1/revocations?"+q, "", "", ""); rec.Code != 400 {
			t.Errorf("feed ?%s = %d, want 400", q, rec.Code)
		}
	}
}

// TestRevocationFeedDrain: Drain ends a long-poll under way at once with
// nothing new (200, last kept), and any later one too. It runs on
// synctest's fake clock, where "at once" is exact: a long-poll that waited
// would move the clock by its 20 s.
func TestRevocationFeedDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		h := f.srv.HTTPSHandler()
		done := make(chan *httptest.ResponseRecorder, 1)
		go func() { done <- do(h, "GET", "/v1/revocations?since=7&wait=20s", "", "", "") }()
		synctest.Wait()
		select {
		case rec := <-done:
			t.Fatalf("long-poll returned before Drain: %d %s", rec.Code, rec.Body)
		default:
		}
		drained := time.Now()
		f.srv.Drain()
		f.srv.Drain() // idempotent
		rec := <-done
		if waited := time.Since(drained); waited != 0 {
			t.Errorf("long-poll under way returned %s after Drain, want at once", waited)
		}
		var out api.FeedResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || rec.Code != 200 || len(out.Revocations) != 0 || out.Last != 7 {
			t.Errorf("long-poll after Drain = %d %s, want 200, no revocations, last 7", rec.Code, rec.Body)
		}
		start := time.Now()
		if rec := do(h, "GET", "/v1/revocations?since=7&wait=20s", "", "", ""); rec.Code != 200 || time.Since(start) != 0 {
			t.Errorf("long-poll after Drain = %d after %s, want 200 at once", rec.Code, time.Since(start))
		}
	})
}

// TestHEAD: HEAD works on the HTTP listener's documents (and /healthz on
// both listeners), with the GET's status and headers and no body.
func TestHEAD(t *testing.T) {
	f := newFixture(t)
	leaf := f.enrolled(t, "dev-1")
	der, err := ocsp.CreateRequest(leaf, f.authty.Intermediate(), &ocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		t.Fatal(err)
	}
	ocspGet := api.OCSPPath + "/" + url.PathEscape(base64.StdEncoding.EncodeToString(der))
	for _, tc := range []struct {
		name string
		h    http.Handler
		path string
	}{
		{"crl", f.srv.HTTPHandler(), api.CRLPath},
		{"crl.pem", f.srv.HTTPHandler(), api.CRLPEMPath},
		{"root.crl", f.srv.HTTPHandler(), api.RootCRLPath},
		{"roots.pem", f.srv.HTTPHandler(), api.RootsPEMPath},
		{"chain.pem", f.srv.HTTPHandler(), api.ChainPEMPath},
		{"intermediate.crt", f.srv.HTTPHandler(), api.IntermediatePath},
		{"ocsp-get", f.srv.HTTPHandler(), ocspGet},
		{"healthz-http", f.srv.HTTPHandler(), api.HealthPath},
		{"healthz-https", f.srv.HTTPSHandler(), api.HealthPath},
		{"roots.pem-https", f.srv.HTTPSHandler(), api.RootsPEMPath},
		{"unknown-route", f.srv.HTTPHandler(), "/nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			get := do(tc.h, "GET", tc.path, "", "", "")
			head := do(tc.h, "HEAD", tc.path, "", "", "")
			if head.Code != get.Code {
				t.Errorf("HEAD %s = %d, want GET's %d", tc.path, head.Code, get.Code)
			}
			if head.Body.Len() != 0 {
				t.Errorf("HEAD %s has a body of %d bytes, want none", tc.path, head.Body.Len())
			}
			for _, k := range []string{"Content-Type", "ETag", "Cache-Control", "Last-Modified", "Expires"} {
				if g, h := get.Header().Get(k), head.Header().Get(k); g != h {
					t.Errorf("HEAD %s: %s = %q, want GET's %q", tc.path, k, h, g)
				}
			}
			if n := head.Header().Get("Content-Length"); get.Code == 200 && n != strconv.Itoa(get.Body.Len()) {
				t.Errorf("HEAD %s: Content-Length = %q, want %d (the GET's body)", tc.path, n, get.Body.Len())
			}
		})
	}
}

// TestFeedClientGone: a verifier that hangs up during its long-poll (a
// proxy or crl sync stopping) is normal: no 500, nothing logged above
// Info.
func TestFeedClientGone(t *testing.T) {
	f := newFixture(t)
	var logs lockedBuffer
	reg := prometheus.NewRegistry()
	srv, err := New(Config{}, Deps{Enroll: f.svc, CA: f.authty, Records: f.store, Revocation: f.rev, Now: func() time.Time { return testNow },
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, hangUp := context.WithCancel(t.Context())
	req := httptest.NewRequestWithContext(ctx, "GET", api.FeedURL("", 0, 0, 20*time.Second), nil)
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() { defer close(done); srv.HTTPSHandler().ServeHTTP(rec, req) }()
	hangUp()
	<-done
	if rec.Code == http.StatusInternalServerError {
		t.Errorf("long-poll whose client went away: status %d, want no 500", rec.Code)
	}
	if got := testutil.ToFloat64(srv.requests.WithLabelValues("https", api.FeedPath, "GET", "500")); got != 0 {
		t.Errorf("fleetca_web_requests_total{code=500} = %v, want 0", got)
	}
	var sawRequest bool
	for line := range strings.Lines(logs.String()) {
		var rec struct {
			Level, Msg, Route string
			Status            int
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec.Level != "INFO" && rec.Level != "DEBUG" {
			t.Errorf("logged at %s: %s", rec.Level, line)
		}
		if rec.Msg == "request" && rec.Route == api.FeedPath {
			sawRequest = true
			if rec.Status != statusClientClosedRequest {
				t.Errorf("request log: status %d, want %d (client closed request)", rec.Status, statusClientClosedRequest)
			}
		}
	}
	if !sawRequest {
		t.Errorf("no request log line for the feed; log:\n%s", logs.String())
	}
}

// lockedBuffer is a bytes.Buffer safe for a logger and a test to share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestPartitionCRLEndpoints: with crl_partitions 16, the discovery
// document lists the 16 partition CRLs at the URLs certificates carry,
// GET /crl/<p> and /crl/<p>.pem serve partition p's CRL with the full
// CRL's validators (conditional GET included), and anything else under
// /crl/ is not found.
func TestPartitionCRLEndpoints(t *testing.T) {
	f := newPartitionedFixture(t, 16)
	h := f.srv.HTTPHandler()
	leaf := f.enrolled(t, "sensor-part")
	rec := do(h, "GET", api.PartitionsPath, "", "", "")
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("GET %s = %d %v", api.PartitionsPath, rec.Code, rec.Header())
	}
	var doc api.CRLPartitions
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Partitions != 16 || len(doc.CRLs) != 16 || doc.Full.URL != "http://127.0.0.1:8080/crl" || doc.Full.Needed {
		t.Errorf("discovery = %+v, want 16 partitions, the full CRL not needed", doc)
	}
	p := ca.PartitionOf(leaf)
	if p == nil || len(leaf.CRLDistributionPoints) != 1 || doc.CRLs[*p].URL != leaf.CRLDistributionPoints[0] {
		t.Fatalf("certificate CDP %q (partition %v) is not its discovery URL", leaf.CRLDistributionPoints, p)
	}
	path := api.PartitionCRLPath(*p)
	rec = do(h, "GET", path, "", "", "")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/pkix-crl" || rec.Header().Get("ETag") == "" {
		t.Fatalf("GET %s = %d %v", path, rec.Code, rec.Header())
	}
	rl, err := x509.ParseRevocationList(rec.Body.Bytes())
	if err != nil || rl.CheckSignatureFrom(f.authty.Intermediate()) != nil {
		t.Fatalf("partition CRL does not parse or verify: %v", err)
	}
	if rl.Number.String() != doc.CRLs[*p].Number {
		t.Errorf("partition CRL number %v, discovery says %s", rl.Number, doc.CRLs[*p].Number)
	}
	idp, err := ca.IssuingDistributionPoint(leaf.CRLDistributionPoints[0])
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range rl.Extensions {
		found = found || e.Id.Equal(idp.Id) && e.Critical && bytes.Equal(e.Value, idp.Value)
	}
	if !found {
		t.Errorf("partition CRL has no IDP naming %s", leaf.CRLDistributionPoints[0])
	}
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set("If-None-Match", rec.Header().Get("ETag"))
	rec2 := httptest.NewRecorder()
	h.ServeHTTP(rec2, req)
	if rec2.Code != http.StatusNotModified {
		t.Errorf("conditional GET %s with the ETag = %d, want 304", path, rec2.Code)
	}
	if rec := do(h, "GET", path+".pem", "", "", ""); rec.Code != 200 || !strings.HasPrefix(rec.Body.String(), "-----BEGIN X509 CRL-----") {
		t.Errorf("GET %s.pem = %d", path, rec.Code)
	}
	if rec := do(h, "HEAD", path, "", "", ""); rec.Code != 200 || rec.Body.Len() != 0 {
		t.Errorf("HEAD %s = %d with %d bytes", path, rec.Code, rec.Body.Len())
	}
	for _, bad := range []string{"/crl/16", "/crl/256", "/crl/-1", "/crl/03", "/crl/x", "/crl/3.der", "/crl/.pem"} {
		if rec := do(h, "GET", bad, "", "", ""); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", bad, rec.Code)
		}
	}
	if rec := do(h, "GET", "/crl", "", "", ""); rec.Code != 200 {
		t.Errorf("GET /crl = %d beside partitions", rec.Code)
	}
}

// TestPartitionCRLEndpointsNone: without partitions /crl/<p> is not
// found and the discovery document lists none, the full CRL needed.
func TestPartitionCRLEndpointsNone(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPHandler()
	if rec := do(h, "GET", "/crl/0", "", "", ""); rec.Code != http.StatusNotFound {
		t.Errorf("GET /crl/0 without partitions = %d, want 404", rec.Code)
	}
	rec := do(h, "GET", api.PartitionsPath, "", "", "")
	var doc api.CRLPartitions
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || rec.Code != 200 {
		t.Fatalf("GET %s = %d %v", api.PartitionsPath, rec.Code, err)
	}
	if doc.Partitions != 0 || len(doc.CRLs) != 0 || !doc.Full.Needed {
		t.Errorf("discovery without partitions = %+v", doc)
	}
}

func TestParsePartitionParam(t *testing.T) {
	for _, tc := range []struct {
		in    string
		p     int
		isPEM bool
		ok    bool
	}{
		{"0", 0, false, true}, {"3", 3, false, true}, {"255", 255, false, true}, {"3.pem", 3, true, true},
		{"256", 0, false, false}, {"03", 0, false, false}, {"-1", 0, false, false}, {"+3", 0, false, false},
		{"", 0, false, false}, {".pem", 0, false, false}, {"3.der", 0, false, false}, {"3.pem.pem", 0, false, false},
		{"partitions", 0, false, false}, {"0003", 0, false, false}, {" 3", 0, false, false},
	} {
		p, isPEM, ok := parsePartitionParam(tc.in)
		if p != tc.p || isPEM != tc.isPEM || ok != tc.ok {
			t.Errorf("parsePartitionParam(%q) = %d, %v, %v; want %d, %v, %v", tc.in, p, isPEM, ok, tc.p, tc.isPEM, tc.ok)
		}
	}
}

// FuzzPartitionParam: the /crl/<p> segment is untrusted; whatever it is,
// a partition accepted is in range and is the one its canonical form
// names.
func FuzzPartitionParam(f *testing.F) {
	for _, s := range []string{"0", "3", "255", "3.pem", "256", "03", "-1", "", ".pem", "1e2", "٣"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, isPEM, ok := parsePartitionParam(s)
		if !ok {
			return
		}
		want := strconv.Itoa(p)
		if isPEM {
			want += ".pem"
		}
		if p < 0 || p >= api.MaxCRLPartitions || want != s {
			t.Fatalf("parsePartitionParam(%q) = %d, %v: not the canonical %q", s, p, isPEM, want)
		}
	})
}

// TestOCSPCachingHeaders pins the RFC 5019 §6.2 headers of an answer from
// the cache, which web formats once per answer: Last-Modified and Expires
// are the answer's thisUpdate and nextUpdate, ETag names its bytes, and
// Cache-Control's max-age counts down with the clock, to the second (the
// same answer, asked again later, carries a smaller max-age). A
// revocation brings a new answer with new validators; a nonce makes the
// answer uncacheable.
func TestOCSPCachingHeaders(t *testing.T) {
	f := newFixture(t)
	leaf := f.enrolled(t, "dev-1")
	ask := func(nonce bool) (*ocsp.Response, http.Header) {
		t.Helper()
		der, err := ocsp.CreateRequest(leaf, f.authty.Intermediate(), &ocsp.RequestOptions{Hash: crypto.SHA1})
		if err != nil {
			t.Fatal(err)
		}
		if nonce {
			der = withNonce(t, der)
		}
		rec := do(f.srv.HTTPHandler(), "POST", "/ocsp", "", "application/ocsp-request", string(der))
		if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/ocsp-response" {
			t.Fatalf("OCSP: %d %q", rec.Code, rec.Header().Get("Content-Type"))
		}
		resp, err := ocsp.ParseResponseForCert(rec.Body.Bytes(), leaf, f.authty.Intermediate())
		if err != nil {
			t.Fatalf("parse OCSP response: %v", err)
		}
		return resp, rec.Header()
	}
	want := func(resp *ocsp.Response, maxAge int) map[string]string {
		return map[string]string{
			"Last-Modified": resp.ThisUpdate.UTC().Format(http.TimeFormat),
			"Expires":       resp.NextUpdate.UTC().Format(http.TimeFormat),
			"Cache-Control": fmt.Sprintf("max-age=%d, public, no-transform, must-revalidate", maxAge),
		}
	}
	check := func(name string, h http.Header, want map[string]string) {
		t.Helper()
		for k, v := range want {
			if got := h.Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", name, k, got, v)
			}
		}
	}
	first, h := ask(false)
	ttl := int(first.NextUpdate.Sub(f.clock.Now()) / time.Second)
	check("first", h, want(first, ttl))
	etag := h.Get("ETag")
	if len(etag) < 3 || etag[0] != '"' || etag[len(etag)-1] != '"' {
		t.Errorf("ETag = %q, want a quoted strong validator", etag)
	}
	for _, step := range []struct {
		name    string
		advance time.Duration
		maxAge  int
	}{
		{"same-second", 0, ttl},
		{"half-a-second-later", 500 * time.Millisecond, ttl - 1},
		{"a-minute-later", time.Minute, ttl - 61},
	} {
		f.clock.Add(step.advance)
		again, h := ask(false)
		if !again.ThisUpdate.Equal(first.ThisUpdate) || h.Get("ETag") != etag {
			t.Fatalf("%s: thisUpdate %v ETag %q, want the cached answer (%v, %q)", step.name, again.ThisUpdate, h.Get("ETag"), first.ThisUpdate, etag)
		}
		check(step.name, h, want(first, step.maxAge))
	}
	if _, h := ask(true); h.Get("Cache-Control") != "no-store" || h.Get("ETag") != "" || h.Get("Expires") != "" {
		t.Errorf("answer with a nonce: headers %v, want Cache-Control no-store and no validators", h)
	}
	rec := do(f.srv.HTTPSHandler(), "POST", "/v1/admin/certificates/"+leaf.SerialNumber.Text(16)+"/revoke", f.admin, "application/json", `{"reason":"keyCompromise"}`)
	if rec.Code != 200 {
		t.Fatalf("revoke: %d %s", rec.Code, rec.Body)
	}
	revoked, h := ask(false)
	if revoked.Status != ocsp.Revoked || h.Get("ETag") == etag {
		t.Errorf("after revoke: status %d ETag %q, want revoked with a new ETag (was %q)", revoked.Status, h.Get("ETag"), etag)
	}
	check("revoked", h, want(revoked, int(revoked.NextUpdate.Sub(f.clock.Now())/time.Second)))
}

// withNonce returns an OCSP request made by ocsp.CreateRequest (no
// version, no requestor name) with a 16-octet nonce extension (RFC 8954).
func withNonce(t *testing.T, der []byte) []byte {
	t.Helper()
	var req struct {
		TBS struct {
			RequestList []asn1.RawValue
			Extensions  []pkix.Extension `asn1:"explicit,tag:2,optional"`
		}
	}
	if rest, err := asn1.Unmarshal(der, &req); err != nil || len(rest) != 0 {
		t.Fatalf("parse OCSP request: %v", err)
	}
	value, err := asn1.Marshal(bytes.Repeat([]byte{7}, 16))
	if err != nil {
		t.Fatal(err)
	}
	req.TBS.Extensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}, Value: value}}
	out, err := asn1.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOCSPRequestLog: a signed OCSP answer's request line goes at Debug
// (with serve's Info logger, none is written), while malformed requests
// and HTTP errors keep theirs at Info; the request metrics count every
// request alike.
func TestOCSPRequestLog(t *testing.T) {
	f := newFixture(t)
	leaf := f.enrolled(t, "dev-1")
	der, err := ocsp.CreateRequest(leaf, f.authty.Intermediate(), &ocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		t.Fatal(err)
	}
	get := api.OCSPPath + "/" + url.PathEscape(base64.StdEncoding.EncodeToString(der))
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		t.Run(level.String(), func(t *testing.T) {
			var logs lockedBuffer
			reg := prometheus.NewRegistry()
			srv, err := New(Config{}, Deps{Enroll: f.svc, CA: f.authty, Records: f.store, Revocation: f.rev, Now: f.clock.Now,
				Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: level})), Metrics: reg})
			if err != nil {
				t.Fatal(err)
			}
			h := srv.HTTPHandler()
			for _, r := range []struct{ method, path, ctype, body string }{
				{"POST", api.OCSPPath, "application/ocsp-request", string(der)},
				{"POST", api.OCSPPath, "application/ocsp-request", string(der)}, // from the cache
				{"GET", get, "", ""},
				{"POST", api.OCSPPath, "application/ocsp-request", "garbage"},
				{"POST", api.OCSPPath, "application/ocsp-request", strings.Repeat("A", maxOCSPRequest+1)},
			} {
				do(h, r.method, r.path, "", r.ctype, r.body)
			}
			type line struct {
				Level, Msg, Route, Method string
				Status                    int
			}
			var got []line
			for l := range strings.Lines(logs.String()) {
				var rec line
				if err := json.Unmarshal([]byte(l), &rec); err != nil {
					t.Fatalf("log line %q: %v", l, err)
				}
				if rec.Msg == "request" {
					got = append(got, rec)
				}
			}
			want := []line{
				{"DEBUG", "request", api.OCSPPath, "POST", 200},
				{"DEBUG", "request", api.OCSPPath, "POST", 200},
				{"DEBUG", "request", api.OCSPPath + "/*", "GET", 200},
				{"INFO", "request", api.OCSPPath, "POST", 200},
				{"INFO", "request", api.OCSPPath, "POST", 413},
			}
			if level == slog.LevelInfo {
				want = want[3:]
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("request log lines (-want +got):\n%s", diff)
			}
			for _, m := range []struct {
				route, method, code string
				want                float64
			}{
				{api.OCSPPath, "POST", "200", 3},
				{api.OCSPPath + "/*", "GET", "200", 1},
				{api.OCSPPath, "POST", "413", 1},
			} {
				if got := testutil.ToFloat64(srv.requests.WithLabelValues("http", m.route, m.method, m.code)); got != m.want {
					t.Errorf("fleetca_web_requests_total{%s %s %s} = %v, want %v", m.method, m.route, m.code, got, m.want)
				}
			}
		})
	}
}
