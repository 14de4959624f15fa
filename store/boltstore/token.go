package boltstore

import (
	"context"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/internal/backend"
)

// CreateToken stores t as given (Spent and RevokedAt too) and appends
// audit, in one transaction. It returns an error wrapping store.ErrConflict,
// and writes nothing, if a token with the same Hash or ID exists. t.ID must
// not be empty.
func (s *Store) CreateToken(ctx context.Context, t store.Token, audit store.AuditEvent) error {
	if err := backend.CheckToken(t); err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		tokens, ids := tx.Bucket(bucketTokens), tx.Bucket(bucketTokenIDs)
		if tokens.Get(t.Hash[:]) != nil {
			return fmt.Errorf("hash exists: %w", store.ErrConflict)
		}
		if ids.Get([]byte(t.ID)) != nil {
			return fmt.Errorf("ID exists: %w", store.ErrConflict)
		}
		if err := putRecord(tokens, t.Hash[:], t); err != nil {
			return err
		}
		if err := ids.Put([]byte(t.ID), t.Hash[:]); err != nil {
			return err
		}
		_, err := appendAudit(tx, audit)
		return err
	})
	if err != nil {
		return fmt.Errorf("create token %s: %w", t.ID, err)
	}
	return nil
}

// CreateTokens stores every token of ts and appends audits[i] for ts[i],
// in one transaction, as CreateToken does for one: a batch of a factory
// station's tokens costs one fsync. Any conflict writes nothing.
func (s *Store) CreateTokens(ctx context.Context, ts []store.Token, audits []store.AuditEvent) error {
	if err := backend.CheckTokens(ts, audits); err != nil {
		return fmt.Errorf("create tokens: %w", err)
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		tokens, ids := tx.Bucket(bucketTokens), tx.Bucket(bucketTokenIDs)
		for i, t := range ts {
			// A repeat within ts meets the first one's rows here.
			if tokens.Get(t.Hash[:]) != nil {
				return fmt.Errorf("token %s: hash exists: %w", t.ID, store.ErrConflict)
			}
			if ids.Get([]byte(t.ID)) != nil {
				return fmt.Errorf("token %s: ID exists: %w", t.ID, store.ErrConflict)
			}
			if err := putRecord(tokens, t.Hash[:], t); err != nil {
				return err
			}
			if err := ids.Put([]byte(t.ID), t.Hash[:]); err != nil {
				return err
			}
			if _, err := appendAudit(tx, audits[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create %d tokens: %w", len(ts), err)
	}
	return nil
}

// GetToken returns the token with hash h, or an error wrapping
// store.ErrNotFound.
func (s *Store) GetToken(ctx context.Context, h store.TokenHash) (store.Token, error) {
	var t store.Token
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		found, err := getRecord(tx.Bucket(bucketTokens), h[:], &t)
		if err == nil && !found {
			err = store.ErrNotFound
		}
		return err
	})
	if err != nil {
		// Only a prefix: the hash is not secret, but it is not a handle either.
		return store.Token{}, fmt.Errorf("get token with hash %x: %w", h[:4], err)
	}
	return t, nil
}

// ListTokens returns tokens ordered by ID (byte order), after p.After.
func (s *Store) ListTokens(ctx context.Context, p store.Page) ([]store.Token, error) {
	var out []store.Token
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		tokens := tx.Bucket(bucketTokens)
		var err error
		out, err = list(tx.Bucket(bucketTokenIDs).Cursor(), nil, afterKey(p.After), p.PageLimit(),
			func(k, v []byte) (store.Token, error) {
				var t store.Token
				found, err := getRecord(tokens, v, &t)
				if err == nil && !found {
					err = fmt.Errorf("token ID %q names no token", k)
				}
				return t, err
			})
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
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		t, revoked = store.Token{}, false
		tokens := tx.Bucket(bucketTokens)
		hash := tx.Bucket(bucketTokenIDs).Get([]byte(id))
		if hash == nil {
			return store.ErrNotFound
		}
		found, err := getRecord(tokens, hash, &t)
		switch {
		case err != nil:
			return err
		case !found:
			return fmt.Errorf("token ID names no token")
		case !t.RevokedAt.IsZero():
			revoked = true
			return store.ErrTokenRevoked
		}
		t.RevokedAt = at
		if err := putRecord(tokens, hash, t); err != nil {
			return err
		}
		_, err = appendAudit(tx, audit)
		return err
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
