package revocation

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/store"
)

func TestFeed(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	a, b := f.issue(t, "dev-a"), f.issue(t, "dev-b")
	first := f.revoke(t, a, api.ReasonKeyCompromise)

	revs, err := f.svc.Feed(t.Context(), 0, 0, 0)
	if err != nil || len(revs) != 1 || revs[0].Serial.Cmp(a.SerialNumber) != 0 || revs[0].Seq != first.Seq {
		t.Fatalf("Feed(0) = %+v, %v; want the one revocation", revs, err)
	}
	if revs, err := f.svc.Feed(t.Context(), first.Seq, 0, time.Millisecond); err != nil || len(revs) != 0 {
		t.Errorf("Feed(after the last, short wait) = %+v, %v; want none", revs, err)
	}

	// A waiting Feed returns the next revocation; whether it is already
	// waiting when the revocation lands or not, it must not miss it.
	got := make(chan []store.Revocation, 1)
	go func() {
		revs, err := f.svc.Feed(t.Context(), first.Seq, 0, 30*time.Second)
		if err != nil {
			t.Errorf("waiting Feed: %v", err)
		}
		got <- revs
	}()
	second := f.revoke(t, b, api.ReasonSuperseded)
	select {
	case revs := <-got:
		if len(revs) != 1 || revs[0].Seq != second.Seq || revs[0].Reason != int(api.ReasonSuperseded) {
			t.Errorf("waiting Feed = %+v, want the second revocation", revs)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a waiting Feed did not return after a revocation")
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := f.svc.Feed(ctx, second.Seq, 0, time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("Feed with a canceled context = %v, want context.Canceled", err)
	}
}
