package backend

import (
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetca/fleetca/store"
)

// entry is a certificate of the device for the lineage tests: serial s,
// renewing parent (0 for none), with key k, issued at t0+issued, valid 90
// days, revoked at t0+revoked if revoked is not 0.
func entry(s, parent int64, k byte, issued, revoked time.Duration) Entry {
	e := Entry{
		Serial: big.NewInt(s), KeyHash: store.KeyHash{k},
		IssuedAt: t0.Add(issued), NotAfter: t0.Add(issued + 90*24*time.Hour),
	}
	if parent != 0 {
		e.Parent = big.NewInt(parent)
	}
	if revoked != 0 {
		e.RevokedAt = t0.Add(revoked)
	}
	return e
}

// serials returns the serials of es, 0 for a nil one.
func serials(es ...*Entry) []int64 {
	out := make([]int64, 0, len(es))
	for _, e := range es {
		if e == nil {
			out = append(out, 0)
			continue
		}
		out = append(out, e.Serial.Int64())
	}
	return out
}

func TestJudge(t *testing.T) {
	const day = 24 * time.Hour
	now := 10 * day
	tests := []struct {
		name    string
		entries []Entry
		// The renewal: of parent, with key, at t0+now, retry window.
		parent int64
		key    byte
		window time.Duration
		// Want serials: parent, retry and newer (0 for nil), live.
		want     [3]int64
		wantLive []int64
	}{{
		name:    "lone-parent",
		entries: []Entry{entry(1, 0, 1, 0, 0)},
		parent:  1, key: 2, window: day,
		want: [3]int64{1, 0, 0}, wantLive: []int64{1},
	}, {
		name:    "parent-missing",
		entries: []Entry{entry(1, 0, 1, 0, 0)},
		parent:  7, key: 2, window: day,
		want: [3]int64{0, 0, 0}, wantLive: []int64{1},
	}, {
		name: "retry-within-window",
		entries: []Entry{
			entry(1, 0, 1, 0, 0),
			entry(2, 1, 2, now-time.Hour, 0),
		},
		parent: 1, key: 2, window: day,
		want: [3]int64{1, 2, 2}, wantLive: []int64{1, 2},
	}, {
		name: "retry-window-over",
		entries: []Entry{
			entry(1, 0, 1, 0, 0),
			entry(2, 1, 2, now-day, 0),
		},
		parent: 1, key: 2, window: day,
		want: [3]int64{1, 0, 2}, wantLive: []int64{1, 2},
	}, {
		name: "retry-other-key",
		entries: []Entry{
			entry(1, 0, 1, 0, 0),
			entry(2, 1, 3, now-time.Hour, 0),
		},
		parent: 1, key: 2, window: day,
		want: [3]int64{1, 0, 2}, wantLive: []int64{1, 2},
	}, {
		name: "retry-revoked",
		entries: []Entry{
			entry(1, 0, 1, 0, 0),
			entry(2, 1, 2, now-time.Hour, now-time.Minute),
		},
		parent: 1, key: 2, window: day,
		want: [3]int64{1, 0, 0}, wantLive: []int64{1},
	}, {
		name: "retry-newest-of-two",
		entries: []Entry{
			entry(3, 1, 2, now-time.Hour, 0),
			entry(1, 0, 1, 0, 0),
			entry(2, 1, 2, now-2*time.Hour, 0),
		},
		parent: 1, key: 2, window: day,
		want: [3]int64{1, 3, 3}, wantLive: []int64{1, 2, 3},
	}, {
		name: "retry-same-time-larger-serial",
		entries: []Entry{
			entry(1, 0, 1, 0, 0),
			entry(5, 1, 2, now-time.Hour, 0),
			entry(4, 1, 2, now-time.Hour, 0),
		},
		parent: 1, key: 2, window: day,
		want: [3]int64{1, 5, 5}, wantLive: []int64{1, 4, 5},
	}, {
		// Newer is the first in the entries' order, not the oldest.
		name: "newer-first-in-order",
		entries: []Entry{
			entry(1, 0, 1, 0, 0),
			entry(9, 0, 3, 2*day, 0),
			entry(2, 1, 2, day, 0),
		},
		parent: 1, key: 2, window: time.Hour,
		want: [3]int64{1, 0, 9}, wantLive: []int64{1, 2, 9},
	}, {
		name: "newer-same-time-larger-serial",
		entries: []Entry{
			entry(1, 0, 1, day, 0),
			entry(2, 0, 3, day, 0),
		},
		parent: 1, key: 2, window: time.Hour,
		want: [3]int64{1, 0, 2}, wantLive: []int64{1, 2},
	}, {
		name: "older-is-not-newer",
		entries: []Entry{
			entry(2, 0, 3, 0, 0),
			entry(1, 0, 1, day, 0),
		},
		parent: 1, key: 2, window: time.Hour,
		want: [3]int64{1, 0, 0}, wantLive: []int64{2, 1},
	}, {
		name: "expired-and-revoked-are-not-live",
		entries: []Entry{
			entry(1, 0, 1, -100*day, 0),
			entry(2, 1, 1, -day, now-day),
			entry(3, 2, 1, now-day, 0),
		},
		parent: 3, key: 2, window: time.Hour,
		want: [3]int64{3, 0, 0}, wantLive: []int64{3},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := store.Renewal{
				Parent: big.NewInt(tc.parent), Now: t0.Add(now), RetryWindow: tc.window,
				Certificate: store.Certificate{KeyHash: store.KeyHash{tc.key}},
			}
			lin := Judge(r, slices.Clone(tc.entries))
			got := serials(lin.Parent, lin.Retry, lin.Newer)
			if diff := cmp.Diff(tc.want[:], got); diff != "" {
				t.Errorf("Judge parent, retry, newer (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantLive, serials(lin.Live...)); diff != "" {
				t.Errorf("Judge live (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSuperseded(t *testing.T) {
	const day = 24 * time.Hour
	live := []Entry{entry(1, 0, 1, 0, 0), entry(2, 1, 1, day, 0), entry(3, 2, 1, 2*day, 0)}
	now := t0.Add(3 * day)
	newLive := store.Certificate{NotAfter: now.Add(day)}
	newExpired := store.Certificate{NotAfter: now}
	tests := []struct {
		name      string
		maxActive int
		cert      store.Certificate
		want      []int64
	}{
		{"unlimited", 0, newLive, []int64{}},
		{"one", 1, newLive, []int64{1, 2, 3}},
		{"two", 2, newLive, []int64{1, 2}},
		{"four", 4, newLive, []int64{}},
		{"five", 5, newLive, []int64{}},
		{"new-not-live", 2, newExpired, []int64{1}},
		{"new-not-live-one", 1, newExpired, []int64{1, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := store.Renewal{Parent: big.NewInt(3), Now: now, MaxActive: tc.maxActive, Certificate: tc.cert}
			lin := Judge(r, slices.Clone(live))
			if diff := cmp.Diff(tc.want, serials(lin.Superseded(r)...)); diff != "" {
				t.Errorf("Superseded(MaxActive %d) (-want +got):\n%s", tc.maxActive, diff)
			}
		})
	}
}
