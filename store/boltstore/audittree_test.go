package boltstore

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/storetest"
)

// oldAuditEvent is an audit row as files written before the audit tree
// (issue 16) hold it: no Root, and Time to the nanosecond.
type oldAuditEvent struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Action   string    `json:"action"`
	Actor    string    `json:"actor"`
	DeviceID string    `json:"device_id,omitempty"`
	Serial   string    `json:"serial,omitempty"`
	TokenID  string    `json:"token_id,omitempty"`
	Detail   string    `json:"detail,omitempty"`
}

// writeOldFile writes, at path, a file of the layout before the audit
// tree: an audit bucket of n old rows (Seq 1..n, skipping the Seqs in
// gaps), and no audit_hashes or audit_checkpoints bucket. It returns the
// rows.
func writeOldFile(t *testing.T, path string, n int, gaps ...uint64) []oldAuditEvent {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var rows []oldAuditEvent
	err = db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket(bucketAudit)
		if err != nil {
			return err
		}
	next:
		for seq := uint64(1); seq <= uint64(n); seq++ {
			for _, g := range gaps {
				if g == seq {
					continue next
				}
			}
			e := oldAuditEvent{
				Seq: seq, Time: t0.Add(time.Duration(seq)*time.Second + 123456789), Action: "certificate.issue",
				Actor: "device:dev-" + fmt.Sprint(seq), DeviceID: fmt.Sprint("dev-", seq), Serial: fmt.Sprintf("%x", seq),
			}
			if err := putRecord(b, seqKey(seq), e); err != nil {
				return err
			}
			rows = append(rows, e)
		}
		return b.SetSequence(uint64(n))
	})
	if cerr := db.Close(); err != nil || cerr != nil {
		t.Fatalf("write the old file: %v, %v", err, cerr)
	}
	return rows
}

// TestOpenBuildsAuditTree checks the upgrade of a file written before the
// audit tree: Open builds the tree from the rows, their Time is kept to
// store.AuditTimePrecision, and the roots and proofs then verify.
func TestOpenBuildsAuditTree(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "fleetca.db")
	const n = 5000 // more than one of buildTree's chunks
	old := writeOldFile(t, path, n)
	s := open(t, path, Options{})

	var got []store.AuditEvent
	for len(got) < n {
		page, err := s.ListAudit(ctx, uint64(len(got)), store.MaxPageLimit)
		if err != nil || len(page) == 0 {
			t.Fatalf("ListAudit(%d) = %d events, %v", len(got), len(page), err)
		}
		got = append(got, page...)
	}
	want := make([]store.AuditEvent, len(old))
	for i, o := range old {
		want[i] = store.AuditEvent{
			Seq: o.Seq, Time: o.Time.Truncate(store.AuditTimePrecision), Action: o.Action, Actor: o.Actor,
			DeviceID: o.DeviceID, Serial: o.Serial,
		}
	}
	mem, roots, err := storetest.TreeOf(want)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range old {
		want[i].Root = roots[i]
		if diff := cmp.Diff(want[i], got[i]); diff != "" {
			t.Fatalf("upgraded audit row %d (-want +got):\n%s", o.Seq, diff)
		}
	}
	size, root, err := s.AuditTree(ctx)
	if size != n || root != got[n-1].Root || err != nil {
		t.Errorf("AuditTree = %d, %v, %v, want %d, %v, nil", size, root, err, n, got[n-1].Root)
	}
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return s.AuditHashes(ctx, idx) })
	for _, i := range []int64{0, 1, 2047, 4095, 4096, n - 1} {
		p, err := tlog.ProveRecord(n, i, r)
		if err != nil {
			t.Fatalf("ProveRecord(%d, %d) error = %v", n, i, err)
		}
		if err := tlog.CheckRecord(p, n, root, i, tlog.RecordHash(got[i].LeafData())); err != nil {
			t.Errorf("CheckRecord(%d in %d) error = %v, want nil", i, n, err)
		}
		if i == 0 {
			continue
		}
		tp, err := tlog.ProveTree(n, i, r)
		if err != nil {
			t.Fatalf("ProveTree(%d, %d) error = %v", n, i, err)
		}
		if err := tlog.CheckTree(tp, n, root, i, got[i-1].Root); err != nil {
			t.Errorf("CheckTree(%d in %d) error = %v, want nil", i, n, err)
		}
	}
	if _, err := s.AuditHashes(ctx, []int64{tlog.StoredHashCount(n)}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("AuditHashes past the tree error = %v, want ErrNotFound", err)
	}

	// The tree goes on, and a second Open leaves it as it is.
	if err := s.AppendAudit(ctx, store.AuditEvent{Time: t0, Action: "admin.auth_failed", Actor: "remote:x"}); err != nil {
		t.Fatal(err)
	}
	_, root1, err := s.AuditTree(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last, err := s.ListAudit(ctx, n, 1)
	if err != nil || len(last) != 1 {
		t.Fatalf("ListAudit(%d) = %v, %v", n, last, err)
	}
	hs, err := tlog.StoredHashes(n, last[0].LeafData(), mem)
	if err != nil {
		t.Fatal(err)
	}
	mem = append(mem, hs...)
	if want, _ := tlog.TreeHash(n+1, mem); root1 != want || last[0].Root != want {
		t.Errorf("after an append, AuditTree root = %v, row Root = %v, want %v", root1, last[0].Root, want)
	}
	s = reopenWithout(t, s, path)
	if _, root2, err := s.AuditTree(ctx); root2 != root1 || err != nil {
		t.Errorf("AuditTree after a reopen = %v, %v, want %v, nil", root2, err, root1)
	}
}

// TestOpenRefusesAuditGap checks that Open does not build a tree over a
// log with a missing row, whose leaves could not be numbered Seq-1.
func TestOpenRefusesAuditGap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleetca.db")
	writeOldFile(t, path, 10, 4)
	s, err := Open(path, Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open of a file whose audit log lacks Seq 4 error = nil, want an error")
	}
}
