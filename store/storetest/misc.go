package storetest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetca/fleetca/store"
)

func testAudit(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("ok/append-list", func(t *testing.T) {
		f := newFixture(t, newStore)
		var want []store.AuditEvent
		for i := range 3 {
			e := store.AuditEvent{
				Seq:    99, // ignored: the store sets it
				Time:   T0.Add(time.Duration(i) * time.Second),
				Action: "admin.auth_failed", Actor: "admin", Detail: fmt.Sprint("attempt ", i),
			}
			if err := f.s.AppendAudit(f.ctx, e); err != nil {
				t.Fatalf("AppendAudit error = %v, want nil", err)
			}
			e.Seq = uint64(i + 1)
			want = append(want, e)
		}
		want = rooted(want)
		for _, tc := range []struct {
			after uint64
			limit int
			want  []store.AuditEvent
		}{
			{0, 0, want},
			{0, 2, want[:2]},
			{1, 0, want[1:]},
			{2, 1, want[2:]},
			{3, 0, []store.AuditEvent{}},
			{1 << 63, 0, []store.AuditEvent{}},
		} {
			got, err := f.s.ListAudit(f.ctx, tc.after, tc.limit)
			if err != nil {
				t.Errorf("ListAudit(%d, %d) error = %v, want nil", tc.after, tc.limit, err)
				continue
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ListAudit(%d, %d) (-want +got):\n%s", tc.after, tc.limit, diff)
			}
		}
	})

	t.Run("ok/limits-and-concurrent-seq", func(t *testing.T) {
		f := newFixture(t, newStore)
		const n = store.MaxPageLimit + 1
		// 32 writers append n events together: every Seq is used once.
		var wg sync.WaitGroup
		next := make(chan int)
		for range 32 {
			wg.Go(func() {
				for i := range next {
					if err := f.s.AppendAudit(f.ctx, event("admin.auth_failed", fmt.Sprint(i))); err != nil {
						t.Errorf("AppendAudit error = %v, want nil", err)
					}
				}
			})
		}
		for i := range n {
			next <- i
		}
		close(next)
		wg.Wait()

		for _, tc := range []struct {
			after      uint64
			limit      int
			first, len int
		}{
			{0, 0, 1, store.DefaultPageLimit},
			{0, -1, 1, store.DefaultPageLimit},
			{0, 5000, 1, store.MaxPageLimit},
			{store.MaxPageLimit, 5000, store.MaxPageLimit + 1, 1},
		} {
			got, err := f.s.ListAudit(f.ctx, tc.after, tc.limit)
			if err != nil {
				t.Fatalf("ListAudit(%d, %d) error = %v, want nil", tc.after, tc.limit, err)
			}
			if len(got) != tc.len {
				t.Errorf("ListAudit(%d, %d) returned %d, want %d", tc.after, tc.limit, len(got), tc.len)
			}
			for i, e := range got {
				if want := uint64(tc.first + i); e.Seq != want {
					t.Errorf("ListAudit(%d, %d)[%d].Seq = %d, want %d", tc.after, tc.limit, i, e.Seq, want)
					break
				}
			}
		}
	})
}

func testNextCounter(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("ok/sequence", func(t *testing.T) {
		f := newFixture(t, newStore)
		for _, tc := range []struct {
			name string
			want uint64
		}{
			{"crl", 1}, {"crl", 2}, {"root-crl", 1}, {"crl", 3}, {"root-crl", 2},
		} {
			got, err := f.s.NextCounter(f.ctx, tc.name)
			if got != tc.want || err != nil {
				t.Errorf("NextCounter(%q) = %d, %v, want %d, nil", tc.name, got, err, tc.want)
			}
		}
	})

	t.Run("ok/concurrent", func(t *testing.T) {
		f := newFixture(t, newStore)
		const n, each = 32, 4
		var mu sync.Mutex
		var got []uint64
		errs := race(n, func(int) error {
			for range each {
				v, err := f.s.NextCounter(f.ctx, "crl")
				if err != nil {
					return err
				}
				mu.Lock()
				got = append(got, v)
				mu.Unlock()
			}
			return nil
		})
		tally(t, errs)
		slices.Sort(got)
		for i, v := range got {
			if v != uint64(i+1) {
				t.Fatalf("concurrent NextCounter values, sorted, [%d] = %d, want %d (each value once)", i, v, i+1)
			}
		}
		if len(got) != n*each {
			t.Errorf("got %d values, want %d", len(got), n*each)
		}
	})
}

func testMeta(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("fail/get-unknown", func(t *testing.T) {
		f := newFixture(t, newStore)
		f.putMeta("a", []byte("1"))
		_, err := f.s.GetMeta(f.ctx, "b")
		checkErr(t, "GetMeta(unknown)", err, store.ErrNotFound)
	})

	t.Run("ok/put-get-replace", func(t *testing.T) {
		f := newFixture(t, newStore)
		for _, tc := range []struct {
			key   string
			value []byte
		}{
			{"ca.intermediate.fingerprint", []byte("ab12")},
			{"ca.intermediate.fingerprint", []byte("cd34 replaced")},
			{"binary", []byte{0, 1, 2, 0xff}},
			{"empty", []byte{}},
			{"nil", nil},
		} {
			f.putMeta(tc.key, tc.value)
			got, err := f.s.GetMeta(f.ctx, tc.key)
			if err != nil || !bytes.Equal(got, tc.value) {
				t.Errorf("GetMeta(%q) = %q, %v, want %q, nil", tc.key, got, err, tc.value)
			}
		}
	})

	t.Run("ok/values-are-copies", func(t *testing.T) {
		f := newFixture(t, newStore)
		value := []byte("value")
		f.putMeta("k", value)
		value[0] = 'X'
		got, err := f.s.GetMeta(f.ctx, "k")
		if err != nil {
			t.Fatalf("GetMeta error = %v, want nil", err)
		}
		got[1] = 'X'
		if again, err := f.s.GetMeta(f.ctx, "k"); string(again) != "value" || err != nil {
			t.Errorf("GetMeta after changing the caller's slices = %q, %v, want %q, nil", again, err, "value")
		}
	})
}

func (f fixture) putMeta(key string, value []byte) {
	f.t.Helper()
	if err := f.s.PutMeta(f.ctx, key, value); err != nil {
		f.t.Fatalf("PutMeta(%q) error = %v, want nil", key, err)
	}
}

// call is one call of each Store method, as a function of its context.
type call struct {
	name string
	do   func(ctx context.Context, s store.Store) error
}

// calls returns a call of every method but Close, each of which would
// succeed on a store that setupCalls prepared.
func calls() []call {
	tok := newToken("tok-1", 5)
	return []call{
		{"Issue", func(ctx context.Context, s store.Store) error {
			return s.Issue(ctx, withToken(newIssuance(newCert(serial(2), "dev-2", "k2")), tok))
		}},
		{"CreateToken", func(ctx context.Context, s store.Store) error {
			return s.CreateToken(ctx, newToken("tok-2", 1), event("token.create", "tok-2"))
		}},
		{"GetToken", func(ctx context.Context, s store.Store) error {
			_, err := s.GetToken(ctx, tok.Hash)
			return err
		}},
		{"ListTokens", func(ctx context.Context, s store.Store) error {
			_, err := s.ListTokens(ctx, store.Page{})
			return err
		}},
		{"RevokeToken", func(ctx context.Context, s store.Store) error {
			_, err := s.RevokeToken(ctx, tok.ID, T0, event("token.revoke", tok.ID))
			return err
		}},
		{"GetDevice", func(ctx context.Context, s store.Store) error {
			_, err := s.GetDevice(ctx, "dev-1")
			return err
		}},
		{"ListDevices", func(ctx context.Context, s store.Store) error {
			_, err := s.ListDevices(ctx, store.Page{})
			return err
		}},
		{"GetCertificate", func(ctx context.Context, s store.Store) error {
			_, err := s.GetCertificate(ctx, serial(1))
			return err
		}},
		{"ListCertificates", func(ctx context.Context, s store.Store) error {
			_, err := s.ListCertificates(ctx, "", store.Page{})
			return err
		}},
		{"ListCertificates/device", func(ctx context.Context, s store.Store) error {
			_, err := s.ListCertificates(ctx, "dev-1", store.Page{})
			return err
		}},
		{"KeyOwner", func(ctx context.Context, s store.Store) error {
			_, err := s.KeyOwner(ctx, keyHash("k1"))
			return err
		}},
		{"Renew", func(ctx context.Context, s store.Store) error {
			_, err := s.Renew(ctx, withNonce(newRenewal(serial(1), serial(5), "dev-1", "k1", renewAt), "n1"))
			return err
		}},
		{"RenewNow", func(ctx context.Context, s store.Store) error {
			return s.RenewNow(ctx, "dev-1", renewAt, event("device.renew_now", "dev-1"))
		}},
		{"RenewNow/fleet", func(ctx context.Context, s store.Store) error {
			return s.RenewNow(ctx, "", renewAt, event("fleet.renew_now", ""))
		}},
		{"FleetRenewNow", func(ctx context.Context, s store.Store) error {
			_, err := s.FleetRenewNow(ctx)
			return err
		}},
		{"Revoke", func(ctx context.Context, s store.Store) error {
			_, err := s.Revoke(ctx, revokeSerial(serial(1), revokedAt, reasonKeyCompromise, true))
			return err
		}},
		{"Revoke/device", func(ctx context.Context, s store.Store) error {
			_, err := s.Revoke(ctx, revokeDevice("dev-4", revokedAt, reasonKeyCompromise, true))
			return err
		}},
		{"ResetDevice", func(ctx context.Context, s store.Store) error {
			_, err := s.ResetDevice(ctx, "dev-3", revokedAt, event("device.reset", "dev-3"))
			return err
		}},
		{"ListRevocations", func(ctx context.Context, s store.Store) error {
			_, err := s.ListRevocations(ctx, 0, 0)
			return err
		}},
		{"KeyBlocked", func(ctx context.Context, s store.Store) error {
			_, err := s.KeyBlocked(ctx, keyHash("k3"))
			return err
		}},
		{"AppendAudit", func(ctx context.Context, s store.Store) error {
			return s.AppendAudit(ctx, event("admin.auth_failed", ""))
		}},
		{"ListAudit", func(ctx context.Context, s store.Store) error {
			_, err := s.ListAudit(ctx, 0, 0)
			return err
		}},
		{"NextCounter", func(ctx context.Context, s store.Store) error {
			_, err := s.NextCounter(ctx, "crl")
			return err
		}},
		{"GetMeta", func(ctx context.Context, s store.Store) error {
			_, err := s.GetMeta(ctx, "m")
			return err
		}},
		{"PutMeta", func(ctx context.Context, s store.Store) error {
			return s.PutMeta(ctx, "m", []byte("2"))
		}},
		{"LeaseCRL", func(ctx context.Context, s store.Store) error {
			_, err := s.LeaseCRL(ctx, "replica-b", T0, T0.Add(time.Minute))
			return err
		}},
		{"PutCRL", func(ctx context.Context, s store.Store) error {
			return s.PutCRL(ctx, "replica-a", T0, newCRL(2))
		}},
		{"LatestCRL", func(ctx context.Context, s store.Store) error {
			_, err := s.LatestCRL(ctx, 0)
			return err
		}},
	}
}

// setupCalls gives the store the records that make every call succeed.
func setupCalls(f fixture) {
	f.t.Helper()
	tok := f.createToken(newToken("tok-1", 5))
	f.issue(withToken(newIssuance(newCert(serial(1), "dev-1", "k1")), tok))
	f.issue(withToken(newIssuance(newCert(serial(3), "dev-3", "k3")), tok))
	f.issue(withToken(newIssuance(newCert(serial(4), "dev-4", "k4")), tok))
	f.revoke(revokeDevice("dev-3", T0, reasonKeyCompromise, true))
	f.putMeta("m", []byte("1"))
	f.leaseCRL("replica-a", T0, T0.Add(time.Hour), true)
	f.putCRL("replica-a", T0, newCRL(1))
}

// setupKeys are the keys of the certificates setupCalls and calls issue.
func setupKeys() []store.KeyHash {
	return []store.KeyHash{keyHash("k1"), keyHash("k2"), keyHash("k3"), keyHash("k4")}
}

func testClose(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("ok/calls-succeed-before-close", func(t *testing.T) {
		f := newFixture(t, newStore)
		setupCalls(f)
		for _, c := range calls() {
			if err := c.do(f.ctx, f.s); err != nil {
				t.Errorf("%s error = %v, want nil", c.name, err)
			}
		}
	})

	t.Run("fail/calls-after-close", func(t *testing.T) {
		f := newFixture(t, newStore)
		setupCalls(f)
		if err := f.s.Close(); err != nil {
			t.Fatalf("Close error = %v, want nil", err)
		}
		for _, c := range calls() {
			checkErr(t, c.name+" after Close", c.do(f.ctx, f.s), store.ErrClosed)
		}
		checkErr(t, "Close after Close", f.s.Close(), store.ErrClosed)
	})

	t.Run("ok/close-waits-for-calls", func(t *testing.T) {
		// Calls racing Close either finish before it (and are durable)
		// or fail with ErrClosed; none fails otherwise, none hangs.
		f := newFixture(t, newStore)
		tok := f.createToken(newToken("tok-1", 64))
		errs := race(33, func(i int) error {
			if i == 32 {
				return f.s.Close()
			}
			return f.s.Issue(f.ctx, withToken(newIssuance(newCert(serial(int64(100+i)), devName(i), devName(i))), tok))
		})
		if errs[32] != nil {
			t.Errorf("Close error = %v, want nil", errs[32])
		}
		tally(t, errs, store.ErrClosed)
	})
}

func testContext(t *testing.T, newStore func(t *testing.T) store.Store) {
	for _, c := range calls() {
		t.Run("fail/canceled/"+c.name, func(t *testing.T) {
			f := newFixture(t, newStore)
			setupCalls(f)
			before := f.snapshot(setupKeys()...)
			ctx, cancel := context.WithCancel(f.ctx)
			cancel()
			checkErr(t, c.name+" with a canceled context", c.do(ctx, f.s), context.Canceled)
			f.checkUnchanged(c.name+" with a canceled context", before, setupKeys()...)
			if got, err := f.s.GetMeta(f.ctx, "m"); string(got) != "1" || err != nil {
				t.Errorf("GetMeta(m) = %q, %v, want %q, nil", got, err, "1")
			}
			if got, err := f.s.NextCounter(f.ctx, "crl"); got != 1 || err != nil {
				t.Errorf("NextCounter(crl) = %d, %v, want 1, nil", got, err)
			}
		})
	}
}
