package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// waitSampleEvery is how often the wait sampler looks at pg_stat_activity.
const waitSampleEvery = 20 * time.Millisecond

// waitCounts tallies what PostgreSQL's client sessions on one database
// were doing over samples of pg_stat_activity: by state, the number of
// sessions seen in it, summed over the samples.
type waitCounts struct {
	samples int
	seen    map[string]int
}

// add adds o's samples to w's.
func (w *waitCounts) add(o waitCounts) {
	if w.seen == nil {
		w.seen = map[string]int{}
	}
	w.samples += o.samples
	for k, v := range o.seen {
		w.seen[k] += v
	}
}

// waitShare is one state and the sessions in it, on average over the
// samples.
type waitShare struct {
	state    string
	sessions float64
}

// top returns the n states with the most sessions on average, most first
// (ties by name).
func (w waitCounts) top(n int) []waitShare {
	if w.samples == 0 {
		return nil
	}
	keys := slices.SortedFunc(maps.Keys(w.seen), func(a, b string) int {
		return cmp.Or(cmp.Compare(w.seen[b], w.seen[a]), cmp.Compare(a, b))
	})
	out := make([]waitShare, 0, min(n, len(keys)))
	for _, k := range keys[:min(n, len(keys))] {
		out = append(out, waitShare{state: k, sessions: float64(w.seen[k]) / float64(w.samples)})
	}
	return out
}

// String is the top states, "IO:WALSync 3.1, CPU 1.2, ..." (sessions on
// average), or "no samples".
func (w waitCounts) String() string {
	shares := w.top(6)
	if len(shares) == 0 {
		return "no samples"
	}
	parts := make([]string, len(shares))
	for i, s := range shares {
		parts[i] = fmt.Sprintf("%s %.1f", s.state, s.sessions)
	}
	return strings.Join(parts, ", ")
}

// waitQuery reads, for each client session on the current database but
// the sampler's own that is running a statement or inside a transaction,
// what it is doing: "CPU" when running without a wait event,
// "TYPE:EVENT" while waiting (Lock:transactionid is a row lock,
// IO:WALSync a commit's WAL flush), and "in transaction, idle" between
// the statements of a transaction (fleetca's turn, locks held). A lock
// wait names the first six words of the statement waiting, which tell
// the row it waits for ("UPDATE tokens SET ...").
const waitQuery = `SELECT CASE
		WHEN state = 'idle in transaction' THEN 'in transaction, idle'
		WHEN wait_event IS NULL THEN 'CPU'
		WHEN wait_event_type = 'Lock' THEN wait_event_type || ':' || wait_event || ' [' ||
			array_to_string((regexp_split_to_array(btrim(query, E' \n\t'), '\s+'))[1:6], ' ') || ']'
		ELSE wait_event_type || ':' || wait_event END
	FROM pg_stat_activity
	WHERE datname = current_database() AND backend_type = 'client backend'
		AND state IN ('active', 'idle in transaction') AND pid <> pg_backend_pid()`

// waitSampler samples pg_stat_activity on its own connection until stop.
type waitSampler struct {
	cancel context.CancelFunc
	done   chan waitCounts
}

// startWaitSampler connects to dsn and samples its sessions every interval.
func startWaitSampler(ctx context.Context, dsn string, every time.Duration) (*waitSampler, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("connect the wait sampler: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &waitSampler{cancel: cancel, done: make(chan waitCounts, 1)}
	go func() {
		defer conn.Close(context.WithoutCancel(ctx))
		w := waitCounts{seen: map[string]int{}}
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				s.done <- w
				return
			case <-tick.C:
			}
			rows, err := conn.Query(ctx, waitQuery)
			if err != nil {
				continue
			}
			states, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				continue
			}
			w.samples++
			for _, st := range states {
				w.seen[st]++
			}
		}
	}()
	return s, nil
}

// stop ends the sampling and returns what it saw.
func (s *waitSampler) stop() waitCounts {
	s.cancel()
	return <-s.done
}
