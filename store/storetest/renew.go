package storetest

import (
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"slices"
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
		wantDev := store.Device{ID: "dev-1", Status: store.DeviceActive, CreatedAt: T0, UpdatedAt: renewAt, LastRenewalAt: renewAt}
		if diff := gocmp.Diff(wantDev, f.device("dev-1")); diff != "" {
			t.Errorf("GetDevice(dev-1) (-want +got):\n%s", diff)
		}
		if owner, err := f.s.KeyOwner(f.ctx, keyHash("k1")); owner != "dev-1" || err != nil {
			t.Errorf("KeyOwner(k1) = %q, %v, want %q, nil", owner, err, "dev-1")
		}
		audit := r.Audit
		audit.Seq = uint64(len(before.Audit) + 1)
		if diff := gocmp.Diff(append(before.Audit, audit), f.audit()); diff != "" {
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
			spend := newRenewal(serial(100), serial(101), "dev-n", "kn", renewAt)
			spend.Nonce = newNonce("n1", renewAt.Add(nonceTTL))
			f.renew(spend)
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
			first := newRenewal(serial(1), serial(2), "dev-1", "k1", renewAt)
			first.Nonce = newNonce("n1", renewAt.Add(nonceTTL))
			f.renew(first)
			r := newRenewal(serial(2), serial(4), "dev-1", "k1", renewAt.Add(time.Minute))
			r.MinInterval = time.Hour
			r.Nonce = first.Nonce
			return r
		}, store.ErrRenewedRecently},
		{"fail/nonce-spent", func(f fixture) store.Renewal {
			spend := newRenewal(serial(100), serial(101), "dev-n", "kn", renewAt)
			spend.Nonce = newNonce("n1", renewAt.Add(nonceTTL))
			f.renew(spend)
			r := newRenewal(serial(1), serial(4), "dev-1", "k1", renewAt.Add(time.Second))
			r.Nonce = spend.Nonce
			return r
		}, store.ErrNonceSpent},
		{"fail/nonce-spent-until-it-expires", func(f fixture) store.Renewal {
			spend := newRenewal(serial(100), serial(101), "dev-n", "kn", renewAt)
			spend.Nonce = newNonce("n1", renewAt.Add(nonceTTL))
			f.renew(spend)
			r := newRenewal(serial(1), serial(4), "dev-1", "k1", renewAt.Add(nonceTTL-time.Nanosecond))
			// The caller's expiry of a second use does not matter.
			r.Nonce = newNonce("n1", renewAt.Add(2*nonceTTL))
			return r
		}, store.ErrNonceSpent},
		{"order/nonce-spent-before-key-blocked", func(f fixture) store.Renewal {
			spend := newRenewal(serial(100), serial(101), "dev-n", "kn", renewAt)
			spend.Nonce = newNonce("n1", renewAt.Add(nonceTTL))
			f.renew(spend)
			r := newRenewal(serial(1), serial(4), "dev-1", "kx", renewAt)
			r.Nonce = spend.Nonce
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
		want.Audit = append(slices.Clone(before.Audit), e)
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
