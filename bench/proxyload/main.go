package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/fleetca/fleetca/bench/benchutil"
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

var allPhases = []string{"handshake", "keepalive", "latency", "crl", "revoke", "verifier", "jwt"}

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
	if o.phases, err = benchutil.ParsePhases(*phases, allPhases); err != nil {
		return o, err
	}
	if o.hsConc, err = benchutil.ParseLevels(*hsConc); err != nil {
		return o, fmt.Errorf("-handshake-concurrency: %w", err)
	}
	if o.kaConc, err = benchutil.ParseLevels(*kaConc); err != nil {
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
	if o.verifierConc, err = benchutil.ParseLevels(*verifierConc); err != nil {
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

// results is everything the report shows; a nil part was not run.
type results struct {
	setup     *setupInfo
	handshake []levelResult
	keepalive []levelResult
	latency   *latencyResult
	crl       *crlResult
	verifier  *verifierResult
	revoke    *revokeResult
	jwt       *jwtResult
}

// run is the benchmark; it returns the exit code.
func run(ctx context.Context, o options, stdout, stderr io.Writer) int {
	logf := benchutil.Logger("proxyload", stderr)
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
	if o.phases["jwt"] {
		if res.jwt, err = runJWTPhase(ctx, o, e, logf); err != nil {
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
