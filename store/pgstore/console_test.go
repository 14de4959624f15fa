package pgstore

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetca/fleetca/internal/pgtest"
	"github.com/fleetca/fleetca/store"
)

// A query no index answers examines at most auditScanLimit Seq values
// per call, and says where to go on.
func TestQueryAuditScanLimit(t *testing.T) {
	s := open(t, pgtest.NewDatabase(t))
	s.auditScanLimit = 5
	ctx := t.Context()
	for i := 1; i <= 20; i++ {
		actor := "admin:alice"
		if i == 3 || i == 17 {
			actor = "admin:rare"
		}
		if err := s.AppendAudit(ctx, store.AuditEvent{Time: t0, Action: "x", Actor: actor}); err != nil {
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
}
