package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/fleetca/fleetca/store"
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
// is empty) and its root hash, read in one statement.
func (s *Store) AuditTree(ctx context.Context) (size int64, root tlog.Hash, err error) {
	err = s.read(ctx, func(q querier) error {
		var r []byte
		if err := q.QueryRow(ctx, `SELECT h.audit_seq, a.root FROM log_heads h LEFT JOIN audit a ON a.seq = h.audit_seq`).Scan(&size, &r); err != nil {
			return err
		}
		if size == 0 {
			root, err = tlog.TreeHash(0, nil)
			return err
		}
		if len(r) != tlog.HashSize {
			return fmt.Errorf("audit event %d has no root", size)
		}
		root = tlog.Hash(r)
		return nil
	})
	if err != nil {
		return 0, tlog.Hash{}, fmt.Errorf("read audit tree: %w", err)
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

// putCheckpointSQL records checkpoint $1..$4 if its size is above the
// latest's and at most the tree's: the conditional UPDATE of
// audit_checkpoint_head takes its row lock, and a racing PutCheckpoint
// that waited for it re-reads the raised size, so of two replicas
// storing one size only one succeeds. It returns the tree's size and
// whether it stored the checkpoint.
const putCheckpointSQL = `
WITH t AS (SELECT audit_seq FROM log_heads), h AS (
	UPDATE audit_checkpoint_head SET size = $1 WHERE size < $1 AND $1 <= (SELECT audit_seq FROM t)
	RETURNING size
), c AS (
	INSERT INTO audit_checkpoints (size, root, time, note) SELECT $1, $2, $3, $4 FROM h
)
SELECT (SELECT audit_seq FROM t), EXISTS (SELECT 1 FROM h)`

// PutCheckpoint stores c if c.Size is larger than the latest stored
// checkpoint's, else returns an error wrapping store.ErrStaleCheckpoint.
// c.Size must not exceed the tree's size.
func (s *Store) PutCheckpoint(ctx context.Context, c store.Checkpoint) error {
	if c.Size <= 0 {
		return fmt.Errorf("put checkpoint: size %d is not positive", c.Size)
	}
	note := c.Note
	if note == nil {
		note = []byte{}
	}
	var tree int64
	var stored bool
	err := s.inTx(ctx, func(tx *txn) error {
		return tx.QueryRow(ctx, putCheckpointSQL, c.Size, c.Root[:], nullTime(c.Time), note).Scan(&tree, &stored)
	})
	switch {
	case err != nil:
		return fmt.Errorf("put checkpoint of size %d: %w", c.Size, err)
	case c.Size > tree:
		return fmt.Errorf("put checkpoint of size %d: %w", c.Size, errArg("the audit tree has size %d", tree))
	case !stored:
		return fmt.Errorf("put checkpoint of size %d: %w", c.Size, store.ErrStaleCheckpoint)
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
// none yet: migration 4 on a database that had audit rows, and Load. It
// reads them in Seq order, a chunk at a time, computes each one's root
// and the stored hashes with tlog (backend.AppendAudit, as an append
// does), and writes them, in the caller's transaction. The rows' times
// are timestamptz, already microseconds, so no row is re-timed. A row
// whose root is set already (Load's) must have the one computed: a copy
// refuses a log that does not recompute. It returns how many rows it
// read, which must be log_heads.audit_seq.
func buildAuditTree(ctx context.Context, q querier) (int64, error) {
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
		had := make([]tlog.Hash, len(events))
		for i, e := range events {
			if e.Seq != uint64(size)+uint64(i)+1 {
				return size, fmt.Errorf("audit events are not contiguous: %d follows %d", e.Seq, uint64(size)+uint64(i))
			}
			had[i] = e.Root
		}
		args, err := auditInsert(size, edge, events)
		if err != nil {
			return size, err
		}
		for i, e := range events {
			if had[i] != (tlog.Hash{}) && had[i] != e.Root {
				return size, fmt.Errorf("audit event %d: its root %v is not its tree's %v", e.Seq, had[i], e.Root)
			}
		}
		// The rows exist: set their roots, and write the hashes and edge.
		_, err = q.Exec(ctx, `
			WITH u AS (
				UPDATE audit SET root = e.root FROM unnest($1::bigint[], $2::bytea[]) AS e(seq, root) WHERE audit.seq = e.seq
			), s AS (
				INSERT INTO audit_hashes (index, hash)
				SELECT $3::bigint + e.ord - 1, e.hash FROM unnest($4::bytea[]) WITH ORDINALITY AS e(hash, ord)
			)
			UPDATE log_heads SET audit_edge = $5`, args[0], args[8], args[9], args[10], args[11])
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
