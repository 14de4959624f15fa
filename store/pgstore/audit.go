package pgstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/internal/backend"
)

// revocationChannel is the LISTEN/NOTIFY channel of new revocations. The
// payload is the last revocation Seq of the transaction that sent it.
const revocationChannel = "fleetca_rev"

// appendLogsSQL takes the next Seq values from log_heads and appends the
// audit events and the revocation entries with them, in one statement.
// $1 is the number of audit events, $2 of revocations; $3..$9 the
// events' columns as arrays, $10..$14 the entries', each in Seq order.
// It returns the last audit Seq and the last revocation Seq.
const appendLogsSQL = `
WITH h AS (
	UPDATE log_heads SET audit_seq = audit_seq + $1::bigint, revocation_seq = revocation_seq + $2::bigint
	RETURNING audit_seq, revocation_seq
), a AS (
	INSERT INTO audit (seq, time, action, actor, device_id, serial, token_id, detail)
	SELECT h.audit_seq - $1::bigint + e.ord, e.time, e.action, e.actor, e.device_id, e.serial, e.token_id, e.detail
	FROM h, unnest($3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
		WITH ORDINALITY AS e(time, action, actor, device_id, serial, token_id, detail, ord)
), r AS (
	INSERT INTO revocations (seq, serial, device_id, revoked_at, reason, not_after)
	SELECT h.revocation_seq - $2::bigint + e.ord, e.serial, e.device_id, e.revoked_at, e.reason, e.not_after
	FROM h, unnest($10::numeric[], $11::text[], $12::timestamptz[], $13::integer[], $14::timestamptz[])
		WITH ORDINALITY AS e(serial, device_id, revoked_at, reason, not_after, ord)
)
SELECT audit_seq, revocation_seq FROM h`

// appendLogs appends the audit events and the revocation entries revs
// (their Seq fields are ignored) and, if there are entries, notifies the
// revocation channel (PostgreSQL delivers it on commit). Once the
// transaction has committed, *out (if not nil) holds revs with their Seq.
//
// It queues its statements to go with the COMMIT (txn.last), so it must
// be the last thing a write transaction does: the UPDATE of log_heads
// takes the row lock every appender waits for, and holds it until the
// commit, so Seq values are given out in commit order without gaps. (A
// bigserial would give them out in the order the transactions asked, and
// a reader could see Seq 11 committed before 10, page past 10 and never
// see it.)
func appendLogs(tx *txn, audits []store.AuditEvent, revs []store.Revocation, out *[]store.Revocation) {
	na, nr := len(audits), len(revs)
	times := make([]any, na)
	actions, actors, devices, serials, tokens, details := make([]string, na), make([]string, na), make([]string, na),
		make([]string, na), make([]string, na), make([]string, na)
	for i, e := range audits {
		times[i] = nullTime(e.Time)
		actions[i], actors[i], devices[i], serials[i], tokens[i], details[i] = e.Action, e.Actor, e.DeviceID, e.Serial, e.TokenID, e.Detail
	}
	rSerials := make([]pgtype.Numeric, nr)
	rDevices := make([]string, nr)
	rAts := make([]time.Time, nr)
	rReasons := make([]int32, nr)
	rNotAfters := make([]time.Time, nr)
	for i, e := range revs {
		rSerials[i], rDevices[i], rAts[i], rReasons[i], rNotAfters[i] = numeric(e.Serial), e.DeviceID, e.RevokedAt, int32(e.Reason), e.NotAfter
	}
	tx.last(appendLogsSQL, func(row pgx.Row) error {
		var lastAudit, lastRev int64
		if err := row.Scan(&lastAudit, &lastRev); err != nil {
			return fmt.Errorf("append to the logs: %w", err)
		}
		if out != nil {
			entries := make([]store.Revocation, nr)
			for i, e := range revs {
				e.Seq = uint64(lastRev) - uint64(nr) + uint64(i) + 1
				entries[i] = e
			}
			*out = entries
		}
		return nil
	}, na, nr, times, actions, actors, devices, serials, tokens, details, rSerials, rDevices, rAts, rReasons, rNotAfters)
	if nr > 0 {
		// The payload is a hint (the listener reads none of it): the last
		// Seq is read from log_heads, updated by this transaction.
		tx.last("SELECT pg_notify($1, revocation_seq::text) FROM log_heads", nil, revocationChannel)
	}
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
