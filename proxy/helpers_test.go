package proxy

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.step.sm/crypto/minica"

	"github.com/fleetca/fleetca/internal/testenv"
	"github.com/fleetca/fleetca/verify"
)

// waitLimit bounds every wait in these tests: a guard against hangs, never
// a means of synchronisation.
const waitLimit = 10 * time.Second

// testPKI is a fleet CA (root and intermediate) made with minica, and the
// certificates the tests present.
type testPKI struct {
	ca    *minica.CA
	roots *x509.CertPool
}

func newPKI(t testing.TB, name string) *testPKI {
	t.Helper()
	ca, err := minica.New(minica.WithName(name))
	if err != nil {
		t.Fatalf("minica.New: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Root)
	return &testPKI{ca: ca, roots: roots}
}

// issue signs tmpl (with a fresh P-256 key) from the intermediate and
// returns it as a TLS certificate with its chain.
func (p *testPKI) issue(t testing.TB, tmpl *x509.Certificate) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.PublicKey = key.Public()
	leaf, err := p.ca.Sign(tmpl)
	if err != nil {
		t.Fatalf("sign %s: %v", tmpl.Subject.CommonName, err)
	}
	return tls.Certificate{Certificate: [][]byte{leaf.Raw, p.ca.Intermediate.Raw}, PrivateKey: crypto.Signer(key), Leaf: leaf}
}

// device is a fleetca-shaped device certificate: CN = the device ID, one
// URI SAN, EKU clientAuth, KU digitalSignature.
func (p *testPKI) device(t testing.TB, id string) tls.Certificate {
	t.Helper()
	return p.issue(t, deviceTemplate(id))
}

func deviceTemplate(id string) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: id, Organization: []string{"Acme, Inc."}},
		URIs:        []*url.URL{{Scheme: "spiffe", Host: "fleet.test", Path: "/device/" + id}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		KeyUsage:    x509.KeyUsageDigitalSignature,
	}
}

// server is a server-profile certificate for the proxy itself.
func (p *testPKI) server(t testing.TB, cn string) tls.Certificate {
	t.Helper()
	return p.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		DNSNames:    []string{"proxy.test"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage:    x509.KeyUsageDigitalSignature,
	})
}

// clientTLS is a client's config: it trusts p's root for the proxy and
// presents cert (none if nil). It keeps no sessions, so every handshake
// is a full one.
func (p *testPKI) clientTLS(cert *tls.Certificate) *tls.Config {
	c := &tls.Config{RootCAs: p.roots, ServerName: "proxy.test"}
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	return c
}

// fakeChecker is the two-method Checker with a set of refused serials and
// a way to announce a revocation, as a verify.Checker does: the
// refusal is visible to Check before subscribers are called.
type fakeChecker struct {
	mu      sync.Mutex
	refused map[string]verify.Refusal // by serial, lowercase hex
	subs    []func(*big.Int)
}

func newFakeChecker() *fakeChecker {
	return &fakeChecker{refused: map[string]verify.Refusal{}}
}

func (f *fakeChecker) Check(_ context.Context, leaf *x509.Certificate) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.refused[leaf.SerialNumber.Text(16)]; ok {
		return &verify.RefusedError{Refusal: r, Serial: leaf.SerialNumber}
	}
	return nil
}

func (f *fakeChecker) Subscribe(fn func(*big.Int)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs = append(f.subs, fn)
}

// SubscribeStale: the fake never goes stale; stale_test.go runs a real
// verify.Checker on a fake clock instead.
func (f *fakeChecker) SubscribeStale(func(error)) {}

// refuse makes Check refuse serial for reason r, without announcing it.
func (f *fakeChecker) refuse(serial *big.Int, r verify.Refusal) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refused[serial.Text(16)] = r
}

// revoke refuses serial as revoked, then announces it.
func (f *fakeChecker) revoke(serial *big.Int) {
	f.refuse(serial, verify.Revoked)
	f.mu.Lock()
	subs := f.subs
	f.mu.Unlock()
	for _, fn := range subs {
		fn(serial)
	}
}

// logEntry is one log record, its attributes flattened.
type logEntry map[string]any

// logRecorder is a slog.Handler that keeps every record, so that tests
// can wait for a line.
type logRecorder struct {
	mu      sync.Mutex
	entries []logEntry
	changed chan struct{} // closed and replaced at every record
}

func newLogRecorder() *logRecorder { return &logRecorder{changed: make(chan struct{})} }

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	e := logEntry{"msg": r.Message, "level": r.Level.String()}
	r.Attrs(func(a slog.Attr) bool {
		e[a.Key] = a.Value.Resolve().Any()
		return true
	})
	l.mu.Lock()
	l.entries = append(l.entries, e)
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
	return nil
}

// wait returns the first entry with message msg whose attributes include
// attrs (compared as strings), waiting for it to be logged.
func (l *logRecorder) wait(t testing.TB, msg string, attrs ...any) logEntry {
	t.Helper()
	timeout := time.NewTimer(waitLimit)
	defer timeout.Stop()
	for {
		l.mu.Lock()
		for _, e := range l.entries {
			if e.matches(msg, attrs...) {
				l.mu.Unlock()
				return e
			}
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("no log line %q %v within %s; got %v", msg, attrs, waitLimit, l.all())
		}
	}
}

// waitN waits until n entries match msg and attrs, as wait does for one.
func (l *logRecorder) waitN(t testing.TB, n int, msg string, attrs ...any) {
	t.Helper()
	timeout := time.NewTimer(waitLimit)
	defer timeout.Stop()
	for {
		l.mu.Lock()
		got := 0
		for _, e := range l.entries {
			if e.matches(msg, attrs...) {
				got++
			}
		}
		changed := l.changed
		l.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("%d log lines %q %v within %s, want %d; got %v", got, msg, attrs, waitLimit, n, l.all())
		}
	}
}

func (l *logRecorder) all() []logEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]logEntry(nil), l.entries...)
}

func (e logEntry) matches(msg string, attrs ...any) bool {
	if e["msg"] != msg {
		return false
	}
	for i := 0; i+1 < len(attrs); i += 2 {
		if fmt.Sprint(e[attrs[i].(string)]) != fmt.Sprint(attrs[i+1]) {
			return false
		}
	}
	return true
}

// testProxy is a Server serving on loopback, stopped when the test ends.
type testProxy struct {
	*Server
	pki     *testPKI
	addr    string
	reg     *prometheus.Registry
	logs    *logRecorder
	checker *fakeChecker
	stop    context.CancelFunc
	done    chan error
}

// startProxy serves cfg with pki's roots and a server certificate from
// pki; mod may change the Deps first.
func startProxy(t testing.TB, pki *testPKI, cfg Config, mod ...func(*Deps)) *testProxy {
	t.Helper()
	return startProxyHook(t, pki, cfg, nil, mod...)
}

// startProxyHook is startProxy with hook, if not nil, called on the
// Server before it serves.
func startProxyHook(t testing.TB, pki *testPKI, cfg Config, hook func(*Server), mod ...func(*Deps)) *testProxy {
	t.Helper()
	serverCert := pki.server(t, "proxy-a")
	p := &testProxy{pki: pki, reg: prometheus.NewRegistry(), logs: newLogRecorder(), checker: newFakeChecker(), done: make(chan error, 1)}
	deps := Deps{Roots: pki.roots, Certificate: &serverCert, Checker: p.checker, Logger: slog.New(p.logs), Metrics: p.reg}
	for _, m := range mod {
		m(&deps)
	}
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if hook != nil {
		hook(s)
	}
	ln := testenv.Listen(t)
	p.Server, p.addr = s, ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	p.stop = cancel
	go func() { p.done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-p.done:
			if err != nil {
				t.Errorf("Serve = %v, want nil", err)
			}
		case <-time.After(waitLimit):
			t.Errorf("Serve did not return within %s of its context ending", waitLimit)
		}
	})
	return p
}

// handshakes is the value of fleetca_proxy_handshakes_total{outcome, reason}.
func (p *testProxy) handshakes(outcome, reason string) float64 {
	return testutil.ToFloat64(p.m.handshakes.WithLabelValues(outcome, reason))
}

// dial opens a TLS connection to the proxy and completes the client's
// side of the handshake.
func (p *testProxy) dial(t testing.TB, cfg *tls.Config) *tls.Conn {
	t.Helper()
	d := &tls.Dialer{Config: cfg, NetDialer: &net.Dialer{Timeout: waitLimit}}
	c, err := d.DialContext(t.Context(), "tcp", p.addr)
	if err != nil {
		t.Fatalf("dial the proxy: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*tls.Conn)
}

// httpClient is a client of the proxy that presents cert.
func (p *testProxy) httpClient(t testing.TB, cert *tls.Certificate, h2 bool) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: p.pki.clientTLS(cert), ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: waitLimit}
}

// echoed is what the echo upstream saw of a request.
type echoed struct {
	Method string      `json:"method"`
	Path   string      `json:"path"`
	Query  string      `json:"query"`
	Host   string      `json:"host"`
	Header http.Header `json:"header"`
}

// echoUpstream is a real HTTP server that answers every request with what
// it saw, and for "Upgrade: echo" switches protocols and echoes bytes on
// the hijacked connection. requests counts the requests it got.
type echoUpstream struct {
	*httptest.Server
	requests atomic.Int64
}

func newEchoUpstream(t testing.TB) *echoUpstream {
	t.Helper()
	u := &echoUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.requests.Add(1)
		if r.Header.Get("Upgrade") == "echo" {
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("upstream hijack: %v", err)
				return
			}
			defer conn.Close()
			fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\nX-Device-Seen: %s\r\n\r\n", r.Header.Get(HeaderDeviceID))
			brw.Flush()
			io.Copy(conn, brw)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(echoed{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host, Header: r.Header})
	}))
	t.Cleanup(u.Close)
	return u
}

// get sends a GET through client and decodes what the upstream saw.
func get(t testing.TB, client *http.Client, url string, header http.Header) (echoed, *http.Response) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var e echoed
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: status %d (%s), want 200", url, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatalf("decode the upstream's echo: %v", err)
	}
	return e, resp
}

// rawGet writes a keep-alive HTTP/1.1 GET on c, with the header lines
// ("Name: value") given, and reads the response.
func rawGet(t testing.TB, c net.Conn, br *bufio.Reader, path string, header ...string) *http.Response {
	t.Helper()
	c.SetDeadline(time.Now().Add(waitLimit))
	defer c.SetDeadline(time.Time{})
	var extra strings.Builder
	for _, h := range header {
		extra.WriteString(h + "\r\n")
	}
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: proxy.test\r\n%s\r\n", path, extra.String()); err != nil {
		t.Fatalf("write request: %v", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// waitClosed reads c until it fails, and fails the test if that takes
// waitLimit (a read deadline, not a sleep) or ends in a timeout.
func waitClosed(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitLimit))
	buf := make([]byte, 512)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			t.Fatalf("connection still open %s after the revocation", waitLimit)
		}
		return
	}
}

// isRemoteAlert reports whether err is a TLS alert sent by the peer.
func isRemoteAlert(err error) bool {
	oe, ok := errors.AsType[*net.OpError](err)
	return ok && oe.Op == "remote error"
}
