package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetca/fleetca/store"
)

// newCRL returns a fake signed CRL numbered n, issued at T0 + n minutes.
func newCRL(n uint64) store.CRL {
	at := T0.Add(time.Duration(n) * time.Minute)
	return store.CRL{Number: n, ThisUpdate: at, NextUpdate: at.Add(24 * time.Hour), DER: fmt.Appendf(nil, "fake DER of CRL %d", n)}
}

func (f fixture) leaseCRL(holder string, now, until time.Time, want bool) {
	f.t.Helper()
	got, err := f.s.LeaseCRL(f.ctx, holder, now, until)
	if got != want || err != nil {
		f.t.Fatalf("LeaseCRL(%s, %s, %s) = %v, %v, want %v, nil", holder, now.Format(time.TimeOnly), until.Format(time.TimeOnly), got, err, want)
	}
}

func (f fixture) putCRL(holder string, now time.Time, c store.CRL) {
	f.t.Helper()
	if err := f.s.PutCRL(f.ctx, holder, now, c); err != nil {
		f.t.Fatalf("PutCRL(%s, CRL %d) error = %v, want nil", holder, c.Number, err)
	}
}

func (f fixture) checkLatestCRL(newerThan uint64, want *store.CRL) {
	f.t.Helper()
	got, err := f.s.LatestCRL(f.ctx, newerThan)
	if want == nil {
		checkErr(f.t, fmt.Sprintf("LatestCRL(%d)", newerThan), err, store.ErrNotFound)
		return
	}
	if err != nil {
		f.t.Fatalf("LatestCRL(%d) error = %v, want nil", newerThan, err)
	}
	if diff := cmp.Diff(*want, got); diff != "" {
		f.t.Errorf("LatestCRL(%d) mismatch (-want +got):\n%s", newerThan, diff)
	}
}

func testCRLLease(t *testing.T, newStore func(t *testing.T) store.Store) {
	const a, b = "replica-a", "replica-b"
	t.Run("ok/free-held-extended-expired", func(t *testing.T) {
		f := newFixture(t, newStore)
		f.leaseCRL(a, T0, T0.Add(30*time.Second), true)
		f.leaseCRL(b, T0.Add(10*time.Second), T0.Add(40*time.Second), false) // a holds it
		f.leaseCRL(a, T0.Add(20*time.Second), T0.Add(50*time.Second), true)  // a extends
		f.leaseCRL(b, T0.Add(49*time.Second), T0.Add(90*time.Second), false)
		f.leaseCRL(b, T0.Add(50*time.Second), T0.Add(90*time.Second), true) // a's ran out
		f.leaseCRL(a, T0.Add(60*time.Second), T0.Add(90*time.Second), false)
	})

	t.Run("ok/put-and-latest", func(t *testing.T) {
		f := newFixture(t, newStore)
		f.checkLatestCRL(0, nil)
		f.leaseCRL(a, T0, T0.Add(time.Minute), true)
		c1, c5 := newCRL(1), newCRL(5)
		f.putCRL(a, T0, c1)
		f.checkLatestCRL(0, &c1)
		f.checkLatestCRL(1, nil)
		f.putCRL(a, T0.Add(time.Second), c5) // numbers may skip
		f.checkLatestCRL(1, &c5)
		f.checkLatestCRL(4, &c5)
		f.checkLatestCRL(5, nil)
		// The record is a copy.
		got, err := f.s.LatestCRL(f.ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		got.DER[0] ^= 0xff
		f.checkLatestCRL(0, &c5)
	})

	t.Run("fail/put-refused", func(t *testing.T) {
		f := newFixture(t, newStore)
		c3 := newCRL(3)
		checkErr(t, "PutCRL with no lease ever taken", f.s.PutCRL(f.ctx, a, T0, c3), store.ErrLeaseLost)
		f.leaseCRL(a, T0, T0.Add(time.Minute), true)
		checkErr(t, "PutCRL by another holder", f.s.PutCRL(f.ctx, b, T0, c3), store.ErrLeaseLost)
		checkErr(t, "PutCRL after the lease ran out", f.s.PutCRL(f.ctx, a, T0.Add(time.Minute), c3), store.ErrLeaseLost)
		f.putCRL(a, T0.Add(time.Second), c3)
		for _, n := range []uint64{3, 2} {
			checkErr(t, fmt.Sprintf("PutCRL(%d) after 3", n), f.s.PutCRL(f.ctx, a, T0.Add(2*time.Second), newCRL(n)), store.ErrCRLNotNewer)
		}
		checkErr(t, "PutCRL numbered 0", f.s.PutCRL(f.ctx, a, T0, store.CRL{DER: []byte("x")}), errAny)
		checkErr(t, "PutCRL without DER", f.s.PutCRL(f.ctx, a, T0, store.CRL{Number: 9}), errAny)
		f.checkLatestCRL(0, &c3)
		// b takes over once a's lease ran out; the numbers go on rising.
		f.leaseCRL(b, T0.Add(time.Minute), T0.Add(2*time.Minute), true)
		checkErr(t, "PutCRL by the holder that lost the lease", f.s.PutCRL(f.ctx, a, T0.Add(time.Minute), newCRL(4)), store.ErrLeaseLost)
		checkErr(t, "PutCRL(3) by the new holder", f.s.PutCRL(f.ctx, b, T0.Add(time.Minute), c3), store.ErrCRLNotNewer)
		c4 := newCRL(4)
		f.putCRL(b, T0.Add(time.Minute), c4)
		f.checkLatestCRL(3, &c4)
	})

	t.Run("ok/holder-shortens-its-lease", func(t *testing.T) {
		// A replica that stops gives its lease up by shortening it to
		// now (revocation.Service does), so another signs at once.
		f := newFixture(t, newStore)
		f.leaseCRL(a, T0, T0.Add(time.Hour), true)
		f.leaseCRL(a, T0.Add(time.Second-time.Nanosecond), T0.Add(time.Second), true)
		f.leaseCRL(b, T0.Add(time.Second), T0.Add(time.Minute), true)
		checkErr(t, "PutCRL by the holder that gave the lease up", f.s.PutCRL(f.ctx, a, T0.Add(time.Second), newCRL(1)), store.ErrLeaseLost)
	})

	t.Run("fail/lease-arguments", func(t *testing.T) {
		f := newFixture(t, newStore)
		_, err := f.s.LeaseCRL(f.ctx, a, T0, T0)
		checkErr(t, "LeaseCRL until now", err, errAny)
		_, err = f.s.LeaseCRL(f.ctx, "", T0, T0.Add(time.Minute))
		checkErr(t, "LeaseCRL without a holder", err, errAny)
		f.leaseCRL(b, T0, T0.Add(time.Minute), true) // nothing was taken
	})

	t.Run("ok/concurrent-lease-one-winner", func(t *testing.T) {
		f := newFixture(t, newStore)
		got := make([]bool, 16)
		errs := race(16, func(i int) error {
			var err error
			got[i], err = f.s.LeaseCRL(f.ctx, fmt.Sprint("replica-", i), T0, T0.Add(time.Minute))
			return err
		})
		tally(t, errs)
		wins := 0
		for _, g := range got {
			if g {
				wins++
			}
		}
		if wins != 1 {
			t.Errorf("%d of 16 concurrent LeaseCRL calls got the lease, want 1", wins)
		}
	})
}

// signalWait bounds how long testChanges waits for a signal that must
// come: a hang guard, not a measure (a shared database's notification
// arrives in milliseconds).
const signalWait = 30 * time.Second

// drain empties ch of a pending (possibly spurious) value.
func drain(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

// waitSignal fails the test unless ch receives a value.
func waitSignal(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case _, ok := <-ch:
		if !ok {
			t.Fatalf("after %s, the Changes channel was closed, want a value", what)
		}
	case <-time.After(signalWait):
		t.Fatalf("after %s, no value on the Changes channel in %v", what, signalWait)
	}
}

// waitClosed fails the test unless ch is closed (values before that are
// allowed).
func waitClosed(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	deadline := time.After(signalWait)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("after %s, the Changes channel was not closed in %v", what, signalWait)
		}
	}
}

func testChanges(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("ok/revoke-supersede-crl-signal", func(t *testing.T) {
		f := newFixture(t, newStore)
		setupRenew(f)
		ch1, ch2 := f.s.Changes(f.ctx), f.s.Changes(f.ctx)
		steps := []struct {
			what string
			do   func()
		}{
			{"Revoke", func() { f.revoke(revokeSerial(serial(100), revokedAt, reasonKeyCompromise, false)) }},
			{"Renew superseding", func() {
				r := newRenewal(serial(1), serial(2), "dev-1", "k2", renewAt)
				r.MaxActive = 1
				if res := f.renew(r); len(res.Superseded) != 1 {
					t.Fatalf("Renew superseded %d certificates, want 1", len(res.Superseded))
				}
			}},
			{"PutCRL", func() {
				f.leaseCRL("replica-a", T0, T0.Add(time.Hour), true)
				f.putCRL("replica-a", T0, newCRL(1))
			}},
		}
		for _, st := range steps {
			drain(ch1)
			drain(ch2)
			st.do()
			waitSignal(t, st.what+" (first channel)", ch1)
			waitSignal(t, st.what+" (second channel)", ch2)
		}
	})

	t.Run("ok/closed-when-ctx-ends", func(t *testing.T) {
		f := newFixture(t, newStore)
		ctx, cancel := context.WithCancel(f.ctx)
		ch := f.s.Changes(ctx)
		keep := f.s.Changes(f.ctx)
		cancel()
		waitClosed(t, "the context ended", ch)
		// The other subscriber still hears.
		setupRenew(f)
		drain(keep)
		f.revoke(revokeSerial(serial(100), revokedAt, reasonKeyCompromise, false))
		waitSignal(t, "Revoke after another subscriber left", keep)
	})

	t.Run("ok/closed-when-store-closes", func(t *testing.T) {
		f := newFixture(t, newStore)
		ch := f.s.Changes(f.ctx)
		if err := f.s.Close(); err != nil {
			t.Fatalf("Close error = %v, want nil", err)
		}
		waitClosed(t, "Close", ch)
		waitClosed(t, "Changes after Close", f.s.Changes(f.ctx))
	})
}
