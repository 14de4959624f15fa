package pgstore

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/internal/backend"
)

// Issue records an issued certificate in one transaction. It checks, in
// this order, the token (exists, not revoked, unexpired at is.Now, a use
// left), the manufacturer certificate (unused), the device (new if
// is.RequireNewDevice, not revoked, fewer than is.MaxActive live
// certificates), the key (not blocked, not bound to another device) and
// the serial (unused: store.ErrConflict). The first failure is returned,
// wrapped, and the transaction rolled back. Otherwise it spends a use of
// the token, creates the device (DeviceActive, CreatedAt = UpdatedAt =
// is.Now) or sets its UpdatedAt, binds the key, stores the certificate
// and appends is.Audit with the next Seq.
//
// Races between replicas are settled by PostgreSQL, never by a read
// followed by a write:
//   - the token's use is spent by a conditional UPDATE (spent < uses, not
//     revoked, unexpired), whose WHERE PostgreSQL re-checks on the newest
//     version of the row after waiting for a concurrent spender: of N
//     spenders of the last use, exactly one gets the row back;
//   - the device row is created by INSERT ... ON CONFLICT DO NOTHING, or,
//     when it exists, locked (SELECT ... FOR NO KEY UPDATE), so every
//     write about one device (Issue, Renew, Revoke, ResetDevice) is
//     serialised on it, MaxActive's count included;
//   - the manufacturer certificate's use, the key binding and the serial
//     are INSERT ... ON CONFLICT DO NOTHING RETURNING into tables whose
//     primary key is the fingerprint, the key hash and the serial: the
//     unique index lets one inserter in, and a second waits for the first
//     to commit and then sees the conflict.
//
// Never SELECT ... FOR UPDATE to check that a row is absent before
// inserting it: that locks nothing when the row does not exist, so two
// transactions both see it absent (TestForUpdateDoubleSpend shows it).
//
// It reads every field of is. Of is.Certificate, Serial (positive, at
// most 255 bytes), DeviceID (not empty, no NUL byte), KeyHash (not zero),
// NotAfter (not zero) and DER (not empty) are required; a missing one is
// an error that wraps no sentinel.
func (s *Store) Issue(ctx context.Context, is store.Issuance) error {
	c := is.Certificate
	wrap := func(err error) error {
		return fmt.Errorf("issue certificate %x for device %q: %w", c.Serial, c.DeviceID, err)
	}
	if err := backend.CheckIssuance(is); err != nil {
		return wrap(err)
	}
	err := s.inTx(ctx, func(tx *txn) error { return issueTx(ctx, tx, is) })
	if errors.Is(err, errTokenRaced) {
		err = s.tokenCondition(ctx, is.Token, is.Now)
	}
	if err != nil {
		return wrap(err)
	}
	return nil
}

// issueTx is the body of Issue. It takes one round trip before the last
// one, which carries the writes, the logs' statement and the COMMIT
// (appendLogs): the BEGIN, the token's read and the statements of the
// manufacturer certificate, the device, an existing device's live
// certificates (MaxActive), the key and the serial go in one batch, in
// the order of the conditions, and their results are judged in that
// order (firstCond). A write whose
// condition fails, or that comes after one that failed, is rolled back
// with the rest; no statement of the batch fails with an error for a
// refused condition, so none hides an earlier condition's answer. The
// device's row is created or locked by the batch's device statement,
// before the key's and the certificate's statements, so the locks are
// taken in the order of the unbatched writes.
func issueTx(ctx context.Context, tx *txn, is store.Issuance) error {
	c := is.Certificate
	var cond firstCond
	b := tx.batch()

	// The token: read now, for the order of the errors; spent last, by
	// the conditional UPDATE that settles races.
	spend := is.Token != store.TokenHash{}
	if spend {
		b.Queue("SELECT "+tokenCols+" FROM tokens WHERE hash = $1", is.Token[:]).QueryRow(func(row pgx.Row) error {
			return cond.judge(tokenError(row, is.Now))
		})
	}

	// The manufacturer certificate.
	mfr := is.Manufacturer
	var mfrName, mfrSerial *string
	var mfrFP []byte
	if mfr != nil {
		mfrName, mfrSerial, mfrFP = &mfr.Manufacturer, &mfr.Serial, mfr.Fingerprint[:]
		b.Queue(`INSERT INTO mfr_certs (fingerprint, device_id) VALUES ($1, $2)
			ON CONFLICT DO NOTHING RETURNING true`, mfrFP, c.DeviceID).QueryRow(func(row pgx.Row) error {
			fresh, err := rowReturned(row)
			switch {
			case err != nil:
				return fmt.Errorf("manufacturer certificate: %w", err)
			case !fresh:
				return cond.judge(fmt.Errorf("manufacturer certificate %s of %s: %w", mfr.Serial, mfr.Manufacturer, store.ErrManufacturerCertUsed))
			}
			return nil
		})
	}

	// The device, created (with its newest certificate's fields) or
	// locked.
	notAfter, renewBy := backend.DeviceCertificate(c)
	var created bool
	b.Queue(deviceSQL, c.DeviceID, is.Now, mfrName, mfrSerial, mfrFP, notAfter, renewBy).QueryRow(func(row pgx.Row) error {
		var status *string
		var fp []byte
		if err := row.Scan(&created, &status, &fp); err != nil {
			return fmt.Errorf("device: %w", err)
		}
		switch {
		case created:
			return nil
		case status == nil:
			// Created by a transaction that committed after this
			// statement's snapshot was taken: run again, to see it.
			return errRaced
		case is.RequireNewDevice:
			return cond.judge(store.ErrDeviceExists)
		case mfr != nil && !bytes.Equal(fp, mfrFP):
			return cond.judge(fmt.Errorf("not enrolled with this manufacturer certificate: %w", store.ErrDeviceExists))
		case store.DeviceStatus(*status) == store.DeviceRevoked:
			return cond.judge(store.ErrDeviceRevoked)
		}
		return nil
	})

	// An existing device's live certificates, counted under its row's
	// lock: the statement comes after the device's, so its snapshot is
	// taken once the lock is held, and before the certificate's insert,
	// which it does not see. A device that must be new has none.
	if is.MaxActive > 0 && !is.RequireNewDevice {
		b.Queue(`SELECT count(*) FROM (SELECT 1 FROM certificates
			WHERE device_id = $1 AND revoked_at IS NULL AND not_after > $2 LIMIT $3) l`,
			c.DeviceID, is.Now, is.MaxActive).QueryRow(func(row pgx.Row) error {
			var live int
			if err := row.Scan(&live); err != nil {
				return fmt.Errorf("count live certificates: %w", err)
			}
			if !created && live >= is.MaxActive {
				return cond.judge(fmt.Errorf("%d live, at most %d: %w", live, is.MaxActive, store.ErrTooManyCertificates))
			}
			return nil
		})
	}

	// The key and the serial.
	queueBindKey(b, &cond, c.KeyHash, c.DeviceID)
	queueInsertCert(b, &cond, c)

	if err := tx.send(ctx, b); cond.err != nil || err != nil {
		return cmp.Or(cond.err, err)
	}

	// An existing device's update, and its newest certificate; a created
	// one has them (an UPDATE would write its row and its six index
	// entries again).
	newDevice := 1
	if !created {
		newDevice = 0
		tx.last(`UPDATE devices SET updated_at = $2,
			mfr_name = COALESCE($3, mfr_name), mfr_serial = COALESCE($4, mfr_serial), mfr_fingerprint = COALESCE($5, mfr_fingerprint),
			not_after = $6, renew_by = $7
			WHERE id = $1`, nil, c.DeviceID, is.Now, mfrName, mfrSerial, mfrFP, notAfter, renewBy)
	}
	queueCounts(tx, newDevice, 1, 0, c.IssuedAt)

	// Every condition holds but the token's use, spent last: a pattern
	// token's row is shared by every enrollment of a factory line, and
	// its lock is held from here to the commit.
	if spend {
		spendToken(tx, is.Token, is.Now)
	}
	appendAudit(tx, is.Audit)
	return nil
}

// deviceSQL creates the device's row ($1, at $2, with the manufacturer
// certificate $3, $4, $5 and the newest certificate's not_after $6 and
// renew_by $7) or, if it exists, locks it, in one statement:
// it returns whether it created the row, and the status and manufacturer
// fingerprint of the row it locked (NULL when it created one). Both
// branches see the statement's snapshot: when a concurrent transaction
// created the row and committed after it was taken, the INSERT meets the
// conflict and the SELECT sees no row, and both return nothing (the
// caller runs the transaction again: errRaced).
const deviceSQL = `
WITH ins AS (
	INSERT INTO devices (id, status, created_at, updated_at, mfr_name, mfr_serial, mfr_fingerprint, not_after, renew_by)
	VALUES ($1, 'active', $2, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING RETURNING true
), cur AS (
	SELECT status, mfr_fingerprint FROM devices WHERE id = $1 FOR NO KEY UPDATE
)
SELECT EXISTS (SELECT FROM ins), (SELECT status FROM cur), (SELECT mfr_fingerprint FROM cur)`

// errRaced is a transaction's error when a statement met a row that a
// concurrent transaction committed after the statement's snapshot was
// taken, and so could not read it: inTx runs the transaction again, as
// for a serialization failure.
var errRaced = errors.New("a concurrent transaction changed a row this one read")

// firstCond keeps the first refused condition of a batch's results,
// judged in the order queued.
type firstCond struct{ err error }

// judge keeps err if it is the first condition error, and returns nil so
// that the batch's later results are read (a callback's error would
// discard the connection's cached statements).
func (f *firstCond) judge(err error) error {
	if f.err == nil {
		f.err = err
	}
	return nil
}

// spendTokenSQL spends a use of a token by a conditional UPDATE, and
// divides by the number of rows it updated: by zero, an error that
// aborts the transaction, when the token had no use left at $2 (used up,
// revoked, expired, or gone).
const spendTokenSQL = `
WITH s AS (
	UPDATE tokens SET spent = spent + 1
	WHERE hash = $1 AND spent < uses AND revoked_at IS NULL AND expires_at > $2
	RETURNING 1
)
SELECT 1 / count(*) FROM s`

// errTokenRaced is inTx's error when spendTokenSQL found no use left: a
// concurrent transaction spent the last use (or revoked the token) after
// checkToken read it. The caller says which with tokenCondition.
var errTokenRaced = errors.New("the token changed while it was spent")

// spendToken queues the spend of a use of the token with hash h at now,
// to go with the logs' statement, just before it (txn.last). It
// is a conditional UPDATE: PostgreSQL re-checks its WHERE on the newest
// version of the row after waiting for a concurrent spender, so of N
// spenders of the last use exactly one gets the row; the others' division
// by zero stops the pipeline before the logs' statement and the COMMIT,
// and inTx returns errTokenRaced. Queued last, the row's lock (a pattern
// token's row is shared by a whole factory line) is held as log_heads'
// is, for the server's work on the last round trip and the commit, rather
// than from the middle of the transaction.
func spendToken(tx *txn, h store.TokenHash, now time.Time) {
	tx.spends = true
	tx.last(spendTokenSQL, nil, h[:], now)
}

// tokenCondition returns, for a transaction that failed with
// errTokenRaced, the condition error of the token with hash h at now.
func (s *Store) tokenCondition(ctx context.Context, h store.TokenHash, now time.Time) error {
	return s.read(ctx, func(q querier) error {
		if err := checkToken(ctx, q, h, now); err != nil {
			return err
		}
		return errTokenRaced // spendable again: a concurrent change rolled back
	})
}

// checkToken returns the condition error of the token with hash h at now
// (store.ErrTokenNotFound, ErrTokenRevoked, ErrTokenExpired, ErrTokenUsedUp),
// or nil if it has a use left.
func checkToken(ctx context.Context, q querier, h store.TokenHash, now time.Time) error {
	return tokenError(q.QueryRow(ctx, "SELECT "+tokenCols+" FROM tokens WHERE hash = $1", h[:]), now)
}

// tokenError reads a tokens row of tokenCols, or none, and returns
// checkToken's error.
func tokenError(row pgx.Row, now time.Time) error {
	tok, err := scanToken(row)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.ErrTokenNotFound
	case err != nil:
		return fmt.Errorf("token: %w", err)
	case !tok.RevokedAt.IsZero():
		return fmt.Errorf("token %s: %w", tok.ID, store.ErrTokenRevoked)
	case !tok.ExpiresAt.After(now):
		return fmt.Errorf("token %s expired at %s: %w", tok.ID, tok.ExpiresAt.Format(time.RFC3339), store.ErrTokenExpired)
	case tok.Spent >= tok.Uses:
		return fmt.Errorf("token %s spent %d of %d uses: %w", tok.ID, tok.Spent, tok.Uses, store.ErrTokenUsedUp)
	}
	return nil
}

// lockDevice reads the device and locks its row until the transaction
// ends; store.ErrNotFound if there is none.
func lockDevice(ctx context.Context, tx *txn, id string) (store.Device, error) {
	dev, err := scanDevice(tx.QueryRow(ctx, "SELECT "+deviceCols+" FROM devices WHERE id = $1 FOR NO KEY UPDATE", id))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.Device{}, store.ErrNotFound
	case err != nil:
		return store.Device{}, fmt.Errorf("device: %w", err)
	}
	return dev, nil
}

// bindKeySQL binds key $1 to device $2 unless it is bound, and returns
// whether the key is blocked and the device it is bound to: the one it
// just bound it to, or the one a committed binding names (NULL when a
// concurrent transaction bound it and committed after the statement's
// snapshot was taken: errRaced).
const bindKeySQL = `
WITH ins AS (
	INSERT INTO key_bindings (key_hash, device_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING device_id
)
SELECT EXISTS (SELECT FROM blocked_keys WHERE key_hash = $1),
	COALESCE((SELECT device_id FROM ins), (SELECT device_id FROM key_bindings WHERE key_hash = $1))`

// queueBindKey queues on b the refusal of a blocked key
// (store.ErrKeyBlocked) and of a key bound to another device
// (store.ErrKeyInUse), judged by cond, and the binding of the key to
// deviceID if it is not bound yet. The binding is written before the
// key's conditions are judged: a refusal rolls it back.
func queueBindKey(b *pgx.Batch, cond *firstCond, key store.KeyHash, deviceID string) {
	b.Queue(bindKeySQL, key[:], deviceID).QueryRow(func(row pgx.Row) error {
		var blocked bool
		var owner *string
		if err := row.Scan(&blocked, &owner); err != nil {
			return fmt.Errorf("key binding: %w", err)
		}
		switch {
		case blocked:
			return cond.judge(fmt.Errorf("key %x: %w", key[:8], store.ErrKeyBlocked))
		case owner == nil:
			return errRaced
		case *owner != deviceID:
			return cond.judge(fmt.Errorf("key %x: %w", key[:8], store.ErrKeyInUse))
		}
		return nil
	})
}

// queueInsertCert queues on b the insert of c, and its refusal
// (store.ErrConflict, judged by cond) if its serial exists.
func queueInsertCert(b *pgx.Batch, cond *firstCond, c store.Certificate) {
	b.Queue(`INSERT INTO certificates (`+certCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (serial) DO NOTHING RETURNING true`,
		numeric(c.Serial), c.DeviceID, c.KeyHash[:], nullTime(c.NotBefore), c.NotAfter, nullTime(c.IssuedAt),
		c.DER, nullTime(c.RevokedAt), c.Reason, numeric(c.Parent), c.Partition).QueryRow(func(row pgx.Row) error {
		fresh, err := rowReturned(row)
		switch {
		case err != nil:
			return fmt.Errorf("certificate: %w", err)
		case !fresh:
			return cond.judge(fmt.Errorf("serial %x exists: %w", c.Serial, store.ErrConflict))
		}
		return nil
	})
}

// returnsRow runs a statement that returns at most one row (an INSERT
// ... ON CONFLICT DO NOTHING RETURNING, a conditional UPDATE ...
// RETURNING) and reports whether it returned one.
func returnsRow(ctx context.Context, q querier, sql string, args ...any) (bool, error) {
	return rowReturned(q.QueryRow(ctx, sql, args...))
}

// rowReturned reads returnsRow's row, or none.
func rowReturned(row pgx.Row) (bool, error) {
	var ok bool
	err := row.Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}
