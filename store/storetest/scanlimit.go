package storetest

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetca/fleetca/store"
)

// RunAuditScanLimit runs the suite of QueryAudit's scan limit: a query no
// index answers examines at most the backend's scan limit of events per
// call, and says where to go on. newStore returns a new, empty store whose
// scan limit is lowered to scanLimit, a knob each backend keeps unexported.
func RunAuditScanLimit(t *testing.T, newStore func(t *testing.T, scanLimit int) store.Store) {
	t.Run("ok/unindexed-query-pages-by-scan-limit", func(t *testing.T) { testAuditScanLimit(t, newStore) })
}

func testAuditScanLimit(t *testing.T, newStore func(t *testing.T, scanLimit int) store.Store) {
	s := newStore(t, 5)
	ctx := t.Context()
	for i := 1; i <= 20; i++ {
		actor := "admin:alice"
		if i == 3 || i == 17 {
			actor = "admin:rare"
		}
		if err := s.AppendAudit(ctx, store.AuditEvent{Time: T0, Action: "x", Actor: actor}); err != nil {
			t.Fatal(err)
		}
	}
	type call struct {
		Seqs []uint64
		Next uint64
	}
	var got []call
	q := store.AuditQuery{Actor: "admin:rare", Limit: 10}
	for range 10 {
		es, next, err := s.QueryAudit(ctx, q)
		if err != nil {
			t.Fatalf("QueryAudit(%+v) error = %v", q, err)
		}
		c := call{Next: next}
		for _, e := range es {
			c.Seqs = append(c.Seqs, e.Seq)
		}
		got = append(got, c)
		if next == 0 {
			break
		}
		q.BeforeSeq = next
	}
	want := []call{{[]uint64{17}, 16}, {nil, 11}, {nil, 6}, {[]uint64{3}, 0}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("QueryAudit calls with a scan limit of 5 (-want +got):\n%s", diff)
	}
	// By device the index answers, whatever the limit.
	if es, next, err := s.QueryAudit(ctx, store.AuditQuery{DeviceID: "dev-x"}); len(es) != 0 || next != 0 || err != nil {
		t.Errorf("QueryAudit(dev-x) = %v, %d, %v, want none, 0, nil", es, next, err)
	}
}
