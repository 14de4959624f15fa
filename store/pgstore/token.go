package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/internal/backend"
)

// CreateToken stores t as given (Spent and RevokedAt too) and appends
// audit, in one transaction. It returns an error wrapping
// store.ErrConflict, and writes nothing, if a token with the same Hash or
// ID exists. t.ID must not be empty.
func (s *Store) CreateToken(ctx context.Context, t store.Token, audit store.AuditEvent) error {
	if err := backend.CheckToken(t); err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	err := s.inTx(ctx, func(tx *txn) error {
		fresh, err := returnsRow(ctx, tx, `INSERT INTO tokens (`+tokenCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING RETURNING true`,
			t.Hash[:], t.ID, t.DeviceID, t.DevicePattern, t.Uses, t.Spent,
			nullTime(t.CreatedAt), nullTime(t.ExpiresAt), nullTime(t.RevokedAt))
		if err != nil {
			return err
		}
		if !fresh {
			return fmt.Errorf("hash or ID exists: %w", store.ErrConflict)
		}
		appendAudit(tx, audit)
		return nil
	})
	if err != nil {
		return fmt.Errorf("create token %s: %w", t.ID, err)
	}
	return nil
}

// CreateTokens stores every token of ts as given and appends audits[i]
// for ts[i], in one transaction: one INSERT of them all, whose ON
// CONFLICT DO NOTHING leaves out a token whose hash or ID exists or
// repeats an earlier one of ts; if any was left out, it returns an error
// wrapping store.ErrConflict and writes nothing. len(audits) must be
// len(ts), and every ID not empty.
func (s *Store) CreateTokens(ctx context.Context, ts []store.Token, audits []store.AuditEvent) error {
	if err := backend.CheckTokens(ts, audits); err != nil {
		return fmt.Errorf("create tokens: %w", err)
	}
	n := len(ts)
	hashes, ids, devices, patterns := make([][]byte, n), make([]string, n), make([]string, n), make([]string, n)
	uses, spent := make([]int32, n), make([]int32, n)
	created, expires, revoked := make([]any, n), make([]any, n), make([]any, n)
	for i, t := range ts {
		hashes[i], ids[i], devices[i], patterns[i] = t.Hash[:], t.ID, t.DeviceID, t.DevicePattern
		uses[i], spent[i] = int32(t.Uses), int32(t.Spent)
		created[i], expires[i], revoked[i] = nullTime(t.CreatedAt), nullTime(t.ExpiresAt), nullTime(t.RevokedAt)
	}
	err := s.inTx(ctx, func(tx *txn) error {
		tag, err := tx.Exec(ctx, `INSERT INTO tokens (`+tokenCols+`)
			SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[], $4::text[], $5::integer[], $6::integer[],
				$7::timestamptz[], $8::timestamptz[], $9::timestamptz[])
			ON CONFLICT DO NOTHING`,
			hashes, ids, devices, patterns, uses, spent, created, expires, revoked)
		if err != nil {
			return err
		}
		if got := tag.RowsAffected(); got != int64(n) {
			return fmt.Errorf("%d of the tokens have a hash or ID that exists or repeats: %w", int64(n)-got, store.ErrConflict)
		}
		appendLogs(tx, audits, nil, nil)
		return nil
	})
	if err != nil {
		return fmt.Errorf("create %d tokens: %w", n, err)
	}
	return nil
}

// GetToken returns the token with hash h, or an error wrapping
// store.ErrNotFound.
func (s *Store) GetToken(ctx context.Context, h store.TokenHash) (store.Token, error) {
	t, err := getRow(ctx, s, scanToken, "SELECT "+tokenCols+" FROM tokens WHERE hash = $1", h[:])
	if err != nil {
		// Only a prefix: the hash is not secret, but it is not a handle either.
		return store.Token{}, fmt.Errorf("get token with hash %x: %w", h[:4], err)
	}
	return t, nil
}

// ListTokens returns tokens ordered by ID (byte order), after p.After.
func (s *Store) ListTokens(ctx context.Context, p store.Page) ([]store.Token, error) {
	var out []store.Token
	err := s.read(ctx, func(q querier) error {
		rows, err := q.Query(ctx, "SELECT "+tokenCols+" FROM tokens WHERE id > $1 ORDER BY id LIMIT $2", p.After, p.PageLimit())
		out, err = collect(rows, err, scanToken)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list tokens after %q: %w", p.After, err)
	}
	return out, nil
}

// RevokeToken sets RevokedAt of the token with the ID to at and appends
// audit, in one transaction, and returns the updated token. For an unknown
// ID it returns an error wrapping store.ErrNotFound. For a token already
// revoked it writes nothing and returns the token as stored with an error
// wrapping store.ErrTokenRevoked.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time, audit store.AuditEvent) (store.Token, error) {
	var t store.Token
	var revoked bool
	err := s.inTx(ctx, func(tx *txn) error {
		t, revoked = store.Token{}, false
		var err error
		t, err = scanToken(tx.QueryRow(ctx, "SELECT "+tokenCols+" FROM tokens WHERE id = $1 FOR NO KEY UPDATE", id))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return store.ErrNotFound
		case err != nil:
			return err
		case !t.RevokedAt.IsZero():
			revoked = true
			return store.ErrTokenRevoked
		}
		if _, err := tx.Exec(ctx, "UPDATE tokens SET revoked_at = $2 WHERE id = $1", id, nullTime(at)); err != nil {
			return err
		}
		t.RevokedAt = at
		appendAudit(tx, audit)
		return nil
	})
	if err != nil {
		err = fmt.Errorf("revoke token %s: %w", id, err)
		if revoked {
			return t, err
		}
		return store.Token{}, err
	}
	return t, nil
}

// CreateManufacturer stores m as given and appends audit, in one
// transaction. It returns an error wrapping store.ErrConflict, and writes
// nothing, if a manufacturer with the same Name exists. m.Name must not be
// empty.
func (s *Store) CreateManufacturer(ctx context.Context, m store.Manufacturer, audit store.AuditEvent) error {
	if m.Name == "" {
		return errors.New("create manufacturer: name is required")
	}
	err := s.inTx(ctx, func(tx *txn) error {
		fresh, err := returnsRow(ctx, tx, `INSERT INTO manufacturers (name, ca_pem, device_id_from, device_pattern, created_at)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true`,
			m.Name, m.CAPEM, m.DeviceIDFrom, m.DevicePattern, nullTime(m.CreatedAt))
		if err != nil {
			return err
		}
		if !fresh {
			return fmt.Errorf("name exists: %w", store.ErrConflict)
		}
		appendAudit(tx, audit)
		return nil
	})
	if err != nil {
		return fmt.Errorf("create manufacturer %q: %w", m.Name, err)
	}
	return nil
}

// ListManufacturers returns every manufacturer, ordered by Name (byte
// order); nil if there is none.
func (s *Store) ListManufacturers(ctx context.Context) ([]store.Manufacturer, error) {
	var out []store.Manufacturer
	err := s.read(ctx, func(q querier) error {
		out = nil
		rows, err := q.Query(ctx, "SELECT name, ca_pem, device_id_from, device_pattern, created_at FROM manufacturers ORDER BY name")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var m store.Manufacturer
			var created *time.Time
			if err := rows.Scan(&m.Name, &m.CAPEM, &m.DeviceIDFrom, &m.DevicePattern, &created); err != nil {
				return err
			}
			m.CreatedAt = timeOf(created)
			out = append(out, m)
		}
		return rows.Err()
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
	err := s.inTx(ctx, func(tx *txn) error {
		if err := tx.execFound(ctx, "DELETE FROM manufacturers WHERE name = $1", name); err != nil {
			return err
		}
		appendAudit(tx, audit)
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete manufacturer %q: %w", name, err)
	}
	return nil
}
