package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/fleetca/fleetca/bench/benchutil"
	"github.com/fleetca/fleetca/internal/pgtest"
)

// Targets, from the issue that asked for the benchmark.
const (
	targetPGRatio   = 0.5                   // one PostgreSQL replica's rate / one bbolt replica's
	targetRevokeP99 = time.Second           // revocation through A -> revoked in B's OCSP, p99
	targetList      = 50 * time.Millisecond // one page of 100 devices of a million
)

// allPhases are what -phases may name.
var allPhases = []string{"enroll", "revoke", "list"}

// options are the command line.
type options struct {
	benchutil.Flags
	conc        int
	duration    time.Duration
	warmup      time.Duration
	reps        int
	revocations int
	devices     int
	lists       int
	maxCSRs     int
	phases      map[string]bool
}

func main() { benchutil.Main("replicaload", parseFlags, run) }

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := benchutil.NewFlagSet("replicaload", stderr, &o.Flags, "binary, data directories, serve logs")
	fs.IntVar(&o.conc, "concurrency", 32, "concurrent enrolling workers (the issue's figure is at 32)")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "length of each measured enrollment repetition")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "warm-up before each setup's repetitions (opens the connections)")
	fs.IntVar(&o.reps, "reps", 3, "measured enrollment repetitions per setup; the table shows medians")
	fs.IntVar(&o.revocations, "revocations", 50, "revocations timed to another replica's OCSP (and as many to the same replica's)")
	devices := fs.String("devices", "1M", "devices in the database for the listing (k and M suffixes)")
	fs.IntVar(&o.lists, "lists", 21, "timed calls of the device listing; the median is shown")
	fs.IntVar(&o.maxCSRs, "max-csrs", 100_000, "most CSRs generated for one repetition")
	phases := fs.String("phases", "enroll,revoke,list", "which measurements to run (some of enroll,revoke,list)")
	if err := benchutil.Parse(fs, args); err != nil {
		return o, err
	}
	n, err := benchutil.ParseCount(*devices, 100_000_000)
	if err != nil {
		return o, fmt.Errorf("-devices: %w", err)
	}
	o.devices = n
	if o.phases, err = benchutil.ParsePhases(*phases, allPhases); err != nil {
		return o, err
	}
	switch {
	case len(o.phases) == 0:
		return o, errors.New("-phases names no measurement")
	case o.conc < 2 || o.conc > 4096:
		return o, errors.New("-concurrency must be from 2 to 4096 (two replicas share the workers)")
	case o.duration <= 0 || o.warmup < 0:
		return o, errors.New("-duration must be positive and -warmup not negative")
	case o.reps < 1 || o.lists < 1:
		return o, errors.New("-reps and -lists must be positive")
	case o.revocations < 1:
		return o, errors.New("-revocations must be positive")
	case o.devices < 1000:
		return o, errors.New("-devices must be at least 1k")
	case o.maxCSRs < 100:
		return o, errors.New("-max-csrs must be at least 100")
	}
	return o, nil
}

// results is everything a run measured; a phase not run leaves its part
// empty.
type results struct {
	pg      pgInfo
	enroll  []setupResult // bbolt, PostgreSQL 1 replica (shared token, own tokens), PostgreSQL 2 replicas
	revoke  *revokeResult
	list    *listResult
	started time.Time
}

// run is the benchmark; it returns the exit code.
func run(ctx context.Context, o options, stdout, stderr io.Writer) int {
	logf := benchutil.Logger("replicaload", stderr)
	fail := func(err error) int {
		logf("%v", err)
		return 1
	}
	res := results{started: time.Now()}
	tmp, bin, cleanup, err := benchutil.Prepare(ctx, o.Flags, "fleetca-replicaload-", stderr, logf)
	if err != nil {
		return fail(err)
	}
	defer cleanup()

	// PostgreSQL's directory goes beside ours, not inside it: as root the
	// postgres user could not enter our 0700 directory.
	logf("starting PostgreSQL (fsync, full_page_writes and synchronous_commit on)")
	pg, err := pgtest.Start(ctx, pgtest.StartOptions{Dir: o.Tmp, Durable: true})
	if err != nil {
		return fail(err)
	}
	defer func() {
		if err := pg.Stop(); err != nil {
			logf("stop PostgreSQL: %v", err)
		}
	}()
	if res.pg, err = describePG(ctx, pg); err != nil {
		return fail(err)
	}
	logf("PostgreSQL %s is pid %d in %s", res.pg.version, res.pg.pid, pg.Dir())

	failed := 0
	var pg1, pg2 *replicaSet
	defer func() {
		for _, s := range []*replicaSet{pg1, pg2} {
			if s != nil {
				s.stop(logf)
			}
		}
	}()
	if o.phases["enroll"] {
		bolt, err := startSet(ctx, bin, tmp, "bolt", 1, "", o.ServerEnv, logf)
		if err != nil {
			return fail(err)
		}
		r, err := measureEnroll(ctx, o, bolt, nil, false, logf)
		bolt.stop(logf)
		if err != nil {
			return fail(err)
		}
		res.enroll = append(res.enroll, r)
	}
	if o.phases["enroll"] || o.phases["list"] {
		if pg1, err = startPGSet(ctx, bin, tmp, pg, "pg1", 1, o.ServerEnv, logf); err != nil {
			return fail(err)
		}
		if o.phases["enroll"] {
			// The figure with a shared pattern token, then with a
			// token per device: the token's row is a lock every
			// enrollment with the shared one takes.
			for _, own := range []bool{false, true} {
				r, err := measureEnroll(ctx, o, pg1, pg, own, logf)
				if err != nil {
					return fail(err)
				}
				res.enroll = append(res.enroll, r)
			}
		}
	}
	if o.phases["enroll"] || o.phases["revoke"] {
		if pg2, err = startPGSet(ctx, bin, tmp, pg, "pg2", 2, o.ServerEnv, logf); err != nil {
			return fail(err)
		}
		if o.phases["enroll"] {
			r, err := measureEnroll(ctx, o, pg2, pg, false, logf)
			if err != nil {
				return fail(err)
			}
			res.enroll = append(res.enroll, r)
		}
		if o.phases["revoke"] {
			r, err := measureRevoke(ctx, o, pg2, logf)
			if err != nil {
				return fail(err)
			}
			res.revoke = &r
		}
		pg2.stop(logf)
		pg2 = nil
	}
	if o.phases["list"] {
		r, err := measureList(ctx, o, pg1, logf)
		if err != nil {
			return fail(err)
		}
		res.list = &r
	}
	for _, s := range res.enroll {
		failed += s.failed()
	}
	missed := report(stdout, o, res)
	return benchutil.ExitCode(failed, missed, o.Strict, filepath.Join(tmp, "*.log"), logf)
}
