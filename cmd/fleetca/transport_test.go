package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTransportRefusalsArePlainText pins what serve's listeners answer to
// requests that net/http refuses before any handler runs: plain text from
// Go's HTTP server, not problem JSON (issue 12, defect 12). web/doc.go
// ("Transport-level refusals") lists them; if one of these starts to come
// back as problem JSON, or with another status, update that list and the
// README with this test.
func TestTransportRefusalsArePlainText(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	if r := runCLI(t, nil, initArgs(dir, "--no-password")...); r.code != exitOK {
		t.Fatalf("init: exit %d, want 0; stderr: %q", r.code, r.stderr)
	}
	httpsURL, httpURL, stop := startInProcess(t, dir, nil)
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("runServe after cancel: %v, want nil", err)
		}
	}()
	hostOf := func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return u.Host
	}
	plain, tls := hostOf(httpURL), hostOf(httpsURL)
	bigHeader := "X-Big: " + strings.Repeat("a", maxHeaderBytes+8192) + "\r\n"
	for _, tc := range []struct {
		name, addr, request string
		status              int
		ctype               string
	}{
		// The control: a request that reaches echo gets problem JSON.
		{"handler/unknown-path", plain, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404, "application/problem+json"},
		{"transport/headers-over-max-header-bytes", plain, "GET /healthz HTTP/1.1\r\nHost: x\r\n" + bigHeader + "\r\n", 431, "text/plain; charset=utf-8"},
		{"transport/nul-in-request-line", plain, "GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "text/plain; charset=utf-8"},
		{"transport/malformed-request-line", plain, "HELLO\r\n\r\n", 400, "text/plain; charset=utf-8"},
		{"transport/bad-header-name", plain, "GET /healthz HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n", 400, "text/plain; charset=utf-8"},
		{"transport/no-host-header", plain, "GET /healthz HTTP/1.1\r\n\r\n", 400, "text/plain; charset=utf-8"},
		{"transport/unsupported-version", plain, "GET /healthz HTTP/3.0\r\nHost: x\r\n\r\n", 505, "text/plain; charset=utf-8"},
		{"transport/unknown-expectation", plain, "POST /ocsp HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\nx", 417, ""},
		{"transport/unknown-transfer-encoding", plain, "POST /ocsp HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "text/plain; charset=utf-8"},
		{"transport/conflicting-content-lengths", plain, "POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx", 400, "text/plain; charset=utf-8"},
		{"transport/plain-http-to-https", tls, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
				t.Fatal(err)
			}
			go io.WriteString(conn, tc.request) // the server may answer before it has read it all
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("read response: %v", err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != tc.ctype {
				t.Errorf("status %d, Content-Type %q (body %q); want %d, %q", resp.StatusCode, resp.Header.Get("Content-Type"), body, tc.status, tc.ctype)
			}
		})
	}
}
