package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fleetca/fleetca/store"
)

// adminCols are the columns scanAdmin reads, in its order.
const adminCols = "name, role, token_hash, created_at, disabled_at, rotated_at"

// scanAdmin reads an admins row of adminCols.
func scanAdmin(row pgx.Row) (store.Admin, error) {
	var (
		a                          store.Admin
		role                       string
		hash                       []byte
		created, disabled, rotated *time.Time
	)
	if err := row.Scan(&a.Name, &role, &hash, &created, &disabled, &rotated); err != nil {
		return store.Admin{}, err
	}
	h, err := hash32(hash)
	if err != nil {
		return store.Admin{}, fmt.Errorf("admin %s: %w", a.Name, err)
	}
	a.Role, a.TokenHash = store.Role(role), h
	a.CreatedAt, a.DisabledAt, a.RotatedAt = timeOf(created), timeOf(disabled), timeOf(rotated)
	return a, nil
}

// CreateAdmin stores a as given and appends audit, in one transaction. It
// returns an error wrapping store.ErrConflict, and writes nothing, if an
// admin with the same Name or TokenHash exists (two replicas creating the
// same admin at once: the primary key lets one in). a.Name must not be
// empty.
func (s *Store) CreateAdmin(ctx context.Context, a store.Admin, audit store.AuditEvent) error {
	if a.Name == "" {
		return errors.New("create admin: name is required")
	}
	err := s.inTx(ctx, func(tx *txn) error {
		fresh, err := returnsRow(ctx, tx, `INSERT INTO admins (`+adminCols+`)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING true`,
			a.Name, string(a.Role), a.TokenHash[:], nullTime(a.CreatedAt), nullTime(a.DisabledAt), nullTime(a.RotatedAt))
		if err != nil {
			return err
		}
		if !fresh {
			return fmt.Errorf("name or token hash exists: %w", store.ErrConflict)
		}
		appendAudit(tx, audit)
		return nil
	})
	if err != nil {
		return fmt.Errorf("create admin %q: %w", a.Name, err)
	}
	return nil
}

// GetAdminByTokenHash returns the admin whose token hash is h, or an error
// wrapping store.ErrNotFound.
func (s *Store) GetAdminByTokenHash(ctx context.Context, h store.TokenHash) (store.Admin, error) {
	a, err := getRow(ctx, s, scanAdmin, "SELECT "+adminCols+" FROM admins WHERE token_hash = $1", h[:])
	if err != nil {
		return store.Admin{}, fmt.Errorf("get admin by token: %w", err)
	}
	return a, nil
}

// ListAdmins returns every admin, ordered by Name (byte order); nil if
// there is none.
func (s *Store) ListAdmins(ctx context.Context) ([]store.Admin, error) {
	var out []store.Admin
	err := s.read(ctx, func(q querier) error {
		rows, err := q.Query(ctx, "SELECT "+adminCols+" FROM admins ORDER BY name")
		out, err = collect(rows, err, scanAdmin)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list admins: %w", err)
	}
	if len(out) == 0 {
		out = nil
	}
	return out, nil
}

// DisableAdmin disables the admin named name at at and appends audit, in
// one transaction; see store.Store. The active owners' rows are locked
// before they are counted, so that two owners disabling each other at
// once cannot leave none: the second waits, and then sees one.
func (s *Store) DisableAdmin(ctx context.Context, name string, at time.Time, audit store.AuditEvent) (store.Admin, error) {
	var a store.Admin
	err := s.inTx(ctx, func(tx *txn) error {
		var err error
		if a, err = lockActiveAdmin(ctx, tx, name); err != nil {
			return err
		}
		if a.Role == store.RoleOwner {
			rows, err := tx.Query(ctx, "SELECT name FROM admins WHERE role = 'owner' AND disabled_at IS NULL ORDER BY name FOR NO KEY UPDATE")
			names, err := collect(rows, err, func(r pgx.Row) (string, error) {
				var n string
				return n, r.Scan(&n)
			})
			if err != nil {
				return err
			}
			if len(names) <= 1 {
				return store.ErrLastOwner
			}
		}
		if _, err := tx.Exec(ctx, "UPDATE admins SET disabled_at = $2 WHERE name = $1", name, nullTime(at)); err != nil {
			return err
		}
		a.DisabledAt = at
		appendAudit(tx, audit)
		return nil
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
	err := s.inTx(ctx, func(tx *txn) error {
		var err error
		if a, err = lockActiveAdmin(ctx, tx, name); err != nil {
			return err
		}
		// A hash another admin has is a unique violation: store.ErrConflict.
		if _, err := tx.Exec(ctx, "UPDATE admins SET token_hash = $2, rotated_at = $3 WHERE name = $1", name, h[:], nullTime(at)); err != nil {
			return err
		}
		a.TokenHash, a.RotatedAt = h, at
		appendAudit(tx, audit)
		return nil
	})
	if err != nil {
		return store.Admin{}, fmt.Errorf("rotate admin %q: %w", name, err)
	}
	return a, nil
}

// lockActiveAdmin reads and locks the admin named name: store.ErrNotFound
// if unknown, store.ErrAdminDisabled if disabled.
func lockActiveAdmin(ctx context.Context, tx *txn, name string) (store.Admin, error) {
	a, err := scanAdmin(tx.QueryRow(ctx, "SELECT "+adminCols+" FROM admins WHERE name = $1 FOR NO KEY UPDATE", name))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.Admin{}, store.ErrNotFound
	case err != nil:
		return store.Admin{}, err
	case !a.Active():
		return store.Admin{}, store.ErrAdminDisabled
	}
	return a, nil
}
