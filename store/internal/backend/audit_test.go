package backend

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/storetest"
)

// TestAppendAudit checks that appending events in batches of any size
// gives the hashes and roots of appending them one at a time with
// tlog.StoredHashes, and sets Seq and Time as the store contract says.
func TestAppendAudit(t *testing.T) {
	loc := time.FixedZone("X", -7*3600)
	events := make([]store.AuditEvent, 23)
	for i := range events {
		events[i] = store.AuditEvent{Seq: 999, Time: time.Date(2026, 3, 1, 12, 0, i, 1999, loc), Action: "a", Actor: fmt.Sprint(i)}
	}
	// The reference: one at a time, straight from tlog.
	want := make([]store.AuditEvent, len(events))
	for i, e := range events {
		e.Seq = uint64(i + 1)
		e.Time = e.Time.UTC().Truncate(store.AuditTimePrecision)
		want[i] = e
	}
	ref, roots, err := storetest.TreeOf(want)
	if err != nil {
		t.Fatal(err)
	}
	for _, batch := range []int{1, 2, 3, 7, len(events)} {
		t.Run(fmt.Sprint("batch-", batch), func(t *testing.T) {
			var got storetest.MemTree
			for lo := 0; lo < len(events); lo += batch {
				es := append([]store.AuditEvent(nil), events[lo:min(lo+batch, len(events))]...)
				hs, err := AppendAudit(int64(lo), es, got)
				if err != nil {
					t.Fatalf("AppendAudit(%d, %d events) error = %v", lo, len(es), err)
				}
				if int64(len(got)) != tlog.StoredHashIndex(0, int64(lo)) {
					t.Fatalf("stored hashes before %d = %d, want %d", lo, len(got), tlog.StoredHashIndex(0, int64(lo)))
				}
				got = append(got, hs...)
				for j, e := range es {
					i := lo + j
					wantTime := events[i].Time.UTC().Truncate(store.AuditTimePrecision)
					if e.Seq != uint64(i+1) || e.Root != roots[i] || !e.Time.Equal(wantTime) || e.Time.Location() != time.UTC {
						t.Errorf("event %d = Seq %d, Root %v, Time %v, want %d, %v, %v UTC", i, e.Seq, e.Root, e.Time, i+1, roots[i], wantTime)
					}
				}
			}
			if len(got) != len(ref) {
				t.Fatalf("%d stored hashes, want %d", len(got), len(ref))
			}
			for i := range ref {
				if got[i] != ref[i] {
					t.Errorf("stored hash %d = %v, want %v", i, got[i], ref[i])
				}
			}
		})
	}
}

func TestCheckCheckpoint(t *testing.T) {
	note := []byte("n")
	for _, tc := range []struct {
		name         string
		c            store.Checkpoint
		tree, latest int64
		ok, stale    bool
	}{
		{"ok/first", store.Checkpoint{Size: 1, Note: note}, 1, 0, true, false},
		{"ok/grows", store.Checkpoint{Size: 5, Note: note}, 9, 4, true, false},
		{"fail/equal", store.Checkpoint{Size: 4, Note: note}, 9, 4, false, true},
		{"fail/smaller", store.Checkpoint{Size: 3, Note: note}, 9, 4, false, true},
		{"fail/past-tree", store.Checkpoint{Size: 10, Note: note}, 9, 4, false, false},
		{"fail/zero", store.Checkpoint{Size: 0, Note: note}, 9, 0, false, false},
		{"fail/no-note", store.Checkpoint{Size: 5}, 9, 4, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CheckCheckpoint(tc.c, tc.tree, tc.latest)
			if (err == nil) != tc.ok || errors.Is(err, store.ErrStaleCheckpoint) != tc.stale {
				t.Errorf("CheckCheckpoint(size %d, tree %d, latest %d) error = %v, want ok %v, stale %v", tc.c.Size, tc.tree, tc.latest, err, tc.ok, tc.stale)
			}
		})
	}
}
