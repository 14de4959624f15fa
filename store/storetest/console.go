package storetest

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/fleetca/fleetca/store"
)

// statsNow is the "now" of the console's history: T0 plus ten days and
// half an hour, so that every time of consoleHistory lies half an hour
// from an hour's boundary (Stats may round to the hour).
var statsNow = T0.Add(10*24*time.Hour + 30*time.Minute)

// consoleCert returns a certificate of device issued at at, valid over
// [at, at+validity): validity a multiple of 300 hours puts RenewBy on the
// same minute of the hour as at.
func consoleCert(n int64, device string, at time.Time, validity time.Duration) store.Certificate {
	return store.Certificate{
		Serial: serial(n), DeviceID: device, KeyHash: keyHash(fmt.Sprint("console-", n)),
		NotBefore: at, NotAfter: at.Add(validity), IssuedAt: at,
		DER: fmt.Appendf(nil, "fake DER of certificate %d", n),
	}
}

func consoleIssue(f fixture, c store.Certificate) {
	f.t.Helper()
	is := newIssuance(c)
	is.Now, is.Audit.Time = c.IssuedAt, c.IssuedAt
	f.issue(is)
}

// consoleHistory enrolls, renews, revokes and resets devices around
// statsNow; the comments say where each lands in Stats at statsNow.
func consoleHistory(f fixture) {
	f.t.Helper()
	now, day := statsNow, 24*time.Hour
	// d-a: expired 2.5 days ago (and so stopped renewing); enrolled 40 days ago.
	consoleIssue(f, consoleCert(1, "d-a", now.Add(-40*day), 900*time.Hour))
	// d-b: expires in 3.5 days; its RenewBy was 13 hours ago.
	consoleIssue(f, consoleCert(2, "d-b", now.Add(-9*day), 300*time.Hour))
	// d-c, d-d: enrolled 3 days ago; d-d expires in 22 days.
	consoleIssue(f, consoleCert(3, "d-c", now.Add(-3*day), 2100*time.Hour))
	consoleIssue(f, consoleCert(4, "d-d", now.Add(-3*day), 600*time.Hour))
	// d-e: enrolled 9 days ago, renewed an hour ago keeping one live
	// certificate: its parent is superseded (not a revocation to count).
	consoleIssue(f, consoleCert(5, "d-e", now.Add(-9*day), 300*time.Hour))
	r := newRenewal(serial(5), serial(6), "d-e", "console-6", now.Add(-time.Hour))
	r.Certificate = consoleCert(6, "d-e", now.Add(-time.Hour), 2100*time.Hour)
	r.MaxActive = 1
	f.renew(r)
	// d-f: enrolled today, revoked two hours ago.
	consoleIssue(f, consoleCert(7, "d-f", now.Add(-5*time.Hour), 2100*time.Hour))
	f.revoke(revokeDevice("d-f", now.Add(-2*time.Hour), 1, false))
	// d-g: one certificate revoked 30 hours ago (outside 24 h); still active.
	consoleIssue(f, consoleCert(8, "d-g", now.Add(-3*day), 2100*time.Hour))
	f.revoke(revokeSerial(serial(8), now.Add(-30*time.Hour), 1, false))
	// d-h: revoked 20 hours ago, then reset: active with no certificate
	// to count.
	consoleIssue(f, consoleCert(9, "d-h", now.Add(-9*day), 2100*time.Hour))
	f.revoke(revokeDevice("d-h", now.Add(-20*time.Hour), 0, false))
	f.resetDevice("d-h", now.Add(-10*time.Hour))
}

func testStats(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("empty", func(t *testing.T) {
		f := newFixture(t, newStore)
		got, err := f.s.Stats(f.ctx, statsNow)
		if err != nil || got != (store.Stats{}) {
			t.Errorf("Stats of an empty store = %+v, %v, want zero, nil", got, err)
		}
	})
	t.Run("history", func(t *testing.T) {
		f := newFixture(t, newStore)
		consoleHistory(f)
		want := store.Stats{
			Active: 7, Revoked: 1, Certificates: 9,
			Expired: 1, Expiring7d: 1, Expiring30d: 2, StoppedRenewing: 2,
			Revoked24h: 2,
		}
		want.Enrollments[29] = 1 // d-f
		want.Enrollments[26] = 3 // d-c, d-d, d-g
		want.Enrollments[20] = 3 // d-b, d-e, d-h
		got, err := f.s.Stats(f.ctx, statsNow)
		if err != nil {
			t.Fatalf("Stats error = %v, want nil", err)
		}
		if diff := gocmp.Diff(want, got); diff != "" {
			t.Errorf("Stats (-want +got):\n%s", diff)
		}
		// Twenty days on: d-a and d-b have expired, d-d expires in two
		// days and stopped renewing; nothing was revoked in the last day;
		// the enrollments moved twenty days back.
		later := statsNow.Add(20 * 24 * time.Hour)
		want = store.Stats{Active: 7, Revoked: 1, Certificates: 9, Expired: 2, Expiring7d: 1, Expiring30d: 1, StoppedRenewing: 3}
		want.Enrollments[9] = 1
		want.Enrollments[6] = 3
		want.Enrollments[0] = 3
		if got, err := f.s.Stats(f.ctx, later); err != nil || !gocmp.Equal(got, want) {
			t.Errorf("Stats 20 days later = %+v, %v, want %+v, nil", got, err, want)
		}
	})
}

// wantDevices is the model of QueryDevices: the devices of all that q
// selects, in q's order.
func wantDevices(all []store.Device, q store.DeviceQuery) []store.Device {
	var out []store.Device
	for _, d := range all {
		switch {
		case !strings.HasPrefix(d.ID, q.Prefix),
			q.Status != "" && d.Status != q.Status,
			q.Sort == store.SortRenewBy && (d.Status != store.DeviceActive || d.RenewBy.IsZero()),
			!q.RenewByBefore.IsZero() && d.RenewBy.After(q.RenewByBefore):
			continue
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b store.Device) int {
		switch q.Sort {
		case store.SortIDDesc:
			return strings.Compare(b.ID, a.ID)
		case store.SortRenewBy:
			return cmp.Or(a.RenewBy.Compare(b.RenewBy), strings.Compare(a.ID, b.ID))
		case store.SortCreatedDesc:
			return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(b.ID, a.ID))
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

func testQueryDevices(t *testing.T, newStore func(t *testing.T) store.Store) {
	f := newFixture(t, newStore)
	consoleHistory(f)
	// More devices, two created at the same time (ties by ID), with IDs
	// that share prefixes.
	for i, id := range []string{"d-aa", "d-ab", "x-1", "x-2"} {
		consoleIssue(f, consoleCert(int64(100+i), id, statsNow.Add(-time.Duration(i%2)*time.Hour), 600*time.Hour))
	}
	all, err := f.s.ListDevices(f.ctx, store.Page{Limit: store.MaxPageLimit})
	if err != nil || len(all) != 12 {
		t.Fatalf("ListDevices = %d devices, %v, want 12, nil", len(all), err)
	}
	cases := []store.DeviceQuery{
		{},
		{Sort: store.SortID},
		{Sort: store.SortIDDesc},
		{Prefix: "d-a"},
		{Prefix: "d-a", Sort: store.SortIDDesc},
		{Prefix: "x-"},
		{Prefix: "nothing"},
		{Status: store.DeviceActive},
		{Status: store.DeviceRevoked},
		{Status: store.DeviceActive, Prefix: "d-", Sort: store.SortIDDesc},
		{Sort: store.SortRenewBy},
		{Sort: store.SortRenewBy, Status: store.DeviceActive},
		{Sort: store.SortRenewBy, RenewByBefore: statsNow},
		{Sort: store.SortCreatedDesc},
		{Sort: store.SortCreatedDesc, Status: store.DeviceActive},
		{Sort: store.SortCreatedDesc, Status: store.DeviceRevoked},
	}
	for _, q := range cases {
		want := wantDevices(all, q)
		for _, limit := range []int{1, 3, 100} {
			t.Run(fmt.Sprintf("%+v/limit-%d", q, limit), func(t *testing.T) {
				q := q
				q.Limit = limit
				got := allPages(t, limit, len(all)+1, q.After,
					func(after string) ([]store.Device, string, string, error) {
						q.After = after
						page, next, err := f.s.QueryDevices(f.ctx, q)
						return page, next, fmt.Sprintf("QueryDevices(%+v)", q), err
					},
					func(_, next string) error {
						for _, r := range next {
							if r < 0x21 || r > 0x7e {
								return fmt.Errorf("QueryDevices cursor %q is not printable ASCII", next)
							}
						}
						return nil
					})
				if diff := gocmp.Diff(want, got); diff != "" {
					t.Errorf("QueryDevices(%+v) paged (-want +got):\n%s", q, diff)
				}
			})
		}
	}
	for _, q := range []store.DeviceQuery{
		{Prefix: "d-", Sort: store.SortRenewBy},
		{Prefix: "d-", Sort: store.SortCreatedDesc},
		{Sort: store.SortRenewBy, Status: store.DeviceRevoked},
		{RenewByBefore: statsNow},
		{RenewByBefore: statsNow, Sort: store.SortCreatedDesc},
		{Sort: "name"},
		{Status: "lost"},
		{After: "not a cursor!"},
	} {
		if _, _, err := f.s.QueryDevices(f.ctx, q); !errors.Is(err, store.ErrBadQuery) {
			t.Errorf("QueryDevices(%+v) error = %v, want ErrBadQuery", q, err)
		}
	}
}

// wantAudit is the model of QueryAudit: every event of all q matches,
// newest first.
func wantAudit(all []store.AuditEvent, q store.AuditQuery) []store.AuditEvent {
	var out []store.AuditEvent
	for _, e := range slices.Backward(all) {
		if (q.BeforeSeq == 0 || e.Seq < q.BeforeSeq) &&
			(q.Actor == "" || e.Actor == q.Actor) && (q.Action == "" || e.Action == q.Action) &&
			(q.DeviceID == "" || e.DeviceID == q.DeviceID) &&
			(q.Since.IsZero() || !e.Time.Before(q.Since)) && (q.Until.IsZero() || e.Time.Before(q.Until)) {
			out = append(out, e)
		}
	}
	return out
}

func testQueryAudit(t *testing.T, newStore func(t *testing.T) store.Store) {
	f := newFixture(t, newStore)
	consoleHistory(f)
	for i := range 30 {
		e := store.AuditEvent{
			Time:   statsNow.Add(time.Duration(i) * time.Minute),
			Action: []string{"device.view", "token.create", "device.renew_now"}[i%3],
			Actor:  []string{"admin:alice", "admin:bob"}[i%2],
		}
		if i%3 != 1 {
			e.DeviceID = []string{"d-a", "d-b", "d-aa"}[i%3/2+i%2]
		}
		if err := f.s.AppendAudit(f.ctx, e); err != nil {
			t.Fatalf("AppendAudit error = %v", err)
		}
	}
	all := f.audit()
	cases := []store.AuditQuery{
		{},
		{DeviceID: "d-a"},
		{DeviceID: "d-b"},
		{DeviceID: "d-aa"},
		{DeviceID: "d-e"},
		{DeviceID: "nobody"},
		{DeviceID: "d-a", Since: statsNow.Add(5 * time.Minute), Until: statsNow.Add(20 * time.Minute)},
		{DeviceID: "d-a", Actor: "admin:bob"},
		{Actor: "admin:alice"},
		{Actor: "admin"},
		{Action: "token.create"},
		{Action: "device.revoke", Actor: "admin"},
		{Since: statsNow.Add(10 * time.Minute)},
		{Until: statsNow},
		{BeforeSeq: 10},
		{DeviceID: "d-a", BeforeSeq: 20},
	}
	for _, q := range cases {
		want := wantAudit(all, q)
		for _, limit := range []int{1, 4, 100} {
			t.Run(fmt.Sprintf("%+v/limit-%d", q, limit), func(t *testing.T) {
				q := q
				q.Limit = limit
				got := allPages(t, limit, len(all)+1, q.BeforeSeq,
					func(before uint64) ([]store.AuditEvent, uint64, string, error) {
						q.BeforeSeq = before
						page, next, err := f.s.QueryAudit(f.ctx, q)
						return page, next, fmt.Sprintf("QueryAudit(%+v)", q), err
					},
					func(before, next uint64) error {
						if before != 0 && next >= before {
							return fmt.Errorf("QueryAudit(%+v) next = %d, not before BeforeSeq", q, next)
						}
						return nil
					})
				if diff := gocmp.Diff(want, got); diff != "" {
					t.Errorf("QueryAudit(%+v) paged (-want +got):\n%s", q, diff)
				}
			})
		}
	}
}

// allPages follows a console query's pages from the cursor first until
// the query returns the zero cursor, and returns the pages joined. query
// returns a page, the next cursor, and how to name the call in a
// message; checkNext judges each next cursor against the one it follows.
// It fails the test on an error, a page longer than limit, a bad cursor,
// or more than maxPages pages.
func allPages[T any, C comparable](t *testing.T, limit, maxPages int, first C,
	query func(cursor C) (page []T, next C, call string, err error), checkNext func(cursor, next C) error) []T {
	t.Helper()
	var got []T
	var zero C
	cursor := first
	for pages := 0; ; pages++ {
		page, next, call, err := query(cursor)
		if pages > maxPages {
			t.Fatalf("%s pages without end", call)
		}
		if err != nil {
			t.Fatalf("%s error = %v, want nil", call, err)
		}
		if len(page) > limit {
			t.Fatalf("%s returned %d, more than the limit", call, len(page))
		}
		if err := checkNext(cursor, next); err != nil {
			t.Fatal(err)
		}
		got = append(got, page...)
		if next == zero {
			return got
		}
		cursor = next
	}
}

// consoleViews is what the console's methods say of s, for comparing two
// stores: Stats at statsNow, every device in each order, every event of
// each device.
func consoleViews(f fixture, s store.Store) string {
	f.t.Helper()
	var b bytes.Buffer
	st, err := s.Stats(f.ctx, statsNow)
	if err != nil {
		f.t.Fatalf("Stats error = %v", err)
	}
	fmt.Fprintf(&b, "%+v\n", st)
	for _, q := range []store.DeviceQuery{{}, {Sort: store.SortRenewBy}, {Sort: store.SortCreatedDesc}, {Status: store.DeviceRevoked}} {
		q.Limit = store.MaxPageLimit
		ds, _, err := s.QueryDevices(f.ctx, q)
		if err != nil {
			f.t.Fatalf("QueryDevices(%+v) error = %v", q, err)
		}
		for _, d := range ds {
			fmt.Fprintf(&b, "%v %s %s %s %s\n", q, d.ID, d.Status, d.NotAfter.UTC(), d.RenewBy.UTC())
			es, _, err := s.QueryAudit(f.ctx, store.AuditQuery{DeviceID: d.ID, Limit: store.MaxPageLimit})
			if err != nil {
				f.t.Fatalf("QueryAudit(%s) error = %v", d.ID, err)
			}
			for _, e := range es {
				fmt.Fprintf(&b, "  %d %s\n", e.Seq, e.Action)
			}
		}
	}
	return b.String()
}
