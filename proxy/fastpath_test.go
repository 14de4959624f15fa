package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fleetca/fleetca/internal/testenv"
)

// rawUpstream reads request heads (no bodies) and answers each with the
// answer set for it, byte for byte; an empty answer closes the
// connection unanswered. It sends each head it read on heads.
type rawUpstream struct {
	addr  string
	heads chan string

	mu     sync.Mutex
	answer string
}

func newRawUpstream(t *testing.T) *rawUpstream {
	u := &rawUpstream{heads: make(chan string, 16)}
	ln := testenv.Listen(t)
	u.addr = ln.Addr().String()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					var head strings.Builder
					for {
						line, err := br.ReadString('\n')
						if err != nil {
							return
						}
						head.WriteString(line)
						if line == "\r\n" {
							break
						}
					}
					u.heads <- head.String()
					u.mu.Lock()
					answer := u.answer
					u.mu.Unlock()
					if answer == "" {
						return
					}
					if _, err := io.WriteString(c, answer); err != nil {
						return
					}
				}
			}()
		}
	}()
	return u
}

func (u *rawUpstream) set(answer string) {
	u.mu.Lock()
	u.answer = answer
	u.mu.Unlock()
}

// rawExchange sends request on a new HTTP/1.1 connection to p and returns
// the bytes of the answer (1xx answers included) and the final answer.
func rawExchange(t *testing.T, p *testProxy, cert *tls.Certificate, request string) (string, *http.Response, []byte) {
	t.Helper()
	cfg := p.pki.clientTLS(cert)
	cfg.NextProtos = []string{"http/1.1"}
	c := p.dial(t, cfg)
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitLimit))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	var raw bytes.Buffer
	br := bufio.NewReader(io.TeeReader(c, &raw))
	method, _, _ := strings.Cut(request, " ")
	for {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("read the answer to %q: %v (read so far %q)", request, err, raw.String())
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("read the body of the answer to %q: %v", request, err)
		}
		if resp.StatusCode >= 200 {
			return raw.String()[:raw.Len()-br.Buffered()], resp, body
		}
	}
}

var dateLine = regexp.MustCompile(`(?m)^Date: [^\r]*\r$`)

// TestFastPathMatchesSlowPath sends the same requests through the fast
// path and through the slow path (http.Server and ReverseProxy) and
// compares what the upstream and the client get.
func TestFastPathMatchesSlowPath(t *testing.T) {
	pki := newPKI(t, "Fleet")
	up := newRawUpstream(t)
	cfg := Config{Upstream: "http://" + up.addr + "/base/"}
	fast := startProxy(t, pki, cfg)
	slowCfg := cfg
	slowCfg.DisableHTTP1FastPath = true
	slow := startProxy(t, pki, slowCfg)
	if fast.fast == nil {
		t.Fatalf("the fast path is off: %s", fast.fastOff)
	}
	dev := pki.device(t, "dev-1")

	const ok = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\n\r\nok"
	tests := []struct {
		name, request, answer string
		exact                 bool // the answers must be the same bytes, but for Date
	}{
		{"get", "GET /a/b HTTP/1.1\r\nHost: proxy.test\r\nUser-Agent: dev/1\r\nAccept: */*\r\nX-Device-Id: spoofed\r\nx_client_cert_serial: 01\r\n" +
			"X-Forwarded-For: 203.0.113.9\r\nForwarded: for=x\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Proto: http\r\n\r\n", ok, true},
		{"query-and-join", "GET /x/y;z,@$~?a=b&c=%41& HTTP/1.1\r\nHost: proxy.test\r\n\r\n", ok, true},
		{"empty-query", "GET /q? HTTP/1.1\r\nHost: proxy.test\r\nContent-Length: 0\r\n\r\n", ok, true},
		{"hop-by-hop", "GET / HTTP/1.1\r\nHost: proxy.test\r\nConnection: keep-alive, X-Foo, user-agent\r\nX-Foo: 1\r\nKeep-Alive: 5\r\n" +
			"Proxy-Authorization: x\r\nUser-Agent: u\r\nTe: gzip, trailers\r\nTrailer: X\r\n\r\n",
			"HTTP/1.1 200 OK\r\nConnection: x-bar\r\nX-Bar: 1\r\nKeep-Alive: timeout=5\r\nX-Kept: 1\r\nProxy-Authenticate: x\r\nContent-Length: 2\r\n\r\nok", true},
		{"close", "GET / HTTP/1.1\r\nHost: proxy.test\r\nConnection: close\r\n\r\n", ok, true},
		{"pragma", "GET / HTTP/1.1\r\nHost: proxy.test\r\nPragma: no-cache\r\nUser-Agent: a\r\nUser-Agent: b\r\n\r\n", ok, true},
		{"pragma-with-cache-control", "GET / HTTP/1.1\r\nHost: proxy.test\r\nPragma: no-cache\r\nCache-Control: max-age=1\r\n\r\n", ok, true},
		{"head", "HEAD / HTTP/1.1\r\nHost: proxy.test\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\n", true},
		{"head-no-length", "HEAD / HTTP/1.1\r\nHost: proxy.test\r\n\r\n", "HTTP/1.1 200 OK\r\nX: 1\r\n\r\n", true},
		{"options-204", "OPTIONS /o HTTP/1.1\r\nHost: proxy.test\r\n\r\n", "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nAllow: GET\r\n\r\n", true},
		{"trace-304", "TRACE /t HTTP/1.1\r\nHost: proxy.test\r\n\r\n",
			"HTTP/1.1 304 Not Modified\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nEtag: \"x\"\r\n\r\n", true},
		{"sniffed", "GET / HTTP/1.1\r\nHost: proxy.test\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n<html>hi</html>", true},
		{"not-sniffed-encoded", "GET / HTTP/1.1\r\nHost: proxy.test\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc", true},
		{"large-body", "GET / HTTP/1.1\r\nHost: proxy.test\r\n\r\n",
			"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("0123456789", 10000), true},
		{"reason-phrases", "GET / HTTP/1.1\r\nHost: proxy.test\r\n\r\n", "HTTP/1.1 299 Whatever\r\nContent-Length: 0\r\n\r\n", true},
		{"not-found", "GET / HTTP/1.1\r\nHost: proxy.test\r\n\r\n", "HTTP/1.1 404 Nope\r\nContent-Length: 1\r\nContent-Type: text/plain\r\n\r\nx", true},
		{"early-hints", "GET / HTTP/1.1\r\nHost: proxy.test\r\n\r\n",
			"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nContent-Length: 7\r\n\r\n" + ok, true},
		{"event-stream", "GET / HTTP/1.1\r\nHost: proxy.test\r\n\r\n",
			"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 9\r\n\r\ndata: x\n\n", true},
		// http.Server writes the headers of an answer of unknown length
		// from a timer (ReverseProxy's flush) or with its first chunk,
		// whichever comes first: only the meaning can be compared.
		{"chunked-trailers", "GET / HTTP/1.1\r\nHost: proxy.test\r\n\r\n",
			"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 9\r\n\r\n", false},
		{"upstream-hangs-up", "GET / HTTP/1.1\r\nHost: proxy.test\r\n\r\n", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up.set(tc.answer)
			var heads [2]string
			var raws [2]string
			var resps [2]*http.Response
			var bodies [2][]byte
			for i, p := range []*testProxy{fast, slow} {
				raws[i], resps[i], bodies[i] = rawExchange(t, p, &dev, tc.request)
				if tc.answer == "" {
					<-up.heads // the retry on a new connection
				}
				heads[i] = <-up.heads
			}
			if diff := cmp.Diff(heads[1], heads[0]); diff != "" {
				t.Errorf("upstream request (-slow +fast):\n%s", diff)
			}
			if tc.exact {
				fastRaw := dateLine.ReplaceAllString(raws[0], "Date: D\r")
				slowRaw := dateLine.ReplaceAllString(raws[1], "Date: D\r")
				if diff := cmp.Diff(slowRaw, fastRaw); diff != "" {
					t.Errorf("answer (-slow +fast):\n%s", diff)
				}
				return
			}
			for _, r := range resps {
				r.Header.Del("Date")
			}
			if resps[0].StatusCode != resps[1].StatusCode || string(bodies[0]) != string(bodies[1]) {
				t.Errorf("answer %d %q, slow path's %d %q", resps[0].StatusCode, bodies[0], resps[1].StatusCode, bodies[1])
			}
			if diff := cmp.Diff(resps[1].Header, resps[0].Header); diff != "" {
				t.Errorf("answer header (-slow +fast):\n%s", diff)
			}
			if diff := cmp.Diff(resps[1].Trailer, resps[0].Trailer); diff != "" {
				t.Errorf("answer trailer (-slow +fast):\n%s", diff)
			}
		})
	}
	if got, want := testutil.ToFloat64(fast.m.upstreamErrors), testutil.ToFloat64(slow.m.upstreamErrors); got != want || got != 1 {
		t.Errorf("upstream_errors_total fast %v, slow %v; want 1 each", got, want)
	}
	// Every request took the fast path on one side and never on the other.
	if got, want := testutil.ToFloat64(fast.m.fastRequests), float64(len(tests)); got != want {
		t.Errorf("fast_path_requests_total of the fast proxy = %v, want %v", got, want)
	}
	if got := testutil.ToFloat64(slow.m.fastRequests); got != 0 {
		t.Errorf("fast_path_requests_total with DisableHTTP1FastPath = %v, want 0", got)
	}
}

// With DisableHTTP1FastPath, every request is served by net/http
// (http.Server, ReverseProxy, http.Transport), correctly, and none reaches
// the fast path; with the default, the same requests take it.
func TestFastPathOff(t *testing.T) {
	pki := newPKI(t, "Fleet")
	up := newEchoUpstream(t)
	dev := pki.device(t, "dev-1")
	requests := []struct {
		name, request, method, path string
		fast                        bool // taken by the fast path when it is on
	}{
		{"get", "GET /a?x=1 HTTP/1.1\r\nHost: proxy.test\r\nX-Device-Id: spoofed\r\n\r\n", "GET", "/a", true},
		{"head", "HEAD /b HTTP/1.1\r\nHost: proxy.test\r\n\r\n", "HEAD", "/b", true},
		{"options", "OPTIONS /c HTTP/1.1\r\nHost: proxy.test\r\n\r\n", "OPTIONS", "/c", true},
		{"post", "POST /d HTTP/1.1\r\nHost: proxy.test\r\nContent-Length: 2\r\n\r\nhi", "POST", "/d", false},
		{"http10", "GET /e HTTP/1.0\r\nHost: proxy.test\r\n\r\n", "GET", "/e", false},
	}
	for _, off := range []bool{true, false} {
		t.Run(fmt.Sprintf("disabled=%v", off), func(t *testing.T) {
			p := startProxy(t, pki, Config{Upstream: up.URL, DisableHTTP1FastPath: off})
			p.logs.wait(t, "proxy listening", "http1_fast_path", !off)
			wantFast := 0
			for _, r := range requests {
				_, resp, body := rawExchange(t, p, &dev, r.request)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s: status %d, want 200", r.name, resp.StatusCode)
				}
				if r.method != http.MethodHead {
					var e echoed
					if err := json.Unmarshal(body, &e); err != nil {
						t.Fatalf("%s: %v", r.name, err)
					}
					if e.Method != r.method || e.Path != r.path || e.Header.Get(HeaderDeviceID) != "dev-1" || e.Header.Get("X-Forwarded-Proto") != "https" {
						t.Errorf("%s: upstream saw %s %s, X-Device-Id %q, X-Forwarded-Proto %q; want %s %s, dev-1, https", r.name,
							e.Method, e.Path, e.Header.Get(HeaderDeviceID), e.Header.Get("X-Forwarded-Proto"), r.method, r.path)
					}
				}
				p.logs.wait(t, "request", "method", r.method, "path", r.path, "status", 200, "device_id", "dev-1")
				if r.fast && !off {
					wantFast++
				}
			}
			if got, want := testutil.ToFloat64(p.m.requests[2]), float64(len(requests)); got != want {
				t.Errorf("requests_total{2xx} = %v, want %v", got, want)
			}
			if got := testutil.ToFloat64(p.m.fastRequests); got != float64(wantFast) {
				t.Errorf("fast_path_requests_total = %v, want %d", got, wantFast)
			}
			if off && (p.fast != nil || p.rp.Transport != p.transport) {
				t.Errorf("disabled, yet the fast path is set up (server %v, ReverseProxy over the fast path's pool %v)",
					p.fast != nil, p.rp.Transport != p.transport)
			}
		})
	}
}

// Pipelined requests are answered in order; a request the fast path does
// not serve (here a POST with a body) hands the connection to http.Server
// with what was read of it, and every later request goes there too.
func TestFastPathPipeliningAndHandOff(t *testing.T) {
	pki := newPKI(t, "Fleet")
	up := newEchoUpstream(t)
	p := startProxy(t, pki, Config{Upstream: up.URL})
	dev := pki.device(t, "dev-1")
	cfg := pki.clientTLS(&dev)
	cfg.NextProtos = []string{"http/1.1"}
	c := p.dial(t, cfg)
	c.SetDeadline(time.Now().Add(waitLimit))
	reqs := "GET /1 HTTP/1.1\r\nHost: proxy.test\r\n\r\n" +
		"GET /2 HTTP/1.1\r\nHost: proxy.test\r\n\r\n" +
		"POST /3 HTTP/1.1\r\nHost: proxy.test\r\nContent-Length: 4\r\n\r\nbody" +
		"GET /4 HTTP/1.1\r\nHost: proxy.test\r\nX-Device-Id: spoofed\r\n\r\n"
	if _, err := io.WriteString(c, reqs); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for i, want := range []struct{ method, path string }{{"GET", "/1"}, {"GET", "/2"}, {"POST", "/3"}, {"GET", "/4"}} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i+1, err)
		}
		var e echoed
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			t.Fatalf("answer %d: %v", i+1, err)
		}
		resp.Body.Close()
		if e.Method != want.method || e.Path != want.path {
			t.Errorf("answer %d is to %s %s, want %s %s", i+1, e.Method, e.Path, want.method, want.path)
		}
		for k, v := range map[string]string{"X-Device-Id": "dev-1", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "proxy.test"} {
			if got := e.Header.Get(k); got != v {
				t.Errorf("answer %d: upstream saw %s %q, want %q", i+1, k, got, v)
			}
		}
	}
	for _, path := range []string{"/1", "/2", "/3", "/4"} {
		p.logs.wait(t, "request", "path", path, "device_id", "dev-1", "status", 200, "proto", "HTTP/1.1")
	}
	if got := testutil.ToFloat64(p.m.requests[2]); got != 4 {
		t.Errorf("requests{2xx} = %v, want 4", got)
	}
}

// Requests the fast path does not take get net/http's own answers.
func TestFastPathLeavesErrorsToNetHTTP(t *testing.T) {
	pki := newPKI(t, "Fleet")
	up := newEchoUpstream(t)
	p := startProxy(t, pki, Config{Upstream: up.URL, MaxHeaderBytes: 4096})
	dev := pki.device(t, "dev-1")
	tests := []struct {
		name    string
		request string
		status  int
	}{
		{"no-host", "GET / HTTP/1.1\r\n\r\n", http.StatusBadRequest},
		{"bad-header", "GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n", http.StatusBadRequest},
		{"too-large", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 16<<10) + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
		{"http10", "GET /ten HTTP/1.0\r\nHost: x\r\n\r\n", http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, resp, _ := rawExchange(t, p, &dev, tc.request)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
}

// Revoking a device closes its connection while its request waits for
// the upstream, and that ends the upstream exchange too.
func TestFastPathRevokeInterruptsUpstream(t *testing.T) {
	pki := newPKI(t, "Fleet")
	entered, release := make(chan struct{}, 1), make(chan struct{})
	t.Cleanup(func() { close(release) })
	ln := testenv.Listen(t)
	upClosed := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		entered <- struct{}{}
		br.ReadByte() // returns when the proxy closes the connection
		close(upClosed)
		<-release
	}()
	p := startProxy(t, pki, Config{Upstream: "http://" + ln.Addr().String()})
	dev := pki.device(t, "dev-1")
	cfg := pki.clientTLS(&dev)
	cfg.NextProtos = []string{"http/1.1"}
	c := p.dial(t, cfg)
	if _, err := io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: proxy.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	<-entered
	p.checker.revoke(dev.Leaf.SerialNumber)
	waitClosed(t, c)
	select {
	case <-upClosed:
	case <-time.After(waitLimit):
		t.Fatal("the upstream connection is still open after the revocation")
	}
	p.logs.wait(t, "request abandoned", "device_id", "dev-1")
	p.logs.wait(t, "request", "path", "/slow", "status", 502)
	if got := testutil.ToFloat64(p.m.upstreamErrors); got != 0 {
		t.Errorf("upstream_errors_total = %v, want 0 (the client went, not the upstream)", got)
	}
}

// An idle fast-path connection is closed after IdleTimeout: here 1 s, so
// that it closes within waitLimit, far from the default 120 s. When it
// closes is not asserted here (a busy machine delays what a timer
// starts): fastpath's TestServeConnIdleTimeout checks it on a fake clock.
func TestFastPathIdleTimeout(t *testing.T) {
	pki := newPKI(t, "Fleet")
	up := newEchoUpstream(t)
	p := startProxy(t, pki, Config{Upstream: up.URL, IdleTimeout: time.Second})
	dev := pki.device(t, "dev-1")
	cfg := pki.clientTLS(&dev)
	cfg.NextProtos = []string{"http/1.1"}
	c := p.dial(t, cfg)
	rawGet(t, c, bufio.NewReader(c), "/once")
	waitClosed(t, c)
	if got := testutil.ToFloat64(p.m.fastRequests); got != 1 {
		t.Errorf("fast_path_requests_total = %v, want 1", got)
	}
}
