package auditlog

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// PublicStore is the part of the store Public reads.
type PublicStore interface {
	AuditTree(ctx context.Context) (size int64, root tlog.Hash, err error)
	AuditHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
	LatestCheckpoint(ctx context.Context) (store.Checkpoint, error)
	ListCheckpoints(ctx context.Context, afterSize int64, limit int) ([]store.Checkpoint, error)
}

// Public is what the CA publishes of its audit log without authentication
// (hashes and sizes only): the latest checkpoint, the audit key and
// consistency proofs.
type Public struct {
	st   PublicStore
	vkey string
}

// NewPublic returns the public view of st's audit log, whose checkpoints
// vkey (the audit key's verifier key) checks.
func NewPublic(st PublicStore, vkey string) *Public { return &Public{st: st, vkey: vkey} }

// Key is the audit key's verifier key text.
func (p *Public) Key() string { return p.vkey }

// Checkpoint returns the latest checkpoint, or a fault.NotFound when none
// was signed yet.
func (p *Public) Checkpoint(ctx context.Context) (store.Checkpoint, error) {
	c, err := p.st.LatestCheckpoint(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return c, fault.Wrap(err, fault.NotFound, "no audit checkpoint was signed yet", "retry within audit.checkpoint_every")
	}
	return c, err
}

// MaxProofSize bounds the from and to of a consistency proof (sizes are
// int64; tlog needs them positive).
const MaxProofSize = 1 << 62

// ParseProofRange parses the from and to query fields of a consistency
// proof request: decimal tree sizes with 1 <= from <= to. A
// fault.Malformed naming the field otherwise.
func ParseProofRange(from, to string) (int64, int64, error) {
	f, err := strconv.ParseInt(from, 10, 64)
	if err != nil || f < 1 || f > MaxProofSize {
		return 0, 0, fault.WithField(fault.New(fault.Malformed, fmt.Sprintf("from=%q is not a tree size", from),
			"pass the size of the older checkpoint, 1 or more"), "from")
	}
	t, err := strconv.ParseInt(to, 10, 64)
	if err != nil || t < f || t > MaxProofSize {
		return 0, 0, fault.WithField(fault.New(fault.Malformed, fmt.Sprintf("to=%q is not a tree size of at least from=%d", to, f),
			"pass the size of the newer checkpoint"), "to")
	}
	return f, t, nil
}

// Consistency returns the proof that the tree of size from is a prefix of
// the tree of size to (tlog.ProveTree), which tlog.CheckTree checks
// against the two checkpoints. A size past the tree is a fault.NotFound.
func (p *Public) Consistency(ctx context.Context, from, to int64) (tlog.TreeProof, error) {
	size, _, err := p.st.AuditTree(ctx)
	if err != nil {
		return nil, err
	}
	if from < 1 || from > to {
		return nil, fault.New(fault.Malformed, fmt.Sprintf("no proof from size %d to %d", from, to), "pass 1 <= from <= to")
	}
	if to > size {
		return nil, fault.WithField(fault.New(fault.NotFound, fmt.Sprintf("the audit tree has %d leaves, fewer than to=%d", size, to),
			"ask for a size no larger than the latest checkpoint's"), "to")
	}
	return tlog.ProveTree(to, from, p.reader(ctx))
}

// reader reads stored hashes from the store.
func (p *Public) reader(ctx context.Context) tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return p.st.AuditHashes(ctx, idx) })
}

// CheckConsistency is a witness's check: that the checkpoint next (opened
// with key) follows prev, the last one it accepted: the same tree or a
// larger one, with proof proving prev's tree a prefix of next's. A
// rollback (a smaller tree) or a fork (another root, or a failing proof)
// is a *Problem; prev with Size 0 accepts any next.
func CheckConsistency(prev, next store.Checkpoint, proof tlog.TreeProof) error {
	switch {
	case prev.Size == 0:
		return nil
	case next.Size < prev.Size:
		return problemf(uint64(next.Size), "rollback: the CA's checkpoint has size %d, smaller than the size %d seen before", next.Size, prev.Size)
	case next.Size == prev.Size && next.Root != prev.Root:
		return problemf(uint64(next.Size), "fork: the CA's checkpoint of size %d has root %s, not the root %s seen before", next.Size, next.Root, prev.Root)
	case next.Size == prev.Size:
		return nil
	}
	if err := tlog.CheckTree(proof, next.Size, next.Root, prev.Size, prev.Root); err != nil {
		return problemf(uint64(prev.Size), "fork: the CA's tree of size %d does not extend the tree of size %d seen before (%v)", next.Size, prev.Size, err)
	}
	return nil
}

// PublicStore's and Log's reads, for the admin API.

// AuditTree is the store's.
func (p *Public) AuditTree(ctx context.Context) (int64, tlog.Hash, error) { return p.st.AuditTree(ctx) }

// AuditHashes is the store's.
func (p *Public) AuditHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	return p.st.AuditHashes(ctx, indexes)
}

// ListCheckpoints is the store's.
func (p *Public) ListCheckpoints(ctx context.Context, afterSize int64, limit int) ([]store.Checkpoint, error) {
	return p.st.ListCheckpoints(ctx, afterSize, limit)
}
