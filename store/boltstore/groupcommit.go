package boltstore

import (
	"fmt"
	"sync"
	"time"

	"go.etcd.io/bbolt"
)

// groupCommit runs write functions in shared transactions, one fsync each
// (group commit): while one transaction commits, the calls that arrive
// wait, and the next transaction takes all of them (at most max) as soon
// as the commit ends. Only a call that finds nothing under way waits
// delay for company first. bbolt's own DB.Batch instead opens a new batch
// with its own timer whenever the last one has started, so that under
// steady load every call waits up to the delay, and the CPUs idle while
// every worker's call waits for the timer.
//
// A function that returns an error rolls the transaction back; it is taken
// out and run alone (its error is its own) and the others run again in a
// new transaction, as with DB.Batch: functions must be idempotent. A
// caller waits for the commit that holds its function even once its
// context has ended (returning early could report a failure for a write
// that then commits); Store.batch's function checks the context when it
// runs and then writes nothing.
type groupCommit struct {
	db    *bbolt.DB
	max   int
	delay time.Duration

	mu      sync.Mutex
	pending []gcCall
	active  bool // a committer goroutine runs
}

type gcCall struct {
	fn   func(*bbolt.Tx) error
	done chan error
}

// do runs fn in a shared write transaction and returns once it has
// committed (or failed).
func (g *groupCommit) do(fn func(*bbolt.Tx) error) error {
	c := gcCall{fn: fn, done: make(chan error, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, c)
	if !g.active {
		g.active = true
		go g.run()
	}
	g.mu.Unlock()
	return <-c.done
}

// run commits the pending calls until none is left.
func (g *groupCommit) run() {
	if g.delay > 0 {
		time.Sleep(g.delay)
	}
	for {
		g.mu.Lock()
		n := min(len(g.pending), g.max)
		if n == 0 {
			g.active = false
			g.mu.Unlock()
			return
		}
		calls := g.pending[:n:n]
		g.pending = append([]gcCall(nil), g.pending[n:]...)
		g.mu.Unlock()
		g.commit(calls)
	}
}

// commit runs calls in one transaction; a failing call is run alone.
func (g *groupCommit) commit(calls []gcCall) {
	for len(calls) > 0 {
		failed := -1
		err := g.db.Update(func(tx *bbolt.Tx) error {
			for i, c := range calls {
				if err := safeCall(c.fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			for _, c := range calls {
				c.done <- err
			}
			return
		}
		c := calls[failed]
		calls = append(calls[:failed:failed], calls[failed+1:]...)
		c.done <- g.db.Update(func(tx *bbolt.Tx) error { return safeCall(c.fn, tx) })
	}
}

// safeCall runs fn, turning a panic into an error so that one call cannot
// stop the committer and leave the others waiting.
func safeCall(fn func(*bbolt.Tx) error, tx *bbolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in a batched write: %v", p)
		}
	}()
	return fn(tx)
}
