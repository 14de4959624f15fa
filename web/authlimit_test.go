package web

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// doFrom sends an admin request from addr with the bearer token tok.
func doFrom(h http.Handler, addr, tok string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", "/v1/admin/devices", nil)
	req.RemoteAddr = addr
	req.Header.Set("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// authFailedRows returns the admin.auth_failed audit rows by actor.
func (f *fixture) authFailedRows(t *testing.T) map[string][]store.AuditEvent {
	t.Helper()
	evs, err := f.store.ListAudit(t.Context(), 0, store.MaxPageLimit)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]store.AuditEvent{}
	for _, ev := range evs {
		if ev.Action == "admin.auth_failed" {
			out[ev.Actor] = append(out[ev.Actor], ev)
		}
	}
	return out
}

// TestAdminAuthFailureFlood: 2,000 wrong admin tokens from one address
// write a handful of audit rows, and after the limit are refused with 429
// and Retry-After, unchecked; another address is unaffected (issue 12,
// defect 5).
func TestAdminAuthFailureFlood(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPSHandler()
	const attacker, other = "198.51.100.7:40000", "198.51.100.8:40000"
	codes := map[int]int{}
	for i := range 2000 {
		rec := doFrom(h, attacker, "fca_admin_wrong")
		codes[rec.Code]++
		if rec.Code == 429 {
			if ra := rec.Header().Get("Retry-After"); ra != "60" {
				t.Fatalf("request %d: Retry-After = %q, want 60 (the clock stands still)", i, ra)
			}
			if p := problemOf(t, rec); p.Type != api.ProblemTypePrefix+fault.RateLimited.String() {
				t.Fatalf("request %d: problem type %q, want rateLimited", i, p.Type)
			}
		}
	}
	if codes[401] != 10 || codes[429] != 1990 {
		t.Errorf("2000 wrong tokens got %v, want 10×401 then 1990×429", codes)
	}
	// A right token from the limited address is refused too, during the window.
	if rec := doFrom(h, attacker, f.admin); rec.Code != 429 {
		t.Errorf("right token from the limited address = %d, want 429 until the window ends", rec.Code)
	}
	// Another address is unaffected: its failure is a 401, its right token works.
	if rec := doFrom(h, other, "fca_admin_wrong"); rec.Code != 401 {
		t.Errorf("wrong token from another address = %d, want 401", rec.Code)
	}
	if rec := doFrom(h, other, f.admin); rec.Code != 200 {
		t.Errorf("right token from another address = %d %s, want 200", rec.Code, rec.Body)
	}
	rows := f.authFailedRows(t)
	if n := len(rows["remote:198.51.100.7"]); n != 1 {
		t.Errorf("audit rows of the flooding address within its first minute = %d, want 1 (the first failure)", n)
	}
	if n := len(rows["remote:198.51.100.8"]); n != 1 {
		t.Errorf("audit rows of the other address = %d, want 1 (its failure, at once)", n)
	}
	if got := testutil.ToFloat64(f.srv.authRefused); got != 1991 {
		t.Errorf("fleetca_web_admin_auth_refused_total = %v, want 1991", got)
	}

	// The window ends: the next request writes the summary of what followed
	// the first row, one row with the counts.
	f.clock.Add(time.Minute)
	if rec := doFrom(h, attacker, "fca_admin_wrong"); rec.Code != 401 {
		t.Errorf("wrong token after the window = %d, want 401", rec.Code)
	}
	rows = f.authFailedRows(t)
	got := rows["remote:198.51.100.7"]
	if len(got) != 2 {
		t.Fatalf("audit rows of the flooding address after a minute = %d, want 2: %+v", len(got), got)
	}
	if want := "9 failed admin authentications and 1991 requests refused"; !strings.Contains(got[1].Detail, want) {
		t.Errorf("summary row detail = %q, want it to contain %q", got[1].Detail, want)
	}
	// And a right token works again.
	if rec := doFrom(h, attacker, f.admin); rec.Code != 200 {
		t.Errorf("right token after the window = %d %s, want 200", rec.Code, rec.Body)
	}
	total := 0
	for _, r := range rows {
		total += len(r)
	}
	if total > 4 {
		t.Errorf("2,000 failures wrote %d admin.auth_failed rows, want a handful", total)
	}
}

func TestAuthLimiter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t.Run("ok/one-row-a-window", func(t *testing.T) {
		l := newAuthLimiter(3, time.Minute, 100)
		var rows int
		now := t0
		for range 600 { // one failure (or refusal) a second for ten minutes
			if w, r := l.refuse("a", now); w > 0 {
				rows += len(r)
			} else {
				rows += len(r) + len(l.fail("a", now, "wrong"))
			}
			now = now.Add(time.Second)
		}
		rows += len(l.flush(now))
		if rows < 10 || rows > 11 {
			t.Errorf("ten minutes of failures wrote %d rows, want one a minute (10, or 11 with the flush)", rows)
		}
	})
	t.Run("ok/first-failure-at-once", func(t *testing.T) {
		l := newAuthLimiter(3, time.Minute, 100)
		if r := l.fail("a", t0, "wrong"); len(r) != 1 || r[0].Failed != 1 || r[0].From != "a" || r[0].Last != "wrong" {
			t.Errorf("first failure rows = %+v, want one row of one failure from a", r)
		}
		if r := l.fail("a", t0.Add(time.Second), "wrong"); len(r) != 0 {
			t.Errorf("second failure rows = %+v, want none (summarised later)", r)
		}
		if r := l.flush(t0.Add(2 * time.Second)); len(r) != 1 || r[0].Failed != 1 {
			t.Errorf("flush rows = %+v, want the one pending failure", r)
		}
	})
	t.Run("ok/sweep-writes-summaries", func(t *testing.T) {
		l := newAuthLimiter(3, time.Minute, 100)
		l.fail("a", t0, "wrong")
		l.fail("a", t0.Add(time.Second), "wrong")
		// Anyone's request after the window sweeps a's summary out.
		if _, r := l.refuse("b", t0.Add(2*time.Minute)); len(r) != 1 || r[0].From != "a" || r[0].Failed != 1 {
			t.Errorf("sweep rows = %+v, want a's pending failure", r)
		}
	})
	t.Run("ok/bounded-memory", func(t *testing.T) {
		l := newAuthLimiter(3, time.Minute, 100)
		for i := range 1000 {
			l.fail(fmt.Sprintf("10.0.%d.%d", i/256, i%256), t0, "wrong")
		}
		if n := len(l.entries); n > 101 {
			t.Errorf("tracked %d addresses, want at most 100 and the overflow entry", n)
		}
		// The untracked addresses are limited together: a new one is refused.
		if w, _ := l.refuse("192.0.2.1", t0); w != time.Minute {
			t.Errorf("new address while the overflow entry is limited: wait %v, want %v", w, time.Minute)
		}
		// Once two windows have passed, the sweep drops them all.
		l.flush(t0)
		l.refuse("192.0.2.1", t0.Add(time.Minute))
		l.refuse("192.0.2.1", t0.Add(2*time.Minute))
		if n := len(l.entries); n != 0 {
			t.Errorf("after two windows, tracked %d addresses, want 0", n)
		}
	})
}

// TestAdminAuthFailureFloodIPv6: one host holds a whole IPv6 /64, and
// 2,000 wrong tokens from 2,000 of its addresses are one flood: limited
// and audited as one client (the /64), not 2,000 rows.
func TestAdminAuthFailureFloodIPv6(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPSHandler()
	codes := map[int]int{}
	for i := range 2000 {
		codes[doFrom(h, fmt.Sprintf("[2001:db8:1:2::%x]:40000", i+1), "fca_admin_wrong").Code]++
	}
	if codes[401] != 10 || codes[429] != 1990 {
		t.Errorf("2000 wrong tokens from one /64 got %v, want 10×401 then 1990×429", codes)
	}
	rows := f.authFailedRows(t)
	if n := len(rows["remote:2001:db8:1:2::/64"]); n != 1 || len(rows) != 1 {
		t.Errorf("audit rows = %d of the /64 and %d actors in all, want 1 and 1", n, len(rows))
	}
	// Another /64 is another client.
	if rec := doFrom(h, "[2001:db8:1:3::1]:40000", f.admin); rec.Code != 200 {
		t.Errorf("right token from another /64 = %d %s, want 200", rec.Code, rec.Body)
	}
}
