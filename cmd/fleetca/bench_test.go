package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/enroll"
	"github.com/fleetca/fleetca/internal/testenv"
	"github.com/fleetca/fleetca/store/boltstore"
)

// The benchmarks here profile enrollment in process, to find where the
// server's CPU goes beyond the crypto floor; the headline figures (`make
// bench`) come from bench/enrollload, in the benchmarks' own module, which
// runs serve as its own process and measures its CPU time.
// Profile with, for example:
//
//	go test ./cmd/fleetca -run '^$' -bench 'EnrollHTTPS/h1/c=32' -benchtime 20000x -cpuprofile cpu.out
//	go tool pprof -top -tagignore side=client,setup cpu.out
//
// The load generator's goroutines carry the pprof label side=client, and
// those that make CSRs before the timer starts side=setup, so
// -tagignore side=client,setup leaves (nearly) the server alone: the Go
// runtime's GC workers and timer-started goroutines (bbolt's batch commits)
// carry whatever label they inherit.
//
// Every enrollment needs a new device and a new key, so the CSRs are made
// before the timer starts, b.N of them: hence b.N loops rather than
// b.Loop.

// BenchmarkEnrollHTTPS measures POST /v1/enroll through the real serve
// wiring (runServe, with its TLS listener, echo, logging to a file,
// metrics and a bbolt store with fsync), driven over loopback by
// keep-alive clients with 1 or 32 requests in flight, over HTTP/1.1 (one
// connection per worker) and HTTP/2 (one connection).
func BenchmarkEnrollHTTPS(b *testing.B) {
	bs := benchStartServe(b)
	for _, proto := range []string{"h1", "h2"} {
		for _, conc := range []int{1, 32} {
			b.Run(fmt.Sprintf("%s/c=%d", proto, conc), func(b *testing.B) {
				client := benchClient(bs.roots, conc, proto)
				defer client.CloseIdleConnections()
				benchOpenConns(b, client, bs.httpsURL, conc)
				jobs := bs.jobs(b, b.N)
				url := bs.httpsURL + "/v1/enroll"
				b.ReportAllocs()
				b.ResetTimer()
				stop := benchProfile(b)
				start := time.Now()
				benchDrive(b, "client", conc, jobs, func(j benchJob) error { return benchPost(b.Context(), client, url, j) })
				stop()
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "enrollments/s")
			})
		}
	}
}

// BenchmarkEnrollService calls enroll.Service.Enroll directly (CSR policy,
// signing, bbolt), with serve's logger, 32 calls in flight: what is left
// of BenchmarkEnrollHTTPS without TLS, HTTP and echo. nosync turns bbolt's
// fsync off, to show what the disk costs.
func BenchmarkEnrollService(b *testing.B) {
	for _, noSync := range []bool{false, true} {
		name := "fsync"
		if noSync {
			name = "nosync"
		}
		b.Run(name+"/c=32", func(b *testing.B) {
			svc, token := benchService(b, noSync)
			ders := make([][]byte, b.N)
			benchParallel(b.N, func(i int) {
				_, der := benchCSR(b, fmt.Sprintf("b-%08d", i+1))
				ders[i] = der
			})
			jobs := make([]benchJob, b.N)
			for i := range jobs {
				jobs[i] = benchJob{token: token, body: ders[i]}
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			benchDrive(b, "service", 32, jobs, func(j benchJob) error {
				_, err := svc.Enroll(b.Context(), j.token, j.body)
				return err
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "enrollments/s")
		})
	}
}

// benchServe is a CA served in process by runServe.
type benchServe struct {
	dir, httpsURL string
	httpURL       string // the plain-HTTP listener's (OCSP, CRL)
	roots         *x509.CertPool
	seq           int // device IDs handed out
	token         string
	tokenLeft     int
}

// benchStartServe creates a CA with the real init command and serves it
// with runServe on loopback listeners until the benchmark ends. Its JSON
// log goes to a file, as under a service manager.
func benchStartServe(b *testing.B) *benchServe { return benchStartServeWith(b, serveOptions{}) }

// benchStartServeWith is benchStartServe with more serve options (its
// dir, listeners and ready are set here).
func benchStartServeWith(b *testing.B, opts serveOptions) *benchServe {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "ca")
	benchCLI(b, nil, "init", "--dir", dir, "--name", "Bench", "--no-password",
		"--https-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0")
	logFile, err := os.Create(filepath.Join(b.TempDir(), "serve.log"))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(b.Context())
	urls := make(chan [2]string, 1)
	done := make(chan error, 1)
	e := env{stdout: io.Discard, stderr: logFile, stdin: strings.NewReader(""), getenv: func(string) string { return "" }}
	opts.dir, opts.httpsListener, opts.httpListener = dir, testenv.Listen(b), testenv.Listen(b)
	opts.ready = func(httpsURL, httpURL string) { urls <- [2]string{httpsURL, httpURL} }
	// Goroutines the server starts inherit the label.
	pprof.Do(ctx, pprof.Labels("side", "server"), func(ctx context.Context) {
		go func() { done <- runServe(ctx, e, opts) }()
	})
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("runServe: %v", err)
		}
		logFile.Close()
	})
	bs := &benchServe{dir: dir}
	select {
	case u := <-urls:
		bs.httpsURL, bs.httpURL = u[0], u[1]
	case err := <-done:
		b.Fatalf("runServe ended before listening: %v", err)
	}
	pemBytes, err := os.ReadFile(filepath.Join(dir, "root.pem"))
	if err != nil {
		b.Fatal(err)
	}
	bs.roots = x509.NewCertPool()
	bs.roots.AppendCertsFromPEM(pemBytes)
	return bs
}

// benchCLI runs a fleetca command line and returns its stdout; it fails
// the benchmark unless the command succeeds.
func benchCLI(b *testing.B, vars map[string]string, args ...string) string {
	b.Helper()
	var stdout, stderr bytes.Buffer
	e := env{stdout: &stdout, stderr: &stderr, stdin: strings.NewReader(""), getenv: func(k string) string { return vars[k] }}
	if code := run(b.Context(), args, e); code != exitOK {
		b.Fatalf("fleetca %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
	}
	return stdout.String()
}

// benchTokenUses is the uses of each pattern token, enroll.max_token_uses'
// default ceiling.
const benchTokenUses = 100_000

// benchJob is one enrollment: a token and a CSR (PEM for HTTP, DER for
// the service).
type benchJob struct {
	token string
	body  []byte
}

// jobs makes n enrollments with new device IDs and keys, minting pattern
// tokens with `fleetca token create` as uses run out.
func (bs *benchServe) jobs(b *testing.B, n int) []benchJob {
	b.Helper()
	jobs := make([]benchJob, n)
	for i := range jobs {
		if bs.tokenLeft == 0 {
			out := benchCLI(b, map[string]string{"FLEETCA_URL": bs.httpsURL}, "token", "create", "--dir", bs.dir,
				"--device-pattern", "b-*", "--uses", fmt.Sprint(benchTokenUses), "--ttl", "1h")
			bs.token, bs.tokenLeft = strings.TrimSpace(out), benchTokenUses
		}
		jobs[i].token = bs.token
		bs.tokenLeft--
	}
	base := bs.seq
	bs.seq += n
	benchParallel(n, func(i int) {
		pemCSR, _ := benchCSR(b, fmt.Sprintf("b-%08d", base+i+1))
		jobs[i].body = pemCSR
	})
	return jobs
}

// benchService builds the enrollment service as runServe does, without
// HTTP, on a new CA, and mints a pattern token with 100,000 uses.
func benchService(b *testing.B, noSync bool) (*enroll.Service, string) {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "ca")
	benchCLI(b, nil, "init", "--dir", dir, "--name", "Bench", "--no-password")
	cfg, err := loadConfig(dir)
	if err != nil {
		b.Fatal(err)
	}
	st, err := boltstore.Open(filepath.Join(dir, cfg.Store.Path), boltstore.Options{NoSync: noSync})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	logFile, err := os.Create(filepath.Join(b.TempDir(), "service.log"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { logFile.Close() })
	logger := benchLogger(logFile)
	authority, err := ca.New(b.Context(), cfg.CA, ca.Deps{Dir: dir, PublicURL: cfg.Server.PublicURL, TrustDomain: cfg.TrustDomain, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { authority.Close() })
	svc, err := enroll.New(cfg.Enroll, enroll.Deps{Store: st, CA: authority, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	if b.N > benchTokenUses {
		b.Fatalf("b.N = %d is more than one token's %d uses; use a shorter -benchtime", b.N, benchTokenUses)
	}
	token, _, err := svc.CreateToken(b.Context(), enroll.TokenRequest{DevicePattern: "b-*", Uses: benchTokenUses, TTL: new(time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	return svc, string(token)
}

// benchLogger is serve's logger: JSON lines at Info.
func benchLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// benchCSR returns a CSR for CN=id with a new P-256 key, as PEM and DER.
func benchCSR(b *testing.B, id string) (pemCSR, der []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Error(err)
		return nil, nil
	}
	der, err = x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
	if err != nil {
		b.Error(err)
		return nil, nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), der
}

// benchParallel runs f(0..n-1) on every core, labelled side=setup for
// the profiler.
func benchParallel(n int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	pprof.Do(context.Background(), pprof.Labels("side", "setup"), func(context.Context) {
		for range runtime.GOMAXPROCS(0) {
			wg.Go(func() {
				for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
					f(i)
				}
			})
		}
	})
	wg.Wait()
}

// benchDrive runs conc workers, labelled side=<side> for the profiler,
// that do jobs in order; the first failure fails the benchmark.
func benchDrive(b *testing.B, side string, conc int, jobs []benchJob, do func(benchJob) error) {
	var next atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	pprof.Do(b.Context(), pprof.Labels("side", side), func(context.Context) {
		for range conc {
			wg.Go(func() {
				for i := next.Add(1) - 1; i < int64(len(jobs)) && !failed.Load(); i = next.Add(1) - 1 {
					if err := do(jobs[i]); err != nil && failed.CompareAndSwap(false, true) {
						b.Errorf("enrollment %d: %v", i, err)
					}
				}
			})
		}
	})
	wg.Wait()
}

// benchClient is a keep-alive client for conc workers: HTTP/1.1 with a
// connection each, or HTTP/2 on one connection.
func benchClient(roots *x509.CertPool, conc int, proto string) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		MaxIdleConns:        conc,
		MaxIdleConnsPerHost: conc,
		DisableCompression:  true,
		Protocols:           new(http.Protocols),
	}
	if proto == "h2" {
		tr.Protocols.SetHTTP2(true)
	} else {
		tr.Protocols.SetHTTP1(true)
		tr.MaxConnsPerHost = conc
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// benchOpenConns opens the client's connections (TLS handshakes included)
// before the timer starts, with conc concurrent GET /healthz. The
// transport's goroutines for them inherit the label side=client.
func benchOpenConns(b *testing.B, client *http.Client, base string, conc int) {
	b.Helper()
	var wg sync.WaitGroup
	pprof.Do(b.Context(), pprof.Labels("side", "client"), func(context.Context) {
		for range conc {
			wg.Go(func() {
				resp, err := client.Get(base + "/healthz")
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			})
		}
	})
	wg.Wait()
}

// benchPost sends one enrollment and wants 201.
func benchPost(ctx context.Context, client *http.Client, url string, j benchJob) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(j.body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+j.token)
	req.Header.Set("Content-Type", "application/x-pem-file")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	return nil
}
