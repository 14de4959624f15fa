package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/internal/backend"
)

// edgeIndexes returns the stored-hash indexes of the complete subtrees
// that make up a tree of size n, largest (leftmost) first: its right
// edge, the only old hashes that appending to it reads
// (tlog.StoredHashesForRecordHash, tlog.TreeHash).
func edgeIndexes(n int64) []int64 {
	var out []int64
	var start int64
	for level := 62; level >= 0; level-- {
		if n&(1<<level) != 0 {
			out = append(out, tlog.StoredHashIndex(level, start>>level))
			start += 1 << level
		}
	}
	return out
}

// edgeReader is a tlog.HashReader of a tree's right edge (the hashes at
// edgeIndexes), as log_heads.audit_edge holds it.
type edgeReader map[int64]tlog.Hash

// newEdgeReader decodes edge, the right edge of a tree of size n.
func newEdgeReader(n int64, edge []byte) (edgeReader, error) {
	idx := edgeIndexes(n)
	if len(edge) != len(idx)*tlog.HashSize {
		return nil, fmt.Errorf("audit tree: the right edge of size %d has %d bytes, want %d", n, len(edge), len(idx)*tlog.HashSize)
	}
	r := make(edgeReader, len(idx))
	for i, x := range idx {
		r[x] = tlog.Hash(edge[i*tlog.HashSize:])
	}
	return r, nil
}

func (r edgeReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := r[x]
		if !ok {
			return nil, fmt.Errorf("audit tree: stored hash %d is not on the right edge", x)
		}
		out[i] = h
	}
	return out, nil
}

// extend returns the right edge of the tree of size n that r's tree
// becomes with the stored hashes hashes, written from index base on.
func (r edgeReader) extend(n, base int64, hashes []tlog.Hash) ([]byte, error) {
	idx := edgeIndexes(n)
	out := make([]byte, 0, len(idx)*tlog.HashSize)
	for _, x := range idx {
		switch h, ok := r[x]; {
		case x >= base && x-base < int64(len(hashes)):
			out = append(out, hashes[x-base][:]...)
		case ok:
			out = append(out, h[:]...)
		default:
			return nil, fmt.Errorf("audit tree: no stored hash %d for the right edge of size %d", x, n)
		}
	}
	return out, nil
}

// AuditTree returns the audit tree's size (the last Seq; 0 when the log
// is empty) and its root hash, computed from the right edge in the
// log_heads row, read in one statement.
func (s *Store) AuditTree(ctx context.Context) (size int64, root tlog.Hash, err error) {
	err = s.read(ctx, func(q querier) error {
		var edge []byte
		if err := q.QueryRow(ctx, "SELECT audit_seq, audit_edge FROM log_heads").Scan(&size, &edge); err != nil {
			return err
		}
		r, err := newEdgeReader(size, edge)
		if err != nil {
			return err
		}
		root, err = tlog.TreeHash(size, r)
		return err
	})
	if err != nil {
		return 0, tlog.Hash{}, fmt.Errorf("audit tree: %w", err)
	}
	return size, root, nil
}

// AuditHashes returns the stored hashes at indexes, in that order; an
// index the tree has not reached is an error wrapping store.ErrNotFound.
func (s *Store) AuditHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	if len(indexes) == 0 {
		return out, nil
	}
	err := s.read(ctx, func(q querier) error {
		rows, err := q.Query(ctx, "SELECT index, hash FROM audit_hashes WHERE index = ANY($1)", indexes)
		if err != nil {
			return err
		}
		found := make(map[int64]tlog.Hash, len(indexes))
		var x int64
		var h []byte
		_, err = pgx.ForEachRow(rows, []any{&x, &h}, func() error {
			if len(h) != tlog.HashSize {
				return fmt.Errorf("stored hash %d has %d bytes", x, len(h))
			}
			found[x] = tlog.Hash(h)
			return nil
		})
		if err != nil {
			return err
		}
		for i, x := range indexes {
			h, ok := found[x]
			if !ok {
				return fmt.Errorf("stored hash %d: %w", x, store.ErrNotFound)
			}
			out[i] = h
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read audit hashes: %w", err)
	}
	return out, nil
}

// PutCheckpoint stores c if c.Size is larger than the latest stored
// checkpoint's, else returns an error wrapping store.ErrStaleCheckpoint;
// c.Size must not exceed the tree's size (backend.CheckCheckpoint). It
// locks the audit_checkpoint_head row first and judges under the lock,
// so of replicas racing to store checkpoints, each later one sees the
// earlier's size: sizes only grow.
func (s *Store) PutCheckpoint(ctx context.Context, c store.Checkpoint) error {
	err := s.inTx(ctx, func(tx *txn) error {
		var latest, tree int64
		err := tx.QueryRow(ctx, `SELECT c.size, l.audit_seq FROM audit_checkpoint_head c, log_heads l FOR UPDATE OF c`).Scan(&latest, &tree)
		if err != nil {
			return err
		}
		c, err := backend.CheckCheckpoint(c, tree, latest)
		if err != nil {
			return err
		}
		tx.last(`WITH h AS (UPDATE audit_checkpoint_head SET size = $1)
			INSERT INTO audit_checkpoints (size, root, time, note) VALUES ($1, $2, $3, $4)`, nil,
			c.Size, c.Root[:], nullTime(c.Time), c.Note)
		return nil
	})
	if err != nil {
		return fmt.Errorf("put checkpoint of size %d: %w", c.Size, err)
	}
	return nil
}

// checkpointCols are the columns scanCheckpoint reads, in its order.
const checkpointCols = "size, root, time, note"

// scanCheckpoint reads an audit_checkpoints row of checkpointCols.
func scanCheckpoint(row pgx.Row) (store.Checkpoint, error) {
	var c store.Checkpoint
	var root []byte
	var at *time.Time
	if err := row.Scan(&c.Size, &root, &at, &c.Note); err != nil {
		return store.Checkpoint{}, err
	}
	if len(root) != tlog.HashSize {
		return store.Checkpoint{}, fmt.Errorf("checkpoint %d: root of %d bytes", c.Size, len(root))
	}
	c.Root, c.Time = tlog.Hash(root), timeOf(at)
	return c, nil
}

// ListCheckpoints returns checkpoints with Size > afterSize in Size
// order, at most limit (bounded like store.Page.PageLimit).
func (s *Store) ListCheckpoints(ctx context.Context, afterSize int64, limit int) ([]store.Checkpoint, error) {
	var out []store.Checkpoint
	err := s.read(ctx, func(q querier) error {
		rows, err := q.Query(ctx, "SELECT "+checkpointCols+" FROM audit_checkpoints WHERE size > $1 ORDER BY size LIMIT $2",
			afterSize, store.Page{Limit: limit}.PageLimit())
		out, err = collect(rows, err, scanCheckpoint)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list checkpoints after size %d: %w", afterSize, err)
	}
	return out, nil
}

// LatestCheckpoint returns the largest checkpoint, or an error wrapping
// store.ErrNotFound when there is none.
func (s *Store) LatestCheckpoint(ctx context.Context) (store.Checkpoint, error) {
	c, err := getRow(ctx, s, scanCheckpoint, "SELECT "+checkpointCols+" FROM audit_checkpoints ORDER BY size DESC LIMIT 1")
	if err != nil {
		return store.Checkpoint{}, fmt.Errorf("latest checkpoint: %w", err)
	}
	return c, nil
}

// buildAuditTree builds the audit tree of the rows of a log that has
// none yet, in the caller's transaction: migration 5 on a database that
// had audit rows (rewrite: each row gets its root), and Load (rows keep
// the root they came with, so that a copy of a tampered log still shows
// it). It reads the rows in Seq order, a chunk at a time, and computes
// the stored hashes and roots with tlog (backend.AppendAudit, as an
// append does). The rows' times are timestamptz, already microseconds,
// so no row is re-timed. It checks that the rows are numbered 1, 2, 3,
// ... up to log_heads.audit_seq, and returns how many it read.
func buildAuditTree(ctx context.Context, q querier, rewrite bool) (int64, error) {
	const chunk = 10000
	var size int64
	var edge []byte
	for {
		rows, err := q.Query(ctx, "SELECT "+auditCols+" FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2", size, chunk)
		events, err := collect(rows, err, scanAudit)
		if err != nil {
			return size, err
		}
		if len(events) == 0 {
			break
		}
		for i, e := range events {
			if want := uint64(size) + uint64(i) + 1; e.Seq != want {
				return size, fmt.Errorf("audit event %d where %d belongs: the log has a gap", e.Seq, want)
			}
		}
		args, err := auditInsert(size, edge, events)
		if err != nil {
			return size, err
		}
		seqs, roots := args[0], args[8]
		if !rewrite {
			seqs, roots = []int64{}, [][]byte{}
		}
		_, err = q.Exec(ctx, `
			WITH u AS (
				UPDATE audit SET root = e.root FROM unnest($1::bigint[], $2::bytea[]) AS e(seq, root) WHERE audit.seq = e.seq
			), s AS (
				INSERT INTO audit_hashes (index, hash)
				SELECT $3::bigint + e.ord - 1, e.hash FROM unnest($4::bytea[]) WITH ORDINALITY AS e(hash, ord)
			)
			UPDATE log_heads SET audit_edge = $5`, seqs, roots, args[9], args[10], args[11])
		if err != nil {
			return size, err
		}
		size += int64(len(events))
		edge = args[11].([]byte)
	}
	var head int64
	if err := q.QueryRow(ctx, "SELECT audit_seq FROM log_heads").Scan(&head); err != nil {
		return size, err
	}
	if head != size {
		return size, fmt.Errorf("the audit log head is %d, the events end at %d", head, size)
	}
	return size, nil
}
