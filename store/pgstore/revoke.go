package pgstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/internal/backend"
)

// Revoke revokes a certificate (r.Serial) or a device (r.DeviceID) in one
// transaction, spending a use of r.Token if set (checked first, as Issue
// checks it, at r.At; spent by the same conditional UPDATE). It locks the device's row first (the certificate's device,
// for a serial), as every write about a device does, then checks that the
// certificate or device exists (store.ErrNotFound) and is not revoked
// (store.ErrAlreadyRevoked); a refusal writes nothing and returns no
// entries.
//
// For each certificate it revokes (the one named, or every certificate of
// the device that is Live at r.At, in serial order) it sets RevokedAt to
// r.At and Reason to r.Reason, appends a revocation log entry and, if
// r.BlockKeys, blocks the certificate's key. For a device it also sets
// Status to store.DeviceRevoked, and UpdatedAt and RevokedAt to r.At. Then
// it appends r.Audit, gives the entries their Seq (appendLogs, last, so in
// commit order), notifies the revocation channel, and returns the entries.
//
// It reads every field of r. Exactly one of Serial and DeviceID must be
// set, and At must not be zero; otherwise the error wraps no sentinel. A
// serial the store cannot hold (not positive, too long) is never found.
func (s *Store) Revoke(ctx context.Context, r store.RevokeRequest) ([]store.Revocation, error) {
	wrap, err := backend.CheckRevoke(r)
	if err != nil {
		return nil, err
	}
	if r.Serial != nil && !validSerial(r.Serial) {
		if err := ctx.Err(); err != nil {
			return nil, wrap(err)
		}
		return nil, wrap(store.ErrNotFound) // no such serial can be stored
	}
	var out []store.Revocation
	err = s.inTx(ctx, func(tx *txn) error {
		out = nil // a re-run starts afresh
		spend := r.Token != store.TokenHash{}
		if spend {
			if err := checkToken(ctx, tx, r.Token, r.At); err != nil {
				return err
			}
		}
		var entries []store.Revocation
		var audit store.AuditEvent
		var err error
		if r.Serial != nil {
			entries, audit, err = revokeSerialTx(ctx, tx, r)
		} else {
			entries, audit, err = revokeDeviceTx(ctx, tx, r)
		}
		if err != nil {
			return err
		}
		if spend {
			spendToken(tx, r.Token, r.At)
		}
		appendLogs(tx, []store.AuditEvent{audit}, entries, &out)
		return nil
	})
	if errors.Is(err, errTokenRaced) {
		err = s.tokenCondition(ctx, r.Token, r.At)
	}
	if err != nil {
		return nil, wrap(err)
	}
	if len(out) > 0 {
		s.signal()
	}
	return out, nil
}

// revokeSerialTx is the body of Revoke for r.Serial: it returns the log
// entry (without Seq) and the audit event for appendLogs.
func revokeSerialTx(ctx context.Context, tx *txn, r store.RevokeRequest) ([]store.Revocation, store.AuditEvent, error) {
	var none store.AuditEvent
	// The certificate's device's row locked (a certificate never changes
	// device), and the certificate read under that lock, which every
	// writer of the certificate holds: one round trip, two statements
	// (the second's snapshot is taken once the first holds the lock).
	var c store.Certificate
	var found firstCond
	b := tx.batch()
	b.Queue(`SELECT true FROM devices WHERE id = (SELECT device_id FROM certificates WHERE serial = $1)
		FOR NO KEY UPDATE`, numeric(r.Serial)).QueryRow(func(row pgx.Row) error {
		var ok bool
		err := row.Scan(&ok)
		if errors.Is(err, pgx.ErrNoRows) {
			return found.judge(store.ErrNotFound) // no such certificate, or its device is gone
		}
		return err
	})
	b.Queue("SELECT "+certCols+" FROM certificates WHERE serial = $1", numeric(r.Serial)).QueryRow(func(row pgx.Row) error {
		if found.err != nil {
			return nil
		}
		var err error
		c, err = scanCert(row)
		return err
	})
	if err := tx.send(ctx, b); found.err != nil || err != nil {
		return nil, none, cmp.Or(found.err, err)
	}
	if !c.RevokedAt.IsZero() {
		return nil, none, fmt.Errorf("revoked at %s: %w", c.RevokedAt.Format(time.RFC3339), store.ErrAlreadyRevoked)
	}
	e := revokeCerts(tx, []store.Certificate{c}, r.At, r.Reason, r.BlockKeys)
	audit := r.Audit
	if audit.DeviceID == "" {
		audit.DeviceID = c.DeviceID // the caller names the serial only
	}
	return e, audit, nil
}

// revokeDeviceTx is the body of Revoke for r.DeviceID, under the same
// rules as revokeSerialTx.
func revokeDeviceTx(ctx context.Context, tx *txn, r store.RevokeRequest) ([]store.Revocation, store.AuditEvent, error) {
	var none store.AuditEvent
	dev, err := lockDevice(ctx, tx, r.DeviceID)
	if err != nil {
		return nil, none, err
	}
	if dev.Status == store.DeviceRevoked {
		return nil, none, fmt.Errorf("revoked at %s: %w", dev.UpdatedAt.Format(time.RFC3339), store.ErrAlreadyRevoked)
	}
	rows, err := tx.Query(ctx, "SELECT "+certCols+` FROM certificates
		WHERE device_id = $1 AND revoked_at IS NULL AND not_after > $2 ORDER BY serial`, r.DeviceID, r.At)
	live, err := collect(rows, err, scanCert)
	if err != nil {
		return nil, none, fmt.Errorf("live certificates: %w", err)
	}
	entries := revokeCerts(tx, live, r.At, r.Reason, r.BlockKeys)
	tx.last("UPDATE devices SET status = 'revoked', updated_at = $2, revoked_at = $2 WHERE id = $1", nil, r.DeviceID, r.At)
	queueCounts(tx, -1, 0, 1, time.Time{})
	return entries, r.Audit, nil
}

// revokeCerts queues to go last (txn.last) the statements that
// record certs (unrevoked, of one device whose row the transaction has
// locked) as revoked at at for reason, and block their keys if block,
// and returns their log entries, in the order of certs, without Seq:
// appendLogs, which the caller runs last, gives them theirs.
func revokeCerts(tx *txn, certs []store.Certificate, at time.Time, reason int, block bool) []store.Revocation {
	out := make([]store.Revocation, 0, len(certs))
	for _, c := range certs {
		tx.last("UPDATE certificates SET revoked_at = $2, reason = $3 WHERE serial = $1", nil, numeric(c.Serial), at, reason)
		if block {
			tx.last("INSERT INTO blocked_keys (key_hash) VALUES ($1) ON CONFLICT DO NOTHING", nil, c.KeyHash[:])
		}
		out = append(out, store.Revocation{
			Serial: c.Serial, DeviceID: c.DeviceID, RevokedAt: at, Reason: reason, NotAfter: c.NotAfter, Partition: c.Partition,
		})
	}
	return out
}

// ResetDevice sets the Status of the revoked device with the ID to
// store.DeviceActive and its UpdatedAt to at, releases the manufacturer
// certificate it enrolled with (if this device holds it), and appends
// audit, in one transaction; it returns the updated device. Its
// certificates, blocked keys and RevokedAt are left as they are. For an
// unknown ID it returns an error wrapping store.ErrNotFound. For a device
// that is not revoked it writes nothing and returns the device as stored
// with an error wrapping store.ErrNotRevoked.
func (s *Store) ResetDevice(ctx context.Context, id string, at time.Time, audit store.AuditEvent) (store.Device, error) {
	var d store.Device
	var notRevoked bool
	err := s.inTx(ctx, func(tx *txn) error {
		notRevoked = false
		var err error
		if d, err = lockDevice(ctx, tx, id); err != nil {
			return err
		}
		if d.Status != store.DeviceRevoked {
			notRevoked = true
			return fmt.Errorf("status %s: %w", d.Status, store.ErrNotRevoked)
		}
		d.Status, d.UpdatedAt = store.DeviceActive, at
		d.NotAfter, d.RenewBy = time.Time{}, time.Time{}
		if _, err := tx.Exec(ctx, "UPDATE devices SET status = 'active', updated_at = $2, not_after = NULL, renew_by = NULL WHERE id = $1", id, nullTime(at)); err != nil {
			return err
		}
		if m := d.Manufacturer; m != nil {
			// Released only if it is this device's: another device may
			// not free it.
			if _, err := tx.Exec(ctx, "DELETE FROM mfr_certs WHERE fingerprint = $1 AND device_id = $2", m.Fingerprint[:], id); err != nil {
				return err
			}
		}
		queueCounts(tx, 1, 0, -1, time.Time{})
		appendAudit(tx, audit)
		return nil
	})
	if err != nil {
		err = fmt.Errorf("reset device %q: %w", id, err)
		if notRevoked {
			return d, err
		}
		return store.Device{}, err
	}
	return d, nil
}

// RenewNow records that an admin asked the device with the ID, or with id
// "" the whole fleet, to renew now: it sets the device's RenewNowAt (and
// nothing else of it), or the fleet's renew-now time, to at, and appends
// audit, in one transaction. For an unknown device it returns an error
// wrapping store.ErrNotFound and writes nothing. A zero at is an error
// wrapping no sentinel (zero means "never").
func (s *Store) RenewNow(ctx context.Context, id string, at time.Time, audit store.AuditEvent) error {
	what := fmt.Sprintf("device %q", id)
	if id == "" {
		what = "the fleet"
	}
	if at.IsZero() {
		return fmt.Errorf("renew now %s: time is required", what)
	}
	err := s.inTx(ctx, func(tx *txn) error {
		if id == "" {
			if _, err := tx.Exec(ctx, "UPDATE fleet SET renew_now_at = $1", at); err != nil {
				return err
			}
		} else {
			if err := tx.execFound(ctx, "UPDATE devices SET renew_now_at = $2 WHERE id = $1", id, at); err != nil {
				return err
			}
		}
		appendAudit(tx, audit)
		return nil
	})
	if err != nil {
		return fmt.Errorf("renew now %s: %w", what, err)
	}
	return nil
}

// FleetRenewNow returns the time of the last RenewNow for the whole fleet
// (in UTC), zero if there was none.
func (s *Store) FleetRenewNow(ctx context.Context) (time.Time, error) {
	var at *time.Time
	err := s.read(ctx, func(q querier) error {
		return q.QueryRow(ctx, "SELECT renew_now_at FROM fleet").Scan(&at)
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("get fleet renew-now time: %w", err)
	}
	return timeOf(at), nil
}
