package storetest

import (
	"cmp"
	"fmt"
	"math/big"
	"slices"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/fleetca/fleetca/store"
)

func testRenewConcurrent(t *testing.T, newStore func(t *testing.T) store.Store) {
	const n = 32

	t.Run("ok/retries-give-one-certificate", func(t *testing.T) {
		// An agent that lost its answers, n times at once: one
		// certificate, and every call answered with it.
		f := newFixture(t, newStore)
		setupRenew(f)
		results := make([]store.RenewResult, n)
		errs := race(n, func(i int) error {
			r := newRenewal(new(big.Int).Set(serial(1)), serial(int64(1000+i)), "dev-1", "k1", renewAt)
			r.MinInterval, r.MaxActive = time.Hour, 1
			var err error
			results[i], err = f.s.Renew(f.ctx, r)
			return err
		})
		tally(t, errs)
		certs := f.certs("dev-1")
		if len(certs) != 2 {
			t.Fatalf("%d concurrent identical Renew recorded %d certificates, want 1", n, len(certs)-1)
		}
		issued := certs[1]
		if issued.Serial.Cmp(serial(1)) == 0 {
			issued = certs[0]
		}
		replayed := 0
		for i, res := range results {
			if res.Certificate.Serial == nil || res.Certificate.Serial.Cmp(issued.Serial) != 0 {
				t.Errorf("Renew %d returned serial %x, want the one recorded, %x", i, res.Certificate.Serial, issued.Serial)
			}
			if res.Replayed {
				replayed++
			} else if len(res.Superseded) != 1 || res.Superseded[0].Serial.Cmp(serial(1)) != 0 {
				t.Errorf("Renew %d superseded %v, want serial 1", i, res.Superseded)
			}
		}
		if replayed != n-1 {
			t.Errorf("%d of %d Renew calls Replayed, want %d", replayed, n, n-1)
		}
		if issued.Parent == nil || issued.Parent.Cmp(serial(1)) != 0 {
			t.Errorf("recorded certificate's Parent = %v, want 1", issued.Parent)
		}
		f.checkSeqs(4 + 1 + 1) // setupRenew's 4 issues and revocation, one renewal
		checkRevocationSeqs(t, f.revocations(), 2)
	})

	t.Run("ok/rekeys-give-one-certificate", func(t *testing.T) {
		// n renewals of one parent with n keys: only the first is the
		// newest certificate's renewal.
		f := newFixture(t, newStore)
		setupRenew(f)
		errs := race(n, func(i int) error {
			_, err := f.s.Renew(f.ctx, newRenewal(serial(1), serial(int64(1000+i)), "dev-1", devName(i), renewAt))
			return err
		})
		counts := tally(t, errs, store.ErrNotNewest)
		if counts[nil] != 1 || counts[store.ErrNotNewest] != n-1 {
			t.Errorf("%d concurrent rekeys: %d succeeded, %d ErrNotNewest, want 1, %d", n, counts[nil], counts[store.ErrNotNewest], n-1)
		}
		if got := len(f.certs("dev-1")); got != 2 {
			t.Errorf("dev-1 has %d certificates, want 2", got)
		}
		f.checkSeqs(4 + 1 + 1)
	})

	t.Run("ok/one-nonce", func(t *testing.T) {
		// One renewal token for n devices at once: spent once.
		f := newFixture(t, newStore)
		for i := range n {
			f.issue(newIssuance(newCert(serial(int64(100+i)), devName(i), devName(i))))
		}
		nonce := newNonce("n1", renewAt.Add(nonceTTL))
		errs := race(n, func(i int) error {
			r := newRenewal(serial(int64(100+i)), serial(int64(1000+i)), devName(i), devName(i), renewAt)
			r.Nonce = nonce
			_, err := f.s.Renew(f.ctx, r)
			return err
		})
		counts := tally(t, errs, store.ErrNonceSpent)
		if counts[nil] != 1 || counts[store.ErrNonceSpent] != n-1 {
			t.Errorf("%d concurrent Renew with one nonce: %d succeeded, %d ErrNonceSpent, want 1, %d", n, counts[nil], counts[store.ErrNonceSpent], n-1)
		}
		if got := len(f.certs("")); got != n+1 {
			t.Errorf("%d certificates recorded, want %d", got, n+1)
		}
		f.checkSeqs(n + 1)
	})

	t.Run("ok/distinct-devices", func(t *testing.T) {
		f := newFixture(t, newStore)
		for i := range n {
			f.issue(newIssuance(newCert(serial(int64(100+i)), devName(i), devName(i))))
		}
		results := make([]store.RenewResult, n)
		errs := race(n, func(i int) error {
			r := withNonce(newRenewal(serial(int64(100+i)), serial(int64(1000+i)), devName(i), devName(i), renewAt), devName(i))
			r.MaxActive = 1
			var err error
			results[i], err = f.s.Renew(f.ctx, r)
			return err
		})
		tally(t, errs)
		var returned []store.Revocation
		for i, res := range results {
			if res.Replayed || res.Certificate.Serial == nil || res.Certificate.Serial.Cmp(serial(int64(1000+i))) != 0 {
				t.Errorf("Renew %d = serial %x, Replayed %v, want %x, false", i, res.Certificate.Serial, res.Replayed, 1000+i)
			}
			returned = append(returned, res.Superseded...)
		}
		slices.SortFunc(returned, func(a, b store.Revocation) int { return cmp.Compare(a.Seq, b.Seq) })
		listed := f.revocations()
		if diff := gocmp.Diff(returned, listed, cmpOpts); diff != "" {
			t.Errorf("ListRevocations, against the entries Renew returned (-returned +listed):\n%s", diff)
		}
		checkRevocationSeqs(t, listed, n)
		f.checkSeqs(n + n)
	})
}

func testLineage(t *testing.T, newStore func(t *testing.T) store.Store) {
	// chain enrolls 1 and renews it three times, the second time with a
	// new key: 1 <- 2 <- bigSerial <- 4.
	chain := func(f fixture) []store.Certificate {
		f.issue(newIssuance(newCert(serial(1), "dev-1", "k1")))
		f.issue(newIssuance(newCert(serial(3), "dev-2", "k3")))
		f.renew(newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt))
		f.renew(newRenewal(serial(2), bigSerial, "dev-1", "k2", renewAt.Add(60*24*time.Hour)))
		f.renew(newRenewal(bigSerial, serial(4), "dev-1", "k2", renewAt.Add(120*24*time.Hour)))
		return []store.Certificate{
			newCert(serial(1), "dev-1", "k1"),
			renewed(newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt)),
			renewed(newRenewal(bigSerial, serial(4), "dev-1", "k2", renewAt.Add(120*24*time.Hour))),
			renewed(newRenewal(serial(2), bigSerial, "dev-1", "k2", renewAt.Add(60*24*time.Hour))),
		} // in serial order
	}

	t.Run("ok/parents-read-back", func(t *testing.T) {
		f := newFixture(t, newStore)
		want := chain(f)
		if diff := gocmp.Diff(want, f.certs("dev-1"), cmpOpts); diff != "" {
			t.Errorf("ListCertificates(dev-1) (-want +got):\n%s", diff)
		}
		all := f.certs("")
		if len(all) != 5 {
			t.Fatalf("ListCertificates(\"\") has %d, want 5", len(all))
		}
		if diff := gocmp.Diff(append(want[:2:2], append([]store.Certificate{newCert(serial(3), "dev-2", "k3")}, want[2:]...)...), all, cmpOpts); diff != "" {
			t.Errorf("ListCertificates(\"\") (-want +got):\n%s", diff)
		}
		for _, c := range want {
			if diff := gocmp.Diff(c, f.cert(c.Serial), cmpOpts); diff != "" {
				t.Errorf("GetCertificate(%x) (-want +got):\n%s", c.Serial, diff)
			}
		}
		// The chain, walked from the newest to the enrollment.
		var walk []string
		for n := serial(4); n != nil; n = f.cert(n).Parent {
			walk = append(walk, n.Text(16))
		}
		if diff := gocmp.Diff([]string{"4", bigSerial.Text(16), "2", "1"}, walk); diff != "" {
			t.Errorf("lineage of 4 (-want +got):\n%s", diff)
		}
	})

	t.Run("ok/parent-kept-by-revoke", func(t *testing.T) {
		f := newFixture(t, newStore)
		chain(f)
		f.revoke(revokeSerial(bigSerial, renewAt, reasonKeyCompromise, true))
		if got := f.cert(bigSerial); got.Parent == nil || got.Parent.Cmp(serial(2)) != 0 || got.RevokedAt.IsZero() {
			t.Errorf("GetCertificate(%x) after Revoke = Parent %v, revoked at %v, want Parent 2, revoked", bigSerial, got.Parent, got.RevokedAt)
		}
	})

	t.Run("ok/revoke-device-revokes-lineage", func(t *testing.T) {
		f := newFixture(t, newStore)
		want := chain(f)
		at := renewAt.Add(121 * 24 * time.Hour)
		// At, 1 (issued at T0) and 2 have expired; bigSerial and 4 are live.
		req := revokeDevice("dev-1", at, reasonCessation, false)
		got := f.revoke(req)
		wantEntries := []store.Revocation{entryOf(1, want[2], req), entryOf(2, want[3], req)}
		if diff := gocmp.Diff(wantEntries, got, cmpOpts); diff != "" {
			t.Errorf("Revoke(dev-1) entries (-want +got):\n%s", diff)
		}
		for _, c := range f.certs("dev-1") {
			if c.Live(at) {
				t.Errorf("certificate %x is live after Revoke(dev-1)", c.Serial)
			}
		}
		_, err := f.s.Renew(f.ctx, newRenewal(serial(4), serial(5), "dev-1", "k2", at))
		checkErr(t, "Renew of a revoked device's newest certificate", err, store.ErrDeviceRevoked)
	})

	t.Run("ok/enrollment-starts-a-lineage", func(t *testing.T) {
		f := newFixture(t, newStore)
		chain(f)
		is := newIssuance(newCert(serial(9), "dev-1", "k9"))
		is.Certificate.IssuedAt, is.Now = renewAt.Add(200*24*time.Hour), renewAt.Add(200*24*time.Hour)
		f.issue(is)
		if got := f.cert(serial(9)).Parent; got != nil {
			t.Errorf("GetCertificate(9).Parent = %x, want nil", got)
		}
		_, err := f.s.Renew(f.ctx, newRenewal(serial(4), serial(5), "dev-1", "k2", is.Now))
		checkErr(t, "Renew of the renewal an enrollment followed", err, store.ErrNotNewest)
	})
}

func testSupersede(t *testing.T, newStore func(t *testing.T) store.Store) {
	// setup issues to dev-1, in the order of IssuedAt, then serial:
	//
	//	2 and 7 (T0, live), 3 (T0+1h, expired by renewAt), 5 (T0+2h,
	//	revoked), 6 (T0+3h, live): the parent
	//
	// and to dev-2 1, revoked by serial (log Seq 1).
	setup := func(f fixture) {
		for _, c := range []struct {
			n        int64
			issuedAt time.Time
			notAfter time.Time
			revoked  bool
		}{
			{7, T0, T0.Add(certTTL), false},
			{2, T0, T0.Add(certTTL), false},
			{3, T0.Add(time.Hour), renewAt.Add(-time.Hour), false},
			{5, T0.Add(2 * time.Hour), T0.Add(certTTL), true},
			{6, T0.Add(3 * time.Hour), T0.Add(certTTL), false},
		} {
			cert := newCert(serial(c.n), "dev-1", "k1")
			cert.IssuedAt, cert.NotAfter = c.issuedAt, c.notAfter
			if c.revoked {
				cert.RevokedAt, cert.Reason = T0.Add(2*time.Hour), reasonCessation
			}
			f.issue(newIssuance(cert))
		}
		f.issue(newIssuance(newCert(serial(1), "dev-2", "k2")))
		f.revoke(revokeSerial(serial(1), T0.Add(time.Hour), reasonCessation, false)) // log Seq 1
	}
	supersededAt := func(seq uint64, n int64) store.Revocation {
		return store.Revocation{Seq: seq, Serial: serial(n), DeviceID: "dev-1", RevokedAt: renewAt, Reason: reasonSuperseded, NotAfter: T0.Add(certTTL)}
	}

	cases := []struct {
		name      string
		maxActive int
		// superseded lists the serials revoked, in Seq order.
		superseded []int64
	}{
		// Live before: 2, 7, 6; the renewal makes 4.
		{"ok/unlimited", 0, nil},
		{"ok/within", 4, nil},
		{"ok/one-over", 3, []int64{2}},
		{"ok/oldest-first-ties-by-serial", 2, []int64{2, 7}},
		{"ok/only-the-new-one", 1, []int64{2, 7, 6}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, newStore)
			setup(f)
			r := newRenewal(serial(6), serial(10), "dev-1", "k1", renewAt)
			r.MaxActive = tc.maxActive
			before := f.snapshot()
			res := f.renew(r)
			var want []store.Revocation
			for i, n := range tc.superseded {
				want = append(want, supersededAt(uint64(2+i), n))
			}
			if diff := gocmp.Diff(store.RenewResult{Certificate: renewed(r), Superseded: want}, res, entriesOpts); diff != "" {
				t.Errorf("Renew result (-want +got):\n%s", diff)
			}
			if diff := gocmp.Diff(append(before.Revocations, want...), f.revocations(), entriesOpts); diff != "" {
				t.Errorf("ListRevocations (-want +got):\n%s", diff)
			}
			checkRevocationSeqs(t, f.revocations(), 1+len(want))
			for _, e := range want {
				c := f.cert(e.Serial)
				if !c.RevokedAt.Equal(renewAt) || c.Reason != reasonSuperseded {
					t.Errorf("certificate %x revoked at %v for reason %d, want %v, %d", e.Serial, c.RevokedAt, c.Reason, renewAt, reasonSuperseded)
				}
			}
			live := 0
			for _, c := range f.certs("dev-1") {
				if c.Live(renewAt) {
					live++
				}
			}
			if tc.maxActive > 0 && live > tc.maxActive {
				t.Errorf("dev-1 has %d live certificates, want at most %d", live, tc.maxActive)
			}
			if c := f.cert(serial(3)); !c.RevokedAt.IsZero() {
				t.Errorf("expired certificate 3 revoked at %v, want left alone", c.RevokedAt)
			}
			if c := f.cert(serial(5)); !c.RevokedAt.Equal(T0.Add(2*time.Hour)) || c.Reason != reasonCessation {
				t.Errorf("revoked certificate 5 now revoked at %v for %d, want left alone", c.RevokedAt, c.Reason)
			}
			if blocked := f.blocked(keyHash("k1")); blocked {
				t.Errorf("KeyBlocked(k1) = true after supersession, want false")
			}
			f.checkSeqs(len(before.Audit) + 1)
		})
	}
}

func testRenewNow(t *testing.T, newStore func(t *testing.T) store.Store) {
	at := renewAt.Add(time.Hour)

	t.Run("ok/device", func(t *testing.T) {
		f := newFixture(t, newStore)
		setupRenew(f)
		before := f.snapshot()
		e := event("device.renew_now", "dev-1")
		if err := f.s.RenewNow(f.ctx, "dev-1", at, e); err != nil {
			t.Fatalf("RenewNow(dev-1) error = %v, want nil", err)
		}
		want := before
		want.Devices = slices.Clone(before.Devices)
		for i, d := range want.Devices {
			if d.ID == "dev-1" {
				want.Devices[i].RenewNowAt = at
			}
		}
		e.Seq = uint64(len(before.Audit) + 1)
		want.Audit = rooted(append(slices.Clone(before.Audit), e))
		if diff := gocmp.Diff(want, f.snapshot(), cmpOpts); diff != "" {
			t.Errorf("records after RenewNow(dev-1) (-want +got):\n%s", diff)
		}
	})

	t.Run("ok/device-again", func(t *testing.T) {
		f := newFixture(t, newStore)
		setupRenew(f)
		for _, a := range []time.Time{at, at.Add(time.Hour)} {
			if err := f.s.RenewNow(f.ctx, "dev-1", a, event("device.renew_now", "dev-1")); err != nil {
				t.Fatalf("RenewNow(dev-1, %v) error = %v, want nil", a, err)
			}
		}
		if got := f.device("dev-1").RenewNowAt; !got.Equal(at.Add(time.Hour)) {
			t.Errorf("RenewNowAt = %v, want %v", got, at.Add(time.Hour))
		}
		f.checkSeqs(4 + 1 + 2)
	})

	t.Run("ok/fleet", func(t *testing.T) {
		f := newFixture(t, newStore)
		if got, err := f.s.FleetRenewNow(f.ctx); !got.IsZero() || err != nil {
			t.Errorf("FleetRenewNow of a new store = %v, %v, want zero, nil", got, err)
		}
		setupRenew(f)
		before := f.snapshot()
		for _, a := range []time.Time{at, at.Add(time.Hour)} {
			if err := f.s.RenewNow(f.ctx, "", a, event("fleet.renew_now", "")); err != nil {
				t.Fatalf("RenewNow(\"\", %v) error = %v, want nil", a, err)
			}
			if got, err := f.s.FleetRenewNow(f.ctx); !got.Equal(a) || err != nil {
				t.Errorf("FleetRenewNow = %v, %v, want %v, nil", got, err, a)
			}
		}
		after := f.snapshot()
		if diff := gocmp.Diff(before.Devices, after.Devices); diff != "" {
			t.Errorf("devices after RenewNow(\"\") (-before +after):\n%s", diff)
		}
		f.checkSeqs(len(before.Audit) + 2)
	})

	t.Run("fail/unknown-device", func(t *testing.T) {
		f := newFixture(t, newStore)
		setupRenew(f)
		before := f.snapshot()
		checkErr(t, "RenewNow(dev-unknown)", f.s.RenewNow(f.ctx, "dev-unknown", at, event("device.renew_now", "dev-unknown")), store.ErrNotFound)
		f.checkUnchanged("a refused RenewNow", before)
	})

	t.Run("fail/zero-time", func(t *testing.T) {
		f := newFixture(t, newStore)
		setupRenew(f)
		before := f.snapshot()
		for _, id := range []string{"dev-1", ""} {
			checkErr(t, fmt.Sprintf("RenewNow(%q) at zero", id), f.s.RenewNow(f.ctx, id, time.Time{}, event("device.renew_now", id)), errAny)
		}
		f.checkUnchanged("a refused RenewNow", before)
	})
}
