package store_test

import (
	"testing"
	"time"

	"github.com/fleetca/fleetca/store"
)

// TestAuditEventLeafData pins the leaf encoding: every signed checkpoint
// and every exported proof depends on it, so a change is a format change.
func TestAuditEventLeafData(t *testing.T) {
	at := time.Date(2026, 12, 5, 18, 40, 1, 123456789, time.FixedZone("CET", 3600))
	tests := []struct {
		name string
		e    store.AuditEvent
		want string
	}{
		{"full", store.AuditEvent{Seq: 7, Time: at, Action: "certificate.issue", Actor: "token:t1", DeviceID: "dev-1",
			Serial: "ab", TokenID: "t1", Detail: "x\"y", Root: [32]byte{1}},
			`{"seq":7,"time":"2026-12-05T17:40:01.123456Z","action":"certificate.issue","actor":"token:t1","device_id":"dev-1","serial":"ab","token_id":"t1","detail":"x\"y"}`},
		{"empty fields kept", store.AuditEvent{Seq: 1, Time: at.Truncate(time.Second)},
			`{"seq":1,"time":"2026-12-05T17:40:01.000000Z","action":"","actor":"","device_id":"","serial":"","token_id":"","detail":""}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(tc.e.LeafData()); got != tc.want {
				t.Errorf("LeafData() = %s\nwant          %s", got, tc.want)
			}
		})
	}
	// Root is not part of the leaf: it is computed from the leaves.
	a := store.AuditEvent{Seq: 3, Time: at}
	b := a
	b.Root[0] = 9
	if string(a.LeafData()) != string(b.LeafData()) {
		t.Error("LeafData depends on Root")
	}
	// Time to the microsecond, so that PostgreSQL's timestamptz keeps it.
	c := a
	c.Time = a.Time.Add(999 * time.Nanosecond).Truncate(time.Microsecond)
	if string(a.LeafData()) == string(c.LeafData()) {
		t.Error("LeafData ignores a microsecond of Time")
	}
}
