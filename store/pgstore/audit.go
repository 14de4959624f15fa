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
)

// revocationChannel is the LISTEN/NOTIFY channel of new revocations. The
// payload is the last revocation Seq of the transaction that sent it.
const revocationChannel = "fleetca_rev"

// appendLogsSQL takes the next Seq values from log_heads, appends the
// audit event and the revocation entries with them, in one statement.
// $1 is the number of revocations; $2..$6 their columns as arrays, in
// Seq order; $7..$13 the audit event's columns. It returns the last
// revocation Seq and the audit Seq.
const appendLogsSQL = `
WITH h AS (
	UPDATE log_heads SET audit_seq = audit_seq + 1, revocation_seq = revocation_seq + $1::bigint
	RETURNING audit_seq, revocation_seq
), r AS (
	INSERT INTO revocations (seq, serial, device_id, revoked_at, reason, not_after)
	SELECT h.revocation_seq - $1::bigint + e.ord, e.serial, e.device_id, e.revoked_at, e.reason, e.not_after
	FROM h, unnest($2::numeric[], $3::text[], $4::timestamptz[], $5::integer[], $6::timestamptz[])
		WITH ORDINALITY AS e(serial, device_id, revoked_at, reason, not_after, ord)
), a AS (
	INSERT INTO audit (seq, time, action, actor, device_id, serial, token_id, detail)
	SELECT h.audit_seq, $7::timestamptz, $8::text, $9::text, $10::text, $11::text, $12::text, $13::text FROM h
)
SELECT revocation_seq, audit_seq FROM h`

// appendLogs appends audit and the revocation entries revs (in that
// order; their Seq fields are ignored) and, if there are entries, sends
// the revocation notification, which PostgreSQL delivers on commit. It
// returns revs with Seq set.
//
// It must be the last thing a write transaction does: the UPDATE of
// log_heads takes the row lock that every appender waits for, and holds it
// until commit, so the Seq values are given out in commit order without
// gaps, and a transaction holds the lock only for its last statement and
// its commit. (A bigserial would give them out in the order the
// transactions asked, and a reader could see Seq 11 committed before 10,
// page past 10 and never see it.)
func appendLogs(ctx context.Context, tx pgx.Tx, audit store.AuditEvent, revs []store.Revocation) ([]store.Revocation, error) {
	n := len(revs)
	serials := make([]pgtype.Numeric, n)
	devices := make([]string, n)
	ats := make([]time.Time, n)
	reasons := make([]int32, n)
	notAfters := make([]time.Time, n)
	for i, e := range revs {
		serials[i], devices[i], ats[i], reasons[i], notAfters[i] = numeric(e.Serial), e.DeviceID, e.RevokedAt, int32(e.Reason), e.NotAfter
	}
	var last, auditSeq int64
	err := tx.QueryRow(ctx, appendLogsSQL, n, serials, devices, ats, reasons, notAfters,
		nullTime(audit.Time), audit.Action, audit.Actor, audit.DeviceID, audit.Serial, audit.TokenID, audit.Detail,
	).Scan(&last, &auditSeq)
	if err != nil {
		return nil, fmt.Errorf("append to the logs: %w", err)
	}
	out := make([]store.Revocation, n)
	for i, e := range revs {
		e.Seq = uint64(last) - uint64(n) + uint64(i) + 1
		out[i] = e
	}
	if n > 0 {
		if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", revocationChannel, fmt.Sprint(last)); err != nil {
			return nil, fmt.Errorf("notify: %w", err)
		}
	}
	return out, nil
}

// appendAuditSQL is appendLogsSQL for an audit event alone.
const appendAuditSQL = `
WITH h AS (
	UPDATE log_heads SET audit_seq = audit_seq + 1 RETURNING audit_seq
)
INSERT INTO audit (seq, time, action, actor, device_id, serial, token_id, detail)
SELECT h.audit_seq, $1::timestamptz, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text FROM h`

// appendAudit appends e with the next audit Seq; like appendLogs, it
// must be the transaction's last statement.
func appendAudit(ctx context.Context, tx pgx.Tx, e store.AuditEvent) error {
	_, err := tx.Exec(ctx, appendAuditSQL, nullTime(e.Time), e.Action, e.Actor, e.DeviceID, e.Serial, e.TokenID, e.Detail)
	if err != nil {
		return fmt.Errorf("append to the audit log: %w", err)
	}
	return nil
}

// AppendAudit appends e with the next Seq (e.Seq is ignored), in a
// transaction of its own.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEvent) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error { return appendAudit(ctx, tx, e) })
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
	err := s.inTx(ctx, func(tx pgx.Tx) error {
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
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, v)
		return err
	})
	if err != nil {
		return fmt.Errorf("put meta %q: %w", key, err)
	}
	return nil
}

// maxSerial bounds the serials the store accepts, as boltstore does (255
// bytes): a longer one is refused, or never found.
var maxSerial = new(big.Int).Lsh(big.NewInt(1), 255*8)

// validSerial reports whether n is a serial the store can hold.
func validSerial(n *big.Int) bool {
	return n != nil && n.Sign() > 0 && n.Cmp(maxSerial) < 0
}
