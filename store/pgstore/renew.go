package pgstore

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/internal/backend"
)

// maxNonceSweep is how many expired nonces one spend forgets at most, as
// in boltstore: the table holds little more than the unexpired nonces,
// and no transaction pays for a long backlog at once.
const maxNonceSweep = 16

// reasonSuperseded is the RFC 5280 §5.3.1 CRLReason code of a certificate
// that a renewal replaced.
const reasonSuperseded = 4

// Renew records a renewal of r.Parent in one transaction, under the
// rules and in the order of boltstore's Renew (see store.Store): it reads
// the parent (store.ErrNotFound), locks its device's row (which every
// write about the device takes first, so the lineage it reads next
// cannot change under it), refuses a revoked device
// (store.ErrDeviceRevoked) or a parent issued before the device's last
// revocation (store.ErrCertificateRevoked), recognises a retry, then
// checks the parent (store.ErrCertificateRevoked, store.ErrNotNewest), the
// device's last renewal (store.ErrRenewedRecently), the nonce
// (store.ErrNonceSpent), the key (store.ErrKeyBlocked, store.ErrKeyInUse)
// and the serial (store.ErrConflict). A refusal rolls everything back.
//
// The nonce is spent by INSERT ... ON CONFLICT DO UPDATE ... WHERE the
// stored one has expired, RETURNING: of two renewals spending one nonce,
// the second waits for the first to commit and then gets no row.
//
// It reads every field of r; r.Parent and r.Now are required, and of
// r.Certificate, Serial, DeviceID, KeyHash, NotAfter, IssuedAt and DER.
func (s *Store) Renew(ctx context.Context, r store.Renewal) (store.RenewResult, error) {
	c := r.Certificate
	wrap := func(err error) error {
		return fmt.Errorf("renew certificate %x of device %q: %w", r.Parent, c.DeviceID, err)
	}
	if err := backend.CheckRenewal(r); err != nil {
		return store.RenewResult{}, wrap(err)
	}
	if !validSerial(r.Parent) {
		if err := ctx.Err(); err != nil {
			return store.RenewResult{}, wrap(err)
		}
		return store.RenewResult{}, wrap(store.ErrNotFound) // no such serial can be stored
	}
	// The caller's record is not kept: the result is a copy.
	c.Serial = new(big.Int).Set(c.Serial)
	c.Parent = new(big.Int).Set(r.Parent)
	c.DER = bytes.Clone(c.DER)
	var res *store.RenewResult
	err := s.inTx(ctx, func(tx *txn) error {
		var err error
		res, err = renewTx(ctx, tx, r, c)
		return err
	})
	if err != nil {
		return store.RenewResult{}, wrap(err)
	}
	if len(res.Superseded) == 0 {
		res.Superseded = nil
	} else {
		s.signal()
	}
	return *res, nil
}

// lineageSQL reads the certificates of device $1, the fields the renewal
// rules need (scanEntry).
const lineageSQL = `SELECT serial, key_hash, not_after, issued_at, revoked_at, parent, crl_partition
	FROM certificates WHERE device_id = $1`

// scanEntry reads a row of lineageSQL.
func scanEntry(row pgx.Row) (backend.Entry, error) {
	var (
		e                         backend.Entry
		serial, parent            pgtype.Numeric
		key                       []byte
		notAfter, issued, revoked *time.Time
	)
	if err := row.Scan(&serial, &key, &notAfter, &issued, &revoked, &parent, &e.Partition); err != nil {
		return e, err
	}
	var err error
	if e.Serial, err = bigInt(serial); err != nil {
		return e, err
	}
	if e.Parent, err = bigInt(parent); err != nil {
		return e, err
	}
	if e.KeyHash, err = hash32(key); err != nil {
		return e, err
	}
	e.NotAfter, e.IssuedAt, e.RevokedAt = timeOf(notAfter), timeOf(issued), timeOf(revoked)
	return e, nil
}

// renewTx is the body of Renew; c is r.Certificate with its Parent set.
// The result is complete (its Superseded entries numbered) once the
// transaction has committed.
func renewTx(ctx context.Context, tx *txn, r store.Renewal, c store.Certificate) (*store.RenewResult, error) {
	var none *store.RenewResult

	// The parent, its device locked, and the device's certificates read
	// under that lock: one round trip, three statements run in order (the
	// lineage's snapshot is taken once the lock is held), judged in that
	// order. When the parent is refused, the device's lock and lineage
	// were taken for nothing, and are rolled back.
	var head firstCond
	var dev store.Device
	var entries []backend.Entry
	b := tx.batch()
	b.Queue("SELECT device_id FROM certificates WHERE serial = $1", numeric(r.Parent)).QueryRow(func(row pgx.Row) error {
		var parentDevice string
		err := row.Scan(&parentDevice)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return head.judge(store.ErrNotFound)
		case err != nil:
			return fmt.Errorf("parent: %w", err)
		case parentDevice != c.DeviceID:
			return head.judge(errArg("the parent belongs to device %q", parentDevice))
		}
		return nil
	})
	b.Queue("SELECT "+deviceCols+" FROM devices WHERE id = $1 FOR NO KEY UPDATE", c.DeviceID).QueryRow(func(row pgx.Row) error {
		var err error
		dev, err = scanDevice(row)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return head.judge(errors.New("the parent's device is not recorded"))
		case err != nil:
			return fmt.Errorf("device: %w", err)
		}
		return nil
	})
	b.Queue(lineageSQL, c.DeviceID).Query(func(rows pgx.Rows) error {
		var err error
		if entries, err = collect(rows, nil, scanEntry); err != nil {
			return fmt.Errorf("lineage: %w", err)
		}
		return nil
	})
	if err := tx.send(ctx, b); head.err != nil || err != nil {
		return none, cmp.Or(head.err, err)
	}
	lin := backend.Judge(r, entries)
	if lin.Parent == nil {
		return none, errors.New("the parent left its device")
	}
	parent := *lin.Parent
	switch {
	case dev.Status == store.DeviceRevoked:
		return none, fmt.Errorf("revoked at %s: %w", dev.UpdatedAt.Format(time.RFC3339), store.ErrDeviceRevoked)
	case !dev.RevokedAt.IsZero() && !parent.IssuedAt.After(dev.RevokedAt):
		// Revoking the device revoked only its live certificates; one
		// that had expired by then is as dead, whatever a reset did since.
		return none, fmt.Errorf("issued before its device was revoked at %s: %w", dev.RevokedAt.Format(time.RFC3339), store.ErrCertificateRevoked)
	}

	// A retry: the earlier answer, and the nonce spent.
	if lin.Retry != nil {
		earlier, err := scanCert(tx.QueryRow(ctx, "SELECT "+certCols+" FROM certificates WHERE serial = $1", numeric(lin.Retry.Serial)))
		if err != nil {
			return none, fmt.Errorf("earlier certificate: %w", err)
		}
		if r.Nonce != nil {
			if err := spendNonce(ctx, tx, *r.Nonce, r.Now); err != nil {
				return none, err
			}
		}
		return &store.RenewResult{Certificate: earlier, Replayed: true}, nil
	}

	// The parent and the device's last renewal.
	switch {
	case !parent.RevokedAt.IsZero():
		return none, fmt.Errorf("revoked at %s: %w", parent.RevokedAt.Format(time.RFC3339), store.ErrCertificateRevoked)
	case lin.Newer != nil:
		return none, fmt.Errorf("certificate %x was issued after it: %w", lin.Newer.Serial, store.ErrNotNewest)
	case r.MinInterval > 0 && dev.LastRenewalAt.After(r.Now.Add(-r.MinInterval)):
		return none, fmt.Errorf("last renewal at %s: %w", dev.LastRenewalAt.Format(time.RFC3339), store.ErrRenewedRecently)
	}

	// The nonce, the key and the serial, then the device: one round trip
	// (see issueTx); a refusal rolls back what the batch wrote.
	var cond firstCond
	b = tx.batch()
	if r.Nonce != nil {
		queueSpendNonce(b, &cond, *r.Nonce, r.Now)
	}
	queueBindKey(b, &cond, c.KeyHash, c.DeviceID)
	queueInsertCert(b, &cond, c)
	notAfter, renewBy := backend.DeviceCertificate(c)
	b.Queue("UPDATE devices SET last_renewal_at = $2, updated_at = $2, not_after = $3, renew_by = $4 WHERE id = $1",
		c.DeviceID, r.Now, notAfter, renewBy)
	if err := tx.send(ctx, b); cond.err != nil || err != nil {
		return none, cmp.Or(cond.err, err)
	}

	// Every condition holds: the count, the superseded, the logs.
	queueCounts(tx, 0, 1, 0, time.Time{})
	var old []store.Certificate
	for _, e := range lin.Superseded(r) {
		old = append(old, store.Certificate{Serial: e.Serial, DeviceID: c.DeviceID, KeyHash: e.KeyHash, NotAfter: e.NotAfter, Partition: e.Partition})
	}
	revoked := revokeCerts(tx, old, r.Now, reasonSuperseded, false)
	res := &store.RenewResult{Certificate: c}
	appendLogs(tx, []store.AuditEvent{r.Audit}, revoked, &res.Superseded)
	return res, nil
}

// spendNonce spends the nonce n at now (queueSpendNonce), in a round trip
// of its own, whether or not it was spent.
func spendNonce(ctx context.Context, tx *txn, n store.Nonce, now time.Time) error {
	var ignored firstCond
	b := tx.batch()
	queueSpendNonce(b, &ignored, n, now)
	return tx.send(ctx, b)
}

// queueSpendNonce queues on b statements that forget up to maxNonceSweep
// nonces expired at now, then record n as spent until n.Expires, unless
// it is spent and unexpired at now: then cond judges
// store.ErrNonceSpent.
func queueSpendNonce(b *pgx.Batch, cond *firstCond, n store.Nonce, now time.Time) {
	// SKIP LOCKED: two sweepers never wait for each other, nor for a
	// spender of an expired nonce.
	b.Queue(`DELETE FROM nonces WHERE hash IN (
		SELECT hash FROM nonces WHERE expires <= $1 AND hash <> $2 ORDER BY expires LIMIT $3 FOR UPDATE SKIP LOCKED)`,
		now, n.Hash[:], maxNonceSweep).Exec(func(pgconn.CommandTag) error { return nil })
	b.Queue(`INSERT INTO nonces (hash, expires) VALUES ($1, $2)
		ON CONFLICT (hash) DO UPDATE SET expires = excluded.expires WHERE nonces.expires <= $3
		RETURNING true`, n.Hash[:], n.Expires, now).QueryRow(func(row pgx.Row) error {
		fresh, err := rowReturned(row)
		switch {
		case err != nil:
			return fmt.Errorf("nonce: %w", err)
		case !fresh:
			return cond.judge(store.ErrNonceSpent)
		}
		return nil
	})
}
