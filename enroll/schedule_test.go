package enroll

import (
	"context"
	"math/big"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

func TestRenewAfter(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, v := range []time.Duration{time.Hour, 24 * time.Hour, 2160 * time.Hour, 87600 * time.Hour} {
		na := nb.Add(v)
		start, end := naturalWindow(nb, na)
		seen := map[time.Time]bool{}
		for i := range 200 {
			serial := new(big.Int).Lsh(big.NewInt(int64(i)+1), 100)
			ra := renewAfter(serial, nb, na)
			if ra.Before(start) || ra.After(end) {
				t.Fatalf("validity %s: renewAfter = %s, outside the window %s..%s", v, ra, start, end)
			}
			if again := renewAfter(new(big.Int).Set(serial), nb, na); !again.Equal(ra) {
				t.Fatalf("validity %s: renewAfter of the same serial = %s then %s", v, ra, again)
			}
			seen[ra] = true
		}
		if len(seen) < 50 {
			t.Errorf("validity %s: 200 serials gave only %d distinct renew_after times: no jitter", v, len(seen))
		}
		// Two thirds, ±1 % of the validity.
		if want := nb.Add(v * 2 / 3).Add(-v / 100).Truncate(time.Second); !start.Equal(want) {
			t.Errorf("validity %s: window start = %s, want %s", v, start, want)
		}
		if want := nb.Add(v * 2 / 3).Add(v / 100).Truncate(time.Second); !end.Equal(want) {
			t.Errorf("validity %s: window end = %s, want %s", v, end, want)
		}
	}
}

// TestRenewalInfo: the natural window; revocation, a device's renew-now
// and the fleet's move it to a short window starting then; a certificate
// issued after a renew-now keeps its natural window.
func TestRenewalInfo(t *testing.T) {
	validity := ca.DefaultDeviceValidity
	for _, tc := range []struct {
		name string
		// act moves the clock and acts; it returns the certificate to ask
		// about and the urgent moment (zero: the natural window).
		act func(t *testing.T, f *fixture, d device) (device, time.Time)
	}{
		{"natural", func(t *testing.T, f *fixture, d device) (device, time.Time) { return d, time.Time{} }},
		{"revoked", func(t *testing.T, f *fixture, d device) (device, time.Time) {
			f.clock.Add(10 * 24 * time.Hour)
			f.revoke(t, store.RevokeRequest{Serial: d.cert.SerialNumber, Reason: 1})
			return d, f.clock.Now()
		}},
		{"device-renew-now", func(t *testing.T, f *fixture, d device) (device, time.Time) {
			f.clock.Add(3 * 24 * time.Hour)
			at, err := f.svc.RenewNow(t.Context(), api.DeviceID(d.id))
			if err != nil {
				t.Fatal(err)
			}
			if !at.Equal(f.clock.Now()) {
				t.Errorf("RenewNow at = %s, want the clock's %s", at, f.clock.Now())
			}
			return d, at
		}},
		{"fleet-renew-now", func(t *testing.T, f *fixture, d device) (device, time.Time) {
			f.clock.Add(5 * 24 * time.Hour)
			at, err := f.svc.FleetRenewNow(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			f.clock.Add(time.Hour) // a later device renew-now does not move it back
			if _, err := f.svc.RenewNow(t.Context(), api.DeviceID(d.id)); err != nil {
				t.Fatal(err)
			}
			return d, at
		}},
		{"renewed-after-renew-now", func(t *testing.T, f *fixture, d device) (device, time.Time) {
			f.clock.Add(5 * 24 * time.Hour)
			if _, err := f.svc.FleetRenewNow(t.Context()); err != nil {
				t.Fatal(err)
			}
			f.clock.Add(time.Minute)
			res, err := f.mtls(t, d, nil)
			if err != nil {
				t.Fatal(err)
			}
			return device{id: d.id, cert: res.Certificate, key: d.key}, time.Time{}
		}},
		{"renew-now-after-the-window", func(t *testing.T, f *fixture, d device) (device, time.Time) {
			f.clock.Add(validity * 3 / 4)
			if _, err := f.svc.FleetRenewNow(t.Context()); err != nil {
				t.Fatal(err)
			}
			return d, time.Time{} // the natural window is already open
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			d := f.enrollDevice(t, "dev-i")
			c, urgent := tc.act(t, f, d)
			info, err := f.svc.RenewalInfo(t.Context(), c.cert.SerialNumber)
			if err != nil {
				t.Fatalf("RenewalInfo: %v", err)
			}
			w := info.Info.SuggestedWindow
			wantStart, wantEnd := naturalWindow(c.cert.NotBefore, c.cert.NotAfter)
			if !urgent.IsZero() {
				wantStart, wantEnd = urgent.Truncate(time.Second), urgent.Add(time.Hour).Truncate(time.Second)
			}
			if !w.Start.Equal(wantStart) || !w.End.Equal(wantEnd) {
				t.Errorf("window = %s..%s, want %s..%s", w.Start, w.End, wantStart, wantEnd)
			}
			if info.RetryAfter > RenewalInfoRetryAfter || info.RetryAfter <= RenewalInfoRetryAfter-RenewalInfoJitter {
				t.Errorf("RetryAfter = %s, want 6h less up to 30m", info.RetryAfter)
			}
		})
	}

	f := newFixture(t, Config{})
	if _, err := f.svc.RenewalInfo(t.Context(), big.NewInt(12345)); kindOf(err) != fault.NotFound {
		t.Errorf("RenewalInfo(unknown) kind = %v, want NotFound", kindOf(err))
	}
	if _, err := f.svc.RenewNow(t.Context(), "nobody"); kindOf(err) != fault.NotFound {
		t.Errorf("RenewNow(unknown) kind = %v, want NotFound", kindOf(err))
	}
	evs, err := f.store.ListAudit(t.Context(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Action == "device.renew_now" {
			t.Errorf("a refused renew-now was audited: %+v", ev)
		}
	}
}

// TestEnrollSchedules: an enrollment answer says when to renew too.
func TestEnrollSchedules(t *testing.T) {
	f := newFixture(t, Config{})
	secret, _ := f.token(t, TokenRequest{DeviceID: "dev-e"})
	csr, _ := newCSR(t, "dev-e")
	res, err := f.svc.Enroll(t.Context(), string(secret), csr)
	if err != nil {
		t.Fatal(err)
	}
	c := res.Certificate
	if want := renewAfter(c.SerialNumber, c.NotBefore, c.NotAfter); !res.RenewAfter.Equal(want) || res.Parent != nil || res.Replayed {
		t.Errorf("enrollment RenewAfter = %s, Parent %v, Replayed %v; want %s, nil, false", res.RenewAfter, res.Parent, res.Replayed, want)
	}
	info, err := f.svc.RenewalInfo(t.Context(), c.SerialNumber)
	if err != nil {
		t.Fatal(err)
	}
	if info.Info != res.RenewalInfo {
		t.Errorf("RenewalInfo = %+v, want the enrollment's %+v", info.Info, res.RenewalInfo)
	}
}

// TestExpiryGauge: active devices are counted by the time to expiry of
// their newest unrevoked certificate.
func TestExpiryGauge(t *testing.T) {
	const day = 24 * time.Hour
	// Device certificates live 90 days (ca.DefaultDeviceValidity).
	f := newFixture(t, Config{RenewAfterExpiry: 10 * day})
	start := f.clock.Now()
	at := func(d time.Duration) { f.clock.Add(start.Add(d).Sub(f.clock.Now())) }

	f.enrollDevice(t, "a-expired") // expires at 90d
	at(15 * day)
	f.enrollDevice(t, "b-in-grace") // 105d
	at(25 * day)
	f.enrollDevice(t, "c-day") // 115d
	at(29 * day)
	f.enrollDevice(t, "d-week") // 119d
	at(40 * day)
	f.enrollDevice(t, "e-month") // 130d
	at(100 * day)
	later := f.enrollDevice(t, "f-later") // 190d
	f.enrollDevice(t, "g-revoked")
	f.revoke(t, store.RevokeRequest{DeviceID: "g-revoked", Reason: 5})
	// A renewed device counts once, by its newest certificate.
	if _, err := f.mtls(t, later, nil); err != nil {
		t.Fatal(err)
	}
	at(114*day + 12*time.Hour)

	if err := f.svc.countExpiry(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		bucketExpired: 1, bucketExpiredInGrace: 1, bucketDay: 1, bucketWeek: 1, bucketMonth: 1, bucketLater: 1,
	}
	for b, n := range want {
		if got := testutil.ToFloat64(f.svc.expiry.WithLabelValues(b)); got != n {
			t.Errorf("fleetca_enroll_device_certificates{expires_in=%q} = %v, want %v", b, got, n)
		}
	}
	if n := testutil.CollectAndCount(f.reg, "fleetca_enroll_device_certificates"); n != len(expiryBuckets) {
		t.Errorf("the registry has %d series of fleetca_enroll_device_certificates, want %d", n, len(expiryBuckets))
	}
}

// TestExpiryRun: Run counts at once and again every ExpiryRefresh, on the
// clock, until its context ends.
func TestExpiryRun(t *testing.T) {
	f := newFixture(t, Config{})
	f.enrollDevice(t, "dev-run")
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- f.svc.Run(ctx) }()
		synctest.Wait()
		if got := testutil.ToFloat64(f.svc.expiry.WithLabelValues(bucketLater)); got != 1 {
			t.Errorf("first count: ge_30d = %v, want 1", got)
		}
		// 80 days later by the service's clock, the certificate has ten
		// days left; the next count, ExpiryRefresh later, says so.
		f.clock.Add(80 * 24 * time.Hour)
		time.Sleep(ExpiryRefresh)
		synctest.Wait()
		if got := testutil.ToFloat64(f.svc.expiry.WithLabelValues(bucketMonth)); got != 1 {
			t.Errorf("after ExpiryRefresh: lt_30d = %v, want 1", got)
		}
		if got := testutil.ToFloat64(f.svc.expiry.WithLabelValues(bucketLater)); got != 0 {
			t.Errorf("after ExpiryRefresh: ge_30d = %v, want 0", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil once its context ends", err)
		}
	})
}
