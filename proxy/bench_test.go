package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fleetca/fleetca/internal/testenv"
)

// benchProxy serves an HTTP-mode proxy (no logger, no registry) in front
// of a tiny upstream.
func benchProxy(b *testing.B, cfg Config) (*testPKI, string) {
	b.Helper()
	pki := newPKI(b, "Fleet")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	b.Cleanup(up.Close)
	cfg.Upstream = up.URL
	cert := pki.server(b, "proxy")
	s, err := New(cfg, Deps{Roots: pki.roots, Certificate: &cert, Checker: newFakeChecker()})
	if err != nil {
		b.Fatal(err)
	}
	ln := testenv.Listen(b)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	b.Cleanup(func() { cancel(); <-done })
	return pki, ln.Addr().String()
}

// oneRequest makes a connection with a full handshake (cfg keeps no
// session), sends one request on it and reads the answer, so that the
// proxy has verified the client before the next one starts.
func oneRequest(b *testing.B, addr string, cfg *tls.Config) {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: proxy.test\r\nConnection: close\r\n\r\n"); err != nil {
		b.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("status %d", resp.StatusCode)
	}
}

// BenchmarkHandshake measures full handshakes (no resumption, P-256
// certificates on both sides), each followed by one proxied request, as
// a load generator without keep-alive does. "cached" is a device that
// reconnects (its chain verified before); "uncached" makes the proxy
// build and verify the chain every time (a one-entry cache and two
// alternating devices).
func BenchmarkHandshake(b *testing.B) {
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		for _, cache := range []string{"cached", "uncached"} {
			cfg := Config{}
			if cache == "uncached" {
				cfg.VerifyCacheSize = 1
			}
			name := fmt.Sprintf("%s/%s", map[uint16]string{tls.VersionTLS13: "tls13", tls.VersionTLS12: "tls12"}[version], cache)
			b.Run(name+"/serial", func(b *testing.B) {
				pki, addr := benchProxy(b, cfg)
				devs := []*tls.Config{pki.clientTLS(new(pki.device(b, "dev-1"))), pki.clientTLS(new(pki.device(b, "dev-2")))}
				for _, d := range devs {
					d.MaxVersion = version
					d.NextProtos = []string{"http/1.1"}
				}
				i := 0
				for b.Loop() {
					oneRequest(b, addr, devs[i%2])
					i++
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
			})
			for _, conc := range []int{8, 32} {
				b.Run(fmt.Sprintf("%s/concurrency=%d", name, conc), func(b *testing.B) {
					pki, addr := benchProxy(b, cfg)
					devs := []*tls.Config{pki.clientTLS(new(pki.device(b, "dev-1"))), pki.clientTLS(new(pki.device(b, "dev-2")))}
					for _, d := range devs {
						d.MaxVersion = version
						d.NextProtos = []string{"http/1.1"}
					}
					// conc clients share b.N connections (b.Loop has no
					// concurrent form; RunParallel's count follows GOMAXPROCS).
					var next atomic.Int64
					var wg sync.WaitGroup
					b.ResetTimer()
					for range conc {
						wg.Go(func() {
							for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
								oneRequest(b, addr, devs[i%2])
							}
						})
					}
					wg.Wait()
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
				})
			}
		}
	}
}

// BenchmarkRequestKeepAlive measures requests over kept-alive client
// connections: through the proxy (HTTP/1.1 on the fast path and with it
// off, and HTTP/2), and straight to the upstream for comparison.
func BenchmarkRequestKeepAlive(b *testing.B) {
	run := func(b *testing.B, client *http.Client, url string) {
		get := func() {
			resp, err := client.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
		b.Run("serial", func(b *testing.B) {
			for b.Loop() {
				get()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
		})
		b.Run("parallel", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					get()
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
		})
	}
	b.Run("direct", func(b *testing.B) {
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
		b.Cleanup(up.Close)
		tr := &http.Transport{MaxIdleConnsPerHost: 256}
		b.Cleanup(tr.CloseIdleConnections)
		run(b, &http.Client{Transport: tr}, up.URL+"/")
	})
	for _, tc := range []struct {
		name string
		h2   bool
		cfg  Config
	}{
		{"proxy-http1", false, Config{}},
		{"proxy-http1-net-http", false, Config{DisableHTTP1FastPath: true}},
		{"proxy-http2", true, Config{}},
	} {
		h2 := tc.h2
		b.Run(tc.name, func(b *testing.B) {
			pki, addr := benchProxy(b, tc.cfg)
			dev := pki.device(b, "dev-1")
			tr := &http.Transport{TLSClientConfig: pki.clientTLS(&dev), ForceAttemptHTTP2: h2, MaxIdleConnsPerHost: 256}
			if !h2 {
				tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			}
			b.Cleanup(tr.CloseIdleConnections)
			run(b, &http.Client{Transport: tr}, "https://"+addr+"/")
		})
	}
}
