package api

import (
	"encoding/json"
	"testing"
	"time"
)

func TestFeedURL(t *testing.T) {
	for _, tc := range []struct {
		name  string
		base  string
		since uint64
		limit int
		wait  time.Duration
		want  string
	}{
		{"verifier", "https://ca.example:8443", 7, FeedBatch, FeedWait, "https://ca.example:8443/v1/revocations?limit=10000&since=7&wait=20s"},
		{"trailing slash", "https://ca.example:8443/", 0, 0, 0, "https://ca.example:8443/v1/revocations?since=0"},
		{"path prefix", "https://lb.example/fleet", 1, 0, time.Second, "https://lb.example/fleet/v1/revocations?since=1&wait=1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := FeedURL(tc.base, tc.since, tc.limit, tc.wait); got != tc.want {
				t.Errorf("FeedURL(%q, %d, %d, %s) = %q, want %q", tc.base, tc.since, tc.limit, tc.wait, got, tc.want)
			}
		})
	}
	if FeedWait >= FeedMaxWait {
		t.Errorf("FeedWait %s is not below FeedMaxWait %s: the CA would cut every poll short", FeedWait, FeedMaxWait)
	}
}

// TestFeedJSON pins the wire format of a feed answer.
func TestFeedJSON(t *testing.T) {
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	in := FeedResponse{Revocations: []FeedEntry{
		{Seq: 3, Serial: "1f", RevokedAt: at, Reason: ReasonKeyCompromise, NotAfter: at.Add(time.Hour)},
		{Seq: 4, Serial: "20", RevokedAt: at},
	}, Last: 4}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"revocations":[{"seq":3,"serial":"1f","revoked_at":"2026-11-23T12:00:00Z","reason":1,"not_after":"2026-11-23T13:00:00Z"},` +
		`{"seq":4,"serial":"20","revoked_at":"2026-11-23T12:00:00Z","reason":0}],"last":4}`
	if string(b) != want {
		t.Errorf("JSON = %s\nwant   %s", b, want)
	}
	var out FeedResponse
	if err := json.Unmarshal(b, &out); err != nil || len(out.Revocations) != 2 || !out.Revocations[0].RevokedAt.Equal(at) || out.Last != 4 {
		t.Errorf("round trip = %+v, %v", out, err)
	}
}

func TestReasonString(t *testing.T) {
	for r, want := range map[Reason]string{
		ReasonUnspecified: "unspecified", ReasonKeyCompromise: "keyCompromise", ReasonCACompromise: "cACompromise",
		ReasonRemoveFromCRL: "removeFromCRL", ReasonAACompromise: "aACompromise", Reason(7): "Reason(7)", Reason(11): "Reason(11)",
	} {
		if got := r.String(); got != want {
			t.Errorf("Reason(%d).String() = %q, want %q", int(r), got, want)
		}
	}
}
