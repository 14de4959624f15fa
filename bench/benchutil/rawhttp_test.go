package benchutil

import (
	"bufio"
	"strings"
	"testing"
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
