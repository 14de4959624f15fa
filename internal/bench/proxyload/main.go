// Command proxyload is the proxy benchmark behind `make bench`: fleetca
// proxy against nginx doing the same job, side by side in the same run,
// in front of the same upstream.
//
// Setup, on loopback only: it builds fleetca, creates a CA with `fleetca
// init --no-password` and serves it (`fleetca serve`, its own process),
// issues the proxies' server certificate with `fleetca cert server --dns
// localhost --ip 127.0.0.1`, and enrolls P-256 devices through POST
// /v1/enroll. The upstream is this program run again as its own process
// (-as-upstream: net/http answering 200 "ok", echoing the X-Device-Id it
// was sent). In front of it:
//
//   - fleetca proxy (its own process): --ca root+intermediate, the server
//     certificate, --crl-url the CA's HTTP listener and --revocation-feed its HTTPS
//     listener; a JSON access-log line per request, to a file.
//   - nginx, installed from Debian's packages if missing (nginx-light),
//     from a generated configuration: as many workers as CPUs, TLS with
//     the same certificate, ssl_verify_client on against the same bundle,
//     ssl_crl with the device CRL and the root CRL (nginx wants a CRL for
//     every CA of the chain), no session cache and no tickets, proxy_pass
//     over keep-alive upstream connections, the same identity headers, and
//     an access-log line per request, to a file.
//
// Phases, each interleaving the targets repetition by repetition:
//
//  1. handshake: full handshakes per second (no resumption; TLS 1.3,
//     X25519), one request with Connection: close per connection, at
//     concurrency 8 and 32.
//  2. keepalive: requests per second over kept-alive connections, one per
//     worker: direct to the upstream, through fleetca proxy, through nginx.
//  3. latency: one request at a time over a kept-alive connection: p50 and
//     p99 through each proxy, minus those of a direct call.
//  4. crl: a CRL of -crl-size (default 1M) random serials, plus one
//     device's (the canary), signed in process with the data directory's
//     intermediate. A second fleetca proxy and a second nginx, started on
//     the CA's small CRL, are switched to it (SIGHUP to each): how long
//     until the canary is refused, and their memory after. Then
//     handshakes per second with and without it, for both.
//  5. revoke: for -revocations devices one at a time, with a kept-alive
//     connection open through fleetca proxy: the time from the admin API's
//     revoke call returning until a new handshake with the device is
//     refused (tried every -poll), and until the open connection is closed.
//  6. verifier: nginx as `fleetca export nginx` configures it, not from
//     proxyload's template, on the CA's CRL as the revoke phase left it: one export per row, each on its own port,
//     included as written in a minimal main configuration (the no-CRL
//     row removes the ssl_crl line from a copy; the OCSP-cache row
//     uncomments ssl_ocsp_cache in a copy). Full handshakes per second
//     at -verifier-concurrency with (a) no CRL, (b) the CA's CRL, (c) a
//     CRL of -verifier-crl-size (default 100k) entries, (d) ssl_ocsp
//     against the CA's responder, with and without ssl_ocsp_cache, and
//     (e) a CRL of 1/-verifier-partitions of c, as a partitioned CRL or
//     shorter certificate lifetimes would give each verifier. c and e
//     are signed in process and installed by `fleetca crl sync --once
//     --exec '<nginx -s reload>'` from a small server that also serves
//     the CA's root CRL; the time until the canary is refused, split
//     into the sync command and nginx's reload, and nginx's memory, for
//     the switch to c and back.
//
// Usage, from the module root (`make bench` runs it with the defaults):
//
//	go run ./internal/bench/proxyload [-duration 4s] [-reps 3] [-phases handshake,keepalive,latency,crl,revoke,verifier]
//	    [-crl-size 1M] [-verifier-crl-size 100k] [-nginx nginx|none] [-fleetca BINARY] [-keep] [-strict]
//
// The defaults take about four and a half minutes on two cores, the
// verifier phase alone (-phases verifier) about 80 seconds. The client, the
// proxies, the upstream and the CA share the machine's cores; the table
// shows each side's CPU per operation, and the CPU that other processes
// took ("other"). A missed target is reported, not an error (exit 0,
// unless -strict); a failed request where none should fail is an error
// (exit 1).
//
// It is a development tool, Linux only (it reads /proc), and never shipped.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/fleetca/fleetca/internal/bench/benchutil"
)

// Targets and reference figures, from the issue that asked for the benchmark.
const (
	targetHandshakeRatio = 1.2  // fleetca proxy handshakes/s over nginx's
	targetKeepAliveRatio = 0.8  // fleetca proxy keep-alive requests/s over nginx's
	targetCRLRatio       = 0.95 // fleetca proxy handshakes/s with the big CRL over without
	targetRevokeP99      = 2 * time.Second

	// nginx on the machine, quoted, not measured here.
	quotedNginxHS      = 615
	quotedNginxHS1M    = 41
	quotedNginxReload  = 3 * time.Second
	quotedNginxReloadM = 750 // MiB
)

// options are the command line.
type options struct {
	benchutil.Flags
	phases map[string]bool

	duration    time.Duration
	warmup      time.Duration
	reps        int
	hsConc      []int
	kaConc      []int
	latencyN    int
	devices     int
	crlSize     int
	crlConc     int
	revocations int
	poll        time.Duration
	deadline    time.Duration
	nginx       string
	install     bool
	workers     int
	proxyEnv    []string
	// the verifier phase's
	verifierCRLSize int
	verifierParts   int
	verifierConc    []int
}

var allPhases = []string{"handshake", "keepalive", "latency", "crl", "revoke", "verifier"}

// upstreamArg makes this program the upstream server (see serveUpstream).
const upstreamArg = "-as-upstream"

func main() {
	if len(os.Args) == 2 && os.Args[1] == upstreamArg {
		os.Exit(serveUpstream(os.Stdout, os.Stderr))
	}
	benchutil.Main("proxyload", parseFlags, run)
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := benchutil.NewFlagSet("proxyload", stderr, &o.Flags, "binary, data directory, certificates, CRLs, nginx configurations, logs")
	phases := fs.String("phases", strings.Join(allPhases, ","), "phases to run, comma-separated, of "+strings.Join(allPhases, ","))
	hsConc := fs.String("handshake-concurrency", "8,32", "concurrencies of the handshake phase, comma-separated")
	kaConc := fs.String("keepalive-concurrency", "8,32", "concurrencies of the keep-alive phase, comma-separated")
	crlSize := fs.String("crl-size", "1M", "entries of the big CRL (k and M suffixes); 0 skips the crl phase")
	verifierCRLSize := fs.String("verifier-crl-size", "100k", "entries of the verifier phase's big CRL (k and M suffixes); 0 skips the verifier phase")
	verifierConc := fs.String("verifier-concurrency", "8", "concurrencies of the verifier phase's handshakes, comma-separated")
	fs.IntVar(&o.verifierParts, "verifier-partitions", 10, "the verifier phase's partitioned CRL holds 1/this of the big CRL's entries")
	fs.DurationVar(&o.duration, "duration", 4*time.Second, "length of one timed repetition")
	fs.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "warm-up per target before the handshake and keep-alive phases")
	fs.IntVar(&o.reps, "reps", 3, "repetitions per target and concurrency, interleaved; the table shows medians")
	fs.IntVar(&o.latencyN, "latency-requests", 3000, "sequential requests per target in the latency phase")
	fs.IntVar(&o.devices, "devices", 64, "devices whose certificates the load uses, round robin (fleetca proxy caches verified chains: 65536 by default)")
	fs.IntVar(&o.crlConc, "crl-concurrency", 8, "concurrency of the handshakes with and without the big CRL")
	fs.IntVar(&o.revocations, "revocations", 30, "devices revoked one at a time in the revoke phase")
	fs.DurationVar(&o.poll, "poll", 5*time.Millisecond, "in the revoke phase, how often a new handshake is tried")
	fs.DurationVar(&o.deadline, "deny-deadline", 5*time.Second, "in the revoke phase, longest wait for a refusal or a closed connection")
	fs.StringVar(&o.nginx, "nginx", "nginx", "nginx binary; \"none\" skips nginx")
	fs.BoolVar(&o.install, "install-nginx", true, "install nginx-light with apt-get if nginx is missing (needs root)")
	fs.IntVar(&o.workers, "nginx-workers", runtime.NumCPU(), "nginx worker_processes (default: one per CPU, as fleetca proxy uses every CPU)")
	fs.Func("proxy-env", "`NAME=VALUE` added to fleetca proxy's environment, e.g. GOGC=400 (repeatable)", func(s string) error {
		if name, _, ok := strings.Cut(s, "="); !ok || name == "" {
			return fmt.Errorf("%q is not NAME=VALUE", s)
		}
		o.proxyEnv = append(o.proxyEnv, s)
		return nil
	})
	if err := benchutil.Parse(fs, args); err != nil {
		return o, err
	}
	var err error
	if o.phases, err = parsePhases(*phases); err != nil {
		return o, err
	}
	if o.hsConc, err = parseLevels(*hsConc); err != nil {
		return o, fmt.Errorf("-handshake-concurrency: %w", err)
	}
	if o.kaConc, err = parseLevels(*kaConc); err != nil {
		return o, fmt.Errorf("-keepalive-concurrency: %w", err)
	}
	if o.crlSize, err = benchutil.ParseCount(*crlSize, 20_000_000); err != nil {
		return o, fmt.Errorf("-crl-size: %w", err)
	}
	if o.crlSize == 0 {
		delete(o.phases, "crl")
	}
	if o.verifierCRLSize, err = benchutil.ParseCount(*verifierCRLSize, 20_000_000); err != nil {
		return o, fmt.Errorf("-verifier-crl-size: %w", err)
	}
	if o.verifierCRLSize == 0 {
		delete(o.phases, "verifier")
	}
	if o.verifierConc, err = parseLevels(*verifierConc); err != nil {
		return o, fmt.Errorf("-verifier-concurrency: %w", err)
	}
	switch {
	case o.duration <= 0 || o.warmup < 0 || o.poll <= 0 || o.deadline <= 0:
		return o, errors.New("-duration, -poll and -deny-deadline must be positive and -warmup not negative")
	case o.reps < 1 || o.latencyN < 1 || o.devices < 1 || o.crlConc < 1 || o.revocations < 1 || o.workers < 1 || o.verifierParts < 1:
		return o, errors.New("-reps, -latency-requests, -devices, -crl-concurrency, -revocations, -nginx-workers and -verifier-partitions must be positive")
	}
	return o, nil
}

func parsePhases(s string) (map[string]bool, error) {
	out := map[string]bool{}
	for p := range strings.SplitSeq(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		known := false
		for _, q := range allPhases {
			known = known || p == q
		}
		if !known {
			return nil, fmt.Errorf("-phases: unknown phase %q, want some of %s", p, strings.Join(allPhases, ","))
		}
		out[p] = true
	}
	return out, nil
}

// parseLevels parses "8,32".
func parseLevels(s string) ([]int, error) {
	var levels []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 4096 {
			return nil, fmt.Errorf("%q: each level must be a number from 1 to 4096", s)
		}
		levels = append(levels, n)
	}
	return levels, nil
}

// results is everything the report shows; a nil part was not run.
type results struct {
	setup     *setupInfo
	handshake []levelResult
	keepalive []levelResult
	latency   *latencyResult
	crl       *crlResult
	verifier  *verifierResult
	revoke    *revokeResult
}

// run is the benchmark; it returns the exit code.
func run(ctx context.Context, o options, stdout, stderr io.Writer) int {
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "proxyload: "+format+"\n", a...) }
	fail := func(err error) int {
		logf("%v", err)
		return 1
	}
	start := time.Now()
	tmp, bin, cleanup, err := benchutil.Prepare(ctx, o.Flags, "fleetca-proxybench-", stderr, logf)
	if err != nil {
		return fail(err)
	}
	defer cleanup()
	e, err := setUp(ctx, o, tmp, bin, logf)
	if e != nil {
		defer e.close(logf)
	}
	if err != nil {
		return fail(err)
	}
	res := results{setup: &e.info}
	var all []*target
	for _, t := range []*target{e.direct, e.fleet, e.nginx} {
		if t != nil {
			all = append(all, t)
		}
	}
	proxies := all[1:]

	if o.phases["handshake"] {
		logf("handshake phase: %d x %v per target and concurrency %v", o.reps, o.duration, o.hsConc)
		if res.handshake, err = runLevels(ctx, o, e, proxies, o.hsConc, modeHandshake, logf); err != nil {
			return fail(err)
		}
	}
	if o.phases["keepalive"] {
		logf("keep-alive phase: %d x %v per target and concurrency %v", o.reps, o.duration, o.kaConc)
		if res.keepalive, err = runLevels(ctx, o, e, all, o.kaConc, modeKeepAlive, logf); err != nil {
			return fail(err)
		}
	}
	if o.phases["latency"] {
		logf("latency phase: %d sequential requests per target", o.latencyN)
		if res.latency, err = runLatency(ctx, o, e, all); err != nil {
			return fail(err)
		}
	}
	if o.phases["crl"] {
		if res.crl, err = runCRLPhase(ctx, o, e, tmp, logf); err != nil {
			return fail(err)
		}
	}
	if o.phases["revoke"] {
		logf("revoke phase: %d devices, one at a time", o.revocations)
		if res.revoke, err = runRevokePhase(ctx, o, e, logf); err != nil {
			return fail(err)
		}
	}
	if o.phases["verifier"] {
		if res.verifier, err = runVerifierPhase(ctx, o, e, tmp, logf); err != nil {
			return fail(err)
		}
	}
	if err := e.alive(); err != nil {
		return fail(err)
	}
	e.info.elapsed = time.Since(start)
	missed, broken := report(stdout, o, res)
	switch {
	case broken:
		logf("some requests failed where none should; see the table and the logs (-keep keeps them)")
		return 1
	case missed && o.Strict:
		return 1
	}
	return 0
}
