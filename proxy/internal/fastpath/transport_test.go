package fastpath

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fleetca/fleetca/internal/testenv"
)

// fallbackRecorder is a Transport's fallback that counts its requests.
type fallbackRecorder struct{ n atomic.Int64 }

func (f *fallbackRecorder) RoundTrip(*http.Request) (*http.Response, error) {
	f.n.Add(1)
	return &http.Response{StatusCode: http.StatusTeapot, Body: http.NoBody}, nil
}

func newTestTransport(addr string, fb http.RoundTripper) *Transport {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return NewTransport(TransportConfig{Addr: addr, Dial: dialer.DialContext, HeaderTimeout: 5 * time.Second,
		MaxHeaderBytes: 1 << 10, MaxIdle: 4, IdleTimeout: time.Minute, BufferSize: 4096}, fb)
}

// scripted serves each accepted connection with serve, in its own goroutine.
func scripted(t *testing.T, serve func(c net.Conn, br *bufio.Reader)) string {
	ln := testenv.Listen(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c, bufio.NewReader(c))
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(t *testing.T, rt http.RoundTripper, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip(%s %s) error %v, want none", req.Method, req.URL, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return resp, string(body)
}

func TestTransportReusesConnections(t *testing.T) {
	var conns atomic.Int64
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept-Encoding") != "" {
			t.Errorf("upstream got Accept-Encoding %q, want none", r.Header.Get("Accept-Encoding"))
		}
		io.WriteString(w, "ok:"+r.URL.Path)
	}))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	up.Start()
	t.Cleanup(up.Close)
	fb := &fallbackRecorder{}
	rt := newTestTransport(up.Listener.Addr().String(), fb)
	t.Cleanup(rt.CloseIdleConnections)
	for _, path := range []string{"/a", "/b", "/c"} {
		req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, up.URL+path, nil)
		req.RequestURI, req.Body = "", nil
		if resp, body := roundTrip(t, rt, req); resp.StatusCode != http.StatusOK || body != "ok:"+path {
			t.Errorf("GET %s = %d %q, want 200 %q", path, resp.StatusCode, body, "ok:"+path)
		}
	}
	if got := conns.Load(); got != 1 {
		t.Errorf("upstream connections = %d, want 1", got)
	}
	if got := fb.n.Load(); got != 0 {
		t.Errorf("fallback requests = %d, want 0", got)
	}
}

func TestTransportFallback(t *testing.T) {
	fb := &fallbackRecorder{}
	rt := newTestTransport("127.0.0.1:1", fb)
	for _, tc := range []struct {
		name string
		req  func() *http.Request
	}{
		{"body", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, "http://up.test/", strings.NewReader("x"))
			return r
		}},
		{"post-without-body", func() *http.Request { r, _ := http.NewRequest(http.MethodPost, "http://up.test/", nil); return r }},
		{"upgrade", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, "http://up.test/", nil)
			r.Header.Set("Upgrade", "websocket")
			return r
		}},
		{"expect", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, "http://up.test/", nil)
			r.Header.Set("Expect", "100-continue")
			return r
		}},
		{"https", func() *http.Request { r, _ := http.NewRequest(http.MethodGet, "https://up.test/", nil); return r }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := fb.n.Load()
			if resp, _ := roundTrip(t, rt, tc.req()); resp.StatusCode != http.StatusTeapot {
				t.Errorf("status %d, want %d (the fallback's)", resp.StatusCode, http.StatusTeapot)
			}
			if fb.n.Load() != before+1 {
				t.Errorf("fallback not used")
			}
		})
	}
}

// An upstream that closes a kept-alive connection after one answer: the
// next request, on the stale pooled connection, is retried on a new one.
func TestTransportRetriesStaleConnection(t *testing.T) {
	var conns atomic.Int64
	closed := make(chan struct{}, 3)
	addr := scripted(t, func(c net.Conn, br *bufio.Reader) {
		conns.Add(1)
		if _, err := http.ReadRequest(br); err == nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
		c.Close()
		closed <- struct{}{}
	})
	rt := newTestTransport(addr, &fallbackRecorder{})
	t.Cleanup(rt.CloseIdleConnections)
	for i := range 3 {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+"/", nil)
		if resp, body := roundTrip(t, rt, req); resp.StatusCode != http.StatusOK || body != "ok" {
			t.Fatalf("request %d = %d %q, want 200 ok", i, resp.StatusCode, body)
		}
		<-closed // the pooled connection is stale now
	}
	if got := conns.Load(); got != 3 {
		t.Errorf("upstream connections = %d, want 3 (one per request)", got)
	}
}

func TestTransportResponseHeadersBounded(t *testing.T) {
	addr := scripted(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("a", 4<<10)+"\r\nContent-Length: 0\r\n\r\n")
	})
	rt := newTestTransport(addr, &fallbackRecorder{})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+"/", nil)
	if _, err := rt.RoundTrip(req); !errors.Is(err, errHeadersTooLarge) {
		t.Errorf("RoundTrip error = %v, want %v", err, errHeadersTooLarge)
	}
}

func TestTransport1xx(t *testing.T) {
	addr := scripted(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	rt := newTestTransport(addr, &fallbackRecorder{})
	t.Cleanup(rt.CloseIdleConnections)
	var got []int
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		got = append(got, code)
		if h.Get("Link") == "" {
			t.Errorf("%d has no Link header", code)
		}
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), http.MethodGet, "http://"+addr+"/", nil)
	if resp, body := roundTrip(t, rt, req); resp.StatusCode != http.StatusOK || body != "ok" {
		t.Errorf("final answer %d %q, want 200 ok", resp.StatusCode, body)
	}
	if len(got) != 1 || got[0] != http.StatusEarlyHints {
		t.Errorf("1xx seen %v, want [103]", got)
	}
}

// Idle connections older than IdleTimeout are closed when another one is
// put back, even if get never reaches them.
func TestTransportIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := newTestTransport("127.0.0.1:1", &fallbackRecorder{})
		var peers []net.Conn
		conn := func() *upConn {
			a, b := net.Pipe()
			peers = append(peers, b)
			c := &upConn{nc: a}
			c.br = bufio.NewReader(c)
			return c
		}
		old := conn()
		rt.put(old)
		time.Sleep(rt.cfg.IdleTimeout)
		rt.put(conn())
		if len(rt.idle) != 1 || rt.idle[0] == old {
			t.Fatalf("idle after the timeout: %d connections (old one kept: %v), want only the new one", len(rt.idle), len(rt.idle) > 0 && rt.idle[0] == old)
		}
		if _, err := peers[0].Write([]byte("x")); err == nil {
			t.Errorf("the expired connection is still open")
		}
		rt.CloseIdleConnections()
	})
}
