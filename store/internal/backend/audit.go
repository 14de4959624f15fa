package backend

import (
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/fleetca/fleetca/store"
)

// AppendAudit prepares events for appending to an audit log that holds
// size events, whose stored hashes r reads: it sets each event's Seq
// (size+1, size+2, ...), truncates its Time to store.AuditTimePrecision in
// UTC, and sets its Root, the tree hash after it. It returns the stored
// hashes to write with them, in order, from the stored-hash index
// tlog.StoredHashIndex(0, size) on.
//
// r need not see the hashes of events earlier in events (AppendAudit
// reads those from what it computed), but must see every hash written
// for the size events before, those of the backend's current transaction
// included.
func AppendAudit(size int64, events []store.AuditEvent, r tlog.HashReader) ([]tlog.Hash, error) {
	leaves := make([]tlog.Hash, len(events))
	for i := range events {
		e := &events[i]
		e.Seq = uint64(size) + uint64(i) + 1
		e.Time = e.Time.UTC().Truncate(store.AuditTimePrecision)
		leaves[i] = tlog.RecordHash(e.LeafData())
	}
	hashes, roots, err := AppendLeaves(size, leaves, r)
	if err != nil {
		return nil, err
	}
	for i := range events {
		events[i].Root = roots[i]
	}
	return hashes, nil
}

// AppendLeaves appends the leaf hashes (tlog.RecordHash of each leaf's
// data) to a tree of size leaves whose stored hashes r reads. It returns
// the stored hashes to write, from tlog.StoredHashIndex(0, size) on, and
// the tree hash after each leaf.
func AppendLeaves(size int64, leaves []tlog.Hash, r tlog.HashReader) (hashes, roots []tlog.Hash, err error) {
	if size < 0 {
		return nil, nil, fmt.Errorf("audit tree size %d is negative", size)
	}
	ov := &overlay{base: tlog.StoredHashIndex(0, size), r: r}
	roots = make([]tlog.Hash, len(leaves))
	for i, leaf := range leaves {
		n := size + int64(i)
		hs, err := tlog.StoredHashesForRecordHash(n, leaf, ov)
		if err != nil {
			return nil, nil, fmt.Errorf("audit tree hashes of leaf %d: %w", n, err)
		}
		ov.hashes = append(ov.hashes, hs...)
		if roots[i], err = tlog.TreeHash(n+1, ov); err != nil {
			return nil, nil, fmt.Errorf("audit tree hash of size %d: %w", n+1, err)
		}
	}
	return ov.hashes, roots, nil
}

// errHashMissing is returned by overlay for an index past what it holds.
var errHashMissing = errors.New("stored hash missing")

// overlay is a tlog.HashReader that reads indexes from base on from
// hashes, and the others from r.
type overlay struct {
	base   int64
	hashes []tlog.Hash
	r      tlog.HashReader
}

func (o *overlay) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var old []int64
	for _, x := range indexes {
		if x < o.base {
			old = append(old, x)
		}
	}
	var fromR []tlog.Hash
	if len(old) > 0 {
		var err error
		if fromR, err = o.r.ReadHashes(old); err != nil {
			return nil, err
		}
		if len(fromR) != len(old) {
			return nil, fmt.Errorf("read %d stored hashes, got %d", len(old), len(fromR))
		}
	}
	for i, x := range indexes {
		switch {
		case x < o.base:
			out[i], fromR = fromR[0], fromR[1:]
		case x-o.base < int64(len(o.hashes)):
			out[i] = o.hashes[x-o.base]
		default:
			return nil, fmt.Errorf("stored hash %d: %w", x, errHashMissing)
		}
	}
	return out, nil
}

// CheckCheckpoint checks c for PutCheckpoint against the tree's size and
// the latest stored checkpoint's size (0 if none), and returns it as
// stored: Time in UTC to store.AuditTimePrecision.
func CheckCheckpoint(c store.Checkpoint, treeSize, latest int64) (store.Checkpoint, error) {
	switch {
	case c.Size <= 0:
		return c, fmt.Errorf("checkpoint size %d is not positive", c.Size)
	case len(c.Note) == 0:
		return c, errors.New("checkpoint note is required")
	case c.Size <= latest:
		return c, fmt.Errorf("checkpoint of size %d, latest %d: %w", c.Size, latest, store.ErrStaleCheckpoint)
	case c.Size > treeSize:
		return c, fmt.Errorf("checkpoint of size %d is past the audit tree's size %d", c.Size, treeSize)
	}
	c.Time = c.Time.UTC().Truncate(store.AuditTimePrecision)
	return c, nil
}
