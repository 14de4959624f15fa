package proxy

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fleetca/fleetca/internal/testenv"
	"github.com/fleetca/fleetca/verify"
)

func TestHTTPIdentityHeaders(t *testing.T) {
	pki := newPKI(t, "Fleet")
	up := newEchoUpstream(t)
	p := startProxy(t, pki, Config{Upstream: up.URL + "/base"})
	dev := pki.device(t, "dev-1")
	client := p.httpClient(t, &dev, false)

	spoofed := http.Header{
		"X-Device-Id":             {"someone-else"},
		"X-Client-Cert-Serial":    {"01"},
		"X-Forwarded-Client-Cert": {`Hash=00;Subject="CN=someone-else"`},
		"X_device_id":             {"underscored"},
		"X-Forwarded-For":         {"203.0.113.7"},
		"X-Other":                 {"kept"},
	}
	got, _ := get(t, client, "https://"+p.addr+"/echo/path?token=secret", spoofed)

	leaf := dev.Leaf
	wantXFCC := fmt.Sprintf(`Hash=%x;Subject="CN=dev-1,O=Acme\, Inc.";URI=spiffe://fleet.test/device/dev-1`, sha256.Sum256(leaf.Raw))
	want := map[string][]string{
		"X-Device-Id":             {"dev-1"},
		"X-Client-Cert-Serial":    {leaf.SerialNumber.Text(16)},
		"X-Forwarded-Client-Cert": {wantXFCC},
		"X-Forwarded-For":         {"127.0.0.1"},
		"X-Forwarded-Proto":       {"https"},
		"X-Forwarded-Host":        {p.addr},
		"X-Other":                 {"kept"},
		"X_device_id":             nil,
	}
	for k, v := range want {
		if diff := cmp.Diff(v, got.Header[k]); diff != "" {
			t.Errorf("upstream header %s (-want +got):\n%s", k, diff)
		}
	}
	if got.Path != "/base/echo/path" || got.Query != "token=secret" {
		t.Errorf("upstream path %q query %q, want /base/echo/path and token=secret", got.Path, got.Query)
	}

	e := p.logs.wait(t, "request", "path", "/echo/path")
	for k, v := range map[string]any{"device_id": "dev-1", "serial": leaf.SerialNumber.Text(16), "method": "GET", "status": 200, "upstream": up.URL + "/base"} {
		if fmt.Sprint(e[k]) != fmt.Sprint(v) {
			t.Errorf("access log %s = %v, want %v", k, e[k], v)
		}
	}
	if _, ok := e["duration_ms"]; !ok {
		t.Errorf("access log has no duration_ms: %v", e)
	}
	if got := p.handshakes(outcomeAccepted, reasonOK); got != 1 {
		t.Errorf("handshakes{accepted,ok} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(p.m.requests[2]); got != 1 {
		t.Errorf("requests{2xx} = %v, want 1", got)
	}
}

func TestHandshakeRefused(t *testing.T) {
	pki := newPKI(t, "Fleet")
	other := newPKI(t, "Other")
	up := newEchoUpstream(t)

	now := time.Now()
	expiredTmpl := deviceTemplate("dev-expired")
	expiredTmpl.NotBefore, expiredTmpl.NotAfter = now.Add(-48*time.Hour), now.Add(-24*time.Hour)
	noEKUTmpl := deviceTemplate("dev-no-eku")
	noEKUTmpl.ExtKeyUsage = nil
	serverProfile := pki.server(t, "a-server")
	revoked := pki.device(t, "dev-revoked")
	stale := pki.device(t, "dev-stale")
	wrongIssuer := pki.device(t, "dev-wrong-issuer")

	tests := []struct {
		name   string
		cert   *tls.Certificate
		reason string
	}{
		{"no-cert", nil, reasonNoCert},
		{"other-ca", new(other.device(t, "dev-1")), reasonChain},
		{"expired", new(pki.issue(t, expiredTmpl)), reasonExpired},
		{"server-profile", &serverProfile, reasonWrongEKU},
		{"no-eku", new(pki.issue(t, noEKUTmpl)), reasonWrongEKU},
		{"revoked", &revoked, reasonRevoked},
		{"stale", &stale, reasonStale},
		{"wrong-issuer", &wrongIssuer, reasonWrongIssuer},
	}
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			p := startProxy(t, pki, Config{Upstream: up.URL})
			p.checker.refuse(revoked.Leaf.SerialNumber, verify.Revoked)
			p.checker.refuse(stale.Leaf.SerialNumber, verify.Stale)
			p.checker.refuse(wrongIssuer.Leaf.SerialNumber, verify.WrongIssuer)
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					before := p.handshakes(outcomeRefused, tc.reason)
					cfg := pki.clientTLS(tc.cert)
					cfg.MaxVersion = version
					d := &tls.Dialer{Config: cfg}
					c, err := d.DialContext(t.Context(), "tcp", p.addr)
					if err == nil {
						// TLS 1.3: the client is done before the server
						// has judged its certificate; the alert comes next.
						defer c.Close()
						c.SetReadDeadline(time.Now().Add(waitLimit))
						_, err = c.Read(make([]byte, 1))
					}
					if !isRemoteAlert(err) {
						t.Fatalf("client error = %v, want a TLS alert from the proxy", err)
					}
					attrs := []any{"reason", tc.reason}
					if tc.cert != nil {
						attrs = append(attrs, "serial", tc.cert.Leaf.SerialNumber.Text(16))
					}
					p.logs.wait(t, "client refused", attrs...)
					if got := p.handshakes(outcomeRefused, tc.reason) - before; got != 1 {
						t.Errorf("handshakes{refused,%s} grew by %v, want 1", tc.reason, got)
					}
				})
			}
			if got := p.handshakes(outcomeAccepted, reasonOK); got != 0 {
				t.Errorf("handshakes{accepted,ok} = %v, want 0", got)
			}
		})
	}
	if n := up.requests.Load(); n != 0 {
		t.Errorf("the upstream got %d requests, want none", n)
	}
}

func TestHTTP2(t *testing.T) {
	pki := newPKI(t, "Fleet")
	up := newEchoUpstream(t)
	p := startProxy(t, pki, Config{Upstream: up.URL})
	dev := pki.device(t, "dev-h2")
	client := p.httpClient(t, &dev, true)

	for i := range 3 {
		got, resp := get(t, client, "https://"+p.addr+"/h2", http.Header{"X-Device-Id": {"spoofed"}})
		if resp.ProtoMajor != 2 {
			t.Fatalf("request %d: protocol %s, want HTTP/2", i, resp.Proto)
		}
		if diff := cmp.Diff([]string{"dev-h2"}, got.Header["X-Device-Id"]); diff != "" {
			t.Errorf("request %d: upstream X-Device-Id (-want +got):\n%s", i, diff)
		}
	}
	p.logs.wait(t, "request", "proto", "HTTP/2.0", "device_id", "dev-h2")
	if got := p.handshakes(outcomeAccepted, reasonOK); got != 1 {
		t.Errorf("handshakes{accepted,ok} = %v, want 1 (one HTTP/2 connection)", got)
	}
}

// upgrade opens an "Upgrade: echo" connection through the proxy.
func upgrade(t *testing.T, p *testProxy, cert *tls.Certificate) (*tls.Conn, *bufio.Reader) {
	t.Helper()
	cfg := p.pki.clientTLS(cert)
	cfg.NextProtos = []string{"http/1.1"}
	c := p.dial(t, cfg)
	c.SetDeadline(time.Now().Add(waitLimit))
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: proxy.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read the upgrade response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade status %d, want 101", resp.StatusCode)
	}
	if got := resp.Header.Get("X-Device-Seen"); got != cert.Leaf.Subject.CommonName {
		t.Errorf("upstream saw X-Device-Id %q, want %q", got, cert.Leaf.Subject.CommonName)
	}
	echo(t, c, br, "ping")
	c.SetDeadline(time.Time{})
	return c, br
}

// echo writes msg on c and reads it back.
func echo(t *testing.T, c net.Conn, r io.Reader, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(waitLimit))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write %q: %v", msg, err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatalf("read the echo of %q: %v", msg, err)
	}
	if string(buf) != msg {
		t.Fatalf("echo %q, want %q", buf, msg)
	}
}

func TestUpgradeClosedOnRevoke(t *testing.T) {
	pki := newPKI(t, "Fleet")
	up := newEchoUpstream(t)
	p := startProxy(t, pki, Config{Upstream: up.URL})
	dev := pki.device(t, "dev-ws")
	other := pki.device(t, "dev-other")

	c, _ := upgrade(t, p, &dev)
	kept, keptBr := upgrade(t, p, &other)

	p.checker.revoke(dev.Leaf.SerialNumber)
	waitClosed(t, c)
	echo(t, kept, keptBr, "still here")
	if got := testutil.ToFloat64(p.m.revokedClosed); got != 1 {
		t.Errorf("revoked_connections_closed_total = %v, want 1", got)
	}
	p.logs.wait(t, "request", "device_id", "dev-ws", "status", 101)
}

func TestKeepAliveClosedOnRevoke(t *testing.T) {
	pki := newPKI(t, "Fleet")
	up := newEchoUpstream(t)
	p := startProxy(t, pki, Config{Upstream: up.URL})
	dev := pki.device(t, "dev-ka")
	other := pki.device(t, "dev-other")

	cfg := pki.clientTLS(&dev)
	cfg.NextProtos = []string{"http/1.1"}
	c := p.dial(t, cfg)
	br := bufio.NewReader(c)
	rawGet(t, c, br, "/one")
	rawGet(t, c, br, "/two") // the same connection, kept alive

	h2 := p.httpClient(t, &dev, true)
	if _, resp := get(t, h2, "https://"+p.addr+"/h2", nil); resp.ProtoMajor != 2 {
		t.Fatalf("protocol %s, want HTTP/2", resp.Proto)
	}

	otherCfg := pki.clientTLS(&other)
	otherCfg.NextProtos = []string{"http/1.1"}
	oc := p.dial(t, otherCfg)
	obr := bufio.NewReader(oc)
	rawGet(t, oc, obr, "/other")

	p.checker.revoke(dev.Leaf.SerialNumber)
	waitClosed(t, c)
	if got := testutil.ToFloat64(p.m.revokedClosed); got != 2 {
		t.Errorf("revoked_connections_closed_total = %v, want 2 (HTTP/1.1 and HTTP/2)", got)
	}
	// The HTTP/2 client must reconnect, and the new handshake is refused.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+p.addr+"/again", nil)
	if resp, err := h2.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("request after the revocation: status %d, want an error", resp.StatusCode)
	}
	rawGet(t, oc, obr, "/other-again")
	// The refused reconnection is counted from accept to close, and the
	// client learns of the refusal (a TLS alert) before the server's
	// goroutine has closed it: wait for that close, not for a duration.
	if got := waitOpenConnections(t, p, 1); got != 1 {
		t.Errorf("OpenConnections = %d, want 1 (the other device's)", got)
	}
}

// waitOpenConnections returns p.OpenConnections() once it is want, or its
// value after waitLimit (a guard against a hang, not a speed check).
func waitOpenConnections(t testing.TB, p *testProxy, want int) int {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		got := p.OpenConnections()
		if got == want || time.Now().After(deadline) {
			return got
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

func TestResumedSessionIsVerified(t *testing.T) {
	pki := newPKI(t, "Fleet")
	up := newEchoUpstream(t)
	p := startProxy(t, pki, Config{Upstream: up.URL})
	dev := pki.device(t, "dev-resume")
	cfg := pki.clientTLS(&dev)
	cfg.NextProtos = []string{"http/1.1"}
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)

	// A request makes the client read the session ticket.
	c := p.dial(t, cfg)
	rawGet(t, c, bufio.NewReader(c), "/first")
	c.Close()
	c = p.dial(t, cfg)
	rawGet(t, c, bufio.NewReader(c), "/resumed")
	if !c.ConnectionState().DidResume {
		t.Fatal("the second connection did not resume its session")
	}
	c.Close()

	p.checker.refuse(dev.Leaf.SerialNumber, verify.Revoked)
	c = p.dial(t, cfg)
	c.SetReadDeadline(time.Now().Add(waitLimit))
	if _, err := c.Read(make([]byte, 1)); !isRemoteAlert(err) {
		t.Fatalf("resumed handshake of a revoked certificate: read error %v, want a TLS alert", err)
	}
	p.logs.wait(t, "client refused", "reason", reasonRevoked)
}

func TestUpstreamDown(t *testing.T) {
	pki := newPKI(t, "Fleet")
	// An upstream that hangs up on every connection.
	ln := testenv.Listen(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	p := startProxy(t, pki, Config{Upstream: "http://" + ln.Addr().String()})
	dev := pki.device(t, "dev-1")
	client := p.httpClient(t, &dev, false)
	resp, err := client.Get("https://" + p.addr + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || string(body) != "Bad Gateway\n" || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("got %d %q (%s), want 502 \"Bad Gateway\\n\" text/plain", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}
	p.logs.wait(t, "upstream failed", "device_id", "dev-1")
	p.logs.wait(t, "request", "status", 502)
	if got := testutil.ToFloat64(p.m.upstreamErrors); got != 1 {
		t.Errorf("upstream_errors_total = %v, want 1", got)
	}
}

func TestReload(t *testing.T) {
	pki := newPKI(t, "Fleet")
	other := newPKI(t, "Other")
	up := newEchoUpstream(t)
	p := startProxy(t, pki, Config{Upstream: up.URL})
	dev := pki.device(t, "dev-1")
	otherDev := other.device(t, "dev-2")

	old := p.httpClient(t, &dev, false)
	_, resp := get(t, old, "https://"+p.addr+"/before", nil)
	if cn := resp.TLS.PeerCertificates[0].Subject.CommonName; cn != "proxy-a" {
		t.Fatalf("proxy certificate %q, want proxy-a", cn)
	}

	// The new certificate is issued by the other CA, with both roots
	// trusted for clients: the fleet moves to a new CA.
	newCert := other.server(t, "proxy-b")
	both := pki.roots.Clone()
	both.AddCert(other.ca.Root)
	p.Reload(both, nil, &newCert)
	p.logs.wait(t, "proxy certificates reloaded")

	bothTLS := other.clientTLS(&otherDev)
	bothTLS.RootCAs = both
	fresh := &http.Client{Transport: &http.Transport{TLSClientConfig: bothTLS}, Timeout: waitLimit}
	t.Cleanup(fresh.CloseIdleConnections)
	got, resp := get(t, fresh, "https://"+p.addr+"/after", nil)
	if cn := resp.TLS.PeerCertificates[0].Subject.CommonName; cn != "proxy-b" {
		t.Errorf("proxy certificate after Reload %q, want proxy-b", cn)
	}
	if id := got.Header.Get(HeaderDeviceID); id != "dev-2" {
		t.Errorf("device from the new CA: X-Device-Id %q, want dev-2", id)
	}

	// The connection opened before the reload is still served.
	var reused bool
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), http.MethodGet, "https://"+p.addr+"/old-conn", nil)
	resp, err := old.Do(req)
	if err != nil {
		t.Fatalf("request on the connection opened before Reload: %v", err)
	}
	resp.Body.Close()
	if !reused || resp.StatusCode != http.StatusOK {
		t.Errorf("request on the old connection: reused %v, status %d; want true, 200", reused, resp.StatusCode)
	}
	if cn := resp.TLS.PeerCertificates[0].Subject.CommonName; cn != "proxy-a" {
		t.Errorf("old connection's proxy certificate %q, want proxy-a", cn)
	}

	// Only the new roots now: the first CA's devices are refused.
	p.Reload(other.roots, nil, nil)
	cfg := pki.clientTLS(&dev)
	cfg.RootCAs = both
	c := p.dial(t, cfg)
	c.SetReadDeadline(time.Now().Add(waitLimit))
	if _, err := c.Read(make([]byte, 1)); !isRemoteAlert(err) {
		t.Fatalf("device of the dropped CA: read error %v, want a TLS alert", err)
	}
	p.logs.wait(t, "client refused", "reason", reasonChain, "device_id", "dev-1")
}

func TestShutdownDrainsRequests(t *testing.T) {
	pki := newPKI(t, "Fleet")
	entered, release := make(chan struct{}, 1), make(chan struct{})
	up := newSlowUpstream(t, entered, release)
	p := startProxy(t, pki, Config{Upstream: up})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) }) // runs first: lets the upstream stop
	dev := pki.device(t, "dev-1")
	client := p.httpClient(t, &dev, false)

	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := client.Get("https://" + p.addr + "/slow")
		if err != nil {
			res <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{string(b), err}
	}()
	ws, _ := upgrade(t, p, &dev)
	<-entered
	p.stop()
	p.logs.wait(t, "proxy shutting down")
	// An upgraded connection cannot be drained: it is closed at once,
	// while the request in flight is still waiting for its upstream.
	waitClosed(t, ws)
	releaseOnce.Do(func() { close(release) })
	r := <-res
	if r.err != nil || r.body != "done" {
		t.Fatalf("request in flight at shutdown: %q, %v; want \"done\"", r.body, r.err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
		p.done <- err // for the cleanup
	case <-time.After(waitLimit):
		t.Fatal("Serve did not return")
	}
	if _, err := net.DialTimeout("tcp", p.addr, waitLimit); err == nil {
		t.Error("the proxy still accepts connections after Serve returned")
	}
}

// newSlowUpstream answers "done" once release is closed, after telling
// entered that a request came; it passes upgrades to an echo upstream.
func newSlowUpstream(t *testing.T, entered chan<- struct{}, release <-chan struct{}) string {
	ln := testenv.Listen(t)
	echo := newEchoUpstream(t)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" {
			echo.Config.Handler.ServeHTTP(w, r)
			return
		}
		entered <- struct{}{}
		<-release
		io.WriteString(w, "done")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return "http://" + ln.Addr().String()
}

func TestAccessLogOmitsQuery(t *testing.T) {
	pki := newPKI(t, "Fleet")
	up := newEchoUpstream(t)
	p := startProxy(t, pki, Config{Upstream: up.URL})
	dev := pki.device(t, "dev-1")
	get(t, p.httpClient(t, &dev, false), "https://"+p.addr+"/p?secret=1", nil)
	e := p.logs.wait(t, "request")
	for k, v := range e {
		if strings.Contains(fmt.Sprint(v), "secret") {
			t.Errorf("access log %s = %v: it carries the query", k, v)
		}
	}
}

func TestCachedChainExpires(t *testing.T) {
	pki := newPKI(t, "Fleet")
	up := newEchoUpstream(t)
	var clock atomic.Pointer[time.Time]
	start := time.Now()
	clock.Store(&start)
	p := startProxy(t, pki, Config{Upstream: up.URL}, func(d *Deps) { d.Now = func() time.Time { return *clock.Load() } })
	tmpl := deviceTemplate("dev-short")
	tmpl.NotBefore, tmpl.NotAfter = start.Add(-time.Minute), start.Add(time.Hour)
	dev := pki.issue(t, tmpl)

	get(t, p.httpClient(t, &dev, false), "https://"+p.addr+"/first", nil) // verified and cached
	later := start.Add(2 * time.Hour)
	clock.Store(&later)
	cfg := pki.clientTLS(&dev)
	cfg.Time = func() time.Time { return start } // the client's clock does not judge the proxy here
	c := p.dial(t, cfg)
	c.SetReadDeadline(time.Now().Add(waitLimit))
	if _, err := c.Read(make([]byte, 1)); !isRemoteAlert(err) {
		t.Fatalf("a cached certificate past its NotAfter: read error %v, want a TLS alert", err)
	}
	p.logs.wait(t, "client refused", "reason", reasonExpired, "device_id", "dev-short")
}

func TestHandshakeFailures(t *testing.T) {
	pki := newPKI(t, "Fleet")
	other := newPKI(t, "Other")
	up := newEchoUpstream(t)
	p := startProxy(t, pki, Config{Upstream: up.URL, HandshakeTimeout: time.Second})
	dev := pki.device(t, "dev-1")

	tests := []struct {
		name   string
		client func(t *testing.T, c net.Conn)
		reason string
	}{
		{"plain-http", func(t *testing.T, c net.Conn) {
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			c.SetReadDeadline(time.Now().Add(waitLimit))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil || resp.StatusCode != http.StatusBadRequest {
				t.Errorf("plain HTTP to the proxy: %v, %v; want a 400 response", resp, err)
			}
		}, reasonNotTLS},
		{"hang-up", func(t *testing.T, c net.Conn) {}, reasonEOF},
		{"distrusts-proxy", func(t *testing.T, c net.Conn) {
			cfg := other.clientTLS(&dev) // trusts only the other root
			if err := tls.Client(c, cfg).HandshakeContext(t.Context()); err == nil {
				t.Error("client handshake succeeded, want it to refuse the proxy's certificate")
			}
		}, reasonClientAlert},
		{"silent", nil, reasonTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", p.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tc.client != nil {
				tc.client(t, c)
				c.Close()
			}
			e := p.logs.wait(t, "client handshake failed", "reason", tc.reason)
			if e["level"] != "DEBUG" {
				t.Errorf("logged at %v, want DEBUG", e["level"])
			}
			if got := p.handshakes(outcomeFailed, tc.reason); got != 1 {
				t.Errorf("handshakes{failed,%s} = %v, want 1", tc.reason, got)
			}
		})
	}
}
