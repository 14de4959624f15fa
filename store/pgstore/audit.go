package pgstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/internal/backend"
)

// revocationChannel is the LISTEN/NOTIFY channel of new revocations. The
// payload is the last revocation Seq of the transaction that sent it.
const revocationChannel = "fleetca_rev"

// appendLogsSQL appends to the logs (fleetca_append_logs, migration 7):
// it takes the next Seq values under the log_heads row lock, which the
// transaction holds until it commits, appends the audit events with their
// roots and the tree's stored hashes, and inserts the revocation entries
// with their Seq values. It returns the last revocation Seq before. $1 is
// the number of revocations; $2..$9 the audit events' columns and leaf
// tails as arrays, in Seq order; $10..$15 the revocations' columns.
const appendLogsSQL = `
WITH h AS (
	SELECT revocation_before FROM fleetca_append_logs($1::bigint,
		$2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bytea[])
), r AS (
	INSERT INTO revocations (seq, serial, device_id, revoked_at, reason, not_after, crl_partition)
	SELECT h.revocation_before + e.ord, e.serial, e.device_id, e.revoked_at, e.reason, e.not_after, e.crl_partition
	FROM h, unnest($10::numeric[], $11::text[], $12::timestamptz[], $13::integer[], $14::timestamptz[], $15::smallint[])
		WITH ORDINALITY AS e(serial, device_id, revoked_at, reason, not_after, crl_partition, ord)
)
SELECT revocation_before FROM h`

// logAppend is what a transaction appends to the logs (appendLogs), done
// by runTx when it commits (txn.queueLogs).
type logAppend struct {
	audits []store.AuditEvent
	revs   []store.Revocation
	out    *[]store.Revocation
}

// appendLogs appends the audit events and the revocation entries revs
// (their Seq fields are ignored) and, if there are entries, notifies the
// revocation channel (PostgreSQL delivers it on commit). Once the
// transaction has committed, *out (if not nil) holds revs with their Seq.
//
// It must be the last thing a write transaction does, and is done once:
// runTx sends, after every statement queued with txn.last and before the
// COMMIT, in the same round trip, the statement that takes the log_heads
// row lock every appender waits for (appendLogsSQL). The lock is held
// until the commit, so Seq values are given out in commit order without
// gaps: a bigserial would give them out in the order the transactions
// asked, and a reader could see Seq 11 committed before 10, page past 10
// and never see it. The server computes the audit events' stored hashes
// and roots under the lock (fleetca_append_logs), so no client round trip
// happens while it is held.
func appendLogs(tx *txn, audits []store.AuditEvent, revs []store.Revocation, out *[]store.Revocation) {
	if tx.logs != nil {
		panic("pgstore: appendLogs called twice in one transaction")
	}
	tx.logs = &logAppend{audits: slices.Clone(audits), revs: revs, out: out}
}

// leafHead is how every audit leaf (store.AuditEvent.LeafData) begins
// when its Seq is 0: fleetca_append_logs puts the real Seq in its place.
const leafHead = `{"seq":0`

// leafTail returns e's leaf without its beginning up to the Seq's digits,
// for fleetca_append_logs, which prefixes {"seq":<Seq>.
func leafTail(e store.AuditEvent) ([]byte, error) {
	e.Seq = 0
	leaf := e.LeafData()
	tail, ok := bytes.CutPrefix(leaf, []byte(leafHead))
	if !ok {
		return nil, fmt.Errorf("audit tree: an audit leaf begins %.12q, not %q", leaf, leafHead)
	}
	return tail, nil
}

// queueLogs queues on tx.final the logs' statement (appendLogsSQL, and
// the notification of new revocations), to go with the COMMIT.
func (tx *txn) queueLogs() error {
	l := tx.logs
	na, nr := len(l.audits), len(l.revs)
	times := make([]any, na)
	actions, actors, devices, serials, tokens, details := make([]string, na), make([]string, na), make([]string, na),
		make([]string, na), make([]string, na), make([]string, na)
	tails := make([][]byte, na)
	for i, e := range l.audits {
		// The stored time is the leaf's: UTC, to the microsecond.
		e.Time = e.Time.UTC().Truncate(store.AuditTimePrecision)
		tail, err := leafTail(e)
		if err != nil {
			return err
		}
		times[i], tails[i] = nullTime(e.Time), tail
		actions[i], actors[i], devices[i], serials[i], tokens[i], details[i] = e.Action, e.Actor, e.DeviceID, e.Serial, e.TokenID, e.Detail
	}
	rSerials := make([]pgtype.Numeric, nr)
	rDevices := make([]string, nr)
	rAts := make([]time.Time, nr)
	rReasons := make([]int32, nr)
	rNotAfters := make([]time.Time, nr)
	rPartitions := make([]*int16, nr)
	for i, e := range l.revs {
		rSerials[i], rDevices[i], rAts[i], rReasons[i], rNotAfters[i] = numeric(e.Serial), e.DeviceID, e.RevokedAt, int32(e.Reason), e.NotAfter
		if e.Partition != nil {
			p := int16(*e.Partition)
			rPartitions[i] = &p
		}
	}
	tx.final.Queue(appendLogsSQL, nr, times, actions, actors, devices, serials, tokens, details, tails,
		rSerials, rDevices, rAts, rReasons, rNotAfters, rPartitions).QueryRow(func(row pgx.Row) error {
		var revSeq int64
		if err := row.Scan(&revSeq); err != nil {
			return fmt.Errorf("append to the logs: %w", err)
		}
		if l.out != nil {
			entries := make([]store.Revocation, nr)
			for i, e := range l.revs {
				e.Seq = uint64(revSeq) + uint64(i) + 1
				entries[i] = e
			}
			*l.out = entries
		}
		return nil
	})
	if nr > 0 {
		// The payload is a hint (the listener reads none of it): the last
		// Seq is read from log_heads, updated by this transaction.
		tx.final.Queue("SELECT pg_notify($1, revocation_seq::text) FROM log_heads", revocationChannel)
	}
	return nil
}

// auditInsert gives events (a copy of the caller's) the Seq values after
// size, computes their roots and stored hashes on the tree whose right
// edge is edge (backend.AppendAudit, in Go: buildAuditTree's tree), and
// returns, as arrays, their Seq values, the audit columns time, action,
// actor, device_id, serial, token_id and detail, their roots, the
// stored-hash index of the first new stored hash, the new stored hashes,
// and the new right edge.
func auditInsert(size int64, edge []byte, events []store.AuditEvent) ([]any, error) {
	r, err := newEdgeReader(size, edge)
	if err != nil {
		return nil, err
	}
	hashes, err := backend.AppendAudit(size, events, r)
	if err != nil {
		return nil, fmt.Errorf("audit tree: %w", err)
	}
	base := tlog.StoredHashIndex(0, size)
	newEdge, err := r.extend(size+int64(len(events)), base, hashes)
	if err != nil {
		return nil, err
	}
	n := len(events)
	seqs, times := make([]int64, n), make([]any, n)
	actions, actors, devices, serials, tokens, details := make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n)
	roots := make([][]byte, n)
	for i, e := range events {
		seqs[i], times[i], roots[i] = int64(e.Seq), nullTime(e.Time), e.Root[:]
		actions[i], actors[i], devices[i], serials[i], tokens[i], details[i] = e.Action, e.Actor, e.DeviceID, e.Serial, e.TokenID, e.Detail
	}
	hs := make([][]byte, len(hashes))
	for i := range hashes {
		hs[i] = hashes[i][:]
	}
	return []any{seqs, times, actions, actors, devices, serials, tokens, details, roots, base, hs, newEdge}, nil
}

// appendAudit appends e with the next audit Seq; like appendLogs, it
// must be the transaction's last step.
func appendAudit(tx *txn, e store.AuditEvent) {
	appendLogs(tx, []store.AuditEvent{e}, nil, nil)
}

// AppendAudit appends e with the next Seq (e.Seq is ignored), in a
// transaction of its own.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEvent) error {
	err := s.inTx(ctx, func(tx *txn) error {
		appendAudit(tx, e)
		return nil
	})
	if err != nil {
		return fmt.Errorf("append audit event %q: %w", e.Action, err)
	}
	return nil
}

// ListAudit returns the events with Seq > afterSeq in Seq order, at most
// limit of them (bounded like store.Page.PageLimit).
func (s *Store) ListAudit(ctx context.Context, afterSeq uint64, limit int) ([]store.AuditEvent, error) {
	var out []store.AuditEvent
	err := s.read(ctx, func(q querier) error {
		var err error
		rows, err := q.Query(ctx, "SELECT "+auditCols+" FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
			clampSeq(afterSeq), store.Page{Limit: limit}.PageLimit())
		out, err = collect(rows, err, scanAudit)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list audit events after %d: %w", afterSeq, err)
	}
	return out, nil
}

// clampSeq returns seq as a bigint: a Seq above the largest bigint is
// after every stored one.
func clampSeq(seq uint64) int64 {
	if seq > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(seq)
}

// NextCounter increments the named counter and returns its new value; the
// first call returns 1. The value is committed before it is returned, so
// it never repeats. name must not be empty.
func (s *Store) NextCounter(ctx context.Context, name string) (uint64, error) {
	if name == "" {
		return 0, errors.New("next counter: name is required")
	}
	var next int64
	err := s.inTx(ctx, func(tx *txn) error {
		return tx.QueryRow(ctx, `INSERT INTO counters (name, value) VALUES ($1, 1)
			ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value`, name).Scan(&next)
	})
	if err != nil {
		return 0, fmt.Errorf("next counter %q: %w", name, err)
	}
	return uint64(next), nil
}

// GetMeta returns the value stored under key, or an error wrapping
// store.ErrNotFound. A value stored empty comes back empty, not nil.
func (s *Store) GetMeta(ctx context.Context, key string) ([]byte, error) {
	var value []byte
	err := s.read(ctx, func(q querier) error {
		err := q.QueryRow(ctx, "SELECT value FROM meta WHERE key = $1", key).Scan(&value)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get meta %q: %w", key, err)
	}
	if value == nil {
		value = []byte{}
	}
	return value, nil
}

// PutMeta stores value under key, replacing any earlier value. key must
// not be empty.
func (s *Store) PutMeta(ctx context.Context, key string, value []byte) error {
	if key == "" {
		return errors.New("put meta: key is required")
	}
	v := bytes.Clone(value)
	if v == nil {
		v = []byte{}
	}
	err := s.inTx(ctx, func(tx *txn) error {
		_, err := tx.Exec(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, v)
		return err
	})
	if err != nil {
		return fmt.Errorf("put meta %q: %w", key, err)
	}
	return nil
}

// validSerial reports whether n is a serial the store can hold, as
// boltstore can (backend.ValidSerial: positive, at most 255 bytes): a
// longer one is refused, or never found.
func validSerial(n *big.Int) bool { return backend.ValidSerial(n) }
