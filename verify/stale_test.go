package verify

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// writeCRL writes der as a PEM CRL file at path.
func writeCRL(t testing.TB, path string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A grace the caller set is the grace, zero included; only an unset one
// means DefaultGrace.
func TestGrace(t *testing.T) {
	ca := newTestCA(t)
	leaf := ca.leaf(t, 1001)
	path := filepath.Join(t.TempDir(), "crl.pem")
	writeCRL(t, path, ca.crl(t, 1, t0, 24*time.Hour))
	nextUpdate := t0.Add(24 * time.Hour)
	for _, tc := range []struct {
		name  string
		grace *time.Duration
		at    time.Time
		want  Refusal // 0: accepted
	}{
		{"ok/zero-at-next-update", new(time.Duration(0)), nextUpdate, 0},
		{"fail/zero-right-after-next-update", new(time.Duration(0)), nextUpdate.Add(time.Second), Stale},
		{"ok/unset-within-default", nil, nextUpdate.Add(DefaultGrace), 0},
		{"fail/unset-past-default", nil, nextUpdate.Add(DefaultGrace + time.Second), Stale},
		{"ok/10m-within", new(10 * time.Minute), nextUpdate.Add(10 * time.Minute), 0},
		{"fail/10m-past", new(10 * time.Minute), nextUpdate.Add(10*time.Minute + time.Second), Stale},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{t: t0}
			c, err := NewChecker(CheckerConfig{CRL: path, Issuer: ca.Intermediate, Grace: tc.grace}, CheckerDeps{Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Refresh(t.Context()); err != nil {
				t.Fatal(err)
			}
			clk.Add(tc.at.Sub(t0))
			if got := refusal(c.Check(t.Context(), leaf)); got != tc.want {
				t.Errorf("Check at nextUpdate+%s: refusal = %v, want %v", tc.at.Sub(nextUpdate), got, tc.want)
			}
		})
	}
}

// staleRecorder records SubscribeStale's calls, and what Check said at
// each.
type staleRecorder struct {
	mu       sync.Mutex
	reasons  []error
	refusals []Refusal
}

func (r *staleRecorder) calls() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.reasons) }

// The Checker announces staleness at the instant Check starts refusing
// everyone, from a timer rather than at the next refresh, and a fresher
// CRL loaded before the deadline moves it.
func TestSubscribeStale(t *testing.T) {
	ca := newTestCA(t)
	leaf := ca.leaf(t, 1001)
	for _, tc := range []struct {
		name  string
		grace *time.Duration
	}{
		{"zero-grace", new(time.Duration(0))},
		{"default-grace", nil},
	} {
		grace := DefaultGrace
		if tc.grace != nil {
			grace = *tc.grace
		}
		t.Run(tc.name+"/fires-when-stale", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "crl.pem")
				writeCRL(t, path, ca.crl(t, 1, time.Now(), time.Hour))
				c, rec := newStaleChecker(t, ca, path, tc.grace, leaf)
				time.Sleep(time.Hour + grace) // the deadline itself: still usable
				synctest.Wait()
				if n := rec.calls(); n != 0 {
					t.Fatalf("at nextUpdate+grace: %d stale announcements, want 0", n)
				}
				if err := c.Check(t.Context(), leaf); err != nil {
					t.Fatalf("at nextUpdate+grace: Check = %v, want nil", err)
				}
				time.Sleep(time.Second)
				synctest.Wait()
				rec.mu.Lock()
				defer rec.mu.Unlock()
				if len(rec.reasons) != 1 || rec.reasons[0] == nil {
					t.Fatalf("past nextUpdate+grace: announcements = %v, want one with a reason", rec.reasons)
				}
				if rec.refusals[0] != Stale {
					t.Errorf("Check while announcing = %v, want stale: the refusal must be visible first", rec.refusals[0])
				}
			})
		})
		t.Run(tc.name+"/fresh-crl-moves-the-deadline", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "crl.pem")
				writeCRL(t, path, ca.crl(t, 1, time.Now(), time.Hour))
				c, rec := newStaleChecker(t, ca, path, tc.grace, leaf)
				time.Sleep(30 * time.Minute)
				writeCRL(t, path, ca.crl(t, 2, time.Now(), time.Hour))
				if err := c.Refresh(t.Context()); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Hour + grace - 29*time.Minute) // past CRL 1's deadline, before CRL 2's
				synctest.Wait()
				if n := rec.calls(); n != 0 {
					t.Fatalf("past the old CRL's deadline with a fresh one loaded: %d stale announcements, want 0", n)
				}
				time.Sleep(time.Hour)
				synctest.Wait()
				if n := rec.calls(); n != 1 {
					t.Fatalf("past the fresh CRL's deadline: %d stale announcements, want 1", n)
				}
			})
		})
	}
}

// newStaleChecker is a file CRL Checker, loaded, whose stale
// announcements rec records with what Check said of leaf at that moment.
func newStaleChecker(t *testing.T, ca *testCA, path string, grace *time.Duration, leaf *x509.Certificate) (*Checker, *staleRecorder) {
	t.Helper()
	c, err := NewChecker(CheckerConfig{CRL: path, Issuer: ca.Intermediate, Grace: grace}, CheckerDeps{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &staleRecorder{}
	c.SubscribeStale(func(reason error) {
		r := refusal(c.Check(t.Context(), leaf))
		rec.mu.Lock()
		rec.reasons = append(rec.reasons, reason)
		rec.refusals = append(rec.refusals, r)
		rec.mu.Unlock()
	})
	if err := c.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	return c, rec
}
