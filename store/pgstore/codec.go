package pgstore

import (
	"fmt"
	"math/big"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/fleetca/fleetca/store"
)

// numeric returns n as a numeric parameter (a serial; nil is NULL).
func numeric(n *big.Int) pgtype.Numeric {
	if n == nil {
		return pgtype.Numeric{}
	}
	return pgtype.Numeric{Int: n, Valid: true}
}

// bigInt returns the integer a numeric column holds; nil for NULL.
// PostgreSQL sends 1000 as 1 with exponent 3, so the exponent is applied.
func bigInt(n pgtype.Numeric) (*big.Int, error) {
	if !n.Valid {
		return nil, nil
	}
	if n.NaN || n.InfinityModifier != pgtype.Finite {
		return nil, fmt.Errorf("serial %v is not a number", n)
	}
	v := new(big.Int).Set(n.Int)
	ten := big.NewInt(10)
	switch {
	case n.Exp > 0:
		v.Mul(v, new(big.Int).Exp(ten, big.NewInt(int64(n.Exp)), nil))
	case n.Exp < 0:
		d := new(big.Int).Exp(ten, big.NewInt(int64(-n.Exp)), nil)
		var m big.Int
		if v.QuoRem(v, d, &m); m.Sign() != 0 {
			return nil, fmt.Errorf("serial %v is not an integer", n)
		}
	}
	return v, nil
}

// nullTime returns t as a parameter: NULL for the zero time, which the
// records use for "never".
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// timeOf returns the time a nullable timestamptz column held, in UTC;
// zero for NULL.
func timeOf(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// hash32 copies a bytea column that holds a SHA-256.
func hash32(b []byte) ([32]byte, error) {
	var h [32]byte
	if len(b) != len(h) {
		return h, fmt.Errorf("hash is %d bytes, want 32", len(b))
	}
	copy(h[:], b)
	return h, nil
}

// certCols are the columns scanCert reads, in its order.
const certCols = "serial, device_id, key_hash, not_before, not_after, issued_at, der, revoked_at, reason, parent"

// scanCert reads a certificates row of certCols.
func scanCert(row pgx.Row) (store.Certificate, error) {
	var (
		c                                        store.Certificate
		serial, parent                           pgtype.Numeric
		key                                      []byte
		notBefore, notAfter, issuedAt, revokedAt *time.Time
	)
	err := row.Scan(&serial, &c.DeviceID, &key, &notBefore, &notAfter, &issuedAt, &c.DER, &revokedAt, &c.Reason, &parent)
	if err != nil {
		return store.Certificate{}, err
	}
	if c.Serial, err = bigInt(serial); err != nil {
		return store.Certificate{}, err
	}
	if c.Parent, err = bigInt(parent); err != nil {
		return store.Certificate{}, err
	}
	if c.KeyHash, err = hash32(key); err != nil {
		return store.Certificate{}, fmt.Errorf("certificate %x key: %w", c.Serial, err)
	}
	c.NotBefore, c.NotAfter, c.IssuedAt, c.RevokedAt = timeOf(notBefore), timeOf(notAfter), timeOf(issuedAt), timeOf(revokedAt)
	return c, nil
}

// deviceCols are the columns scanDevice reads, in its order.
const deviceCols = "id, status, created_at, updated_at, last_renewal_at, renew_now_at, revoked_at, mfr_name, mfr_serial, mfr_fingerprint, not_after, renew_by"

// scanDevice reads a devices row of deviceCols.
func scanDevice(row pgx.Row) (store.Device, error) {
	var (
		d                                  store.Device
		status                             string
		created, updated, renewed, now, rv *time.Time
		notAfter, renewBy                  *time.Time
		mfrName, mfrSerial                 *string
		mfrFP                              []byte
	)
	if err := row.Scan(&d.ID, &status, &created, &updated, &renewed, &now, &rv, &mfrName, &mfrSerial, &mfrFP, &notAfter, &renewBy); err != nil {
		return store.Device{}, err
	}
	d.Status = store.DeviceStatus(status)
	d.CreatedAt, d.UpdatedAt, d.LastRenewalAt, d.RenewNowAt, d.RevokedAt =
		timeOf(created), timeOf(updated), timeOf(renewed), timeOf(now), timeOf(rv)
	d.NotAfter, d.RenewBy = timeOf(notAfter), timeOf(renewBy)
	if mfrName != nil {
		fp, err := hash32(mfrFP)
		if err != nil {
			return store.Device{}, fmt.Errorf("device %q manufacturer certificate: %w", d.ID, err)
		}
		d.Manufacturer = &store.ManufacturerCert{Manufacturer: *mfrName, Serial: deref(mfrSerial), Fingerprint: fp}
	}
	return d, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// tokenCols are the columns scanToken reads, in its order.
const tokenCols = "hash, id, device_id, device_pattern, uses, spent, created_at, expires_at, revoked_at"

// scanToken reads a tokens row of tokenCols.
func scanToken(row pgx.Row) (store.Token, error) {
	var (
		t                         store.Token
		hash                      []byte
		created, expires, revoked *time.Time
	)
	if err := row.Scan(&hash, &t.ID, &t.DeviceID, &t.DevicePattern, &t.Uses, &t.Spent, &created, &expires, &revoked); err != nil {
		return store.Token{}, err
	}
	h, err := hash32(hash)
	if err != nil {
		return store.Token{}, fmt.Errorf("token %s: %w", t.ID, err)
	}
	t.Hash = h
	t.CreatedAt, t.ExpiresAt, t.RevokedAt = timeOf(created), timeOf(expires), timeOf(revoked)
	return t, nil
}

// revocationCols are the columns scanRevocation reads, in its order.
const revocationCols = "seq, serial, device_id, revoked_at, reason, not_after"

// scanRevocation reads a revocations row of revocationCols.
func scanRevocation(row pgx.Row) (store.Revocation, error) {
	var (
		e      store.Revocation
		seq    int64
		serial pgtype.Numeric
		at, na time.Time
	)
	if err := row.Scan(&seq, &serial, &e.DeviceID, &at, &e.Reason, &na); err != nil {
		return store.Revocation{}, err
	}
	var err error
	if e.Serial, err = bigInt(serial); err != nil {
		return store.Revocation{}, err
	}
	e.Seq, e.RevokedAt, e.NotAfter = uint64(seq), at.UTC(), na.UTC()
	return e, nil
}

// auditCols are the columns scanAudit reads, in its order.
const auditCols = "seq, time, action, actor, device_id, serial, token_id, detail, root"

// scanAudit reads an audit row of auditCols.
func scanAudit(row pgx.Row) (store.AuditEvent, error) {
	var (
		e   store.AuditEvent
		seq int64
		at  *time.Time
		rt  []byte
	)
	if err := row.Scan(&seq, &at, &e.Action, &e.Actor, &e.DeviceID, &e.Serial, &e.TokenID, &e.Detail, &rt); err != nil {
		return store.AuditEvent{}, err
	}
	// The root is NULL only while migration 5 builds the tree.
	if len(rt) == tlog.HashSize {
		e.Root = tlog.Hash(rt)
	}
	e.Seq, e.Time = uint64(seq), timeOf(at)
	return e, nil
}

// collect reads every row of rows with scan.
func collect[T any](rows pgx.Rows, err error, scan func(pgx.Row) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
