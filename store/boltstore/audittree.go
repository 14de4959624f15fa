package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/internal/backend"
)

// hashReader reads the audit tree's stored hashes from b (audit_hashes).
// A missing index is an error wrapping store.ErrNotFound.
func hashReader(b *bbolt.Bucket) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		if b == nil { // Options.NoAuditTree
			return nil, fmt.Errorf("audit hashes: the tree is off: %w", store.ErrNotFound)
		}
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			if x < 0 {
				return nil, fmt.Errorf("audit hash %d: %w", x, store.ErrNotFound)
			}
			v := b.Get(seqKey(uint64(x)))
			if v == nil {
				return nil, fmt.Errorf("audit hash %d: %w", x, store.ErrNotFound)
			}
			if len(v) != len(out[i]) {
				return nil, fmt.Errorf("audit hash %d: malformed value %x", x, v)
			}
			copy(out[i][:], v)
		}
		return out, nil
	})
}

// putHashes writes hashes to b from the stored-hash index first on.
func putHashes(b *bbolt.Bucket, first int64, hashes []tlog.Hash) error {
	for i, h := range hashes {
		if err := b.Put(seqKey(uint64(first)+uint64(i)), bytes.Clone(h[:])); err != nil {
			return fmt.Errorf("audit hash %d: %w", first+int64(i), err)
		}
	}
	return nil
}

// auditSize returns the audit tree's size: the last Seq of the audit
// bucket, 0 if it is empty.
func auditSize(tx *bbolt.Tx) int64 {
	k, _ := tx.Bucket(bucketAudit).Cursor().Last()
	if len(k) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(k))
}

// buildTree writes the audit tree's stored hashes for every row of the
// audit bucket into audit_hashes, which must be empty, reading the rows
// in chunks. With rewrite it also stores each row back with its Time in
// UTC to store.AuditTimePrecision and its Root (the upgrade of a file
// written before the tree); without, rows stay as they are (Load). Rows
// must be numbered 1, 2, 3, ... without gaps.
func buildTree(tx *bbolt.Tx, rewrite bool) error {
	const chunk = 4096
	ab, hb := tx.Bucket(bucketAudit), tx.Bucket(bucketAuditHashes)
	var size int64
	for {
		var events []store.AuditEvent
		c := ab.Cursor()
		for k, v := c.Seek(seqKey(uint64(size) + 1)); k != nil && len(events) < chunk; k, v = c.Next() {
			var e store.AuditEvent
			if err := decodeRecord(v, &e); err != nil {
				return fmt.Errorf("decode audit event %x: %w", k, err)
			}
			want := uint64(size) + uint64(len(events)) + 1
			if got := binary.BigEndian.Uint64(k); len(k) != 8 || got != want || e.Seq != want {
				return fmt.Errorf("audit event key %x (Seq %d) where Seq %d belongs: the log has a gap", k, e.Seq, want)
			}
			events = append(events, e)
		}
		if len(events) == 0 {
			return nil
		}
		var hashes []tlog.Hash
		if rewrite {
			var err error
			if hashes, err = backend.AppendAudit(size, events, hashReader(hb)); err != nil {
				return err
			}
			for _, e := range events {
				if err := putRecord(ab, seqKey(e.Seq), e); err != nil {
					return fmt.Errorf("audit: %w", err)
				}
			}
		} else {
			leaves := make([]tlog.Hash, len(events))
			for i, e := range events {
				leaves[i] = tlog.RecordHash(e.LeafData())
			}
			var err error
			if hashes, _, err = backend.AppendLeaves(size, leaves, hashReader(hb)); err != nil {
				return err
			}
		}
		if err := putHashes(hb, tlog.StoredHashIndex(0, size), hashes); err != nil {
			return err
		}
		size += int64(len(events))
	}
}

// upgradeTree builds the audit tree of a file written before it: one with
// audit rows and no stored hashes. Open calls it.
func upgradeTree(tx *bbolt.Tx) error {
	if k, _ := tx.Bucket(bucketAuditHashes).Cursor().First(); k != nil {
		return nil
	}
	if k, _ := tx.Bucket(bucketAudit).Cursor().First(); k == nil {
		return nil
	}
	if err := buildTree(tx, true); err != nil {
		return fmt.Errorf("build the audit tree: %w", err)
	}
	return nil
}

// AuditTree returns the audit tree's size and root hash.
func (s *Store) AuditTree(ctx context.Context) (size int64, root tlog.Hash, err error) {
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		size = auditSize(tx)
		var err error
		root, err = tlog.TreeHash(size, hashReader(tx.Bucket(bucketAuditHashes)))
		return err
	})
	if err != nil {
		return 0, tlog.Hash{}, fmt.Errorf("audit tree: %w", err)
	}
	return size, root, nil
}

// AuditHashes returns the stored hashes at indexes, in that order.
func (s *Store) AuditHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	var out []tlog.Hash
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		out, err = hashReader(tx.Bucket(bucketAuditHashes)).ReadHashes(indexes)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read audit hashes: %w", err)
	}
	return out, nil
}

// PutCheckpoint stores c if it is larger than the latest checkpoint and
// no larger than the tree.
func (s *Store) PutCheckpoint(ctx context.Context, c store.Checkpoint) error {
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAuditCheckpoints)
		var latest int64
		if k, _ := b.Cursor().Last(); len(k) == 8 {
			latest = int64(binary.BigEndian.Uint64(k))
		}
		c, err := backend.CheckCheckpoint(c, auditSize(tx), latest)
		if err != nil {
			return err
		}
		return putRecord(b, seqKey(uint64(c.Size)), c)
	})
	if err != nil {
		return fmt.Errorf("put checkpoint of size %d: %w", c.Size, err)
	}
	return nil
}

// ListCheckpoints returns the checkpoints with Size > afterSize in Size
// order, at most limit (bounded like store.Page.PageLimit).
func (s *Store) ListCheckpoints(ctx context.Context, afterSize int64, limit int) ([]store.Checkpoint, error) {
	out, err := listSeq(ctx, s, bucketAuditCheckpoints, uint64(max(afterSize, 0)), limit, decodeCheckpoint)
	if err != nil {
		return nil, fmt.Errorf("list checkpoints after %d: %w", afterSize, err)
	}
	return out, nil
}

// LatestCheckpoint returns the largest checkpoint, or store.ErrNotFound.
func (s *Store) LatestCheckpoint(ctx context.Context) (store.Checkpoint, error) {
	var c store.Checkpoint
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		k, v := tx.Bucket(bucketAuditCheckpoints).Cursor().Last()
		if k == nil {
			return store.ErrNotFound
		}
		var err error
		c, err = decodeCheckpoint(k, v)
		return err
	})
	if err != nil {
		return store.Checkpoint{}, fmt.Errorf("latest checkpoint: %w", err)
	}
	return c, nil
}

// decodeCheckpoint decodes an audit_checkpoints record.
func decodeCheckpoint(k, v []byte) (store.Checkpoint, error) {
	var c store.Checkpoint
	if err := json.Unmarshal(v, &c); err != nil {
		return c, fmt.Errorf("decode checkpoint %x: %w", k, err)
	}
	if len(k) != 8 || int64(binary.BigEndian.Uint64(k)) != c.Size {
		return c, errors.New("checkpoint key does not match its size")
	}
	return c, nil
}
