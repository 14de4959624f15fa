package pgstore

import (
	"context"
	"errors"
	"fmt"
	"math/big"

	"github.com/jackc/pgx/v5"

	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/internal/backend"
)

// GetDevice returns the device with the ID, or an error wrapping
// store.ErrNotFound.
func (s *Store) GetDevice(ctx context.Context, id string) (store.Device, error) {
	d, err := getRow(ctx, s, scanDevice, "SELECT "+deviceCols+" FROM devices WHERE id = $1", id)
	if err != nil {
		return store.Device{}, fmt.Errorf("get device %q: %w", id, err)
	}
	return d, nil
}

// ListDevices returns devices ordered by ID (byte order), after p.After:
// one index range scan of the primary key, whatever the number of devices.
func (s *Store) ListDevices(ctx context.Context, p store.Page) ([]store.Device, error) {
	var out []store.Device
	err := s.read(ctx, func(q querier) error {
		rows, err := q.Query(ctx, "SELECT "+deviceCols+" FROM devices WHERE id > $1 ORDER BY id LIMIT $2", p.After, p.PageLimit())
		out, err = collect(rows, err, scanDevice)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list devices after %q: %w", p.After, err)
	}
	return out, nil
}

// GetCertificate returns the certificate with the serial, or an error
// wrapping store.ErrNotFound (a nil or non-positive serial is never found).
func (s *Store) GetCertificate(ctx context.Context, serial *big.Int) (store.Certificate, error) {
	var c store.Certificate
	err := s.read(ctx, func(q querier) error {
		if !validSerial(serial) {
			return store.ErrNotFound
		}
		var err error
		c, err = scanCert(q.QueryRow(ctx, "SELECT "+certCols+" FROM certificates WHERE serial = $1", numeric(serial)))
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return store.Certificate{}, fmt.Errorf("get certificate %x: %w", serial, err)
	}
	return c, nil
}

// ListCertificates returns the certificates of deviceID ("" for every
// device) in serial order, after the hex serial p.After, from the primary
// key or the (device_id, serial) index. A p.After that is not hex is an
// error wrapping no sentinel.
func (s *Store) ListCertificates(ctx context.Context, deviceID string, p store.Page) ([]store.Certificate, error) {
	wrap := func(err error) error {
		if deviceID == "" {
			return fmt.Errorf("list certificates after %q: %w", p.After, err)
		}
		return fmt.Errorf("list certificates of device %q after %q: %w", deviceID, p.After, err)
	}
	after, err := backend.ParseSerialCursor(p.After)
	if err != nil {
		return nil, wrap(err)
	}
	var out []store.Certificate
	err = s.read(ctx, func(q querier) error {
		var rows pgx.Rows
		var err error
		if deviceID == "" {
			rows, err = q.Query(ctx, "SELECT "+certCols+" FROM certificates WHERE serial > $1 ORDER BY serial LIMIT $2",
				numeric(after), p.PageLimit())
		} else {
			rows, err = q.Query(ctx, "SELECT "+certCols+" FROM certificates WHERE device_id = $1 AND serial > $2 ORDER BY serial LIMIT $3",
				deviceID, numeric(after), p.PageLimit())
		}
		out, err = collect(rows, err, scanCert)
		return err
	})
	if err != nil {
		return nil, wrap(err)
	}
	return out, nil
}

// KeyOwner returns the ID of the device the key is bound to, or an error
// wrapping store.ErrNotFound.
func (s *Store) KeyOwner(ctx context.Context, h store.KeyHash) (string, error) {
	owner, err := getRow(ctx, s, func(row pgx.Row) (owner string, err error) {
		return owner, row.Scan(&owner)
	}, "SELECT device_id FROM key_bindings WHERE key_hash = $1", h[:])
	if err != nil {
		return "", fmt.Errorf("get owner of key %x: %w", h[:8], err)
	}
	return owner, nil
}

// KeyBlocked reports whether a Revoke with BlockKeys blocked the key.
func (s *Store) KeyBlocked(ctx context.Context, h store.KeyHash) (bool, error) {
	var blocked bool
	err := s.read(ctx, func(q querier) error {
		return q.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM blocked_keys WHERE key_hash = $1)", h[:]).Scan(&blocked)
	})
	if err != nil {
		return false, fmt.Errorf("check whether key %x is blocked: %w", h[:8], err)
	}
	return blocked, nil
}

// ListRevocations returns the revocation log entries with Seq > afterSeq
// in Seq order, at most store.RevocationLimit(limit) of them. Seq values
// are given out in commit order (see appendLogs), so a reader that pages
// by the last Seq it saw never skips an entry committed later.
func (s *Store) ListRevocations(ctx context.Context, afterSeq uint64, limit int) ([]store.Revocation, error) {
	var out []store.Revocation
	err := s.read(ctx, func(q querier) error {
		rows, err := q.Query(ctx, "SELECT "+revocationCols+" FROM revocations WHERE seq > $1 ORDER BY seq LIMIT $2",
			clampSeq(afterSeq), store.RevocationLimit(limit))
		out, err = collect(rows, err, scanRevocation)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list revocations after %d: %w", afterSeq, err)
	}
	return out, nil
}
