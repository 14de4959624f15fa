package boltstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/fleetca/fleetca/store"
)

// CreateAdmin stores a as given and appends audit, in one transaction. It
// returns an error wrapping store.ErrConflict, and writes nothing, if an
// admin with the same Name or TokenHash exists. a.Name must not be empty.
func (s *Store) CreateAdmin(ctx context.Context, a store.Admin, audit store.AuditEvent) error {
	if a.Name == "" {
		return errors.New("create admin: name is required")
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b, hb := tx.Bucket(bucketAdmins), tx.Bucket(bucketAdminHashes)
		if b.Get([]byte(a.Name)) != nil {
			return fmt.Errorf("name exists: %w", store.ErrConflict)
		}
		if hb.Get(a.TokenHash[:]) != nil {
			return fmt.Errorf("token hash exists: %w", store.ErrConflict)
		}
		if err := putRecord(b, []byte(a.Name), a); err != nil {
			return err
		}
		if err := hb.Put(a.TokenHash[:], []byte(a.Name)); err != nil {
			return err
		}
		_, err := appendAudit(tx, audit)
		return err
	})
	if err != nil {
		return fmt.Errorf("create admin %q: %w", a.Name, err)
	}
	return nil
}

// GetAdminByTokenHash returns the admin whose token hash is h, or an error
// wrapping store.ErrNotFound.
func (s *Store) GetAdminByTokenHash(ctx context.Context, h store.TokenHash) (store.Admin, error) {
	var a store.Admin
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		name := tx.Bucket(bucketAdminHashes).Get(h[:])
		if name == nil {
			return store.ErrNotFound
		}
		_, err := getRecord(tx.Bucket(bucketAdmins), name, &a)
		return err
	})
	if err != nil {
		return store.Admin{}, fmt.Errorf("get admin by token: %w", err)
	}
	return a, nil
}

// ListAdmins returns every admin, ordered by Name (byte order).
func (s *Store) ListAdmins(ctx context.Context) ([]store.Admin, error) {
	var out []store.Admin
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		out = nil
		b := tx.Bucket(bucketAdmins)
		return b.ForEach(func(k, _ []byte) error {
			var a store.Admin
			if _, err := getRecord(b, k, &a); err != nil {
				return err
			}
			out = append(out, a)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list admins: %w", err)
	}
	return out, nil
}

// DisableAdmin disables the admin named name at at and appends audit, in
// one transaction; see store.Store.
func (s *Store) DisableAdmin(ctx context.Context, name string, at time.Time, audit store.AuditEvent) (store.Admin, error) {
	var a store.Admin
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAdmins)
		if err := getActiveAdmin(b, name, &a); err != nil {
			return err
		}
		if a.Role == store.RoleOwner {
			owners := 0
			if err := b.ForEach(func(k, _ []byte) error {
				var o store.Admin
				if _, err := getRecord(b, k, &o); err != nil {
					return err
				}
				if o.Role == store.RoleOwner && o.Active() {
					owners++
				}
				return nil
			}); err != nil {
				return err
			}
			if owners <= 1 {
				return store.ErrLastOwner
			}
		}
		a.DisabledAt = at
		if err := putRecord(b, []byte(name), a); err != nil {
			return err
		}
		_, err := appendAudit(tx, audit)
		return err
	})
	if err != nil {
		return store.Admin{}, fmt.Errorf("disable admin %q: %w", name, err)
	}
	return a, nil
}

// RotateAdmin replaces the token hash of the admin named name and appends
// audit, in one transaction; see store.Store.
func (s *Store) RotateAdmin(ctx context.Context, name string, h store.TokenHash, at time.Time, audit store.AuditEvent) (store.Admin, error) {
	var a store.Admin
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b, hb := tx.Bucket(bucketAdmins), tx.Bucket(bucketAdminHashes)
		if err := getActiveAdmin(b, name, &a); err != nil {
			return err
		}
		if hb.Get(h[:]) != nil {
			return fmt.Errorf("token hash exists: %w", store.ErrConflict)
		}
		if err := hb.Delete(a.TokenHash[:]); err != nil {
			return err
		}
		a.TokenHash, a.RotatedAt = h, at
		if err := putRecord(b, []byte(name), a); err != nil {
			return err
		}
		if err := hb.Put(h[:], []byte(name)); err != nil {
			return err
		}
		_, err := appendAudit(tx, audit)
		return err
	})
	if err != nil {
		return store.Admin{}, fmt.Errorf("rotate admin %q: %w", name, err)
	}
	return a, nil
}

// getActiveAdmin reads the admin named name into a: store.ErrNotFound if
// unknown, store.ErrAdminDisabled if disabled.
func getActiveAdmin(b *bbolt.Bucket, name string, a *store.Admin) error {
	found, err := getRecord(b, []byte(name), a)
	if err != nil {
		return err
	}
	if !found {
		return store.ErrNotFound
	}
	if !a.Active() {
		return store.ErrAdminDisabled
	}
	return nil
}
