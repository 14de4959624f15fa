package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// The upstream's answer: 200, "ok", and the X-Device-Id it was sent, so
// that a check can see each proxy pass the client's identity on.
const (
	headerSeenDevice = "X-Seen-Device-Id"
	upstreamBody     = "ok"
	upstreamPrefix   = "upstream listening on "
)

// serveUpstream is this program run with -as-upstream: the service behind
// both proxies, a net/http server on a loopback port the kernel picks. It
// writes "upstream listening on ADDR" to stdout and serves until killed.
// It is a process of its own so that its CPU is counted apart from the
// client's and the proxies', and it uses every core, as the proxies do
// (GOMAXPROCS is left alone); it costs both proxies the same.
func serveUpstream(stdout, stderr io.Writer) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(stderr, "upstream:", err)
		return 1
	}
	fmt.Fprintln(stdout, upstreamPrefix+ln.Addr().String())
	ctype, length, body := []string{"text/plain"}, []string{fmt.Sprint(len(upstreamBody))}, []byte(upstreamBody)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h["Content-Type"] = ctype
			h["Content-Length"] = length
			if id := r.Header.Get("X-Device-Id"); id != "" {
				h[headerSeenDevice] = []string{id}
			}
			w.Write(body)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       10 * time.Minute,
	}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(stderr, "upstream:", err)
		return 1
	}
	return 0
}

// parseUpstreamLine finds the line "upstream listening on ADDR\n" in the
// upstream's output and returns ADDR, or "" (also for a line not yet
// written to its end).
func parseUpstreamLine(b []byte) string {
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, upstreamPrefix)
		addr, complete := strings.CutSuffix(rest, "\n")
		if !ok || !complete {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err == nil {
			return addr
		}
	}
	return ""
}
