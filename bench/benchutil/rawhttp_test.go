package benchutil

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestReadHead(t *testing.T) {
	tests := []struct {
		name, head     string
		status, length int
		keep, fail     bool
	}{
		{"ok/http11-keep-alive", "HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\nContent-Length: 835\r\n\r\n", 200, 835, true, false},
		{"ok/http10-closes", "HTTP/1.0 200 OK\r\nContent-type: application/ocsp-response\r\nContent-Length: 835\r\n\r\n", 200, 835, false, false},
		{"ok/http11-close", "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\n", 500, -1, false, false},
		{"ok/http10-keep-alive", "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\ncontent-length: 3\r\n\r\n", 200, 3, true, false},
		{"fail/garbage", "SSH-2.0-OpenSSH\r\n\r\n", 0, 0, false, true},
		{"fail/bad-length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 0, 0, false, true},
		{"fail/too-long", "HTTP/1.1 200 OK\r\nContent-Length: 65537\r\n\r\n", 0, 0, false, true},
		{"fail/truncated", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", 0, 0, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, length, keep, err := ReadHead(bufio.NewReader(strings.NewReader(tc.head)), 64<<10)
			if (err != nil) != tc.fail {
				t.Fatalf("ReadHead() error = %v, want failure %v", err, tc.fail)
			}
			if !tc.fail && (status != tc.status || length != tc.length || keep != tc.keep) {
				t.Errorf("ReadHead() = %d, %d, %v, want %d, %d, %v", status, length, keep, tc.status, tc.length, tc.keep)
			}
		})
	}
}

func TestReadAnswer(t *testing.T) {
	tests := []struct {
		name, answer string
		status       int
		body         string
		keep, fail   bool
	}{
		{"ok/content-length", "HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nhello", 201, "hello", true, false},
		{"ok/chunked", "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n", 201, "hello, world", true, false},
		{"ok/chunked-trailer-close", "HTTP/1.1 409 Conflict\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n", 409, "0123456789", false, false},
		{"ok/until-close", "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\noops", 500, "oops", false, false},
		{"fail/chunk-size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 0, "", false, true},
		{"fail/chunk-no-crlf", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n", 0, "", false, true},
		{"fail/chunked-too-long", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n", 0, "", false, true},
		{"fail/chunked-truncated", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", 0, "", false, true},
		{"fail/no-end", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", 0, "", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body, keep, err := ReadAnswer(bufio.NewReader(strings.NewReader(tc.answer)), make([]byte, 3), 20)
			if (err != nil) != tc.fail {
				t.Fatalf("ReadAnswer() error = %v, want failure %v", err, tc.fail)
			}
			if !tc.fail && (status != tc.status || string(body) != tc.body || keep != tc.keep) {
				t.Errorf("ReadAnswer() = %d, %q, %v, want %d, %q, %v", status, body, keep, tc.status, tc.body, tc.keep)
			}
		})
	}
}

// TestConn drives the lean client against a TLS server: keep-alive on one
// connection, Connection: close, a chunked body, and a server that does
// not present the pinned certificate.
func TestConn(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			w.Write(bytes.Repeat([]byte("x"), 5000)) // more than net/http buffers: chunked
			return
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	c := NewConn(addr, PinnedTLS(nil, srv.Certificate().Raw, "the test server's certificate"), 10*time.Second, 1<<20)
	defer c.Close()
	get := func(path string, closing bool) string {
		req := "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n"
		if closing {
			req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
		}
		status, body, err := c.Do([]byte(req))
		if err != nil || status != 200 {
			t.Fatalf("GET %s: status %d, %v", path, status, err)
		}
		return string(body)
	}
	for range 3 {
		if got := get("/", false); got != "ok" {
			t.Errorf("GET / = %q, want ok", got)
		}
	}
	if got := get("/big", false); len(got) != 5000 {
		t.Errorf("GET /big = %d bytes, want 5000", len(got))
	}
	if c.Dials != 1 || c.NetConn() == nil {
		t.Errorf("four keep-alive requests dialled %d times (open: %v), want once, still open", c.Dials, c.NetConn() != nil)
	}
	get("/", true)
	if c.NetConn() != nil {
		t.Error("the connection is open after Connection: close")
	}

	other := NewConn(addr, PinnedTLS(nil, []byte("another certificate"), "the pinned certificate"), 10*time.Second, 1<<20)
	if err := other.Open(); err == nil || !strings.Contains(err.Error(), "did not present the pinned certificate") {
		t.Errorf("Open(another certificate pinned) error = %v, want the pin's", err)
	}
}
