package storetest

import (
	"crypto/sha256"
	"errors"
	"math/big"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/fleetca/fleetca/store"
)

// renewAt is when the suite's renewals happen, unless a case says
// otherwise: two thirds into the life of a certificate issued at T0.
var renewAt = T0.Add(60 * 24 * time.Hour)

const (
	// retryWindow is the suite's Renewal.RetryWindow, as the issue's.
	retryWindow = 24 * time.Hour
	// nonceTTL is how long after its renewal a nonce expires, as a
	// renewal token's exp.
	nonceTTL = 5 * time.Minute
)

// renewedCert returns a certificate for device with the key named key,
// issued at at and live from then for certTTL.
func renewedCert(n *big.Int, device, key string, at time.Time) store.Certificate {
	c := newCert(n, device, key)
	c.NotBefore, c.NotAfter, c.IssuedAt = at.Add(-time.Minute), at.Add(certTTL), at
	return c
}

// newRenewal returns the renewal of parent by a certificate with serial n
// for device with the key named key, at at: no nonce, no MinInterval or
// MaxActive, the suite's retryWindow.
func newRenewal(parent, n *big.Int, device, key string, at time.Time) store.Renewal {
	return store.Renewal{
		Parent:      parent,
		Certificate: renewedCert(n, device, key, at),
		Now:         at,
		RetryWindow: retryWindow,
		Audit: store.AuditEvent{
			Time:     at,
			Action:   "certificate.renew",
			Actor:    "device:" + device,
			DeviceID: device,
			Serial:   n.Text(16),
			Detail:   "parent " + parent.Text(16),
		},
	}
}

// withNonce returns r spending the nonce named name, which expires
// nonceTTL after r.Now.
func withNonce(r store.Renewal, name string) store.Renewal {
	r.Nonce = newNonce(name, r.Now.Add(nonceTTL))
	return r
}

// newNonce returns the nonce named name, expiring at expires.
func newNonce(name string, expires time.Time) *store.Nonce {
	return &store.Nonce{Hash: sha256.Sum256([]byte("nonce:" + name)), Expires: expires}
}

// renewed returns what Renew records for r: its certificate with Parent.
func renewed(r store.Renewal) store.Certificate {
	c := r.Certificate
	c.Parent = r.Parent
	return c
}

func (f fixture) renew(r store.Renewal) store.RenewResult {
	f.t.Helper()
	res, err := f.s.Renew(f.ctx, r)
	if err != nil {
		f.t.Fatalf("Renew(%x -> %x at %s) error = %v, want nil", r.Parent, r.Certificate.Serial, r.Now.Format(time.RFC3339), err)
	}
	return res
}

func (f fixture) cert(n *big.Int) store.Certificate {
	f.t.Helper()
	c, err := f.s.GetCertificate(f.ctx, n)
	if err != nil {
		f.t.Fatalf("GetCertificate(%x) error = %v, want nil", n, err)
	}
	return c
}

// spendNonce spends the nonce named name, expiring nonceTTL after
// renewAt, with a renewal of dev-n's certificate at renewAt (setupRenew),
// and returns it.
func (f fixture) spendNonce(name string) *store.Nonce {
	f.t.Helper()
	r := withNonce(newRenewal(serial(100), serial(101), "dev-n", "kn", renewAt), name)
	f.renew(r)
	return r.Nonce
}

// setupRenew issues the certificates the Renew cases start from, all at T0:
//
//	dev-1  1 (k1), the certificate renewed
//	dev-n  100 (kn), whose renewals check that a nonce is (un)spent
//	dev-x  200 (kx), revoked with its key blocked
//	dev-p  300 (kp), which nonceSpent renews
func setupRenew(f fixture) {
	f.t.Helper()
	f.issue(newIssuance(newCert(serial(1), "dev-1", "k1")))
	f.issue(newIssuance(newCert(serial(100), "dev-n", "kn")))
	f.issue(newIssuance(newCert(serial(200), "dev-x", "kx")))
	f.issue(newIssuance(newCert(serial(300), "dev-p", "kp")))
	f.revoke(revokeSerial(serial(200), T0, reasonKeyCompromise, true))
}

// renewKeys are the keys of setupRenew and of the renewals of the cases.
func renewKeys() []store.KeyHash {
	return []store.KeyHash{keyHash("k1"), keyHash("k2"), keyHash("kn"), keyHash("kx"), keyHash("kp")}
}

// nonceSpent reports whether the nonce is spent at now, by renewing
// dev-p's certificate 300 with it: ErrNonceSpent says it is spent, success
// that it was not (and is now). Call it once, last: it changes the store.
func (f fixture) nonceSpent(n *store.Nonce, now time.Time) bool {
	f.t.Helper()
	r := newRenewal(serial(300), serial(301), "dev-p", "kp", now)
	r.Nonce = n
	_, err := f.s.Renew(f.ctx, r)
	switch {
	case err == nil:
		return false
	case errors.Is(err, store.ErrNonceSpent):
		return true
	}
	f.t.Fatalf("Renew of dev-p to probe nonce %x error = %v, want nil or ErrNonceSpent", n.Hash[:4], err)
	return false
}

func testRenew(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("ok/records-renewal", func(t *testing.T) {
		f := newFixture(t, newStore)
		setupRenew(f)
		r := withNonce(newRenewal(serial(1), bigSerial, "dev-1", "k1", renewAt), "n1")
		before := f.snapshot(renewKeys()...)
		res := f.renew(r)

		want := renewed(r)
		if diff := gocmp.Diff(store.RenewResult{Certificate: want}, res, entriesOpts); diff != "" {
			t.Errorf("Renew result (-want +got):\n%s", diff)
		}
		if diff := gocmp.Diff(want, f.cert(bigSerial), cmpOpts); diff != "" {
			t.Errorf("GetCertificate(%x) (-want +got):\n%s", bigSerial, diff)
		}
		if diff := gocmp.Diff([]store.Certificate{newCert(serial(1), "dev-1", "k1"), want}, f.certs("dev-1"), cmpOpts); diff != "" {
			t.Errorf("ListCertificates(dev-1) (-want +got):\n%s", diff)
		}
		wantDev := withCert(store.Device{ID: "dev-1", Status: store.DeviceActive, CreatedAt: T0, UpdatedAt: renewAt, LastRenewalAt: renewAt}, want)
		if diff := gocmp.Diff(wantDev, f.device("dev-1")); diff != "" {
			t.Errorf("GetDevice(dev-1) (-want +got):\n%s", diff)
		}
		if owner, err := f.s.KeyOwner(f.ctx, keyHash("k1")); owner != "dev-1" || err != nil {
			t.Errorf("KeyOwner(k1) = %q, %v, want %q, nil", owner, err, "dev-1")
		}
		audit := r.Audit
		audit.Seq = uint64(len(before.Audit) + 1)
		if diff := gocmp.Diff(rooted(append(before.Audit, audit)), f.audit()); diff != "" {
			t.Errorf("audit (-want +got):\n%s", diff)
		}
		if diff := gocmp.Diff(before.Revocations, f.revocations(), cmpOpts); diff != "" {
			t.Errorf("ListRevocations (-before +after):\n%s", diff)
		}
		if !f.nonceSpent(r.Nonce, renewAt) {
			t.Errorf("nonce not spent by Renew")
		}
	})

	okCases := []struct {
		name  string
		setup func(f fixture) store.Renewal
	}{
		{"ok/same-key", func(f fixture) store.Renewal {
			return newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt)
		}},
		{"ok/rekey", func(f fixture) store.Renewal {
			return newRenewal(serial(1), serial(2), "dev-1", "k2", renewAt)
		}},
		{"ok/key-of-an-older-certificate-of-the-device", func(f fixture) store.Renewal {
			f.issue(newIssuance(newCert(serial(2), "dev-1", "k2")))
			r := newRenewal(serial(2), serial(3), "dev-1", "k1", renewAt)
			return r
		}},
		{"ok/parent-expired", func(f fixture) store.Renewal {
			// Whether an expired parent may renew is the caller's rule.
			return newRenewal(serial(1), serial(2), "dev-1", "k1", T0.Add(certTTL+300*24*time.Hour))
		}},
		{"ok/first-renewal-with-min-interval", func(f fixture) store.Renewal {
			r := newRenewal(serial(1), serial(2), "dev-1", "k1", T0.Add(time.Second))
			r.MinInterval = time.Hour
			return r
		}},
		{"ok/min-interval-passed", func(f fixture) store.Renewal {
			first := newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt)
			first.RetryWindow = 0
			f.renew(first)
			r := newRenewal(serial(2), serial(3), "dev-1", "k1", renewAt.Add(time.Hour))
			r.MinInterval = time.Hour // LastRenewalAt is not after Now - MinInterval
			return r
		}},
		{"ok/min-interval-zero", func(f fixture) store.Renewal {
			f.renew(newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt))
			return newRenewal(serial(2), serial(3), "dev-1", "k1", renewAt)
		}},
		{"ok/nonce", func(f fixture) store.Renewal {
			return withNonce(newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt), "n1")
		}},
		{"ok/nonce-expired-is-usable-again", func(f fixture) store.Renewal {
			f.spendNonce("n1")
			r := newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt.Add(nonceTTL))
			r.Nonce = newNonce("n1", renewAt.Add(2*nonceTTL))
			return r
		}},
		{"ok/later-certificate-revoked", func(f fixture) store.Renewal {
			later := newCert(serial(2), "dev-1", "k2")
			later.IssuedAt = T0.Add(time.Hour)
			f.issue(newIssuance(later))
			f.revoke(revokeSerial(serial(2), T0.Add(2*time.Hour), reasonSuperseded, false))
			return newRenewal(serial(1), serial(3), "dev-1", "k1", renewAt)
		}},
		{"ok/earlier-certificate-live", func(f fixture) store.Renewal {
			// Issued at T0 too, with a larger serial: 1 is the older one.
			f.issue(newIssuance(newCert(serial(2), "dev-1", "k2")))
			return newRenewal(serial(2), serial(3), "dev-1", "k2", renewAt)
		}},
		{"ok/earlier-renewal-revoked-then-retried", func(f fixture) store.Renewal {
			// A revoked renewal is no retry's answer: the retry is a new
			// renewal, and 1 is the newest unrevoked certificate again.
			f.renew(newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt))
			f.revoke(revokeSerial(serial(2), renewAt.Add(time.Minute), reasonCessation, false))
			r := newRenewal(serial(1), serial(3), "dev-1", "k1", renewAt.Add(2*time.Hour))
			r.MinInterval = time.Hour
			return r
		}},
		{"ok/device-reset", func(f fixture) store.Renewal {
			f.revoke(revokeDevice("dev-1", T0.Add(time.Hour), reasonCessation, false))
			f.resetDevice("dev-1", T0.Add(2*time.Hour))
			is := newIssuance(newCert(serial(2), "dev-1", "k2"))
			is.Certificate.IssuedAt, is.Now = T0.Add(3*time.Hour), T0.Add(3*time.Hour)
			f.issue(is)
			return newRenewal(serial(2), serial(3), "dev-1", "k2", renewAt)
		}},
	}
	for _, tc := range okCases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, newStore)
			setupRenew(f)
			r := tc.setup(f)
			before := f.snapshot(renewKeys()...)
			devBefore := f.device(r.Certificate.DeviceID)
			res := f.renew(r)
			want := renewed(r)
			if diff := gocmp.Diff(store.RenewResult{Certificate: want}, res, entriesOpts); diff != "" {
				t.Errorf("Renew result (-want +got):\n%s", diff)
			}
			if diff := gocmp.Diff(want, f.cert(r.Certificate.Serial), cmpOpts); diff != "" {
				t.Errorf("GetCertificate(%x) (-want +got):\n%s", r.Certificate.Serial, diff)
			}
			wantDev := devBefore
			wantDev.LastRenewalAt, wantDev.UpdatedAt = r.Now, r.Now
			wantDev = withCert(wantDev, r.Certificate)
			if diff := gocmp.Diff(wantDev, f.device(r.Certificate.DeviceID)); diff != "" {
				t.Errorf("GetDevice (-want +got):\n%s", diff)
			}
			if owner, err := f.s.KeyOwner(f.ctx, r.Certificate.KeyHash); owner != r.Certificate.DeviceID || err != nil {
				t.Errorf("KeyOwner = %q, %v, want %q, nil", owner, err, r.Certificate.DeviceID)
			}
			if got, want := len(f.certs("")), len(before.Certs)+1; got != want {
				t.Errorf("ListCertificates has %d, want %d", got, want)
			}
			f.checkSeqs(len(before.Audit) + 1)
			if diff := gocmp.Diff(before.Revocations, f.revocations(), cmpOpts); diff != "" {
				t.Errorf("ListRevocations (-before +after):\n%s", diff)
			}
			if r.Nonce != nil && !f.nonceSpent(r.Nonce, r.Now) {
				t.Errorf("nonce not spent by Renew")
			}
		})
	}

	// Each case fails one condition, or two to show which is checked
	// first (order/...), in the order of the Renew documentation.
	failCases := []struct {
		name  string
		setup func(f fixture) store.Renewal
		want  error
	}{
		{"fail/parent-unknown", func(f fixture) store.Renewal {
			return newRenewal(serial(3), serial(4), "dev-1", "k1", renewAt)
		}, store.ErrNotFound},
		{"fail/parent-not-positive", func(f fixture) store.Renewal {
			return newRenewal(serial(0), serial(4), "dev-1", "k1", renewAt)
		}, store.ErrNotFound},
		{"order/parent-unknown-before-device-revoked", func(f fixture) store.Renewal {
			f.revoke(revokeDevice("dev-1", T0.Add(time.Hour), reasonCessation, false))
			return newRenewal(serial(3), serial(4), "dev-1", "k1", renewAt)
		}, store.ErrNotFound},
		{"fail/parent-of-another-device", func(f fixture) store.Renewal {
			return newRenewal(serial(100), serial(4), "dev-1", "k1", renewAt)
		}, errAny},
		{"fail/missing-parent", func(f fixture) store.Renewal {
			r := newRenewal(serial(1), serial(4), "dev-1", "k1", renewAt)
			r.Parent = nil
			return r
		}, errAny},
		{"fail/missing-now", func(f fixture) store.Renewal {
			r := newRenewal(serial(1), serial(4), "dev-1", "k1", renewAt)
			r.Now = time.Time{}
			return r
		}, errAny},
		{"fail/missing-serial", func(f fixture) store.Renewal {
			r := newRenewal(serial(1), serial(4), "dev-1", "k1", renewAt)
			r.Certificate.Serial = nil
			return r
		}, errAny},
		{"fail/zero-serial", func(f fixture) store.Renewal {
			return newRenewal(serial(1), serial(0), "dev-1", "k1", renewAt)
		}, errAny},
		{"fail/missing-device-id", func(f fixture) store.Renewal {
			return newRenewal(serial(1), serial(4), "", "k1", renewAt)
		}, errAny},
		{"fail/missing-key-hash", func(f fixture) store.Renewal {
			r := newRenewal(serial(1), serial(4), "dev-1", "k1", renewAt)
			r.Certificate.KeyHash = store.KeyHash{}
			return r
		}, errAny},
		{"fail/missing-not-after", func(f fixture) store.Renewal {
			r := newRenewal(serial(1), serial(4), "dev-1", "k1", renewAt)
			r.Certificate.NotAfter = time.Time{}
			return r
		}, errAny},
		{"fail/missing-issued-at", func(f fixture) store.Renewal {
			r := newRenewal(serial(1), serial(4), "dev-1", "k1", renewAt)
			r.Certificate.IssuedAt = time.Time{}
			return r
		}, errAny},
		{"fail/missing-der", func(f fixture) store.Renewal {
			r := newRenewal(serial(1), serial(4), "dev-1", "k1", renewAt)
			r.Certificate.DER = nil
			return r
		}, errAny},
		{"fail/device-revoked", func(f fixture) store.Renewal {
			f.revoke(revokeDevice("dev-1", T0.Add(time.Hour), reasonCessation, false))
			return newRenewal(serial(1), serial(4), "dev-1", "k1", renewAt)
		}, store.ErrDeviceRevoked},
		{"order/device-revoked-before-retry", func(f fixture) store.Renewal {
			f.renew(newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt))
			f.revoke(revokeDevice("dev-1", renewAt.Add(time.Minute), reasonCessation, false))
			return newRenewal(serial(1), serial(4), "dev-1", "k1", renewAt.Add(time.Hour))
		}, store.ErrDeviceRevoked},
		{"order/device-revoked-before-expired-retry", func(f fixture) store.Renewal {
			// The earlier renewal expired before the device was revoked,
			// so it stayed unrevoked: still nothing for a revoked device.
			first := newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt)
			first.Certificate.NotAfter = renewAt.Add(time.Minute)
			f.renew(first)
			f.revoke(revokeDevice("dev-1", renewAt.Add(time.Hour), reasonCessation, false))
			return newRenewal(serial(1), serial(4), "dev-1", "k1", renewAt.Add(2*time.Hour))
		}, store.ErrDeviceRevoked},
		{"fail/expired-parent-of-a-device-revoked-since", func(f fixture) store.Renewal {
			// 1 had expired when its device was revoked, so that revoked
			// nothing; a reset must not bring it back to life: a
			// certificate issued before its device's revocation never
			// renews (issue 11 item 4, "never after revocation").
			expired := T0.Add(certTTL)
			f.revoke(revokeDevice("dev-1", expired.Add(time.Hour), reasonKeyCompromise, false))
			f.resetDevice("dev-1", expired.Add(2*time.Hour))
			return newRenewal(serial(1), serial(4), "dev-1", "k1", expired.Add(3*time.Hour))
		}, store.ErrCertificateRevoked},
		{"fail/parent-revoked", func(f fixture) store.Renewal {
			f.revoke(revokeSerial(serial(1), T0.Add(time.Hour), reasonKeyCompromise, false))
			return newRenewal(serial(1), serial(4), "dev-1", "k1", renewAt)
		}, store.ErrCertificateRevoked},
		{"fail/parent-superseded-retry-after-window", func(f fixture) store.Renewal {
			first := newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt)
			first.MaxActive = 1
			f.renew(first)
			return newRenewal(serial(1), serial(4), "dev-1", "k1", renewAt.Add(retryWindow))
		}, store.ErrCertificateRevoked},
		{"order/parent-revoked-before-not-newest", func(f fixture) store.Renewal {
			f.issue(newIssuance(newCert(serial(2), "dev-1", "k2")))
			f.revoke(revokeSerial(serial(1), T0.Add(time.Hour), reasonCessation, false))
			return newRenewal(serial(1), serial(4), "dev-1", "k1", renewAt)
		}, store.ErrCertificateRevoked},
		{"fail/not-newest-retry-after-window", func(f fixture) store.Renewal {
			f.renew(newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt))
			return newRenewal(serial(1), serial(4), "dev-1", "k1", renewAt.Add(retryWindow))
		}, store.ErrNotNewest},
		{"fail/not-newest-retry-window-zero", func(f fixture) store.Renewal {
			f.renew(newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt))
			r := newRenewal(serial(1), serial(4), "dev-1", "k1", renewAt.Add(time.Second))
			r.RetryWindow = 0
			return r
		}, store.ErrNotNewest},
		{"fail/not-newest-retry-with-another-key", func(f fixture) store.Renewal {
			f.renew(newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt))
			return newRenewal(serial(1), serial(4), "dev-1", "k2", renewAt.Add(time.Second))
		}, store.ErrNotNewest},
		{"fail/not-newest-grandparent", func(f fixture) store.Renewal {
			f.renew(newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt))
			f.renew(newRenewal(serial(2), serial(3), "dev-1", "k1", renewAt.Add(time.Hour)))
			// 1 was renewed by 2, then 2 by 3: a renewal of 1 with
			// another key is no retry, and 1 is not the newest.
			return newRenewal(serial(1), serial(4), "dev-1", "k2", renewAt.Add(2*time.Hour))
		}, store.ErrNotNewest},
		{"fail/not-newest-enrolled-after", func(f fixture) store.Renewal {
			later := newCert(serial(2), "dev-1", "k2")
			later.IssuedAt = T0.Add(time.Hour)
			f.issue(newIssuance(later))
			return newRenewal(serial(1), serial(4), "dev-1", "k1", renewAt)
		}, store.ErrNotNewest},
		{"fail/not-newest-same-time-larger-serial", func(f fixture) store.Renewal {
			f.issue(newIssuance(newCert(bigSerial, "dev-1", "k2")))
			return newRenewal(serial(1), serial(4), "dev-1", "k1", renewAt)
		}, store.ErrNotNewest},
		{"fail/not-newest-later-one-expired", func(f fixture) store.Renewal {
			// Unrevoked is what counts, not live.
			later := newCert(serial(2), "dev-1", "k2")
			later.IssuedAt, later.NotAfter = T0.Add(time.Hour), T0.Add(2*time.Hour)
			f.issue(newIssuance(later))
			return newRenewal(serial(1), serial(4), "dev-1", "k1", renewAt)
		}, store.ErrNotNewest},
		{"order/not-newest-before-renewed-recently", func(f fixture) store.Renewal {
			f.renew(newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt))
			r := newRenewal(serial(1), serial(4), "dev-1", "k2", renewAt.Add(time.Minute))
			r.MinInterval = time.Hour
			return r
		}, store.ErrNotNewest},
		{"fail/renewed-recently", func(f fixture) store.Renewal {
			f.renew(newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt))
			r := newRenewal(serial(2), serial(4), "dev-1", "k1", renewAt.Add(time.Hour-time.Second))
			r.MinInterval = time.Hour
			return r
		}, store.ErrRenewedRecently},
		{"fail/renewed-recently-by-rekey", func(f fixture) store.Renewal {
			f.renew(newRenewal(serial(1), serial(2), "dev-1", "k2", renewAt))
			r := newRenewal(serial(2), serial(4), "dev-1", "k1", renewAt.Add(time.Minute))
			r.MinInterval = time.Hour
			return r
		}, store.ErrRenewedRecently},
		{"fail/renewed-recently-retry-of-revoked-renewal", func(f fixture) store.Renewal {
			f.renew(newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt))
			f.revoke(revokeSerial(serial(2), renewAt.Add(time.Minute), reasonCessation, false))
			r := newRenewal(serial(1), serial(4), "dev-1", "k1", renewAt.Add(2*time.Minute))
			r.MinInterval = time.Hour
			return r
		}, store.ErrRenewedRecently},
		{"order/renewed-recently-before-nonce-spent", func(f fixture) store.Renewal {
			first := withNonce(newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt), "n1")
			f.renew(first)
			r := newRenewal(serial(2), serial(4), "dev-1", "k1", renewAt.Add(time.Minute))
			r.MinInterval = time.Hour
			r.Nonce = first.Nonce
			return r
		}, store.ErrRenewedRecently},
		{"fail/nonce-spent", func(f fixture) store.Renewal {
			r := newRenewal(serial(1), serial(4), "dev-1", "k1", renewAt.Add(time.Second))
			r.Nonce = f.spendNonce("n1")
			return r
		}, store.ErrNonceSpent},
		{"fail/nonce-spent-until-it-expires", func(f fixture) store.Renewal {
			f.spendNonce("n1")
			r := newRenewal(serial(1), serial(4), "dev-1", "k1", renewAt.Add(nonceTTL-time.Nanosecond))
			// The caller's expiry of a second use does not matter.
			r.Nonce = newNonce("n1", renewAt.Add(2*nonceTTL))
			return r
		}, store.ErrNonceSpent},
		{"order/nonce-spent-before-key-blocked", func(f fixture) store.Renewal {
			r := newRenewal(serial(1), serial(4), "dev-1", "kx", renewAt)
			r.Nonce = f.spendNonce("n1")
			return r
		}, store.ErrNonceSpent},
		{"fail/key-blocked", func(f fixture) store.Renewal {
			return newRenewal(serial(1), serial(4), "dev-1", "kx", renewAt)
		}, store.ErrKeyBlocked},
		{"fail/own-key-blocked", func(f fixture) store.Renewal {
			f.issue(newIssuance(newCert(serial(2), "dev-1", "k2")))
			f.revoke(revokeSerial(serial(2), T0.Add(time.Hour), reasonKeyCompromise, true))
			return newRenewal(serial(1), serial(4), "dev-1", "k2", renewAt)
		}, store.ErrKeyBlocked},
		{"order/key-blocked-before-key-in-use", func(f fixture) store.Renewal {
			// kx is blocked and bound to dev-x.
			return newRenewal(serial(1), serial(100), "dev-1", "kx", renewAt)
		}, store.ErrKeyBlocked},
		{"fail/key-in-use", func(f fixture) store.Renewal {
			return newRenewal(serial(1), serial(4), "dev-1", "kn", renewAt)
		}, store.ErrKeyInUse},
		{"order/key-in-use-before-serial-exists", func(f fixture) store.Renewal {
			return newRenewal(serial(1), serial(100), "dev-1", "kn", renewAt)
		}, store.ErrKeyInUse},
		{"fail/serial-exists-other-device", func(f fixture) store.Renewal {
			return newRenewal(serial(1), serial(100), "dev-1", "k1", renewAt)
		}, store.ErrConflict},
		{"fail/serial-is-the-parent", func(f fixture) store.Renewal {
			return newRenewal(serial(1), serial(1), "dev-1", "k1", renewAt)
		}, store.ErrConflict},
	}
	for _, tc := range failCases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, newStore)
			setupRenew(f)
			r := tc.setup(f)
			// Every refused renewal carries a nonce, to check it stays
			// unspent, unless the case brought its own.
			probe := r.Nonce == nil
			now := r.Now
			if now.IsZero() {
				now = renewAt
			}
			if probe {
				r.Nonce = newNonce("probe", now.Add(nonceTTL))
			}
			before := f.snapshot(renewKeys()...)
			res, err := f.s.Renew(f.ctx, r)
			checkErr(t, "Renew", err, tc.want)
			if diff := gocmp.Diff(store.RenewResult{}, res, entriesOpts); diff != "" {
				t.Errorf("refused Renew result (-want +got):\n%s", diff)
			}
			f.checkUnchanged("a refused Renew", before, renewKeys()...)
			if probe && f.nonceSpent(r.Nonce, now) {
				t.Errorf("a refused Renew spent its nonce")
			}
		})
	}

	t.Run("ok/records-are-copies", func(t *testing.T) {
		f := newFixture(t, newStore)
		setupRenew(f)
		r := newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt)
		want := renewed(r)
		want.DER = append([]byte(nil), r.Certificate.DER...)
		res := f.renew(r)
		r.Certificate.DER[0] ^= 0xff
		r.Parent.SetInt64(99)
		res.Certificate.DER[1] ^= 0xff
		res.Certificate.Parent.SetInt64(98)
		res.Certificate.Serial.SetInt64(97)
		want.Parent = serial(1)
		if diff := gocmp.Diff(want, f.cert(serial(2)), cmpOpts); diff != "" {
			t.Errorf("GetCertificate(2) after changing the renewal and the result (-want +got):\n%s", diff)
		}
	})
}

func testRenewRetry(t *testing.T, newStore func(t *testing.T) store.Store) {
	cases := []struct {
		name string
		// setup renews (the renewal whose answer was lost) and returns
		// the retry.
		setup func(f fixture) store.Renewal
		// answer is the serial the retry returns.
		answer *big.Int
		// nonce, if set, must be spent after the retry, at probeAt (if
		// set, else at the retry's Now).
		nonce   *store.Nonce
		probeAt time.Time
	}{
		{"ok/same-time", func(f fixture) store.Renewal {
			f.renew(newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt))
			return newRenewal(serial(1), serial(3), "dev-1", "k1", renewAt)
		}, serial(2), nil, time.Time{}},
		{"ok/just-within-window", func(f fixture) store.Renewal {
			f.renew(newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt))
			return newRenewal(serial(1), serial(3), "dev-1", "k1", renewAt.Add(retryWindow-time.Nanosecond))
		}, serial(2), nil, time.Time{}},
		{"ok/rekey", func(f fixture) store.Renewal {
			f.renew(newRenewal(serial(1), serial(2), "dev-1", "k2", renewAt))
			return newRenewal(serial(1), serial(3), "dev-1", "k2", renewAt.Add(time.Hour))
		}, serial(2), nil, time.Time{}},
		{"ok/parent-superseded", func(f fixture) store.Renewal {
			first := newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt)
			first.MaxActive = 1
			f.renew(first)
			r := newRenewal(serial(1), serial(3), "dev-1", "k1", renewAt.Add(time.Minute))
			r.MaxActive = 1
			return r
		}, serial(2), nil, time.Time{}},
		{"ok/parent-revoked-after", func(f fixture) store.Renewal {
			f.renew(newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt))
			f.revoke(revokeSerial(serial(1), renewAt.Add(time.Minute), reasonKeyCompromise, false))
			return newRenewal(serial(1), serial(3), "dev-1", "k1", renewAt.Add(time.Hour))
		}, serial(2), nil, time.Time{}},
		{"ok/exempt-from-min-interval", func(f fixture) store.Renewal {
			f.renew(newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt))
			r := newRenewal(serial(1), serial(3), "dev-1", "k1", renewAt.Add(time.Minute))
			r.MinInterval = time.Hour
			return r
		}, serial(2), nil, time.Time{}},
		{"ok/renewal-renewed-since", func(f fixture) store.Renewal {
			f.renew(newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt))
			f.renew(newRenewal(serial(2), serial(3), "dev-1", "k1", renewAt.Add(time.Hour)))
			return newRenewal(serial(1), serial(4), "dev-1", "k1", renewAt.Add(2*time.Hour))
		}, serial(2), nil, time.Time{}},
		{"ok/renewal-expired", func(f fixture) store.Renewal {
			first := newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt)
			first.Certificate.NotAfter = renewAt.Add(time.Hour)
			f.renew(first)
			return newRenewal(serial(1), serial(3), "dev-1", "k1", renewAt.Add(2*time.Hour))
		}, serial(2), nil, time.Time{}},
		{"ok/same-spent-nonce", func(f fixture) store.Renewal {
			// A retry may repeat its renewal token.
			first := withNonce(newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt), "n1")
			f.renew(first)
			r := newRenewal(serial(1), serial(3), "dev-1", "k1", renewAt.Add(time.Minute))
			r.Nonce = first.Nonce
			return r
		}, serial(2), newNonce("n1", renewAt.Add(nonceTTL)), time.Time{}},
		{"ok/spent-nonce-kept-until-its-expiry", func(f fixture) store.Renewal {
			// A retry that repeats a spent nonce with an earlier expiry
			// does not make it usable sooner.
			first := withNonce(newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt), "n1")
			f.renew(first)
			r := newRenewal(serial(1), serial(3), "dev-1", "k1", renewAt.Add(time.Minute))
			r.Nonce = newNonce("n1", renewAt.Add(2*time.Minute))
			return r
		}, serial(2), newNonce("n1", renewAt.Add(nonceTTL)), renewAt.Add(3 * time.Minute)},
		{"ok/spends-its-nonce", func(f fixture) store.Renewal {
			f.renew(withNonce(newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt), "n1"))
			return withNonce(newRenewal(serial(1), serial(3), "dev-1", "k1", renewAt.Add(time.Minute)), "n2")
		}, serial(2), newNonce("n2", renewAt.Add(time.Minute+nonceTTL)), time.Time{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, newStore)
			setupRenew(f)
			r := tc.setup(f)
			want := f.cert(tc.answer)
			before := f.snapshot(renewKeys()...)
			res := f.renew(r)
			if diff := gocmp.Diff(store.RenewResult{Certificate: want, Replayed: true}, res, entriesOpts); diff != "" {
				t.Errorf("retried Renew result (-want +got):\n%s", diff)
			}
			f.checkUnchanged("a retried Renew", before, renewKeys()...)
			probeAt := r.Now
			if !tc.probeAt.IsZero() {
				probeAt = tc.probeAt
			}
			if tc.nonce != nil && !f.nonceSpent(tc.nonce, probeAt) {
				t.Errorf("nonce not spent after the retry")
			}
		})
	}
}
