package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fleetca/fleetca/store"
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
	if err := checkIssuance(is); err != nil {
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

// checkIssuance checks that is has the fields Issue requires.
func checkIssuance(is store.Issuance) error {
	c := is.Certificate
	switch {
	case c.Serial == nil:
		return errArg("certificate serial is required")
	case !validSerial(c.Serial):
		return errArg("serial %v is not positive or is longer than 255 bytes", c.Serial)
	case c.DeviceID == "":
		return errArg("certificate device ID is required")
	case strings.IndexByte(c.DeviceID, 0) >= 0:
		return errArg("certificate device ID contains a NUL byte")
	case c.KeyHash == store.KeyHash{}:
		return errArg("certificate key hash is required")
	case c.NotAfter.IsZero():
		return errArg("certificate not-after time is required")
	case len(c.DER) == 0:
		return errArg("certificate DER is required")
	case c.Parent != nil && !validSerial(c.Parent):
		return errArg("parent serial %v is not positive", c.Parent)
	}
	return nil
}

// issueTx is the body of Issue.
func issueTx(ctx context.Context, tx *txn, is store.Issuance) error {
	c := is.Certificate

	// The token: read now, for the order of the errors; spent last, by
	// the conditional UPDATE that settles races.
	spend := is.Token != store.TokenHash{}
	if spend {
		if err := checkToken(ctx, tx, is.Token, is.Now); err != nil {
			return err
		}
	}

	// The manufacturer certificate.
	mfr := is.Manufacturer
	if mfr != nil {
		fresh, err := returnsRow(ctx, tx, `INSERT INTO mfr_certs (fingerprint, device_id) VALUES ($1, $2)
			ON CONFLICT DO NOTHING RETURNING true`, mfr.Fingerprint[:], c.DeviceID)
		if err != nil {
			return fmt.Errorf("manufacturer certificate: %w", err)
		}
		if !fresh {
			return fmt.Errorf("manufacturer certificate %s of %s: %w", mfr.Serial, mfr.Manufacturer, store.ErrManufacturerCertUsed)
		}
	}

	// The device, created or locked.
	var mfrName, mfrSerial *string
	var mfrFP []byte
	if mfr != nil {
		mfrName, mfrSerial, mfrFP = &mfr.Manufacturer, &mfr.Serial, mfr.Fingerprint[:]
	}
	created, err := returnsRow(ctx, tx, `INSERT INTO devices (id, status, created_at, updated_at, mfr_name, mfr_serial, mfr_fingerprint)
		VALUES ($1, 'active', $2, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING RETURNING true`,
		c.DeviceID, is.Now, mfrName, mfrSerial, mfrFP)
	if err != nil {
		return fmt.Errorf("device: %w", err)
	}
	if !created {
		dev, err := lockDevice(ctx, tx, c.DeviceID)
		switch {
		case err != nil:
			return err
		case is.RequireNewDevice:
			return store.ErrDeviceExists
		case mfr != nil && (dev.Manufacturer == nil || dev.Manufacturer.Fingerprint != mfr.Fingerprint):
			return fmt.Errorf("not enrolled with this manufacturer certificate: %w", store.ErrDeviceExists)
		case dev.Status == store.DeviceRevoked:
			return store.ErrDeviceRevoked
		}
		if is.MaxActive > 0 {
			var live int
			err := tx.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM certificates
				WHERE device_id = $1 AND revoked_at IS NULL AND not_after > $2 LIMIT $3) l`,
				c.DeviceID, is.Now, is.MaxActive).Scan(&live)
			if err != nil {
				return fmt.Errorf("count live certificates: %w", err)
			}
			if live >= is.MaxActive {
				return fmt.Errorf("%d live, at most %d: %w", live, is.MaxActive, store.ErrTooManyCertificates)
			}
		}
	}

	// The key and the serial.
	if err := bindKey(ctx, tx, c.KeyHash, c.DeviceID); err != nil {
		return err
	}
	if err := insertCert(ctx, tx, c); err != nil {
		return err
	}

	if !created {
		_, err := tx.Exec(ctx, `UPDATE devices SET updated_at = $2,
			mfr_name = COALESCE($3, mfr_name), mfr_serial = COALESCE($4, mfr_serial), mfr_fingerprint = COALESCE($5, mfr_fingerprint)
			WHERE id = $1`, c.DeviceID, is.Now, mfrName, mfrSerial, mfrFP)
		if err != nil {
			return fmt.Errorf("device: %w", err)
		}
	}

	// Every condition holds but the token's use, spent last: a pattern
	// token's row is shared by every enrollment of a factory line, and
	// its lock is held from here to the commit.
	if spend {
		spendToken(tx, is.Token, is.Now)
	}
	appendAudit(tx, is.Audit)
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
// to go with the COMMIT (txn.last), before the logs' statement. It is a
// conditional UPDATE: PostgreSQL re-checks its WHERE on the newest
// version of the row after waiting for a concurrent spender, so of N
// spenders of the last use exactly one gets the row; the others' division
// by zero stops the pipeline before its COMMIT, and inTx returns
// errTokenRaced. Queued last, the row's lock (a pattern token's row is
// shared by a whole factory line) is held for the commit only, as
// log_heads' is, rather than from the middle of the transaction.
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
	tok, err := scanToken(q.QueryRow(ctx, "SELECT "+tokenCols+" FROM tokens WHERE hash = $1", h[:]))
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

// bindKey refuses a blocked key (store.ErrKeyBlocked) and a key bound to
// another device (store.ErrKeyInUse), and binds the key to deviceID if it
// is not bound yet.
func bindKey(ctx context.Context, tx *txn, key store.KeyHash, deviceID string) error {
	var blocked bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM blocked_keys WHERE key_hash = $1)", key[:]).Scan(&blocked); err != nil {
		return fmt.Errorf("blocked keys: %w", err)
	}
	if blocked {
		return fmt.Errorf("key %x: %w", key[:8], store.ErrKeyBlocked)
	}
	bound, err := returnsRow(ctx, tx, `INSERT INTO key_bindings (key_hash, device_id) VALUES ($1, $2)
		ON CONFLICT DO NOTHING RETURNING true`, key[:], deviceID)
	if err != nil || bound {
		return err
	}
	var owner string
	if err := tx.QueryRow(ctx, "SELECT device_id FROM key_bindings WHERE key_hash = $1", key[:]).Scan(&owner); err != nil {
		return fmt.Errorf("key binding: %w", err)
	}
	if owner != deviceID {
		return fmt.Errorf("key %x: %w", key[:8], store.ErrKeyInUse)
	}
	return nil
}

// insertCert stores c; store.ErrConflict if its serial exists.
func insertCert(ctx context.Context, tx *txn, c store.Certificate) error {
	fresh, err := returnsRow(ctx, tx, `INSERT INTO certificates (`+certCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (serial) DO NOTHING RETURNING true`,
		numeric(c.Serial), c.DeviceID, c.KeyHash[:], nullTime(c.NotBefore), c.NotAfter, nullTime(c.IssuedAt),
		c.DER, nullTime(c.RevokedAt), c.Reason, numeric(c.Parent))
	if err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	if !fresh {
		return fmt.Errorf("serial %x exists: %w", c.Serial, store.ErrConflict)
	}
	return nil
}

// returnsRow runs a statement that returns at most one row (an INSERT
// ... ON CONFLICT DO NOTHING RETURNING, a conditional UPDATE ...
// RETURNING) and reports whether it returned one.
func returnsRow(ctx context.Context, q querier, sql string, args ...any) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, sql, args...).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}
