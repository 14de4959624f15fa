package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/fleetca/fleetca/bench/benchutil"
	"github.com/fleetca/fleetca/client"
)

// Targets and reference figures, from the issue that asked for the benchmark.
const (
	targetOCSPRatio   = 5.0    // fleetca OCSP responses/s over openssl ocsp's (single process)
	targetRevokeRate  = 2000.0 // revocations/s sustained
	targetCRLLatency  = time.Second
	targetCRLOverhead = 1.2 // build time over a bare x509.CreateRevocationList
	stepCARevokeRate  = 120 // step-ca, same machine, revocations/s (quoted, not measured)
)

// options are the command line.
type options struct {
	benchutil.Flags
	phases map[string]bool

	devices, enrollConc int

	ocspConc      int
	ocspDuration  time.Duration
	ocspReps      int
	openssl       string
	opensslMulti  int
	revokePool    int
	revokeConc    int
	revokeDur     time.Duration
	revokeReps    int
	reason        string
	monitorEvery  time.Duration
	crlEvery      time.Duration
	latencyN      int
	crlSizes      []int
	crlRuns       int
	crlRunsLarge  int
	settleTimeout time.Duration
}

var allPhases = []string{"ocsp", "revoke", "latency", "crl"}

func main() { benchutil.Main("revocationload", parseFlags, run) }

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := benchutil.NewFlagSet("revocationload", stderr, &o.Flags, "binary, data directory, logs, openssl files")
	phases := fs.String("phases", strings.Join(allPhases, ","), "phases to run, comma-separated, of "+strings.Join(allPhases, ","))
	sizes := fs.String("crl-sizes", "10k,100k,1M", "CRL sizes (entries) for the in-process CRL build, comma-separated; k and M suffixes")
	fs.IntVar(&o.devices, "devices", 2000, "devices enrolled for the OCSP phase (their certificates are asked about)")
	fs.IntVar(&o.enrollConc, "enroll-concurrency", 16, "concurrent enrollments while setting up")
	fs.IntVar(&o.ocspConc, "ocsp-concurrency", 8, "concurrent OCSP clients")
	fs.DurationVar(&o.ocspDuration, "ocsp-duration", 5*time.Second, "length of one OCSP repetition")
	fs.IntVar(&o.ocspReps, "ocsp-reps", 3, "OCSP repetitions per responder, interleaved; the table shows medians")
	fs.StringVar(&o.openssl, "openssl", "openssl", "openssl binary for the side-by-side responder; \"none\" skips it")
	fs.IntVar(&o.opensslMulti, "openssl-multi", 2, "also run `openssl ocsp -multi N` (0 skips it)")
	fs.IntVar(&o.revokePool, "revoke-pool", 45000, "certificates enrolled to be revoked by the throughput phase (shared by its repetitions)")
	fs.IntVar(&o.revokeConc, "revoke-concurrency", 32, "concurrent admin revoke calls")
	fs.DurationVar(&o.revokeDur, "revoke-duration", 3*time.Second, "length of one revocation repetition (it ends early if its share of the pool runs out)")
	fs.IntVar(&o.revokeReps, "revoke-reps", 3, "revocation repetitions; the table shows medians")
	fs.StringVar(&o.reason, "reason", "superseded", "RFC 5280 reason sent with each revocation (keyCompromise also blocks the key: one more write)")
	fs.DurationVar(&o.monitorEvery, "ocsp-monitor-every", 20*time.Millisecond, "during the revocation phase, ask OCSP about the latest revocation this often")
	fs.DurationVar(&o.crlEvery, "crl-monitor-every", 250*time.Millisecond, "during the revocation phase, fetch /crl this often")
	fs.IntVar(&o.latencyN, "latency-revocations", 50, "single revocations timed one at a time")
	fs.IntVar(&o.crlRuns, "crl-runs", 3, "timed runs per CRL size and method below 1M entries; medians")
	fs.IntVar(&o.crlRunsLarge, "crl-runs-large", 3, "timed runs per method at 1M entries or more")
	fs.DurationVar(&o.settleTimeout, "settle-timeout", 10*time.Second, "longest wait for /crl to list every revocation after a phase")
	if err := benchutil.Parse(fs, args); err != nil {
		return o, err
	}
	var err error
	if o.phases, err = benchutil.ParsePhases(*phases, allPhases); err != nil {
		return o, err
	}
	if o.crlSizes, err = parseSizes(*sizes); err != nil {
		return o, err
	}
	switch {
	case o.devices < 1 || o.enrollConc < 1 || o.ocspConc < 1 || o.revokeConc < 1:
		return o, errors.New("-devices and the concurrencies must be positive")
	case o.ocspDuration <= 0 || o.revokeDur <= 0 || o.monitorEvery <= 0 || o.crlEvery <= 0 || o.settleTimeout <= 0:
		return o, errors.New("durations must be positive")
	case o.ocspReps < 1 || o.revokeReps < 1 || o.crlRuns < 1 || o.crlRunsLarge < 1:
		return o, errors.New("repetitions and runs must be positive")
	case o.revokePool < o.revokeReps*o.revokeConc:
		return o, fmt.Errorf("-revoke-pool must be at least -revoke-reps x -revoke-concurrency (%d)", o.revokeReps*o.revokeConc)
	case o.latencyN < 1 || o.opensslMulti < 0:
		return o, errors.New("-latency-revocations must be positive and -openssl-multi not negative")
	}
	return o, nil
}

// parseSizes parses "10k,100k,1M".
func parseSizes(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(f) == "" {
			continue
		}
		n, err := benchutil.ParseCount(f, 50_000_000)
		if err != nil {
			return nil, fmt.Errorf("-crl-sizes: %w", err)
		}
		out = append(out, n)
	}
	return out, nil
}

// results is everything the report shows; a nil part was not run.
type results struct {
	enroll  *enrollStats
	ocsp    *ocspResults
	revoke  *revokeResults
	latency *latencyResults
	crl     *crlResults
}

// run is the benchmark; it returns the exit code.
func run(ctx context.Context, o options, stdout, stderr io.Writer) int {
	logf := benchutil.Logger("revocationload", stderr)
	fail := func(err error) int {
		logf("%v", err)
		return 1
	}
	if o.phases["ocsp"] && o.openssl != "none" {
		if _, err := exec.LookPath(o.openssl); err != nil {
			return fail(fmt.Errorf("%s not found (pass -openssl none to skip the side-by-side responder): %w", o.openssl, err))
		}
	}
	tmp, bin, cleanup, err := benchutil.Prepare(ctx, o.Flags, "fleetca-revbench-", stderr, logf)
	if err != nil {
		return fail(err)
	}
	defer cleanup()
	dataDir := filepath.Join(tmp, "ca")
	var res results
	var env *serverEnv
	needServer := o.phases["ocsp"] || o.phases["revoke"] || o.phases["latency"]
	if needServer {
		srv, err := benchutil.StartServer(ctx, bin, dataDir, filepath.Join(tmp, "serve.log"), o.ServerEnv)
		if err != nil {
			return fail(err)
		}
		defer srv.Stop()
		logf("fleetca serve is pid %d at %s and %s; data directory %s on %s", srv.PID, srv.HTTPSURL, srv.HTTPURL, dataDir, benchutil.FSType(dataDir))
		if env, err = newServerEnv(srv); err != nil {
			return fail(err)
		}
		if res, err = runServerPhases(ctx, o, env, tmp, logf); err != nil {
			return fail(err)
		}
		if err := srv.Alive(); err != nil {
			return fail(err)
		}
		if err := srv.Stop(); err != nil { // the in-process phase gets the machine to itself
			logf("fleetca serve: %v", err)
		}
	}
	if o.phases["crl"] {
		if !needServer {
			if err := benchutil.Init(ctx, bin, dataDir); err != nil {
				return fail(err)
			}
		}
		var serverN int
		if res.latency != nil && res.latency.publishCount > 0 {
			serverN = res.latency.crlEntries
		}
		c, err := runCRLPhase(ctx, o, dataDir, serverN, logf)
		if err != nil {
			return fail(err)
		}
		res.crl = c
	}
	missed, broken := report(stdout, o, env, dataDir, res)
	switch {
	case broken:
		logf("some requests failed or answers were wrong; see the table")
		return 1
	case missed && o.Strict:
		return 1
	}
	return 0
}

// runServerPhases enrolls the devices and runs the phases that need the server.
func runServerPhases(ctx context.Context, o options, env *serverEnv, tmp string, logf func(string, ...any)) (results, error) {
	var res results
	nOCSP, nPool, nLat := 0, 0, 0
	if o.phases["ocsp"] {
		nOCSP = o.devices
	}
	if o.phases["revoke"] {
		nPool = o.revokePool
	}
	if o.phases["latency"] {
		nLat = o.latencyN
	}
	total := nOCSP + nPool + nLat
	logf("enrolling %d devices at concurrency %d", total, o.enrollConc)
	devs, st, err := enrollDevices(ctx, env, total, o.enrollConc, logf)
	if err != nil {
		return res, err
	}
	res.enroll = st
	ocspDevs, poolDevs, latDevs := devs[:nOCSP], devs[nOCSP:nOCSP+nPool], devs[nOCSP+nPool:]

	if o.phases["ocsp"] {
		r, err := runOCSPPhase(ctx, o, env, ocspDevs, tmp, logf)
		if err != nil {
			return res, err
		}
		res.ocsp = r
	}
	if o.phases["revoke"] {
		r, err := runRevokePhase(ctx, o, env, poolDevs, logf)
		if err != nil {
			return res, err
		}
		res.revoke = r
	}
	if o.phases["latency"] {
		r, err := runLatencyPhase(ctx, o, env, latDevs, logf)
		if err != nil {
			return res, err
		}
		res.latency = r
	}
	return res, nil
}

// serverEnv is what the phases need of the running server.
type serverEnv struct {
	srv *benchutil.Server
	// ca is the CA's API for setup (tokens); the timed revocations send
	// their requests themselves, with adminToken (see revokeOne).
	ca         *client.Client
	adminToken string
	roots      []*x509.Certificate
	inter      *x509.Certificate
	interPEM   []byte
}

func newServerEnv(srv *benchutil.Server) (*serverEnv, error) {
	ca, err := srv.Client()
	if err != nil {
		return nil, err
	}
	tok, err := srv.AdminToken()
	if err != nil {
		return nil, err
	}
	roots, err := srv.Roots()
	if err != nil {
		return nil, err
	}
	interPEM, err := os.ReadFile(filepath.Join(srv.Dir, "intermediate.pem"))
	if err != nil {
		return nil, err
	}
	inter, err := benchutil.ParseCertPEM(interPEM)
	if err != nil {
		return nil, fmt.Errorf("intermediate.pem: %w", err)
	}
	return &serverEnv{srv: srv, ca: ca, adminToken: tok, roots: roots, inter: inter, interPEM: interPEM}, nil
}

// gcQuiet collects the client's garbage before a timed run.
func gcQuiet() { runtime.GC() }
