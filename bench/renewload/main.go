package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/fleetca/fleetca/bench/benchutil"
)

// The target, from the issue that asked for the benchmark (issue 11,
// "Speed"): renewals per second at least targetRatio times enrollments
// per second, at concurrency targetConc, in the same run.
const (
	targetRatio = 0.9
	targetConc  = 32
)

// options are the command line.
type options struct {
	benchutil.Flags
	conc        int
	duration    time.Duration
	warmup      time.Duration
	reps        int
	maxJobs     int
	minInterval time.Duration
}

// maxDuration bounds -duration: a renewal token minted before a phase
// must still be accepted at its end (exp, 5 minutes after iat, plus the
// CA's 10 minutes of skew).
const maxDuration = 10 * time.Minute

func main() { benchutil.Main("renewload", parseFlags, run) }

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := benchutil.NewFlagSet("renewload", stderr, &o.Flags, "binary, data directory, serve.log")
	fs.IntVar(&o.conc, "concurrency", targetConc, "concurrent workers, in every mode")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "length of each measured repetition of each mode (at most 10m)")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "warm-up of each mode before the repetitions (sizes them)")
	fs.IntVar(&o.reps, "reps", 3, "measured repetitions of each mode, interleaved; the table shows medians")
	fs.IntVar(&o.maxJobs, "max-jobs", 60_000, "most requests prepared for one phase: CSRs, or devices enrolled beforehand to renew (a phase that uses them all ends early)")
	fs.DurationVar(&o.minInterval, "renew-min-interval", time.Second, "ca.renew_min_interval written into the CA's fleetca.yaml before serve starts (1s..168h)")
	if err := benchutil.Parse(fs, args); err != nil {
		return o, err
	}
	switch {
	case o.conc < 1 || o.conc > 4096:
		return o, fmt.Errorf("-concurrency is %d, want 1 to 4096", o.conc)
	case o.duration <= 0 || o.duration > maxDuration || o.warmup < 0 || o.warmup > maxDuration:
		return o, fmt.Errorf("-duration must be positive and -warmup not negative, both at most %v (renewal tokens are minted before each phase)", maxDuration)
	case o.reps < 1:
		return o, errors.New("-reps must be positive")
	case o.maxJobs < 100:
		return o, errors.New("-max-jobs must be at least 100")
	case o.minInterval < time.Second || o.minInterval > 168*time.Hour:
		return o, fmt.Errorf("-renew-min-interval is %v, want 1s to 168h (the range of ca.renew_min_interval)", o.minInterval)
	}
	return o, nil
}

// pkRuns and pkRunTime are the timed runs of each P-256 operation of the
// bounds' yardstick (measurePK), as enrollload times its crypto floor.
const (
	pkRuns    = 9
	pkRunTime = 80 * time.Millisecond
)

// run is the benchmark; it returns the exit code.
func run(ctx context.Context, o options, stdout, stderr io.Writer) int {
	logf := benchutil.Logger("renewload", stderr)
	fail := func(err error) int {
		logf("%v", err)
		return 1
	}
	tmp, bin, cleanup, err := benchutil.Prepare(ctx, o.Flags, "fleetca-renew-", stderr, logf)
	if err != nil {
		return fail(err)
	}
	defer cleanup()

	// Each device renews once, so the interval refuses nothing; it is set
	// as low as it goes all the same, so that no renewal is refused as too
	// soon whatever the phases do.
	srv, stop, err := benchutil.StartLogged(ctx, bin, tmp, o.ServerEnv, func(dir string) error {
		return benchutil.SetConfig(dir, "ca.renew_min_interval", o.minInterval.String())
	}, logf)
	if err != nil {
		return fail(err)
	}
	defer stop()

	e, err := newEnv(ctx, srv, o.conc)
	if err != nil {
		return fail(err)
	}
	defer e.close()
	results, err := runModes(ctx, o, e, logf)
	if err != nil {
		return fail(err)
	}
	if err := srv.Alive(); err != nil {
		return fail(err)
	}
	peak := benchutil.PeakRSS(srv.PID)
	pk, err := measurePK(pkRuns, pkRunTime) // with the server idle

	if err != nil {
		return fail(fmt.Errorf("time P-256 operations: %w", err))
	}
	missed := report(stdout, o, srv, peak, srv.Dir, e.enrolled, pk, results)
	errs := 0
	for _, r := range results {
		for _, p := range r.reps {
			errs += p.Failed
		}
	}
	return benchutil.ExitCode(errs, missed, o.Strict, srv.LogPath, logf)
}

// modeResult is one mode's measured repetitions.
type modeResult struct {
	mode mode
	reps []benchutil.Phase
}

// firstGuess is the rate that sizes a mode's warm-up, and its
// repetitions when there is no warm-up.
const firstGuess = 3000.0

// runModes warms up each mode, then measures o.reps repetitions of each,
// interleaved: repetition r starts with mode r (mod the count), so that
// drift on the machine hits every mode alike. Each phase gets its own
// requests, prepared while the load is idle and sized from the rate seen
// so far; for a renewal mode that means enrolling its devices first.
func runModes(ctx context.Context, o options, e *env, logf func(string, ...any)) ([]modeResult, error) {
	results := make([]modeResult, len(modes))
	rates := make([]float64, len(modes))
	for i, m := range modes {
		results[i].mode = m
		rates[i] = firstGuess
	}
	if o.warmup > 0 {
		for i, m := range modes {
			w, err := e.phase(ctx, o, m, benchutil.SizeFor(rates[i], o.warmup, o.maxJobs), o.warmup)
			if err != nil {
				return nil, err
			}
			if err := w.Failure(); err != nil {
				return nil, fmt.Errorf("warm-up of %s: %w", m.name, err)
			}
			rates[i] = w.Rate()
			logf("%s warm-up: %.0f/s", m.name, rates[i])
		}
	}
	for r := range o.reps {
		for k := range modes {
			i := (k + r) % len(modes)
			m := modes[i]
			p, err := e.phase(ctx, o, m, benchutil.SizeFor(rates[i], o.duration, o.maxJobs), o.duration)
			if err != nil {
				return nil, err
			}
			results[i].reps = append(results[i].reps, p)
			rates[i] = max(rates[i], p.Rate())
			logf("rep %d/%d %-15s %6.0f/s, server %5.0f µs/op, client %4.0f µs/op, other %3.0f%%%s",
				r+1, o.reps, m.name, p.Rate(), benchutil.Micros(p.PerOp(p.Server.Total())), benchutil.Micros(p.PerOp(p.Client.Total())), 100*p.Other(), p.Note("requests", "-max-jobs"))
		}
	}
	return results, nil
}
