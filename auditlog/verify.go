package auditlog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/fleetca/fleetca/store"
)

// Log is the audit log as Verify and Export read it: a store.Store, or
// the admin API through a client.
type Log interface {
	// ListAudit, AuditTree, AuditHashes and ListCheckpoints are as in
	// store.Store.
	ListAudit(ctx context.Context, afterSeq uint64, limit int) ([]store.AuditEvent, error)
	AuditTree(ctx context.Context) (size int64, root tlog.Hash, err error)
	AuditHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
	ListCheckpoints(ctx context.Context, afterSize int64, limit int) ([]store.Checkpoint, error)
}

// Records are the store's records whose audit rows Verify looks for.
type Records interface {
	ListCertificates(ctx context.Context, deviceID string, p store.Page) ([]store.Certificate, error)
	ListTokens(ctx context.Context, p store.Page) ([]store.Token, error)
	ListRevocations(ctx context.Context, afterSeq uint64, limit int) ([]store.Revocation, error)
}

// Problem is the first thing wrong that Verify or VerifyExport found.
type Problem struct {
	// Seq is the audit row (leaf index Seq-1) it is about; for a
	// checkpoint, the last row it covers; 0 for a record without its row.
	Seq uint64
	// What says what is wrong, one line.
	What string
}

func (p *Problem) Error() string {
	if p.Seq == 0 {
		return p.What
	}
	return fmt.Sprintf("seq %d (leaf index %d): %s", p.Seq, p.Seq-1, p.What)
}

func problemf(seq uint64, format string, a ...any) *Problem {
	return &Problem{Seq: seq, What: fmt.Sprintf(format, a...)}
}

// Report is what Verify checked.
type Report struct {
	Rows         int64 // audit rows, leaves recomputed, roots compared
	StoredHashes int64 // stored tree hashes compared
	Checkpoints  int   // checkpoints whose signature, root and consistency were checked
	Covered      int64 // rows covered by the latest checkpoint
	Certificates int   // certificates with their issuing row
	Tokens       int   // tokens with their token.create row
	Revocations  int   // revocations with their row
}

// Options are Verify's inputs besides the log.
type Options struct {
	// Key is the audit key's verifier (the CA's audit.pub). Required.
	Key note.Verifier
	// Records, if set, are checked for completeness.
	Records Records
	// Now is when rows not covered by a checkpoint are judged (zero:
	// time.Now).
	Now time.Time
	// Grace is how old the first row after the latest checkpoint may be
	// (zero: 2 x DefaultCheckpointEvery + 1 minute; pass 2 x
	// audit.checkpoint_every + 1 minute).
	Grace time.Duration
}

// GraceFor is Options.Grace for a CA whose audit.checkpoint_every is every.
func GraceFor(every time.Duration) time.Duration {
	return 2*Config{CheckpointEvery: every}.WithDefaults().CheckpointEvery + time.Minute
}

// pageRows is how many rows Verify reads at once (the store's maximum).
const pageRows = store.MaxPageLimit

// maxHashBatch bounds one AuditHashes call.
const maxHashBatch = 4096

// tree is a whole audit tree in memory: the stored hashes tlog gives, in
// stored-hash index order (about 2 x 32 bytes per leaf).
type tree struct{ hashes []tlog.Hash }

func (t *tree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(t.hashes)) {
			return nil, fmt.Errorf("stored hash %d of %d: %w", x, len(t.hashes), store.ErrNotFound)
		}
		out[i] = t.hashes[x]
	}
	return out, nil
}

// add appends the leaf of e (leaf index n) and returns the tree hash of
// the n+1 leaves.
func (t *tree) add(n int64, e store.AuditEvent) (tlog.Hash, error) {
	hs, err := tlog.StoredHashesForRecordHash(n, tlog.RecordHash(e.LeafData()), t)
	if err != nil {
		return tlog.Hash{}, err
	}
	t.hashes = append(t.hashes, hs...)
	return tlog.TreeHash(n+1, t)
}

// Verify reads the whole audit log and checks it (see the package doc for
// the checks and their order). It returns what it checked, and a *Problem
// for the first thing wrong; any other error is a failure to read.
func Verify(ctx context.Context, log Log, o Options) (Report, error) {
	var rep Report
	if o.Key == nil {
		return rep, errors.New("auditlog.Verify: Options.Key is required")
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Grace == 0 {
		o.Grace = GraceFor(0)
	}
	t := &tree{}
	var last uint64
	cov := newCoverage()
	for {
		page, err := log.ListAudit(ctx, last, pageRows)
		if err != nil {
			return rep, fmt.Errorf("read audit rows after %d: %w", last, err)
		}
		if len(page) == 0 {
			break
		}
		from := int64(len(t.hashes))
		for _, e := range page {
			switch {
			case e.Seq == last+1:
			default:
				return rep, problemf(last+1, "row missing or moved: the row stored after seq %d is seq %d (a row deleted, swapped or renumbered)", last, e.Seq)
			}
			root, err := t.add(int64(e.Seq-1), e)
			if err != nil {
				return rep, fmt.Errorf("recompute tree at seq %d: %w", e.Seq, err)
			}
			if root != e.Root {
				return rep, problemf(e.Seq, "the row (%s by %s) does not hash to its stored tree root: it was changed, or a row before it", e.Action, e.Actor)
			}
			cov.add(e)
			last = e.Seq
			rep.Rows++
		}
		if p, err := compareStored(ctx, log, t, from); err != nil || p != nil {
			if p != nil {
				return rep, p
			}
			return rep, err
		}
		rep.StoredHashes = int64(len(t.hashes))
		if len(page) < pageRows {
			break
		}
	}
	size, root, err := log.AuditTree(ctx)
	if err != nil {
		return rep, fmt.Errorf("read audit tree: %w", err)
	}
	switch {
	case size != int64(last):
		return rep, problemf(min(uint64(size), last)+1, "the store's tree has size %d but the log's last row is seq %d", size, last)
	case size > 0 && root != t.rootAt(size):
		return rep, problemf(last, "the store's tree root differs from the one the rows hash to")
	}

	latest, err := verifyCheckpoints(ctx, log, t, last, o.Key, &rep)
	if err != nil {
		return rep, err
	}
	rep.Covered = latest.Size
	if int64(last) > latest.Size {
		first, err := log.ListAudit(ctx, uint64(latest.Size), 1)
		if err != nil {
			return rep, fmt.Errorf("read audit row %d: %w", latest.Size+1, err)
		}
		if len(first) == 1 && o.Now.Sub(first[0].Time) > o.Grace {
			return rep, problemf(uint64(latest.Size+1), "no checkpoint covers this row (the last %d rows), and it is %s old: the CA signs within audit.checkpoint_every and at start and stop, so it was appended outside the CA, or the CA has not run since",
				int64(last)-latest.Size, o.Now.Sub(first[0].Time).Truncate(time.Second))
		}
	}
	if o.Records != nil {
		if err := cov.check(ctx, o.Records, &rep); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// rootAt is the tree hash of the first n leaves of t.
func (t *tree) rootAt(n int64) tlog.Hash {
	h, err := tlog.TreeHash(n, t)
	if err != nil {
		return tlog.Hash{}
	}
	return h
}

// compareStored compares the log's stored hashes from index from on with
// t's.
func compareStored(ctx context.Context, log Log, t *tree, from int64) (*Problem, error) {
	for lo := from; lo < int64(len(t.hashes)); lo += maxHashBatch {
		hi := min(lo+maxHashBatch, int64(len(t.hashes)))
		idx := make([]int64, 0, hi-lo)
		for i := lo; i < hi; i++ {
			idx = append(idx, i)
		}
		got, err := log.AuditHashes(ctx, idx)
		if err != nil {
			return nil, fmt.Errorf("read stored audit hashes %d to %d: %w", lo, hi-1, err)
		}
		if len(got) != len(idx) {
			return nil, fmt.Errorf("read stored audit hashes %d to %d: got %d", lo, hi-1, len(got))
		}
		for i, h := range got {
			if h != t.hashes[lo+int64(i)] {
				level, n := tlog.SplitStoredHashIndex(lo + int64(i))
				// The hash at (level, n) covers leaves [n<<level,
				// (n+1)<<level) and was written with the last of them.
				seq := uint64((n + 1) << level) // leaf index (n+1)<<level - 1
				return &Problem{Seq: seq, What: fmt.Sprintf("stored tree hash %d (level %d) differs from the one the rows hash to", lo+int64(i), level)}, nil
			}
		}
	}
	return nil, nil
}

// verifyCheckpoints checks every stored checkpoint against t (the log of
// last rows) and the one before it, and returns the latest (zero if none).
func verifyCheckpoints(ctx context.Context, log Log, t *tree, last uint64, key note.Verifier, rep *Report) (store.Checkpoint, error) {
	var prev store.Checkpoint
	for {
		cps, err := log.ListCheckpoints(ctx, prev.Size, store.MaxPageLimit)
		if err != nil {
			return prev, fmt.Errorf("read checkpoints after size %d: %w", prev.Size, err)
		}
		for _, c := range cps {
			seq := uint64(max(c.Size, 0))
			opened, err := OpenCheckpoint(c.Note, key)
			if err != nil {
				return prev, problemf(seq, "checkpoint of size %d: %s", c.Size, faultLine(err))
			}
			switch {
			case opened.Size != c.Size || opened.Root != c.Root:
				return prev, problemf(seq, "checkpoint of size %d: its signed text says size %d, root %s, the store %d, %s", c.Size, opened.Size, opened.Root, c.Size, c.Root)
			case c.Size <= prev.Size:
				return prev, problemf(seq, "checkpoint of size %d follows one of size %d", c.Size, prev.Size)
			case c.Size > int64(last):
				return prev, problemf(last+1, "checkpoint of size %d covers rows the log does not have (its last is seq %d): rows were removed, or an older store was put back", c.Size, last)
			case t.rootAt(c.Size) != c.Root:
				return prev, problemf(seq, "checkpoint of size %d: the rows 1 to %d do not hash to its signed root", c.Size, c.Size)
			}
			if prev.Size > 0 {
				p, err := tlog.ProveTree(c.Size, prev.Size, t)
				if err == nil {
					err = tlog.CheckTree(p, c.Size, c.Root, prev.Size, prev.Root)
				}
				if err != nil {
					return prev, problemf(seq, "checkpoint of size %d is not consistent with the one of size %d: %v", c.Size, prev.Size, err)
				}
			}
			prev = c
			rep.Checkpoints++
		}
		if len(cps) < store.MaxPageLimit {
			return prev, nil
		}
	}
}

// faultLine is err's one line for a Problem.
func faultLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }

// coverage remembers, from the audit rows, which records have theirs.
type coverage struct {
	issued  map[string]bool // serials of certificate.* rows but revoke
	revoked map[string]bool // serials of certificate.revoke rows
	devices map[string]bool // device IDs of device.revoke and renewal rows (which supersede)
	tokens  map[string]bool // token IDs of token.create rows
}

func newCoverage() *coverage {
	return &coverage{issued: map[string]bool{}, revoked: map[string]bool{}, devices: map[string]bool{}, tokens: map[string]bool{}}
}

func (c *coverage) add(e store.AuditEvent) {
	switch {
	case e.Action == "certificate.revoke":
		c.revoked[e.Serial] = true
	case e.Action == "device.revoke":
		c.devices[e.DeviceID] = true
	case e.Action == "token.create":
		c.tokens[e.TokenID] = true
	case strings.HasPrefix(e.Action, "certificate.") && e.Serial != "":
		c.issued[e.Serial] = true
		if e.DeviceID != "" && e.Action != "certificate.issue" {
			c.devices[e.DeviceID] = true // a renewal revokes what exceeds max_active_certificates
		}
	}
}

// check lists the records and names the first without its row.
func (c *coverage) check(ctx context.Context, r Records, rep *Report) error {
	for after := ""; ; {
		certs, err := r.ListCertificates(ctx, "", store.Page{After: after, Limit: store.MaxPageLimit})
		if err != nil {
			return fmt.Errorf("list certificates: %w", err)
		}
		for _, ct := range certs {
			s := ct.Serial.Text(16)
			if !c.issued[s] {
				return &Problem{What: fmt.Sprintf("certificate %s (device %s) has no audit row of its issuance", s, ct.DeviceID)}
			}
			rep.Certificates++
			after = s
		}
		if len(certs) < store.MaxPageLimit {
			break
		}
	}
	for after := ""; ; {
		toks, err := r.ListTokens(ctx, store.Page{After: after, Limit: store.MaxPageLimit})
		if err != nil {
			return fmt.Errorf("list tokens: %w", err)
		}
		for _, tk := range toks {
			if !c.tokens[tk.ID] {
				return &Problem{What: fmt.Sprintf("token %s has no token.create audit row", tk.ID)}
			}
			rep.Tokens++
			after = tk.ID
		}
		if len(toks) < store.MaxPageLimit {
			break
		}
	}
	for after := uint64(0); ; {
		revs, err := r.ListRevocations(ctx, after, store.MaxRevocationLimit)
		if err != nil {
			return fmt.Errorf("list revocations: %w", err)
		}
		for _, rv := range revs {
			s := rv.Serial.Text(16)
			if !c.revoked[s] && !c.devices[rv.DeviceID] {
				return &Problem{What: fmt.Sprintf("revocation %d of certificate %s (device %s) has no audit row", rv.Seq, s, rv.DeviceID)}
			}
			rep.Revocations++
			after = rv.Seq
		}
		if len(revs) < store.MaxRevocationLimit {
			return nil
		}
	}
}
