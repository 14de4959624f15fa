package main

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/bench/benchutil"
	"github.com/fleetca/fleetca/client"
	"github.com/fleetca/fleetca/internal/pgtest"
)

// devicePrefix starts the ID of every device enrolled with a shared
// pattern token, tokenPattern; onePrefix that of every device enrolled
// with a one-time token of its own.
const (
	devicePrefix = "r-"
	tokenPattern = devicePrefix + "*"
	onePrefix    = "t-"
)

// setupResult is one setup's enrollment measurement.
type setupResult struct {
	name     string // as the report shows it
	replicas int
	onPG     bool
	ownToken bool // a one-time token per device, not one shared pattern token
	reps     []benchutil.Phase
	fleetca  []time.Duration // CPU of every replica, per repetition
	postgres []time.Duration // CPU of the postmaster and its backends, per repetition
	waits    waitCounts      // over the repetitions
}

func (r setupResult) failed() int {
	n := 0
	for _, p := range r.reps {
		n += p.Failed
	}
	return n
}

// enrollJob is one enrollment, ready to send.
type enrollJob struct {
	id    string
	token string
	body  []byte
}

// jobMaker makes jobs for devices PREFIX00000001, PREFIX00000002, ... of
// one CA: with tokens of one pattern (tokens), or, when admin is set,
// each with a one-time token of its own, minted in batches (POST
// /v1/admin/tokens/batch) before the phase.
type jobMaker struct {
	prefix string
	tokens *benchutil.TokenMinter
	admin  *client.Client
	seq    int
}

func (g *jobMaker) make(ctx context.Context, n int) ([]enrollJob, error) {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = benchutil.DeviceID(g.prefix, g.seq+i+1)
	}
	var toks []string
	if g.admin == nil {
		var err error
		if toks, err = g.tokens.Take(ctx, n); err != nil {
			return nil, err
		}
	} else {
		for chunk := range slices.Chunk(ids, api.MaxTokenBatch) {
			batch, err := g.admin.CreateTokens(ctx, api.TokenBatchRequest{DeviceIDs: chunk, TTL: "1h"})
			if err != nil {
				return nil, fmt.Errorf("mint one-time tokens: %w", err)
			}
			for _, t := range batch {
				toks = append(toks, t.Token)
			}
		}
		if len(toks) != n {
			return nil, fmt.Errorf("minted %d one-time tokens, want %d", len(toks), n)
		}
	}
	csrs, err := benchutil.MakeCSRs(ctx, g.prefix, g.seq+1, n)
	if err != nil {
		return nil, err
	}
	jobs := make([]enrollJob, n)
	for i := range jobs {
		jobs[i] = enrollJob{id: ids[i], token: toks[i], body: csrs[i]}
	}
	g.seq += n
	return jobs, nil
}

// measureEnroll runs o.conc workers enrolling new devices against set's
// replicas (worker w against replica w mod n, on its own keep-alive
// connection), a warm-up and o.reps timed repetitions, and measures each:
// rate and latency (benchutil.RunPhase), the CPU of every replica and of
// PostgreSQL (pg, nil on bbolt), and where PostgreSQL's sessions waited.
// The devices spend uses of one pattern token, as a factory line's do,
// or, with ownToken, each a one-time token of its own.
func measureEnroll(ctx context.Context, o options, set *replicaSet, pg *pgtest.Server, ownToken bool, logf func(string, ...any)) (setupResult, error) {
	res := setupResult{name: setName(set), replicas: len(set.servers), onPG: pg != nil, ownToken: ownToken}
	if ownToken {
		res.name += ", own tokens"
	}
	first := set.servers[0]
	roots, err := first.Roots()
	if err != nil {
		return res, err
	}
	admin, err := first.Client()
	if err != nil {
		return res, err
	}
	gen := &jobMaker{prefix: devicePrefix, tokens: &benchutil.TokenMinter{Admin: admin, Pattern: tokenPattern}}
	if ownToken {
		gen = &jobMaker{prefix: onePrefix, admin: admin}
	}
	n := len(set.servers)
	clients := make([]*http.Client, n)
	urls := make([]string, n)
	for i, srv := range set.servers {
		clients[i] = benchutil.NewClient(roots, (o.conc+n-1)/n, "h1")
		defer clients[i].CloseIdleConnections()
		urls[i] = srv.HTTPSURL + api.EnrollPath
	}
	pgPID := 0
	if pg != nil {
		if pgPID, err = pg.PID(); err != nil {
			return res, err
		}
	}

	phase := func(d time.Duration, rate float64) (benchutil.Phase, time.Duration, time.Duration, waitCounts, error) {
		jobs, err := gen.make(ctx, benchutil.SizeFor(rate, d, o.maxCSRs))
		if err != nil {
			return benchutil.Phase{}, 0, 0, waitCounts{}, err
		}
		runtime.GC()
		var sampler *waitSampler
		if set.dsn != "" {
			if sampler, err = startWaitSampler(ctx, set.dsn, waitSampleEvery); err != nil {
				return benchutil.Phase{}, 0, 0, waitCounts{}, err
			}
		}
		cpu0, err := cpuOf(set.pids(), pgPID)
		if err != nil {
			return benchutil.Phase{}, 0, 0, waitCounts{}, err
		}
		p, err := benchutil.RunPhase(ctx, first.PID, d, benchutil.Load{Conc: o.conc, Jobs: len(jobs),
			Do: func(w, i int, keep bool) ([]byte, error) {
				j := jobs[i]
				body, err := benchutil.PostCSR(ctx, clients[w%n], urls[w%n], j.token, j.body, keep)
				if err != nil {
					return nil, fmt.Errorf("%s (replica %d): %w", j.id, w%n, err)
				}
				return body, nil
			},
			Check: func(i int, body []byte) error {
				_, err := benchutil.ParseEnrollment(body, jobs[i].id)
				return err
			},
		})
		cpu1, cerr := cpuOf(set.pids(), pgPID)
		var waits waitCounts
		if sampler != nil {
			waits = sampler.stop()
		}
		if err != nil {
			return p, 0, 0, waits, err
		}
		if cerr != nil {
			return p, 0, 0, waits, cerr
		}
		return p, cpu1.fleetca - cpu0.fleetca, cpu1.postgres - cpu0.postgres, waits, nil
	}

	rate := 5000.0
	if o.warmup > 0 {
		w, _, _, _, err := phase(o.warmup, rate)
		if err != nil {
			return res, err
		}
		if err := w.Failure(); err != nil {
			return res, fmt.Errorf("%s warm-up: %w", res.name, err)
		}
		// The warm-up pays for the handshakes and cold caches: size the
		// repetitions for twice its rate.
		rate = max(2*w.Rate(), 500)
		logf("%s warm-up: %.0f/s", res.name, rate)
	}
	for i := range o.reps {
		p, fc, pc, waits, err := phase(o.duration, rate)
		if err != nil {
			return res, err
		}
		res.reps = append(res.reps, p)
		res.fleetca = append(res.fleetca, fc)
		res.postgres = append(res.postgres, pc)
		res.waits.add(waits)
		rate = max(rate, p.Rate())
		logf("%s rep %d/%d: %.0f/s, fleetca %.0f µs/cert, postgres %.0f µs/cert%s", res.name, i+1, o.reps, p.Rate(),
			benchutil.Micros(p.PerOp(fc)), benchutil.Micros(p.PerOp(pc)), p.Note("CSRs", "-max-csrs"))
	}
	return res, nil
}

// setName is how the report names a setup.
func setName(set *replicaSet) string {
	store := "bbolt"
	if set.dsn != "" {
		store = "PostgreSQL"
	}
	if len(set.servers) == 1 {
		return "1 replica, " + store
	}
	return fmt.Sprintf("%d replicas, one %s", len(set.servers), store)
}

// cpuTotals is CPU time of fleetca (every replica) and of PostgreSQL.
type cpuTotals struct{ fleetca, postgres time.Duration }

// cpuOf reads the CPU time of the fleetca processes pids and of the
// PostgreSQL postmaster pgPID with its backends (0: none).
func cpuOf(pids []int, pgPID int) (cpuTotals, error) {
	var t cpuTotals
	for _, pid := range pids {
		c, err := benchutil.ProcCPU(pid)
		if err != nil {
			return t, fmt.Errorf("CPU time of fleetca serve %d: %w", pid, err)
		}
		t.fleetca += c.Total()
	}
	if pgPID != 0 {
		c, err := benchutil.TreeCPU(pgPID)
		if err != nil {
			return t, fmt.Errorf("CPU time of PostgreSQL %d: %w", pgPID, err)
		}
		t.postgres = c.Total()
	}
	return t, nil
}
