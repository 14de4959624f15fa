package fastpath

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// These tests drive a Server over in-memory connections (net.Pipe) inside
// a synctest bubble, so that timeouts run on its fake clock. How the fast
// path's answers compare with net/http's is tested in package proxy
// (TestFastPathMatchesSlowPath), which owns the slow path.

// serverCert is a self-signed certificate for the TLS server side.
var serverCert = sync.OnceValue(func() tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "proxy.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		panic(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
})

// upstreamRecorder is an in-memory upstream: each request it reads is sent
// on requests, and answered by answer (or left unanswered until release
// is closed, if answer is nil).
type upstreamRecorder struct {
	requests chan *http.Request
	answer   func(*http.Request) string
	release  chan struct{}
}

func (u *upstreamRecorder) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		u.requests <- req
		if u.answer == nil {
			<-u.release
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone")
			continue
		}
		if _, err := io.WriteString(c, u.answer(req)); err != nil {
			return
		}
	}
}

// testServer is a Server to an in-memory upstream, with what it told
// Served.
type testServer struct {
	*Server
	up *upstreamRecorder
	tr *Transport

	mu     sync.Mutex
	served []Request
}

func newTestServer(t *testing.T, cfg Config, up *upstreamRecorder) *testServer {
	t.Helper()
	ts := &testServer{up: up}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		a, b := net.Pipe()
		go up.serve(b)
		return a, nil
	}
	ts.tr = NewTransport(TransportConfig{Addr: "upstream.test:80", Dial: dial, HeaderTimeout: time.Minute,
		MaxHeaderBytes: 1 << 16, MaxIdle: 4, IdleTimeout: time.Minute, BufferSize: 4096}, nil)
	cfg.Upstream = &url.URL{Scheme: "http", Host: "upstream.test", Path: "/base/"}
	s, err := New(cfg, Deps{Transport: ts.tr, Served: func(_ *Conn, r Request) {
		ts.mu.Lock()
		ts.served = append(ts.served, Request{Method: r.Method, Path: r.Path, Status: r.Status})
		ts.mu.Unlock()
	}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts.Server = s
	t.Cleanup(ts.tr.CloseIdleConnections)
	return ts
}

// checkServed checks the requests ts has reported served so far.
func (ts *testServer) checkServed(t *testing.T, want ...Request) {
	t.Helper()
	ts.mu.Lock()
	got := append([]Request(nil), ts.served...)
	ts.mu.Unlock()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Served (-want +got):\n%s", diff)
	}
}

// clientConn is the client's end of a connection that ServeConn serves.
type clientConn struct {
	*tls.Conn
	br *bufio.Reader
	// handedOff receives what ServeConn returned.
	handedOff chan net.Conn
	cancel    context.CancelFunc
}

// connect makes a TLS connection over net.Pipe and serves its server end
// with ts, on its own goroutine.
func (ts *testServer) connect(t *testing.T) *clientConn {
	t.Helper()
	a, b := net.Pipe()
	client := tls.Client(a, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	server := tls.Server(b, &tls.Config{Certificates: []tls.Certificate{serverCert()}, NextProtos: []string{"http/1.1"}})
	ctx, cancel := context.WithCancel(t.Context())
	cc := &clientConn{Conn: client, br: bufio.NewReader(client), handedOff: make(chan net.Conn, 1), cancel: cancel}
	go func() {
		if err := server.Handshake(); err != nil {
			t.Errorf("server handshake: %v", err)
			server.Close()
			cc.handedOff <- nil
			return
		}
		cc.handedOff <- ts.ServeConn(&Conn{TLS: server, Context: ctx, Header: []Field{{"X-Device-Id", "dev-1"}},
			DeviceID: "dev-1", Serial: "01"})
	}()
	if err := client.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	return cc
}

// get sends a GET and reads its answer.
func (cc *clientConn) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	if _, err := io.WriteString(cc, "GET "+path+" HTTP/1.1\r\nHost: proxy.test\r\n\r\n"); err != nil {
		t.Fatalf("write GET %s: %v", path, err)
	}
	return cc.read(t, http.MethodGet)
}

func (cc *clientConn) read(t *testing.T, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(cc.br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read the answer: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read the body: %v", err)
	}
	return resp, string(body)
}

// watchClose reads the rest of the connection on its own goroutine and
// returns a channel closed once the server has closed it.
func (cc *clientConn) watchClose() <-chan struct{} {
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, cc.br)
		close(closed)
	}()
	return closed
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// A kept-alive connection is closed once it has been idle for
// IdleTimeout, and not before; its first request may take
// ReadHeaderTimeout to arrive.
func TestServeConnIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ok := func(*http.Request) string { return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" }
		ts := newTestServer(t, Config{ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 30 * time.Second},
			&upstreamRecorder{requests: make(chan *http.Request, 4), answer: ok})
		cc := ts.connect(t)
		defer cc.cancel()

		time.Sleep(5*time.Second - time.Nanosecond) // the first request comes late, but in time
		if resp, body := cc.get(t, "/first"); resp.StatusCode != http.StatusOK || body != "ok" {
			t.Fatalf("GET /first = %d %q, want 200 ok", resp.StatusCode, body)
		}
		if r := <-ts.up.requests; r.URL.Path != "/base/first" || r.Header.Get("X-Device-Id") != "dev-1" {
			t.Errorf("upstream got %s with X-Device-Id %q, want /base/first with dev-1", r.URL.Path, r.Header.Get("X-Device-Id"))
		}
		closed := cc.watchClose()
		synctest.Wait()
		time.Sleep(30*time.Second - time.Nanosecond)
		synctest.Wait()
		if isClosed(closed) {
			t.Fatal("the connection was closed before IdleTimeout")
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if !isClosed(closed) {
			t.Fatal("the connection is open after IdleTimeout")
		}
		if got := <-cc.handedOff; got != nil {
			t.Errorf("ServeConn returned %T, want nil (it closed the connection)", got)
		}
		ts.checkServed(t, Request{Method: "GET", Path: "/first", Status: 200})
	})
}

// The first request the fast path does not serve is handed back with the
// bytes already read in front, and nothing of it reaches the upstream.
func TestServeConnHandsOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ok := func(*http.Request) string { return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" }
		ts := newTestServer(t, Config{ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 30 * time.Second},
			&upstreamRecorder{requests: make(chan *http.Request, 4), answer: ok})
		cc := ts.connect(t)
		defer cc.cancel()

		const post = "POST /form HTTP/1.1\r\nHost: proxy.test\r\nContent-Length: 4\r\n\r\nbody" + "GET /after HTTP/1.1\r\nHost: proxy.test\r\n\r\n"
		if _, err := io.WriteString(cc, "GET /1 HTTP/1.1\r\nHost: proxy.test\r\n\r\n"+post); err != nil {
			t.Fatal(err)
		}
		if resp, _ := cc.read(t, http.MethodGet); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /1 = %d, want 200", resp.StatusCode)
		}
		rest := <-cc.handedOff
		if rest == nil {
			t.Fatal("ServeConn closed the connection, want it handed off")
		}
		defer rest.Close()
		if _, isTLS := rest.(*tls.Conn); isTLS {
			t.Error("the handed-off connection is a *tls.Conn, want the wrapper that replays")
		}
		if _, ok := rest.(interface{ ConnectionState() tls.ConnectionState }); !ok {
			t.Error("the handed-off connection has no ConnectionState")
		}
		got := make([]byte, len(post))
		if _, err := io.ReadFull(rest, got); err != nil || string(got) != post {
			t.Errorf("handed-off bytes %q (%v), want %q", got, err, post)
		}
		if n := len(ts.up.requests); n != 1 {
			t.Errorf("upstream requests = %d, want 1 (GET /1)", n)
		}
		ts.checkServed(t, Request{Method: "GET", Path: "/1", Status: 200})
	})
}

// Shutdown closes a connection that waits for a request at once, and lets
// a request in flight finish (with Connection: close) before its channel
// closes.
func TestServerShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &upstreamRecorder{requests: make(chan *http.Request, 4), release: make(chan struct{})}
		ts := newTestServer(t, Config{ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 30 * time.Second}, up)
		idle, busy := ts.connect(t), ts.connect(t)
		defer idle.cancel()
		defer busy.cancel()
		idleClosed := idle.watchClose()

		if _, err := io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: proxy.test\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		<-up.requests
		synctest.Wait()
		done := ts.Shutdown()
		synctest.Wait()
		if !isClosed(idleClosed) {
			t.Error("the idle connection is open after Shutdown")
		}
		if isClosed(done) {
			t.Fatal("Shutdown's channel closed with a request in flight")
		}
		close(up.release)
		resp, body := busy.read(t, http.MethodGet)
		if resp.StatusCode != http.StatusOK || body != "done" || !resp.Close {
			t.Errorf("the request in flight = %d %q (close %v), want 200 done, Connection: close", resp.StatusCode, body, resp.Close)
		}
		synctest.Wait()
		if !isClosed(done) {
			t.Error("Shutdown's channel is open with no request in flight")
		}
		busyClosed := busy.watchClose()
		synctest.Wait()
		if !isClosed(busyClosed) {
			t.Error("the busy connection is open after its request")
		}
		// A connection that comes after is closed before its first request.
		late := ts.connect(t)
		defer late.cancel()
		if got := <-late.handedOff; got != nil {
			t.Errorf("ServeConn after Shutdown returned %T, want nil", got)
		}
	})
}

// Ending Conn.Context (the proxy closing the connection) interrupts the
// upstream exchange at once, and the request is reported abandoned.
func TestServeConnContextInterruptsUpstream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &upstreamRecorder{requests: make(chan *http.Request, 4), release: make(chan struct{})}
		ts := newTestServer(t, Config{ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 30 * time.Second}, up)
		var abandoned []bool
		ts.upstreamFailed = func(_ *Conn, r Request, err error, a bool) { abandoned = append(abandoned, a) }
		cc := ts.connect(t)
		if _, err := io.WriteString(cc, "GET /slow HTTP/1.1\r\nHost: proxy.test\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		<-up.requests
		synctest.Wait()
		cc.cancel() // what closing the connection does
		cc.Close()
		if got := <-cc.handedOff; got != nil {
			t.Errorf("ServeConn returned %T, want nil", got)
		}
		close(up.release)
		if len(abandoned) != 1 || !abandoned[0] {
			t.Errorf("UpstreamFailed abandoned = %v, want [true]", abandoned)
		}
		ts.checkServed(t, Request{Method: "GET", Path: "/slow", Status: http.StatusBadGateway})
	})
}

func TestNewRefusesUnsupportedUpstreams(t *testing.T) {
	tr := NewTransport(TransportConfig{}, nil)
	tests := []struct {
		name     string
		upstream string
	}{
		{"https", "https://upstream.test"},
		{"escaped-path", "http://upstream.test/a%20b"},
		{"path-with-space", "http://upstream.test/a b"},
		{"unicode-host", "http://bücher.test"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(tc.upstream)
			if err != nil {
				t.Fatal(err)
			}
			_, err = New(Config{Upstream: u, ReadHeaderTimeout: time.Second, IdleTimeout: time.Second}, Deps{Transport: tr})
			if !errors.Is(err, ErrUnsupported) {
				t.Errorf("New(%s) error = %v, want %v", tc.upstream, err, ErrUnsupported)
			}
		})
	}
}
