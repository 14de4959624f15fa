package fastpath

import (
	"bufio"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseRequestHead(t *testing.T) {
	const host = "Host: proxy.test\r\n"
	tests := []struct {
		name string
		head string
		want *requestHead // nil: the slow path's
	}{
		{"ok/get", "GET /a/b HTTP/1.1\r\n" + host + "\r\n",
			&requestHead{method: "GET", path: "/a/b", host: "proxy.test", fields: []Field{{"Host", "proxy.test"}}}},
		{"ok/query-and-fields", "HEAD /p?x=1&y=%20 HTTP/1.1\r\nhost: h:1\r\nx-a:  v \t\r\nX-A: w\r\nConnection: keep-alive, Close\r\n\r\n",
			&requestHead{method: "HEAD", path: "/p", query: "?x=1&y=%20", host: "h:1", close: true,
				fields: []Field{{"Host", "h:1"}, {"X-A", "v"}, {"X-A", "w"}, {"Connection", "keep-alive, Close"}}}},
		{"ok/empty-query", "OPTIONS /? HTTP/1.1\r\n" + host + "\r\n",
			&requestHead{method: "OPTIONS", path: "/", query: "?", host: "proxy.test", fields: []Field{{"Host", "proxy.test"}}}},
		{"ok/content-length-0", "TRACE / HTTP/1.1\r\n" + host + "Content-Length: 0\r\n\r\n",
			&requestHead{method: "TRACE", path: "/", host: "proxy.test", fields: []Field{{"Host", "proxy.test"}, {"Content-Length", "0"}}}},
		{"ok/obs-text-value", "GET / HTTP/1.1\r\n" + host + "X: caf\xc3\xa9\r\n\r\n",
			&requestHead{method: "GET", path: "/", host: "proxy.test", fields: []Field{{"Host", "proxy.test"}, {"X", "caf\xc3\xa9"}}}},
		{"slow/post", "POST / HTTP/1.1\r\n" + host + "\r\n", nil},
		{"slow/http10", "GET / HTTP/1.0\r\n" + host + "\r\n", nil},
		{"slow/h2-preface", "PRI * HTTP/2.0\r\n\r\n", nil},
		{"slow/absolute-form", "GET http://x/ HTTP/1.1\r\n" + host + "\r\n", nil},
		{"slow/asterisk", "OPTIONS * HTTP/1.1\r\n" + host + "\r\n", nil},
		{"slow/percent-path", "GET /a%2Fb HTTP/1.1\r\n" + host + "\r\n", nil},
		{"slow/space-path", "GET /a b HTTP/1.1\r\n" + host + "\r\n", nil},
		{"slow/semicolon-query", "GET /?a=1;b=2 HTTP/1.1\r\n" + host + "\r\n", nil},
		{"slow/bad-escape-query", "GET /?a=%zz HTTP/1.1\r\n" + host + "\r\n", nil},
		{"slow/double-space", "GET  / HTTP/1.1\r\n" + host + "\r\n", nil},
		{"slow/bare-lf", "GET / HTTP/1.1\n" + "Host: x\n\n", nil},
		{"slow/bare-lf-header", "GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n", nil},
		{"slow/lone-cr", "GET / HTTP/1.1\r\n" + host + "X: a\rb\r\n\r\n", nil},
		{"slow/no-host", "GET / HTTP/1.1\r\n\r\n", nil},
		{"slow/two-hosts", "GET / HTTP/1.1\r\n" + host + host + "\r\n", nil},
		{"slow/empty-host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", nil},
		{"slow/bad-host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", nil},
		{"slow/body", "GET / HTTP/1.1\r\n" + host + "Content-Length: 3\r\n\r\n", nil},
		{"slow/two-content-lengths", "GET / HTTP/1.1\r\n" + host + "Content-Length: 0\r\nContent-Length: 0\r\n\r\n", nil},
		{"slow/chunked", "GET / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n", nil},
		{"slow/expect", "GET / HTTP/1.1\r\n" + host + "Expect: 100-continue\r\n\r\n", nil},
		{"slow/upgrade", "GET / HTTP/1.1\r\n" + host + "Upgrade: websocket\r\n\r\n", nil},
		{"slow/connection-upgrade", "GET / HTTP/1.1\r\n" + host + "Connection: Upgrade\r\n\r\n", nil},
		{"slow/space-before-colon", "GET / HTTP/1.1\r\n" + host + "X : y\r\n\r\n", nil},
		{"slow/obs-fold", "GET / HTTP/1.1\r\n" + host + "X: a\r\n b\r\n\r\n", nil},
		{"slow/leading-space-line", "GET / HTTP/1.1\r\n Host: x\r\n\r\n", nil},
		{"slow/control-in-value", "GET / HTTP/1.1\r\n" + host + "X: a\x01b\r\n\r\n", nil},
		{"slow/del-in-value", "GET / HTTP/1.1\r\n" + host + "X: a\x7fb\r\n\r\n", nil},
		{"slow/no-colon", "GET / HTTP/1.1\r\n" + host + "X\r\n\r\n", nil},
		{"slow/empty-name", "GET / HTTP/1.1\r\n" + host + ": v\r\n\r\n", nil},
		{"slow/unterminated", "GET / HTTP/1.1\r\n" + host, nil},
		{"slow/trailing-bytes", "GET / HTTP/1.1\r\n" + host + "\r\nX", nil},
		{"slow/lowercase-method", "get / HTTP/1.1\r\n" + host + "\r\n", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rh requestHead
			ok := parseRequestHead(tc.head, &rh)
			if ok != (tc.want != nil) {
				t.Fatalf("parseRequestHead(%q) = %v, want %v", tc.head, ok, tc.want != nil)
			}
			if !ok {
				return
			}
			if diff := cmp.Diff(*tc.want, rh, cmp.AllowUnexported(requestHead{})); diff != "" {
				t.Errorf("parseRequestHead(%q) (-want +got):\n%s", tc.head, diff)
			}
		})
	}
}

func TestHeadEnd(t *testing.T) {
	tests := []struct {
		name string
		b    string
		from int
		want int
	}{
		{"crlf", "GET / HTTP/1.1\r\nA: b\r\n\r\nnext", 0, 24},
		{"lf", "GET / HTTP/1.1\nA: b\n\nnext", 0, 21},
		{"incomplete", "GET / HTTP/1.1\r\nA: b\r\n", 0, 0},
		{"incomplete-cr", "GET / HTTP/1.1\r\nA: b\r\n\r", 0, 0},
		{"resumed-mid-line", "GET / HTTP/1.1\r\nA: b\r\n\r\n", 18, 24},
		{"resumed-in-crlf", "GET / HTTP/1.1\r\nA: b\r\n\r\n", 23, 24},
		{"empty-first-line", "\r\nGET", 0, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := headEnd([]byte(tc.b), tc.from); got != tc.want {
				t.Errorf("headEnd(%q, %d) = %d, want %d", tc.b, tc.from, got, tc.want)
			}
		})
	}
}

// TestPlainPathBytes checks plainPathByte against net/url: a plain byte
// is kept as it is by url.ParseRequestURI and URL.EscapedPath.
func TestPlainPathBytes(t *testing.T) {
	for c := 0; c < 256; c++ {
		raw := "/a" + string([]byte{byte(c)}) + "b"
		u, err := url.ParseRequestURI(raw)
		kept := err == nil && u.RawPath == "" && u.Path == raw && u.EscapedPath() == raw && u.RawQuery == "" && !u.ForceQuery
		if plainPathByte(byte(c)) && !kept {
			t.Errorf("plainPathByte(%q) = true, but net/url does not keep %q as it is", byte(c), raw)
		}
	}
}

// FuzzParseRequestHead checks that every head the fast path accepts is one
// net/http's server reads the same way: the same method, target, host,
// headers and Connection: close, and no body.
func FuzzParseRequestHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: proxy.test\r\n\r\n",
		"HEAD /a/b?c=d&e=%41 HTTP/1.1\r\nHost: h:1\r\nConnection: close\r\nX-A: 1\r\nx-a: 2\r\n\r\n",
		"OPTIONS /? HTTP/1.1\r\nHost: [::1]:8\r\nContent-Length: 0\r\nUser-Agent: u\r\n\r\n",
		"TRACE /x HTTP/1.1\r\nHost: x\r\nTe: trailers\r\nPragma: no-cache\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, head string) {
		var rh requestHead
		if !parseRequestHead(head, &rh) {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
		if err != nil {
			t.Fatalf("accepted %q, which net/http refuses: %v", head, err)
		}
		if req.Method != rh.method || req.RequestURI != rh.path+rh.query || req.Host != rh.host || req.Close != rh.close {
			t.Fatalf("%q: net/http reads %s %s host %q close %v; parseRequestHead %s %s host %q close %v",
				head, req.Method, req.RequestURI, req.Host, req.Close, rh.method, rh.path+rh.query, rh.host, rh.close)
		}
		if req.URL.Path != rh.path || req.URL.RawPath != "" {
			t.Fatalf("%q: net/http's path %q (raw %q), want %q", head, req.URL.Path, req.URL.RawPath, rh.path)
		}
		if req.ContentLength != 0 || len(req.TransferEncoding) != 0 {
			t.Fatalf("%q: net/http sees a body (length %d, encoding %v)", head, req.ContentLength, req.TransferEncoding)
		}
		got := http.Header{}
		for _, fl := range rh.fields {
			if fl.Name != "Host" { // net/http moves it to req.Host
				got[fl.Name] = append(got[fl.Name], fl.Value)
			}
		}
		// net/http adds it as it reads; the fast path as it writes upstream.
		if p := got["Pragma"]; len(p) > 0 && p[0] == "no-cache" && got["Cache-Control"] == nil {
			got["Cache-Control"] = []string{"no-cache"}
		}
		if diff := cmp.Diff(req.Header, got); diff != "" {
			t.Fatalf("%q: headers (-net/http +parseRequestHead):\n%s", head, diff)
		}
	})
}
