package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/fleetca/fleetca/bench/benchutil"
)

// Targets and reference figures, from the issue that asked for the benchmark.
const (
	targetRate = 3000 // enrollments/s at concurrency targetConc, on 2 cores
	targetConc = 32
	// targetKindRatio is the least enrollments/s of EST simpleenroll and
	// step's /sign over native /v1/enroll's, at targetConc.
	targetKindRatio = 0.9
	targetCPURatio  = 1.6 // server CPU per certificate / floor A

	// Issue 19: against step-ca measured in the same run (stepCAVersion,
	// installed and started by this program), and the floor with the CSR's
	// parse (floorResult.floorIssue).
	targetStepCARatio = 6.0 // fleetca's enrollments/s over step-ca's, at targetConc
	targetFloorRatio  = 1.3 // fleetca's server CPU per certificate over floorIssue
)

// options are the command line.
type options struct {
	benchutil.Flags
	concurrency []int
	duration    time.Duration
	warmup      time.Duration
	reps        int
	proto       string
	floorRuns   int
	floorEach   time.Duration
	maxCSRs     int
	clients     []clientKind // the first is the main table's; the others are compared with it
	stepCA      bool         // run step-ca beside fleetca at targetConc
	bare        bool         // run the bare server (the ceiling) beside fleetca at targetConc
	profile     int          // enrollments of the in-process CPU profile after the load; 0 for none
}

func main() {
	if dir := os.Getenv(bareEnv); dir != "" {
		os.Exit(serveBare(dir))
	}
	benchutil.Main("enrollload", parseFlags, run)
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := benchutil.NewFlagSet("enrollload", stderr, &o.Flags, "binary, data directory, serve.log")
	conc := fs.String("concurrency", "1,8,32", "comma-separated numbers of concurrent workers, one level each")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "length of each measured repetition")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "warm-up before each concurrency level (opens the connections)")
	fs.IntVar(&o.reps, "reps", 3, "measured repetitions per level; the table shows medians")
	fs.StringVar(&o.proto, "proto", "h1", "h1: HTTP/1.1 keep-alive, one connection per worker; h2: HTTP/2, one connection")
	fs.IntVar(&o.floorRuns, "floor-runs", 9, "timed runs of each crypto-floor operation; the median is used")
	fs.DurationVar(&o.floorEach, "floor-run-time", 80*time.Millisecond, "length of one crypto-floor run")
	fs.IntVar(&o.maxCSRs, "max-csrs", 100_000, "most CSRs generated for one repetition (a repetition that uses them all ends early)")
	fs.BoolVar(&o.stepCA, "step-ca", true, "install (once, into $HOME/.cache/fleetca-tools/bin) and run step-ca "+stepCAVersion+" beside fleetca at concurrency 32, and compare")
	fs.BoolVar(&o.bare, "bare", true, "run a bare Go HTTPS server that does floor I per request and nothing else beside fleetca at concurrency 32: the ceiling of the step-ca comparison")
	fs.IntVar(&o.profile, "profile", 20000, "after the load, profile this many enrollments in process (go test ./cmd/fleetca -bench EnrollHTTPS/h1/c=32 -cpuprofile) and print where the server's CPU goes; 0: no profile")
	clients := fs.String("client", "native", "native: POST /v1/enroll; est: EST simpleenroll; step: step's POST /1.0/sign; all: the three, interleaved, compared with native")
	if err := benchutil.Parse(fs, args); err != nil {
		return o, err
	}
	levels, err := benchutil.ParseLevels(*conc)
	if err != nil {
		return o, fmt.Errorf("-concurrency: %w", err)
	}
	o.concurrency = levels
	if o.clients, err = parseClients(*clients); err != nil {
		return o, err
	}
	switch {
	case o.proto != "h1" && o.proto != "h2":
		return o, fmt.Errorf("-proto is %q, want h1 or h2", o.proto)
	case o.duration <= 0 || o.warmup < 0:
		return o, errors.New("-duration must be positive and -warmup not negative")
	case o.reps < 1 || o.floorRuns < 1 || o.floorEach <= 0:
		return o, errors.New("-reps, -floor-runs and -floor-run-time must be positive")
	case o.profile < 0:
		return o, errors.New("-profile must not be negative")
	case o.maxCSRs < 100:
		return o, errors.New("-max-csrs must be at least 100")
	}
	return o, nil
}

// run is the benchmark; it returns the exit code.
func run(ctx context.Context, o options, stdout, stderr io.Writer) int {
	logf := benchutil.Logger("enrollload", stderr)
	fail := func(err error) int {
		logf("%v", err)
		return 1
	}
	tmp, bin, cleanup, err := benchutil.Prepare(ctx, o.Flags, "fleetca-bench-", stderr, logf)
	if err != nil {
		return fail(err)
	}
	defer cleanup()

	// The floor first, while nothing else runs.
	logf("measuring the crypto floor (%d runs of %v per operation, one core)", o.floorRuns, o.floorEach)
	floor, err := measureFloor(o.floorRuns, o.floorEach)
	if err != nil {
		return fail(err)
	}

	var sca *stepCA
	if o.stepCA && slices.Contains(o.concurrency, targetConc) {
		scaBin, err := installStepCA(ctx, logf)
		if err != nil {
			return fail(err)
		}
		if sca, err = startStepCA(ctx, scaBin, filepath.Join(tmp, "step-ca")); err != nil {
			return fail(err)
		}
		defer sca.stop()
		logf("step-ca %s serving on %s (pid %d)", stepCAVersion, sca.url, sca.pid)
	}

	var bare *bareServer
	if o.bare && slices.Contains(o.concurrency, targetConc) {
		if bare, err = startBare(ctx, filepath.Join(tmp, "bare"), o.ServerEnv); err != nil {
			return fail(err)
		}
		defer bare.stop()
		logf("bare server (the ceiling) serving on %s (pid %d)", bare.url, bare.pid)
	}

	srv, stop, err := benchutil.StartLogged(ctx, bin, tmp, o.ServerEnv, nil, logf)
	if err != nil {
		return fail(err)
	}
	defer stop()

	roots, err := srv.Roots()
	if err != nil {
		return fail(err)
	}
	admin, err := srv.Client()
	if err != nil {
		return fail(err)
	}
	gen := &generator{tokens: &benchutil.TokenMinter{Admin: admin, Pattern: tokenPattern}, admin: admin, stepCA: sca}
	peers := map[clientKind]peer{}
	if sca != nil {
		peers[stepCAClient] = peer{url: sca.url, pid: sca.pid, roots: sca.roots}
	}
	if bare != nil {
		peers[bareClient] = peer{url: bare.url, pid: bare.pid, roots: bare.roots}
		gen.bareToken = bare.token
	}
	var levels []levelResult
	for _, c := range o.concurrency {
		lr, err := runLevel(ctx, o, srv, peers, roots, gen, c, logf)
		if err != nil {
			return fail(err)
		}
		levels = append(levels, lr)
	}
	if err := srv.Alive(); err != nil {
		return fail(err)
	}
	if sca != nil {
		if err := sca.alive(); err != nil {
			return fail(err)
		}
	}
	if bare != nil {
		if err := bare.alive(); err != nil {
			return fail(err)
		}
	}
	var prof *profileResult
	if o.profile > 0 {
		root, err := benchutil.ProductRoot(ctx)
		if err != nil {
			return fail(err)
		}
		logf("profiling %d enrollments in process (%s)", o.profile, profileBench)
		pr, err := profileEnroll(ctx, root, tmp, o.profile)
		if err != nil {
			return fail(err)
		}
		prof = &pr
	}
	missed := report(stdout, o, srv, benchutil.PeakRSS(srv.PID), srv.Dir, floor, levels)
	if prof != nil {
		writeProfile(stdout, *prof)
	}
	errs := 0
	for _, l := range levels {
		errs += l.errors()
	}
	return benchutil.ExitCode(errs, missed, o.Strict, srv.LogPath, logf)
}

// peer is a server other than fleetca that the benchmark runs beside it:
// where its requests go, whose CPU is measured, what its TLS chains to.
type peer struct {
	url   string
	pid   int
	roots []*x509.Certificate
}

// levelResult is one concurrency level: its repetitions with the first
// client kind (o.clients[0]), and with the others.
type levelResult struct {
	conc   int
	reps   []benchutil.Phase
	others []kindResult
}

// kindResult is the repetitions of one client kind at a level.
type kindResult struct {
	kind clientKind
	reps []benchutil.Phase
}

func (l levelResult) errors() int {
	n := 0
	for _, r := range l.reps {
		n += r.Failed
	}
	for _, k := range l.others {
		for _, r := range k.reps {
			n += r.Failed
		}
	}
	return n
}

// runLevel warms up at concurrency c with each client kind, then measures
// o.reps repetitions of each, interleaved: repetition i runs the kinds in
// turn, starting with kind i (mod their number), so that a slower spell of
// the machine, or the store's growth, does not fall on one kind only. Each
// phase gets its own freshly generated CSRs and tokens, sized from the
// fastest rate seen so far at this level, and the server is idle while
// they are made.
//
// At targetConc, each of peers (step-ca, the bare server) is one more
// kind, interleaved with the others, with its own URL, roots and process.
func runLevel(ctx context.Context, o options, srv *benchutil.Server, peers map[clientKind]peer, roots []*x509.Certificate, gen *generator, c int, logf func(string, ...any)) (levelResult, error) {
	lr := levelResult{conc: c}
	kinds := slices.Clone(o.clients)
	if c == targetConc {
		for _, k := range []clientKind{stepCAClient, bareClient} {
			if _, ok := peers[k]; ok {
				kinds = append(kinds, k)
			}
		}
	}
	// target is where kind k's requests go, and whose CPU is measured.
	target := func(k clientKind) (string, int) {
		if p, ok := peers[k]; ok {
			return p.url + k.path, p.pid
		}
		return srv.HTTPSURL + k.path, srv.PID
	}
	senders := make([]*sender, len(kinds))
	rates := make([]float64, len(kinds))
	reps := make([][]benchutil.Phase, len(kinds))
	// A first guess of the rate, for sizing the first warm-up: enough for
	// 10,000/s. The next kinds' warm-ups are sized from the rate the
	// previous one saw.
	guess := 10_000.0
	for ki, k := range kinds {
		url, pid := target(k)
		kr := roots
		if p, ok := peers[k]; ok {
			kr = p.roots
		}
		s, err := newSender(url, kr, c, o.proto)
		if err != nil {
			return lr, err
		}
		senders[ki] = s
		defer s.close()
		rates[ki] = guess
		if o.warmup <= 0 {
			continue
		}
		jobs, err := gen.make(ctx, k, benchutil.SizeFor(guess, o.warmup, o.maxCSRs))
		if err != nil {
			return lr, err
		}
		w, err := runPhase(ctx, s, k, jobs, c, o.warmup, pid)
		if err != nil {
			return lr, err
		}
		if err := w.Failure(); err != nil {
			return lr, fmt.Errorf("%s warm-up at concurrency %d: %w", k.name, c, err)
		}
		rates[ki], guess = w.Rate(), w.Rate()
		logf("c=%d %s warm-up: %.0f/s", c, k.name, w.Rate())
	}
	for i := range o.reps {
		for j := range kinds {
			ki := (i + j) % len(kinds)
			k := kinds[ki]
			// Sized for the fastest kind: a kind whose warm-up was slowed
			// by other load must not run out of jobs (unspent tokens
			// cost nothing).
			jobs, err := gen.make(ctx, k, benchutil.SizeFor(slices.Max(rates), o.duration, o.maxCSRs))
			if err != nil {
				return lr, err
			}
			runtime.GC() // the client's garbage from generating, collected before timing
			_, pid := target(k)
			p, err := runPhase(ctx, senders[ki], k, jobs, c, o.duration, pid)
			if err != nil {
				return lr, err
			}
			reps[ki] = append(reps[ki], p)
			rates[ki] = max(rates[ki], p.Rate())
			logf("c=%d %s rep %d/%d: %.0f/s, server %.0f µs/cert, client %.0f µs/cert%s",
				c, k.name, i+1, o.reps, p.Rate(), benchutil.Micros(p.PerOp(p.Server.Total())), benchutil.Micros(p.PerOp(p.Client.Total())), p.Note("CSRs", "-max-csrs"))
		}
	}
	lr.reps = reps[0]
	for ki, k := range kinds[1:] {
		lr.others = append(lr.others, kindResult{kind: k, reps: reps[ki+1]})
	}
	return lr, nil
}
