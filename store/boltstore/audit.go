package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/internal/backend"
)

// appendAudit appends e to the audit bucket of tx with the bucket's next
// sequence number, its Time in UTC to store.AuditTimePrecision and its
// Root, writes the audit tree's stored hashes for it, and returns the
// number. A rolled-back transaction rolls the sequence back too, so
// committed numbers have no gaps. The tree's hashes are read in tx, so an
// event sees those of the events before it in the same transaction.
func appendAudit(tx *bbolt.Tx, e store.AuditEvent) (uint64, error) {
	b, hb := tx.Bucket(bucketAudit), tx.Bucket(bucketAuditHashes)
	if hb == nil { // Options.NoAuditTree: a benchmark's baseline
		e.Time = e.Time.UTC().Truncate(store.AuditTimePrecision)
		seq, err := b.NextSequence()
		if err != nil {
			return 0, fmt.Errorf("audit sequence: %w", err)
		}
		e.Seq = seq
		if err := putRecord(b, seqKey(seq), e); err != nil {
			return 0, fmt.Errorf("audit: %w", err)
		}
		if err := indexAudit(tx, seq, e.DeviceID); err != nil {
			return 0, fmt.Errorf("audit index: %w", err)
		}
		return seq, nil
	}
	size := int64(b.Sequence())
	events := []store.AuditEvent{e}
	hashes, err := backend.AppendAudit(size, events, hashReader(hb))
	if err != nil {
		return 0, fmt.Errorf("audit tree: %w", err)
	}
	seq, err := b.NextSequence()
	if err != nil {
		return 0, fmt.Errorf("audit sequence: %w", err)
	}
	if seq != events[0].Seq {
		return 0, fmt.Errorf("audit sequence %d, want %d", seq, events[0].Seq)
	}
	if err := putRecord(b, seqKey(seq), events[0]); err != nil {
		return 0, fmt.Errorf("audit: %w", err)
	}
	if err := putHashes(hb, tlog.StoredHashIndex(0, size), hashes); err != nil {
		return 0, err
	}
	if err := indexAudit(tx, seq, e.DeviceID); err != nil {
		return 0, fmt.Errorf("audit index: %w", err)
	}
	return seq, nil
}

// AppendAudit appends e with the next Seq (e.Seq is ignored). It is
// batched like Issue, so a burst of events shares commits.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEvent) error {
	err := s.batch(ctx, func(tx *bbolt.Tx) (cond, err error) {
		_, err = appendAudit(tx, e)
		return nil, err
	})
	if err != nil {
		return fmt.Errorf("append audit event %q: %w", e.Action, err)
	}
	return nil
}

// ListAudit returns the events with Seq > afterSeq in Seq order, at most
// limit of them (bounded like store.Page.PageLimit).
func (s *Store) ListAudit(ctx context.Context, afterSeq uint64, limit int) ([]store.AuditEvent, error) {
	out, err := listSeq(ctx, s, bucketAudit, afterSeq, limit, decodeAuditEvent)
	if err != nil {
		return nil, fmt.Errorf("list audit events after %d: %w", afterSeq, err)
	}
	return out, nil
}

// decodeAuditEvent decodes an audit record.
func decodeAuditEvent(k, v []byte) (store.AuditEvent, error) {
	var e store.AuditEvent
	if err := decodeRecord(v, &e); err != nil {
		return e, fmt.Errorf("decode audit event %x: %w", k, err)
	}
	return e, nil
}

// NextCounter increments the named counter and returns its new value; the
// first call returns 1. The value is committed (fsynced) before it is
// returned, so it never repeats, across restarts too. name must not be
// empty.
func (s *Store) NextCounter(ctx context.Context, name string) (uint64, error) {
	if name == "" {
		return 0, errors.New("next counter: name is required")
	}
	var next uint64
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketCounters)
		var cur uint64
		if v := b.Get([]byte(name)); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("malformed value %x", v)
			}
			cur = binary.BigEndian.Uint64(v)
		}
		if cur == math.MaxUint64 {
			return errors.New("counter overflows")
		}
		next = cur + 1
		return b.Put([]byte(name), binary.BigEndian.AppendUint64(nil, next))
	})
	if err != nil {
		return 0, fmt.Errorf("next counter %q: %w", name, err)
	}
	return next, nil
}

// GetMeta returns a copy of the value stored under key, or an error wrapping
// store.ErrNotFound. A value stored empty comes back empty, not as
// ErrNotFound.
func (s *Store) GetMeta(ctx context.Context, key string) ([]byte, error) {
	var value []byte
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		// A cursor, not Get: Get cannot tell an empty value from none.
		k, v := tx.Bucket(bucketMeta).Cursor().Seek([]byte(key))
		if k == nil || !bytes.Equal(k, []byte(key)) {
			return store.ErrNotFound
		}
		value = bytes.Clone(v)
		if value == nil {
			value = []byte{}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("get meta %q: %w", key, err)
	}
	return value, nil
}

// PutMeta stores value under key, replacing any earlier value. key must not
// be empty.
func (s *Store) PutMeta(ctx context.Context, key string, value []byte) error {
	if key == "" {
		return errors.New("put meta: key is required")
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		// Put keeps a reference to the value until the commit: give it
		// one that the caller cannot change meanwhile.
		v := bytes.Clone(value)
		if v == nil {
			v = []byte{}
		}
		return tx.Bucket(bucketMeta).Put([]byte(key), v)
	})
	if err != nil {
		return fmt.Errorf("put meta %q: %w", key, err)
	}
	return nil
}
