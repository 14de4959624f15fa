package storetest

import (
	"bytes"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetca/fleetca/store"
)

func testIssue(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("ok/new-device-with-token", func(t *testing.T) {
		f := newFixture(t, newStore)
		tok := f.createToken(newToken("tok-1", 1))
		c := newCert(bigSerial, "dev-1", "k1")
		is := withToken(newIssuance(c), tok)
		f.issue(is)

		if got, want := f.device("dev-1"), withCert(store.Device{ID: "dev-1", Status: store.DeviceActive, CreatedAt: T0, UpdatedAt: T0}, c); !cmp.Equal(got, want) {
			t.Errorf("GetDevice = %+v, want %+v", got, want)
		}
		got, err := f.s.GetCertificate(f.ctx, new(big.Int).Set(bigSerial))
		if err != nil {
			t.Fatalf("GetCertificate(%x) error = %v, want nil", bigSerial, err)
		}
		if diff := cmp.Diff(c, got, cmpOpts); diff != "" {
			t.Errorf("GetCertificate(%x) (-want +got):\n%s", bigSerial, diff)
		}
		if diff := cmp.Diff([]store.Certificate{c}, f.certs("dev-1"), cmpOpts); diff != "" {
			t.Errorf("ListCertificates(dev-1) (-want +got):\n%s", diff)
		}
		if owner, err := f.s.KeyOwner(f.ctx, c.KeyHash); owner != "dev-1" || err != nil {
			t.Errorf("KeyOwner = %q, %v, want %q, nil", owner, err, "dev-1")
		}
		if got := f.token(tok.Hash).Spent; got != 1 {
			t.Errorf("token Spent = %d, want 1", got)
		}
		created, issued := event("token.create", tok.ID), is.Audit
		created.Seq, issued.Seq = 1, 2
		if diff := cmp.Diff(rooted([]store.AuditEvent{created, issued}), f.audit()); diff != "" {
			t.Errorf("audit events (-want +got):\n%s", diff)
		}
	})

	t.Run("ok/existing-device-new-key", func(t *testing.T) {
		f := newFixture(t, newStore)
		f.issue(newIssuance(newCert(serial(1), "dev-1", "k1")))
		later := T0.Add(time.Hour)
		is := newIssuance(newCert(serial(2), "dev-1", "k2"))
		is.Now = later
		f.issue(is)
		if got, want := f.device("dev-1"), withCert(store.Device{ID: "dev-1", Status: store.DeviceActive, CreatedAt: T0, UpdatedAt: later}, is.Certificate); !cmp.Equal(got, want) {
			t.Errorf("GetDevice = %+v, want %+v", got, want)
		}
		if got := len(f.certs("dev-1")); got != 2 {
			t.Errorf("ListCertificates(dev-1) has %d, want 2", got)
		}
		for _, k := range []string{"k1", "k2"} {
			if owner, err := f.s.KeyOwner(f.ctx, keyHash(k)); owner != "dev-1" || err != nil {
				t.Errorf("KeyOwner(%s) = %q, %v, want %q, nil", k, owner, err, "dev-1")
			}
		}
		f.checkSeqs(2)
	})

	okCases := []struct {
		name  string
		setup func(f fixture) store.Issuance
	}{
		{"ok/same-key-same-device", func(f fixture) store.Issuance {
			f.issue(newIssuance(newCert(serial(1), "dev-1", "k1")))
			return newIssuance(newCert(serial(2), "dev-1", "k1"))
		}},
		{"ok/without-token", func(f fixture) store.Issuance {
			return newIssuance(newCert(serial(1), "dev-1", "k1"))
		}},
		{"ok/token-1s-before-expiry", func(f fixture) store.Issuance {
			tok := f.createToken(newToken("tok-1", 1))
			is := withToken(newIssuance(newCert(serial(1), "dev-1", "k1")), tok)
			is.Now = tok.ExpiresAt.Add(-time.Second)
			return is
		}},
		{"ok/token-last-use", func(f fixture) store.Issuance {
			tok := newToken("tok-1", 3)
			tok.Spent = 2
			f.createToken(tok)
			return withToken(newIssuance(newCert(serial(1), "dev-1", "k1")), tok)
		}},
		{"ok/require-new-device", func(f fixture) store.Issuance {
			f.issue(newIssuance(newCert(serial(1), "dev-1", "k1")))
			is := newIssuance(newCert(serial(2), "dev-2", "k2"))
			is.RequireNewDevice = true
			return is
		}},
		{"ok/max-active-not-reached", func(f fixture) store.Issuance {
			f.issue(newIssuance(newCert(serial(1), "dev-1", "k1")))
			is := newIssuance(newCert(serial(2), "dev-1", "k2"))
			is.MaxActive = 2
			return is
		}},
		{"ok/max-active-zero-is-unlimited", func(f fixture) store.Issuance {
			for i := range 3 {
				f.issue(newIssuance(newCert(serial(int64(i+1)), "dev-1", "k1")))
			}
			return newIssuance(newCert(serial(9), "dev-1", "k1"))
		}},
		{"ok/max-active-ignores-expired", func(f fixture) store.Issuance {
			expired := newCert(serial(1), "dev-1", "k1")
			expired.NotAfter = T0.Add(-time.Second)
			f.issue(newIssuance(expired))
			atExpiry := newCert(serial(2), "dev-1", "k1")
			atExpiry.NotAfter = T0 // not Live at T0: Live needs Now before NotAfter
			f.issue(newIssuance(atExpiry))
			is := newIssuance(newCert(serial(3), "dev-1", "k1"))
			is.MaxActive = 1
			return is
		}},
		{"ok/max-active-ignores-revoked", func(f fixture) store.Issuance {
			// Issue records what it is given, RevokedAt included.
			revoked := newCert(serial(1), "dev-1", "k1")
			revoked.RevokedAt, revoked.Reason = T0.Add(-time.Minute), 1
			f.issue(newIssuance(revoked))
			is := newIssuance(newCert(serial(2), "dev-1", "k1"))
			is.MaxActive = 1
			return is
		}},
		{"ok/revoked-key-not-blocked", func(f fixture) store.Issuance {
			// Without BlockKeys the key stays the device's to reuse.
			f.issue(newIssuance(newCert(serial(1), "dev-1", "k1")))
			f.revoke(revokeSerial(serial(1), T0, reasonSuperseded, false))
			return newIssuance(newCert(serial(2), "dev-1", "k1"))
		}},
		{"ok/other-key-blocked", func(f fixture) store.Issuance {
			f.issue(newIssuance(newCert(serial(1), "dev-1", "k1")))
			f.revoke(revokeSerial(serial(1), T0, reasonKeyCompromise, true))
			return newIssuance(newCert(serial(2), "dev-1", "k2"))
		}},
		{"ok/max-active-ignores-other-devices", func(f fixture) store.Issuance {
			f.issue(newIssuance(newCert(serial(1), "dev-1", "k1")))
			f.issue(newIssuance(newCert(serial(2), "dev-10", "k2")))
			f.issue(newIssuance(newCert(serial(3), "dev-1.b", "k3")))
			is := newIssuance(newCert(serial(4), "dev-1x", "k4"))
			is.MaxActive = 1
			return is
		}},
	}
	for _, tc := range okCases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, newStore)
			is := tc.setup(f)
			before := f.snapshot()
			f.issue(is)
			c := is.Certificate
			got, err := f.s.GetCertificate(f.ctx, c.Serial)
			if err != nil {
				t.Fatalf("GetCertificate(%x) error = %v, want nil", c.Serial, err)
			}
			if diff := cmp.Diff(c, got, cmpOpts); diff != "" {
				t.Errorf("GetCertificate(%x) (-want +got):\n%s", c.Serial, diff)
			}
			if owner, err := f.s.KeyOwner(f.ctx, c.KeyHash); owner != c.DeviceID || err != nil {
				t.Errorf("KeyOwner = %q, %v, want %q, nil", owner, err, c.DeviceID)
			}
			if is.Token != (store.TokenHash{}) {
				if got, want := f.token(is.Token).Spent, spentOf(before, is.Token)+1; got != want {
					t.Errorf("token Spent = %d, want %d", got, want)
				}
			}
			if got, want := len(f.audit()), len(before.Audit)+1; got != want {
				t.Errorf("audit has %d events, want %d", got, want)
			}
			f.checkSeqs(len(before.Audit) + 1)
		})
	}

	failCases := []struct {
		name  string
		setup func(f fixture) store.Issuance
		want  error
	}{
		{"fail/token-not-found", func(f fixture) store.Issuance {
			f.createToken(newToken("tok-other", 1))
			return withToken(newIssuance(newCert(serial(1), "dev-1", "k1")), newToken("tok-1", 1))
		}, store.ErrNotFound},
		{"fail/token-revoked", func(f fixture) store.Issuance {
			tok := f.createToken(newToken("tok-1", 1))
			if _, err := f.s.RevokeToken(f.ctx, tok.ID, T0.Add(-time.Minute), event("token.revoke", tok.ID)); err != nil {
				f.t.Fatalf("RevokeToken error = %v, want nil", err)
			}
			return withToken(newIssuance(newCert(serial(1), "dev-1", "k1")), tok)
		}, store.ErrTokenRevoked},
		{"fail/token-expired-at-expires-at", func(f fixture) store.Issuance {
			tok := f.createToken(newToken("tok-1", 1))
			is := withToken(newIssuance(newCert(serial(1), "dev-1", "k1")), tok)
			is.Now = tok.ExpiresAt
			return is
		}, store.ErrTokenExpired},
		{"fail/token-expired-1s-after", func(f fixture) store.Issuance {
			tok := f.createToken(newToken("tok-1", 1))
			is := withToken(newIssuance(newCert(serial(1), "dev-1", "k1")), tok)
			is.Now = tok.ExpiresAt.Add(time.Second)
			return is
		}, store.ErrTokenExpired},
		{"fail/token-used-up", func(f fixture) store.Issuance {
			tok := f.createToken(newToken("tok-1", 1))
			f.issue(withToken(newIssuance(newCert(serial(1), "dev-1", "k1")), tok))
			return withToken(newIssuance(newCert(serial(2), "dev-2", "k2")), tok)
		}, store.ErrTokenUsedUp},
		{"fail/token-created-used-up", func(f fixture) store.Issuance {
			tok := newToken("tok-1", 2)
			tok.Spent = 2
			f.createToken(tok)
			return withToken(newIssuance(newCert(serial(1), "dev-1", "k1")), tok)
		}, store.ErrTokenUsedUp},
		{"fail/token-zero-uses", func(f fixture) store.Issuance {
			tok := f.createToken(newToken("tok-1", 0))
			return withToken(newIssuance(newCert(serial(1), "dev-1", "k1")), tok)
		}, store.ErrTokenUsedUp},
		{"fail/device-exists", func(f fixture) store.Issuance {
			tok := f.createToken(newToken("tok-1", 2))
			f.issue(withToken(newIssuance(newCert(serial(1), "dev-1", "k1")), tok))
			is := withToken(newIssuance(newCert(serial(2), "dev-1", "k2")), tok)
			is.RequireNewDevice = true
			return is
		}, store.ErrDeviceExists},
		{"fail/device-revoked", func(f fixture) store.Issuance {
			tok := f.createToken(newToken("tok-1", 2))
			f.issue(withToken(newIssuance(newCert(serial(1), "dev-1", "k1")), tok))
			f.revoke(revokeDevice("dev-1", T0, reasonCessation, false))
			return withToken(newIssuance(newCert(serial(2), "dev-1", "k2")), tok)
		}, store.ErrDeviceRevoked},
		{"fail/device-revoked-without-live-certificates", func(f fixture) store.Issuance {
			expired := newCert(serial(1), "dev-1", "k1")
			expired.NotAfter = T0.Add(-time.Second)
			f.issue(newIssuance(expired))
			f.revoke(revokeDevice("dev-1", T0, reasonCessation, false))
			return newIssuance(newCert(serial(2), "dev-1", "k2"))
		}, store.ErrDeviceRevoked},
		{"fail/device-revoked-before-key-blocked", func(f fixture) store.Issuance {
			f.issue(newIssuance(newCert(serial(1), "dev-1", "k1")))
			f.revoke(revokeDevice("dev-1", T0, reasonKeyCompromise, true))
			return newIssuance(newCert(serial(2), "dev-1", "k1"))
		}, store.ErrDeviceRevoked},
		{"fail/key-blocked-other-device", func(f fixture) store.Issuance {
			// Blocked comes before in use: the key is dev-1's too.
			tok := f.createToken(newToken("tok-1", 2))
			f.issue(withToken(newIssuance(newCert(serial(1), "dev-1", "k1")), tok))
			f.revoke(revokeSerial(serial(1), T0, reasonKeyCompromise, true))
			return withToken(newIssuance(newCert(serial(2), "dev-2", "k1")), tok)
		}, store.ErrKeyBlocked},
		{"fail/key-blocked-same-device", func(f fixture) store.Issuance {
			f.issue(newIssuance(newCert(serial(1), "dev-1", "k1")))
			f.revoke(revokeSerial(serial(1), T0, reasonKeyCompromise, true))
			return newIssuance(newCert(serial(2), "dev-1", "k1"))
		}, store.ErrKeyBlocked},
		{"fail/key-blocked-by-device-revocation", func(f fixture) store.Issuance {
			f.issue(newIssuance(newCert(serial(1), "dev-1", "k1")))
			f.revoke(revokeDevice("dev-1", T0, reasonKeyCompromise, true))
			return newIssuance(newCert(serial(2), "dev-2", "k1"))
		}, store.ErrKeyBlocked},
		{"fail/token-before-key-blocked", func(f fixture) store.Issuance {
			tok := f.createToken(newToken("tok-1", 1))
			f.issue(withToken(newIssuance(newCert(serial(1), "dev-1", "k1")), tok))
			f.revoke(revokeSerial(serial(1), T0, reasonKeyCompromise, true))
			return withToken(newIssuance(newCert(serial(2), "dev-2", "k1")), tok)
		}, store.ErrTokenUsedUp},
		{"fail/too-many-before-key-blocked", func(f fixture) store.Issuance {
			f.issue(newIssuance(newCert(serial(1), "dev-1", "k1")))
			f.issue(newIssuance(newCert(serial(2), "dev-2", "k2")))
			f.revoke(revokeSerial(serial(1), T0, reasonKeyCompromise, true))
			is := newIssuance(newCert(serial(3), "dev-2", "k1"))
			is.MaxActive = 1
			return is
		}, store.ErrTooManyCertificates},
		{"fail/too-many-before-serial-exists", func(f fixture) store.Issuance {
			// The count is of the certificates before this one, whose
			// serial is the one that exists.
			f.issue(newIssuance(newCert(serial(7), "dev-1", "k1")))
			is := newIssuance(newCert(serial(7), "dev-1", "k1"))
			is.MaxActive = 1
			return is
		}, store.ErrTooManyCertificates},
		{"fail/too-many-certificates", func(f fixture) store.Issuance {
			tok := f.createToken(newToken("tok-1", 3))
			f.issue(withToken(newIssuance(newCert(serial(1), "dev-1", "k1")), tok))
			f.issue(withToken(newIssuance(newCert(serial(2), "dev-1", "k2")), tok))
			is := withToken(newIssuance(newCert(serial(3), "dev-1", "k3")), tok)
			is.MaxActive = 2
			return is
		}, store.ErrTooManyCertificates},
		{"fail/too-many-certificates-expiring-later", func(f fixture) store.Issuance {
			// Live at Now one second before it expires.
			c := newCert(serial(1), "dev-1", "k1")
			f.issue(newIssuance(c))
			is := newIssuance(newCert(serial(2), "dev-1", "k1"))
			is.Now = c.NotAfter.Add(-time.Second)
			is.MaxActive = 1
			return is
		}, store.ErrTooManyCertificates},
		{"fail/key-in-use", func(f fixture) store.Issuance {
			tok := f.createToken(newToken("tok-1", 2))
			f.issue(withToken(newIssuance(newCert(serial(1), "dev-1", "k1")), tok))
			return withToken(newIssuance(newCert(serial(2), "dev-2", "k1")), tok)
		}, store.ErrKeyInUse},
		{"fail/serial-exists-other-device", func(f fixture) store.Issuance {
			tok := f.createToken(newToken("tok-1", 2))
			f.issue(withToken(newIssuance(newCert(bigSerial, "dev-1", "k1")), tok))
			return withToken(newIssuance(newCert(bigSerial, "dev-2", "k2")), tok)
		}, store.ErrConflict},
		{"fail/serial-exists-same-device", func(f fixture) store.Issuance {
			f.issue(newIssuance(newCert(serial(7), "dev-1", "k1")))
			return newIssuance(newCert(serial(7), "dev-1", "k2"))
		}, store.ErrConflict},
		{"fail/missing-serial", func(f fixture) store.Issuance {
			is := newIssuance(newCert(serial(1), "dev-1", "k1"))
			is.Certificate.Serial = nil
			return is
		}, errAny},
		{"fail/zero-serial", func(f fixture) store.Issuance {
			return newIssuance(newCert(serial(0), "dev-1", "k1"))
		}, errAny},
		{"fail/negative-serial", func(f fixture) store.Issuance {
			return newIssuance(newCert(serial(-5), "dev-1", "k1"))
		}, errAny},
		{"fail/missing-device-id", func(f fixture) store.Issuance {
			return newIssuance(newCert(serial(1), "", "k1"))
		}, errAny},
		{"fail/missing-key-hash", func(f fixture) store.Issuance {
			is := newIssuance(newCert(serial(1), "dev-1", "k1"))
			is.Certificate.KeyHash = store.KeyHash{}
			return is
		}, errAny},
		{"fail/missing-not-after", func(f fixture) store.Issuance {
			is := newIssuance(newCert(serial(1), "dev-1", "k1"))
			is.Certificate.NotAfter = time.Time{}
			return is
		}, errAny},
		{"fail/missing-der", func(f fixture) store.Issuance {
			is := newIssuance(newCert(serial(1), "dev-1", "k1"))
			is.Certificate.DER = nil
			return is
		}, errAny},
	}
	for _, tc := range failCases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, newStore)
			is := tc.setup(f)
			keys := []store.KeyHash{is.Certificate.KeyHash}
			before := f.snapshot(keys...)
			err := f.s.Issue(f.ctx, is)
			checkErr(t, "Issue", err, tc.want)
			f.checkUnchanged("a refused Issue", before, keys...)
			if is.Certificate.DeviceID != "" && !deviceIn(before, is.Certificate.DeviceID) {
				if _, err := f.s.GetDevice(f.ctx, is.Certificate.DeviceID); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("GetDevice(%q) after a refused Issue error = %v, want ErrNotFound", is.Certificate.DeviceID, err)
				}
			}
		})
	}

	t.Run("ok/records-are-copies", func(t *testing.T) {
		f := newFixture(t, newStore)
		c := newCert(serial(1), "dev-1", "k1")
		want := bytes.Clone(c.DER)
		f.issue(newIssuance(c))
		c.DER[0] ^= 0xff // the caller's slice is not the store's
		got, err := f.s.GetCertificate(f.ctx, serial(1))
		if err != nil {
			t.Fatalf("GetCertificate error = %v, want nil", err)
		}
		got.DER[0] ^= 0xff
		got.Serial.SetInt64(99)
		again, err := f.s.GetCertificate(f.ctx, serial(1))
		if err != nil {
			t.Fatalf("GetCertificate error = %v, want nil", err)
		}
		if !bytes.Equal(again.DER, want) || again.Serial.Cmp(serial(1)) != 0 {
			t.Errorf("GetCertificate = serial %x, DER %q, want serial 1, DER %q", again.Serial, again.DER, want)
		}
	})
}

func spentOf(s snapshot, h store.TokenHash) int {
	for _, t := range s.Tokens {
		if t.Hash == h {
			return t.Spent
		}
	}
	return -1
}

func deviceIn(s snapshot, id string) bool {
	for _, d := range s.Devices {
		if d.ID == id {
			return true
		}
	}
	return false
}

func testIssueConcurrent(t *testing.T, newStore func(t *testing.T) store.Store) {
	const n = 32

	t.Run("ok/one-use-token", func(t *testing.T) {
		f := newFixture(t, newStore)
		tok := f.createToken(newToken("tok-1", 1))
		errs := race(n, func(i int) error {
			return f.s.Issue(f.ctx, withToken(newIssuance(newCert(serial(int64(100+i)), devName(i), devName(i))), tok))
		})
		counts := tally(t, errs, store.ErrTokenUsedUp)
		if counts[nil] != 1 || counts[store.ErrTokenUsedUp] != n-1 {
			t.Errorf("%d concurrent Issue with a 1-use token: %d succeeded, %d ErrTokenUsedUp, want 1, %d", n, counts[nil], counts[store.ErrTokenUsedUp], n-1)
		}
		checkOutcome(f, errs, tok, 1)
	})

	t.Run("ok/same-new-device", func(t *testing.T) {
		f := newFixture(t, newStore)
		tok := f.createToken(newToken("tok-1", n))
		errs := race(n, func(i int) error {
			is := withToken(newIssuance(newCert(serial(int64(100+i)), "dev-1", devName(i))), tok)
			is.RequireNewDevice = true
			return f.s.Issue(f.ctx, is)
		})
		counts := tally(t, errs, store.ErrDeviceExists)
		if counts[nil] != 1 || counts[store.ErrDeviceExists] != n-1 {
			t.Errorf("%d concurrent Issue for one new device: %d succeeded, %d ErrDeviceExists, want 1, %d", n, counts[nil], counts[store.ErrDeviceExists], n-1)
		}
		checkOutcome(f, errs, tok, 1)
	})

	t.Run("ok/five-use-token-twenty-devices", func(t *testing.T) {
		f := newFixture(t, newStore)
		tok := f.createToken(newToken("tok-1", 5))
		errs := race(20, func(i int) error {
			return f.s.Issue(f.ctx, withToken(newIssuance(newCert(serial(int64(100+i)), devName(i), devName(i))), tok))
		})
		counts := tally(t, errs, store.ErrTokenUsedUp)
		if counts[nil] != 5 || counts[store.ErrTokenUsedUp] != 15 {
			t.Errorf("20 concurrent Issue with a 5-use token: %d succeeded, %d ErrTokenUsedUp, want 5, 15", counts[nil], counts[store.ErrTokenUsedUp])
		}
		checkOutcome(f, errs, tok, 5)
	})

	t.Run("ok/same-serial", func(t *testing.T) {
		f := newFixture(t, newStore)
		tok := f.createToken(newToken("tok-1", n))
		errs := race(n, func(i int) error {
			return f.s.Issue(f.ctx, withToken(newIssuance(newCert(bigSerial, devName(i), devName(i))), tok))
		})
		counts := tally(t, errs, store.ErrConflict)
		if counts[nil] != 1 || counts[store.ErrConflict] != n-1 {
			t.Errorf("%d concurrent Issue of one serial: %d succeeded, %d ErrConflict, want 1, %d", n, counts[nil], counts[store.ErrConflict], n-1)
		}
		for _, err := range errs {
			if err != nil {
				checkErr(t, "Issue", err, store.ErrConflict)
			}
		}
		checkOutcome(f, errs, tok, 1)
	})

	t.Run("ok/same-key", func(t *testing.T) {
		f := newFixture(t, newStore)
		tok := f.createToken(newToken("tok-1", n))
		errs := race(n, func(i int) error {
			return f.s.Issue(f.ctx, withToken(newIssuance(newCert(serial(int64(100+i)), devName(i), "shared")), tok))
		})
		counts := tally(t, errs, store.ErrKeyInUse)
		if counts[nil] != 1 || counts[store.ErrKeyInUse] != n-1 {
			t.Errorf("%d concurrent Issue of one key to many devices: %d succeeded, %d ErrKeyInUse, want 1, %d", n, counts[nil], counts[store.ErrKeyInUse], n-1)
		}
		checkOutcome(f, errs, tok, 1)
	})

	t.Run("ok/max-active", func(t *testing.T) {
		f := newFixture(t, newStore)
		tok := f.createToken(newToken("tok-1", n+1))
		f.issue(withToken(newIssuance(newCert(serial(1), "dev-1", "k0")), tok))
		errs := race(n, func(i int) error {
			is := withToken(newIssuance(newCert(serial(int64(100+i)), "dev-1", devName(i))), tok)
			is.MaxActive = 3
			return f.s.Issue(f.ctx, is)
		})
		counts := tally(t, errs, store.ErrTooManyCertificates)
		if counts[nil] != 2 || counts[store.ErrTooManyCertificates] != n-2 {
			t.Errorf("%d concurrent Issue to a device with 1 of 3 live: %d succeeded, %d ErrTooManyCertificates, want 2, %d", n, counts[nil], counts[store.ErrTooManyCertificates], n-2)
		}
		if got := len(f.certs("dev-1")); got != 3 {
			t.Errorf("ListCertificates(dev-1) has %d, want 3", got)
		}
		if got := f.token(tok.Hash).Spent; got != 3 {
			t.Errorf("token Spent = %d, want 3", got)
		}
		f.checkSeqs(1 + 3)
	})

	t.Run("ok/mixed", func(t *testing.T) {
		// Refused and accepted calls share batches: the refusals must not
		// undo the others' writes, nor write anything themselves.
		f := newFixture(t, newStore)
		good := f.createToken(newToken("tok-good", n))
		spent := newToken("tok-spent", 1)
		spent.Spent = 1
		f.createToken(spent)
		errs := race(n, func(i int) error {
			tok := good
			if i%2 == 1 {
				tok = spent
			}
			return f.s.Issue(f.ctx, withToken(newIssuance(newCert(serial(int64(100+i)), devName(i), devName(i))), tok))
		})
		for i, err := range errs {
			want := error(nil)
			if i%2 == 1 {
				want = store.ErrTokenUsedUp
			}
			checkErr(t, "Issue "+devName(i), err, want)
		}
		if got := f.token(good.Hash).Spent; got != n/2 {
			t.Errorf("good token Spent = %d, want %d", got, n/2)
		}
		if got := f.token(spent.Hash).Spent; got != 1 {
			t.Errorf("spent token Spent = %d, want 1", got)
		}
		if got := len(f.certs("")); got != n/2 {
			t.Errorf("ListCertificates has %d, want %d", got, n/2)
		}
		f.checkSeqs(2 + n/2)
	})
}

func devName(i int) string { return "dev-" + string(rune('a'+i/26)) + string(rune('a'+i%26)) }

// checkOutcome checks that exactly the calls that succeeded left records:
// their certificates, devices and key bindings, wins uses of tok, and one
// audit row each after tok's creation.
func checkOutcome(f fixture, errs []error, tok store.Token, wins int) {
	f.t.Helper()
	if got := f.token(tok.Hash).Spent; got != wins {
		f.t.Errorf("token Spent = %d, want %d", got, wins)
	}
	certs := f.certs("")
	if len(certs) != wins {
		f.t.Errorf("ListCertificates has %d, want %d", len(certs), wins)
	}
	for _, c := range certs {
		if owner, err := f.s.KeyOwner(f.ctx, c.KeyHash); owner != c.DeviceID || err != nil {
			f.t.Errorf("KeyOwner(key of %x) = %q, %v, want %q, nil", c.Serial, owner, err, c.DeviceID)
		}
		f.device(c.DeviceID)
	}
	devices, err := f.s.ListDevices(f.ctx, store.Page{Limit: store.MaxPageLimit})
	if err != nil {
		f.t.Fatalf("ListDevices error = %v, want nil", err)
	}
	if len(devices) != wins {
		f.t.Errorf("ListDevices has %d, want %d", len(devices), wins)
	}
	f.checkSeqs(1 + wins)
}
