package boltstore

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/fleetca/fleetca/store"
)

// CreateManufacturer stores m as given and appends audit, in one
// transaction. It returns an error wrapping store.ErrConflict, and writes
// nothing, if a manufacturer with the same Name exists. m.Name must not be
// empty.
func (s *Store) CreateManufacturer(ctx context.Context, m store.Manufacturer, audit store.AuditEvent) error {
	if m.Name == "" {
		return errors.New("create manufacturer: name is required")
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketManufacturers)
		if b.Get([]byte(m.Name)) != nil {
			return fmt.Errorf("name exists: %w", store.ErrConflict)
		}
		if err := putRecord(b, []byte(m.Name), m); err != nil {
			return err
		}
		_, err := appendAudit(tx, audit)
		return err
	})
	if err != nil {
		return fmt.Errorf("create manufacturer %q: %w", m.Name, err)
	}
	return nil
}

// ListManufacturers returns every manufacturer, ordered by Name (byte
// order).
func (s *Store) ListManufacturers(ctx context.Context) ([]store.Manufacturer, error) {
	var out []store.Manufacturer
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		out = nil
		return tx.Bucket(bucketManufacturers).ForEach(func(k, v []byte) error {
			var m store.Manufacturer
			if _, err := getRecord(tx.Bucket(bucketManufacturers), k, &m); err != nil {
				return err
			}
			out = append(out, m)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list manufacturers: %w", err)
	}
	return out, nil
}

// DeleteManufacturer removes the manufacturer and appends audit, in one
// transaction; an error wrapping store.ErrNotFound if it is unknown. The
// used manufacturer certificates (mfr_certs) stay.
func (s *Store) DeleteManufacturer(ctx context.Context, name string, audit store.AuditEvent) error {
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketManufacturers)
		if b.Get([]byte(name)) == nil {
			return store.ErrNotFound
		}
		if err := b.Delete([]byte(name)); err != nil {
			return err
		}
		_, err := appendAudit(tx, audit)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete manufacturer %q: %w", name, err)
	}
	return nil
}
