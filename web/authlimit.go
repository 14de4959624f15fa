package web

import (
	"sync"
	"time"

	"github.com/fleetca/fleetca/enroll"
)

// overflowAddr is the key under which authLimiter tracks, together, every
// address that arrives while its table is full.
const overflowAddr = "(untracked addresses)"

// authLimiter limits failed admin authentications per client address, and
// decides which of them reach the audit log, so that a flood of wrong
// tokens costs neither unbounded disk nor unbounded memory, and cannot bury
// a real attempt in noise. It is safe for concurrent use; time is passed in.
//
// Limit: an address that failed limit times within window (which starts at
// its first failure) is refused, unchecked, until that window ends.
//
// Audit: the first failure of an address is written at once, as one row;
// failures and refusals after it, within window of that row, are counted,
// and the count is written as one summary row by the next failure or
// refusal after the window, by the sweep that runs at most once a window
// on any call, or by flush at shutdown. So an address gets at most one row
// a window, and a single failure is never delayed.
//
// Memory: at most maxAddrs addresses are tracked. An entry is dropped once
// its rate window and its audit window are over with nothing pending. When
// the table is full of live entries, new addresses share one entry
// (overflowAddr): they are limited together, which fails closed.
type authLimiter struct {
	limit    int
	window   time.Duration
	maxAddrs int

	mu        sync.Mutex
	entries   map[string]*authEntry
	lastSweep time.Time
}

// authEntry is one address's state.
type authEntry struct {
	start    time.Time // the rate window's start: its first failure
	failures int       // failures in the rate window
	audited  time.Time // when its last audit row was written (zero: none)
	pending  enroll.AdminAuthFailures
}

func newAuthLimiter(limit int, window time.Duration, maxAddrs int) *authLimiter {
	return &authLimiter{limit: limit, window: window, maxAddrs: maxAddrs, entries: make(map[string]*authEntry)}
}

// refuse reports how long addr must still wait if it is limited (0 if it is
// not), counting a refusal. rows are the audit rows now due, of any
// address, for the caller to write.
func (l *authLimiter) refuse(addr string, now time.Time) (wait time.Duration, rows []enroll.AdminAuthFailures) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rows = l.sweep(now)
	e, ok := l.entries[addr]
	if !ok {
		e, ok = l.entries[overflowAddr]
		if !ok || len(l.entries) < l.maxAddrs {
			return 0, rows
		}
		addr = overflowAddr
	}
	end := e.start.Add(l.window)
	if e.failures < l.limit || !now.Before(end) {
		return 0, rows
	}
	return end.Sub(now), append(rows, l.record(e, addr, now, false, "")...)
}

// fail counts a failed authentication of addr, for reason, and returns the
// audit rows now due.
func (l *authLimiter) fail(addr string, now time.Time, reason string) []enroll.AdminAuthFailures {
	l.mu.Lock()
	defer l.mu.Unlock()
	rows := l.sweep(now)
	e, ok := l.entries[addr]
	if !ok && len(l.entries) >= l.maxAddrs {
		addr = overflowAddr
		e, ok = l.entries[addr]
	}
	if !ok {
		e = &authEntry{}
		l.entries[addr] = e
	}
	if e.failures == 0 || !now.Before(e.start.Add(l.window)) {
		e.start, e.failures = now, 0
	}
	e.failures++
	return append(rows, l.record(e, addr, now, true, reason)...)
}

// record counts one failure (failed) or refusal of e, and returns the row
// to write now, if one is due.
func (l *authLimiter) record(e *authEntry, addr string, now time.Time, failed bool, reason string) []enroll.AdminAuthFailures {
	if e.pending.Failed+e.pending.Refused == 0 {
		e.pending = enroll.AdminAuthFailures{From: addr, Since: now}
	}
	if failed {
		e.pending.Failed++
		e.pending.Last = reason
	} else {
		e.pending.Refused++
	}
	if e.pending.Last == "" {
		e.pending.Last = "refused for too many failures"
	}
	if !e.audited.IsZero() && now.Before(e.audited.Add(l.window)) {
		return nil
	}
	row := e.pending
	e.pending, e.audited = enroll.AdminAuthFailures{}, now
	return []enroll.AdminAuthFailures{row}
}

// sweep, at most once a window, writes the summaries whose window is over
// and drops the entries that are done with (so an entry lives at most about
// two windows after its last failure). It returns the rows to write.
func (l *authLimiter) sweep(now time.Time) []enroll.AdminAuthFailures {
	if !l.lastSweep.IsZero() && now.Before(l.lastSweep.Add(l.window)) {
		return nil
	}
	l.lastSweep = now
	var rows []enroll.AdminAuthFailures
	for addr, e := range l.entries {
		if now.Before(e.audited.Add(l.window)) {
			continue
		}
		if e.pending.Failed+e.pending.Refused > 0 {
			rows = append(rows, e.pending)
			e.pending, e.audited = enroll.AdminAuthFailures{}, now
			continue
		}
		if !now.Before(e.start.Add(l.window)) {
			delete(l.entries, addr)
		}
	}
	return rows
}

// flush returns every pending summary, for the caller to write at
// shutdown.
func (l *authLimiter) flush(now time.Time) []enroll.AdminAuthFailures {
	l.mu.Lock()
	defer l.mu.Unlock()
	var rows []enroll.AdminAuthFailures
	for _, e := range l.entries {
		if e.pending.Failed+e.pending.Refused > 0 {
			rows = append(rows, e.pending)
			e.pending, e.audited = enroll.AdminAuthFailures{}, now
		}
	}
	return rows
}
