package storetest

import (
	"fmt"
	"maps"
	"math/big"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/fleetca/fleetca/store"
)

// CRLReason codes (RFC 5280 §5.3.1) the suite uses. The store records a
// reason as given; it does not check it.
const (
	reasonKeyCompromise = 1
	reasonSuperseded    = 4
	reasonCessation     = 5
)

// revokedAt is when the suite's revocations happen, unless a case says
// otherwise: an hour after T0.
var revokedAt = T0.Add(time.Hour)

// revokeSerial returns the request to revoke the certificate with serial n.
func revokeSerial(n *big.Int, at time.Time, reason int, blockKeys bool) store.RevokeRequest {
	return store.RevokeRequest{
		Serial: n, At: at, Reason: reason, BlockKeys: blockKeys,
		Audit: store.AuditEvent{Time: at, Action: "certificate.revoke", Actor: "admin", Serial: n.Text(16), Detail: fmt.Sprint("reason ", reason)},
	}
}

// revokeDevice returns the request to revoke the device with the ID.
func revokeDevice(id string, at time.Time, reason int, blockKeys bool) store.RevokeRequest {
	return store.RevokeRequest{
		DeviceID: id, At: at, Reason: reason, BlockKeys: blockKeys,
		Audit: store.AuditEvent{Time: at, Action: "device.revoke", Actor: "admin", DeviceID: id, Detail: fmt.Sprint("reason ", reason)},
	}
}

// revokeTarget names what r revokes, for messages.
func revokeTarget(r store.RevokeRequest) string {
	if r.Serial != nil {
		return "serial " + r.Serial.Text(16)
	}
	return fmt.Sprintf("device %q", r.DeviceID)
}

// entryOf returns the log entry that revoking c as r says would write.
func entryOf(seq uint64, c store.Certificate, r store.RevokeRequest) store.Revocation {
	return store.Revocation{Seq: seq, Serial: c.Serial, DeviceID: c.DeviceID, RevokedAt: r.At, Reason: r.Reason, NotAfter: c.NotAfter}
}

// entriesOpts compares Revoke's results: none may be nil or empty.
var entriesOpts = cmp.Options{cmpOpts, cmpopts.EquateEmpty()}

// setupFleet issues the certificates most revocation cases start from:
//
//	dev-a    1 (k1, live), 2 (k2, expired before revokedAt), 3 (k3, issued
//	         revoked), bigSerial (k4, live), 5 (k5, expiring at revokedAt)
//	dev-a.x  6 (k6, live), a device whose ID extends dev-a's
//	dev-b    7 (k7, live)
//	dev-c    8 (k8, expired before revokedAt)
//
// Each has its own NotAfter, so that an entry shows it took its
// certificate's.
// fleetNewest is the validity of dev-a's newest certificate in setupFleet
// (serial 5), which its NotAfter and RenewBy follow.
var fleetNewest = store.Certificate{NotBefore: T0.Add(-time.Minute), NotAfter: revokedAt}

func setupFleet(f fixture) {
	f.t.Helper()
	for i, c := range []struct {
		serial  *big.Int
		device  string
		notAft  time.Time
		revoked bool
	}{
		{serial(1), "dev-a", T0.Add(certTTL), false},
		{serial(2), "dev-a", T0.Add(30 * time.Minute), false},
		{serial(3), "dev-a", T0.Add(certTTL + time.Hour), true},
		{bigSerial, "dev-a", T0.Add(certTTL + 2*time.Hour), false},
		{serial(5), "dev-a", revokedAt, false},
		{serial(6), "dev-a.x", T0.Add(certTTL + 3*time.Hour), false},
		{serial(7), "dev-b", T0.Add(certTTL + 4*time.Hour), false},
		{serial(8), "dev-c", T0.Add(time.Minute), false},
	} {
		cert := newCert(c.serial, c.device, fmt.Sprint("k", i+1))
		cert.NotAfter = c.notAft
		if c.revoked {
			cert.RevokedAt, cert.Reason = T0.Add(-time.Minute), reasonSuperseded
		}
		f.issue(newIssuance(cert))
	}
}

// fleetKeys are the keys of setupFleet's certificates, and one never used.
func fleetKeys() []store.KeyHash {
	keys := []store.KeyHash{keyHash("unused")}
	for i := range 9 {
		keys = append(keys, keyHash(fmt.Sprint("k", i+1)))
	}
	return keys
}

func testRevoke(t *testing.T, newStore func(t *testing.T) store.Store) {
	okCases := []struct {
		name  string
		setup func(f fixture)
		req   store.RevokeRequest
		// revoked lists the serials req revokes, in the order of their
		// entries: a device's in serial order.
		revoked []*big.Int
	}{
		{"ok/serial", setupFleet,
			revokeSerial(bigSerial, revokedAt, reasonSuperseded, false), []*big.Int{bigSerial}},
		{"ok/serial-block-key", setupFleet,
			revokeSerial(bigSerial, revokedAt, reasonKeyCompromise, true), []*big.Int{bigSerial}},
		{"ok/serial-expired", setupFleet,
			revokeSerial(serial(2), revokedAt, reasonCessation, false), []*big.Int{serial(2)}},
		{"ok/serial-of-revoked-device", func(f fixture) {
			// The device's revocation left its expired certificate alone.
			setupFleet(f)
			f.revoke(revokeDevice("dev-a", revokedAt, reasonCessation, false))
		}, revokeSerial(serial(2), revokedAt.Add(time.Hour), reasonKeyCompromise, true), []*big.Int{serial(2)}},
		{"ok/device", setupFleet,
			revokeDevice("dev-a", revokedAt, reasonCessation, false), []*big.Int{serial(1), bigSerial}},
		{"ok/device-block-keys", setupFleet,
			revokeDevice("dev-a", revokedAt, reasonKeyCompromise, true), []*big.Int{serial(1), bigSerial}},
		{"ok/device-judged-at-request-time", setupFleet,
			// At T0 serial 2 and 5 were live too.
			revokeDevice("dev-a", T0, reasonCessation, false), []*big.Int{serial(1), serial(2), serial(5), bigSerial}},
		{"ok/device-some-revoked-by-serial", func(f fixture) {
			setupFleet(f)
			f.revoke(revokeSerial(serial(1), T0, reasonSuperseded, false))
		}, revokeDevice("dev-a", revokedAt, reasonCessation, true), []*big.Int{bigSerial}},
		{"ok/device-without-live-certificates", setupFleet,
			revokeDevice("dev-c", revokedAt, reasonCessation, true), nil},
		{"ok/device-again-after-reset", func(f fixture) {
			setupFleet(f)
			f.revoke(revokeDevice("dev-a", revokedAt, reasonCessation, false))
			f.resetDevice("dev-a", revokedAt.Add(time.Hour))
			is := newIssuance(newCert(serial(9), "dev-a", "k9"))
			is.Now = revokedAt.Add(time.Hour)
			f.issue(is)
		}, revokeDevice("dev-a", revokedAt.Add(2*time.Hour), reasonKeyCompromise, true), []*big.Int{serial(9)}},
	}
	for _, tc := range okCases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, newStore)
			tc.setup(f)
			keys := fleetKeys()
			before := f.snapshot(keys...)

			got, err := f.s.Revoke(f.ctx, tc.req)
			if err != nil {
				t.Fatalf("Revoke(%s) error = %v, want nil", revokeTarget(tc.req), err)
			}

			// What the store should hold now, derived from before.
			want := before
			want.Certs = slices.Clone(before.Certs)
			want.Devices = slices.Clone(before.Devices)
			want.Blocked = maps.Clone(before.Blocked)
			var entries []store.Revocation
			for _, n := range tc.revoked {
				i := slices.IndexFunc(want.Certs, func(c store.Certificate) bool { return c.Serial.Cmp(n) == 0 })
				if i < 0 {
					t.Fatalf("the case revokes serial %x, which the setup did not issue", n)
				}
				c := &want.Certs[i]
				entries = append(entries, entryOf(uint64(len(before.Revocations)+len(entries)+1), *c, tc.req))
				c.RevokedAt, c.Reason = tc.req.At, tc.req.Reason
				if tc.req.BlockKeys {
					want.Blocked[c.KeyHash] = true
				}
			}
			if tc.req.DeviceID != "" {
				i := slices.IndexFunc(want.Devices, func(d store.Device) bool { return d.ID == tc.req.DeviceID })
				want.Devices[i].Status, want.Devices[i].UpdatedAt, want.Devices[i].RevokedAt = store.DeviceRevoked, tc.req.At, tc.req.At
			}
			ev := tc.req.Audit
			ev.Seq = uint64(len(before.Audit) + 1)
			if tc.req.Serial != nil && ev.DeviceID == "" && len(entries) == 1 {
				ev.DeviceID = entries[0].DeviceID // the store names the device of a serial
			}
			want.Audit = rooted(append(slices.Clone(before.Audit), ev))
			want.Revocations = append(slices.Clone(before.Revocations), entries...)

			if diff := cmp.Diff(entries, got, entriesOpts); diff != "" {
				t.Errorf("Revoke(%s) entries (-want +got):\n%s", revokeTarget(tc.req), diff)
			}
			if diff := cmp.Diff(want, f.snapshot(keys...), entriesOpts); diff != "" {
				t.Errorf("records after Revoke(%s) (-want +got):\n%s", revokeTarget(tc.req), diff)
			}
			for _, n := range tc.revoked {
				c, err := f.s.GetCertificate(f.ctx, n)
				if err != nil || !c.RevokedAt.Equal(tc.req.At) || c.Reason != tc.req.Reason {
					t.Errorf("GetCertificate(%x) = revoked at %v for reason %d, %v, want %v, %d, nil", n, c.RevokedAt, c.Reason, err, tc.req.At, tc.req.Reason)
				}
			}
		})
	}

	failCases := []struct {
		name  string
		setup func(f fixture) store.RevokeRequest
		want  error
	}{
		{"fail/serial-not-found", func(f fixture) store.RevokeRequest {
			setupFleet(f)
			return revokeSerial(serial(4), revokedAt, reasonKeyCompromise, true)
		}, store.ErrNotFound},
		{"fail/serial-not-found-above-2^128", func(f fixture) store.RevokeRequest {
			setupFleet(f)
			return revokeSerial(new(big.Int).Add(bigSerial, big.NewInt(1)), revokedAt, reasonKeyCompromise, true)
		}, store.ErrNotFound},
		{"fail/serial-zero", func(f fixture) store.RevokeRequest {
			setupFleet(f)
			return revokeSerial(serial(0), revokedAt, reasonKeyCompromise, true)
		}, store.ErrNotFound},
		{"fail/serial-negative", func(f fixture) store.RevokeRequest {
			setupFleet(f)
			return revokeSerial(serial(-1), revokedAt, reasonKeyCompromise, true)
		}, store.ErrNotFound},
		{"fail/serial-revoked", func(f fixture) store.RevokeRequest {
			// Nor does the second request block the key.
			setupFleet(f)
			f.revoke(revokeSerial(bigSerial, revokedAt, reasonSuperseded, false))
			return revokeSerial(bigSerial, revokedAt.Add(time.Hour), reasonKeyCompromise, true)
		}, store.ErrAlreadyRevoked},
		{"fail/serial-issued-revoked", func(f fixture) store.RevokeRequest {
			setupFleet(f)
			return revokeSerial(serial(3), revokedAt, reasonKeyCompromise, true)
		}, store.ErrAlreadyRevoked},
		{"fail/serial-revoked-with-device", func(f fixture) store.RevokeRequest {
			setupFleet(f)
			f.revoke(revokeDevice("dev-a", revokedAt, reasonCessation, false))
			return revokeSerial(serial(1), revokedAt.Add(time.Hour), reasonKeyCompromise, true)
		}, store.ErrAlreadyRevoked},
		{"fail/device-not-found", func(f fixture) store.RevokeRequest {
			setupFleet(f)
			return revokeDevice("dev-d", revokedAt, reasonCessation, true)
		}, store.ErrNotFound},
		{"fail/device-prefix-not-found", func(f fixture) store.RevokeRequest {
			setupFleet(f)
			return revokeDevice("dev-", revokedAt, reasonCessation, true)
		}, store.ErrNotFound},
		{"fail/device-revoked", func(f fixture) store.RevokeRequest {
			setupFleet(f)
			f.revoke(revokeDevice("dev-a", revokedAt, reasonCessation, false))
			return revokeDevice("dev-a", revokedAt.Add(time.Hour), reasonKeyCompromise, true)
		}, store.ErrAlreadyRevoked},
		{"fail/device-revoked-without-live-certificates", func(f fixture) store.RevokeRequest {
			setupFleet(f)
			f.revoke(revokeDevice("dev-c", revokedAt, reasonCessation, false))
			return revokeDevice("dev-c", revokedAt, reasonCessation, false)
		}, store.ErrAlreadyRevoked},
		{"fail/serial-and-device", func(f fixture) store.RevokeRequest {
			setupFleet(f)
			r := revokeSerial(serial(1), revokedAt, reasonKeyCompromise, true)
			r.DeviceID = "dev-a"
			return r
		}, errAny},
		{"fail/neither-serial-nor-device", func(f fixture) store.RevokeRequest {
			setupFleet(f)
			return revokeDevice("", revokedAt, reasonKeyCompromise, true)
		}, errAny},
		{"fail/zero-time-serial", func(f fixture) store.RevokeRequest {
			setupFleet(f)
			return revokeSerial(serial(1), time.Time{}, reasonKeyCompromise, true)
		}, errAny},
		{"fail/zero-time-device", func(f fixture) store.RevokeRequest {
			setupFleet(f)
			return revokeDevice("dev-a", time.Time{}, reasonKeyCompromise, true)
		}, errAny},
		// A revocation token is spent only with the revocation, and only
		// if it has a use left.
		{"fail/token-unknown", func(f fixture) store.RevokeRequest {
			setupFleet(f)
			return withRevokeToken(revokeSerial(serial(1), revokedAt, reasonKeyCompromise, false), newToken("tok-r", 1))
		}, store.ErrTokenNotFound},
		{"fail/token-used-up", func(f fixture) store.RevokeRequest {
			setupFleet(f)
			tok := newToken("tok-r", 1)
			tok.Spent = 1
			return withRevokeToken(revokeSerial(serial(1), revokedAt, reasonKeyCompromise, false), f.createToken(tok))
		}, store.ErrTokenUsedUp},
		{"fail/token-expired", func(f fixture) store.RevokeRequest {
			setupFleet(f)
			tok := f.createToken(newToken("tok-r", 1))
			return withRevokeToken(revokeSerial(serial(1), tok.ExpiresAt, reasonKeyCompromise, false), tok)
		}, store.ErrTokenExpired},
		{"fail/token-revoked", func(f fixture) store.RevokeRequest {
			setupFleet(f)
			tok := f.createToken(newToken("tok-r", 1))
			if _, err := f.s.RevokeToken(f.ctx, tok.ID, T0, event("token.revoke", tok.ID)); err != nil {
				f.t.Fatal(err)
			}
			return withRevokeToken(revokeSerial(serial(1), revokedAt, reasonKeyCompromise, false), tok)
		}, store.ErrTokenRevoked},
		{"fail/token-ok-serial-unknown", func(f fixture) store.RevokeRequest {
			setupFleet(f)
			tok := f.createToken(newToken("tok-r", 1))
			return withRevokeToken(revokeSerial(serial(99), revokedAt, reasonKeyCompromise, false), tok)
		}, store.ErrNotFound},
		{"fail/token-ok-serial-revoked", func(f fixture) store.RevokeRequest {
			setupFleet(f)
			tok := f.createToken(newToken("tok-r", 1))
			return withRevokeToken(revokeSerial(serial(3), revokedAt, reasonKeyCompromise, false), tok)
		}, store.ErrAlreadyRevoked},
	}
	for _, tc := range failCases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, newStore)
			r := tc.setup(f)
			keys := fleetKeys()
			before := f.snapshot(keys...)
			got, err := f.s.Revoke(f.ctx, r)
			checkErr(t, "Revoke("+revokeTarget(r)+")", err, tc.want)
			if len(got) != 0 {
				t.Errorf("refused Revoke(%s) returned %d entries, want none", revokeTarget(r), len(got))
			}
			f.checkUnchanged("a refused Revoke", before, keys...)
		})
	}

	t.Run("ok/token-spent-with-the-revocation", func(t *testing.T) {
		f := newFixture(t, newStore)
		setupFleet(f)
		tok := f.createToken(newToken("tok-r", 1))
		got := f.revoke(withRevokeToken(revokeSerial(serial(1), revokedAt, reasonKeyCompromise, false), tok))
		if len(got) != 1 || got[0].Serial.Cmp(serial(1)) != 0 {
			t.Fatalf("Revoke with a token = %v, want serial 1's entry", got)
		}
		if spent := f.token(tok.Hash).Spent; spent != 1 {
			t.Errorf("token spent %d after the revocation, want 1", spent)
		}
		_, err := f.s.Revoke(f.ctx, withRevokeToken(revokeSerial(serial(2), revokedAt, reasonKeyCompromise, false), tok))
		checkErr(t, "Revoke with a spent token", err, store.ErrTokenUsedUp)
	})

	t.Run("ok/entries-are-copies", func(t *testing.T) {
		f := newFixture(t, newStore)
		f.issue(newIssuance(newCert(bigSerial, "dev-1", "k1")))
		n := new(big.Int).Set(bigSerial)
		got := f.revoke(revokeSerial(n, revokedAt, reasonSuperseded, false))
		n.SetInt64(1)             // the caller's serial is not the store's
		got[0].Serial.SetInt64(2) // nor is the returned one
		listed := f.revocations()
		listed[0].Serial.SetInt64(3)
		if again := f.revocations(); len(again) != 1 || again[0].Serial.Cmp(bigSerial) != 0 {
			t.Errorf("ListRevocations after changing returned serials = %v, want one entry of serial %x", again, bigSerial)
		}
	})
}

func (f fixture) resetDevice(id string, at time.Time) store.Device {
	f.t.Helper()
	d, err := f.s.ResetDevice(f.ctx, id, at, event("device.reset", id))
	if err != nil {
		f.t.Fatalf("ResetDevice(%q) error = %v, want nil", id, err)
	}
	return d
}

func testResetDevice(t *testing.T, newStore func(t *testing.T) store.Store) {
	resetAt := revokedAt.Add(time.Hour)
	// reissue is an issuance for dev-a after its reset, of a certificate
	// with the key named key.
	reissue := func(key string) store.Issuance {
		is := newIssuance(newCert(serial(9), "dev-a", key))
		is.Now, is.Certificate.IssuedAt = resetAt, resetAt
		is.MaxActive = 1 // the revoked certificates do not count
		return is
	}

	t.Run("ok/reset-then-issue-same-key", func(t *testing.T) {
		f := newFixture(t, newStore)
		setupFleet(f)
		f.revoke(revokeDevice("dev-a", revokedAt, reasonCessation, false))
		keys := fleetKeys()
		before := f.snapshot(keys...)

		ev := event("device.reset", "dev-a")
		got, err := f.s.ResetDevice(f.ctx, "dev-a", resetAt, ev)
		if err != nil {
			t.Fatalf("ResetDevice error = %v, want nil", err)
		}
		wantDev := store.Device{ID: "dev-a", Status: store.DeviceActive, CreatedAt: T0, UpdatedAt: resetAt, RevokedAt: revokedAt}
		if diff := cmp.Diff(wantDev, got); diff != "" {
			t.Errorf("ResetDevice (-want +got):\n%s", diff)
		}
		want := before
		want.Devices = slices.Clone(before.Devices)
		want.Devices[slices.IndexFunc(want.Devices, func(d store.Device) bool { return d.ID == "dev-a" })] = wantDev
		ev.Seq = uint64(len(before.Audit) + 1)
		want.Audit = rooted(append(slices.Clone(before.Audit), ev))
		// The certificates stay revoked, the log as it was.
		if diff := cmp.Diff(want, f.snapshot(keys...), cmpOpts); diff != "" {
			t.Errorf("records after ResetDevice (-want +got):\n%s", diff)
		}

		f.issue(reissue("k1"))
		if got := f.device("dev-a"); got.Status != store.DeviceActive || !got.UpdatedAt.Equal(resetAt) {
			t.Errorf("GetDevice after reissue = %+v, want active, updated at %v", got, resetAt)
		}
	})

	t.Run("ok/reset-blocked-key-then-issue-new-key", func(t *testing.T) {
		f := newFixture(t, newStore)
		setupFleet(f)
		f.revoke(revokeDevice("dev-a", revokedAt, reasonKeyCompromise, true))
		f.resetDevice("dev-a", resetAt)

		is := reissue("k1")
		keys := fleetKeys()
		before := f.snapshot(keys...)
		checkErr(t, "Issue(blocked key) after ResetDevice", f.s.Issue(f.ctx, is), store.ErrKeyBlocked)
		f.checkUnchanged("a refused Issue", before, keys...)
		if !f.blocked(keyHash("k1")) {
			t.Errorf("KeyBlocked(k1) after ResetDevice = false, want true")
		}

		f.issue(reissue("k-new"))
		if owner, err := f.s.KeyOwner(f.ctx, keyHash("k-new")); owner != "dev-a" || err != nil {
			t.Errorf("KeyOwner(k-new) = %q, %v, want %q, nil", owner, err, "dev-a")
		}
	})

	failCases := []struct {
		name    string
		setup   func(f fixture)
		id      string
		want    error
		wantDev store.Device // returned with ErrNotRevoked
	}{
		{"fail/unknown", setupFleet, "dev-d", store.ErrNotFound, store.Device{}},
		{"fail/active", setupFleet, "dev-a", store.ErrNotRevoked,
			withCert(store.Device{ID: "dev-a", Status: store.DeviceActive, CreatedAt: T0, UpdatedAt: T0}, fleetNewest)},
		{"fail/active-with-revoked-certificates", func(f fixture) {
			setupFleet(f)
			f.revoke(revokeSerial(serial(1), revokedAt, reasonKeyCompromise, true))
		}, "dev-a", store.ErrNotRevoked,
			withCert(store.Device{ID: "dev-a", Status: store.DeviceActive, CreatedAt: T0, UpdatedAt: T0}, fleetNewest)},
		{"fail/reset-twice", func(f fixture) {
			setupFleet(f)
			f.revoke(revokeDevice("dev-a", revokedAt, reasonCessation, false))
			f.resetDevice("dev-a", resetAt)
		}, "dev-a", store.ErrNotRevoked,
			store.Device{ID: "dev-a", Status: store.DeviceActive, CreatedAt: T0, UpdatedAt: resetAt, RevokedAt: revokedAt}},
	}
	for _, tc := range failCases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, newStore)
			tc.setup(f)
			keys := fleetKeys()
			before := f.snapshot(keys...)
			got, err := f.s.ResetDevice(f.ctx, tc.id, resetAt.Add(time.Hour), event("device.reset", tc.id))
			checkErr(t, fmt.Sprintf("ResetDevice(%q)", tc.id), err, tc.want)
			if diff := cmp.Diff(tc.wantDev, got); diff != "" {
				t.Errorf("ResetDevice(%q) device (-want +got):\n%s", tc.id, diff)
			}
			f.checkUnchanged("a refused ResetDevice", before, keys...)
		})
	}
}

func testListRevocations(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("ok/order-and-pages", func(t *testing.T) {
		f := newFixture(t, newStore)
		certs := map[string]store.Certificate{}
		for i, c := range []struct {
			serial *big.Int
			device string
		}{
			{serial(1), "dev-a"}, {bigSerial, "dev-a"}, {serial(2), "dev-b"}, {serial(3), "dev-b"}, {serial(4), "dev-c"},
		} {
			cert := newCert(c.serial, c.device, fmt.Sprint("k", i))
			cert.NotAfter = T0.Add(certTTL + time.Duration(i)*time.Hour)
			f.issue(newIssuance(cert))
			certs[c.serial.Text(16)] = cert
		}
		var all, returned []store.Revocation
		for _, step := range []struct {
			r       store.RevokeRequest
			revoked []*big.Int
		}{
			{revokeSerial(serial(3), T0.Add(1*time.Hour), reasonSuperseded, false), []*big.Int{serial(3)}},
			{revokeDevice("dev-a", T0.Add(2*time.Hour), reasonKeyCompromise, true), []*big.Int{serial(1), bigSerial}},
			{revokeSerial(serial(4), T0.Add(3*time.Hour), reasonCessation, false), []*big.Int{serial(4)}},
			{revokeDevice("dev-b", T0.Add(4*time.Hour), reasonCessation, false), []*big.Int{serial(2)}},
		} {
			for _, n := range step.revoked {
				all = append(all, entryOf(uint64(len(all)+1), certs[n.Text(16)], step.r))
			}
			returned = append(returned, f.revoke(step.r)...)
		}
		if diff := cmp.Diff(all, returned, cmpOpts); diff != "" {
			t.Errorf("entries Revoke returned (-want +got):\n%s", diff)
		}
		for _, tc := range []struct {
			after uint64
			limit int
			want  []store.Revocation
		}{
			{0, 0, all},
			{0, -1, all},
			{0, 2, all[:2]},
			{1, 0, all[1:]},
			{2, 2, all[2:4]},
			{4, 1, all[4:]},
			{5, 0, nil},
			{1 << 63, 0, nil},
		} {
			got, err := f.s.ListRevocations(f.ctx, tc.after, tc.limit)
			if err != nil {
				t.Errorf("ListRevocations(%d, %d) error = %v, want nil", tc.after, tc.limit, err)
				continue
			}
			if diff := cmp.Diff(tc.want, got, entriesOpts); diff != "" {
				t.Errorf("ListRevocations(%d, %d) (-want +got):\n%s", tc.after, tc.limit, diff)
			}
		}
	})

	t.Run("ok/empty", func(t *testing.T) {
		f := newFixture(t, newStore)
		setupFleet(f)
		if got, err := f.s.ListRevocations(f.ctx, 0, 0); len(got) != 0 || err != nil {
			t.Errorf("ListRevocations of a store without revocations = %v, %v, want none, nil", got, err)
		}
	})

	t.Run("ok/limits", func(t *testing.T) {
		// One Revoke of a device writes n entries in one transaction.
		f := newFixture(t, newStore)
		const n = store.DefaultRevocationLimit + 1
		var wg sync.WaitGroup
		next := make(chan int)
		for range 32 {
			wg.Go(func() {
				for i := range next {
					if err := f.s.Issue(f.ctx, newIssuance(newCert(serial(int64(i+1)), "dev-1", "k1"))); err != nil {
						t.Errorf("Issue(%d) error = %v, want nil", i+1, err)
					}
				}
			})
		}
		for i := range n {
			next <- i
		}
		close(next)
		wg.Wait()

		entries := f.revoke(revokeDevice("dev-1", revokedAt, reasonCessation, false))
		if len(entries) != n {
			t.Fatalf("Revoke(device of %d certificates) returned %d entries, want %d", n, len(entries), n)
		}
		for i, e := range entries {
			// Seq order is serial order here.
			if e.Seq != uint64(i+1) || e.Serial.Cmp(serial(int64(i+1))) != 0 {
				t.Fatalf("Revoke entry %d = Seq %d serial %x, want Seq %d serial %x", i, e.Seq, e.Serial, i+1, i+1)
			}
		}
		for _, tc := range []struct {
			after      uint64
			limit      int
			first, len int
		}{
			{0, 0, 1, store.DefaultRevocationLimit},
			{0, -1, 1, store.DefaultRevocationLimit},
			{0, 5000, 1, n},
			{0, store.MaxRevocationLimit + 1, 1, n},
			{store.DefaultRevocationLimit, 0, store.DefaultRevocationLimit + 1, 1},
			{n, 0, 0, 0},
		} {
			got, err := f.s.ListRevocations(f.ctx, tc.after, tc.limit)
			if err != nil {
				t.Fatalf("ListRevocations(%d, %d) error = %v, want nil", tc.after, tc.limit, err)
			}
			if len(got) != tc.len {
				t.Errorf("ListRevocations(%d, %d) returned %d, want %d", tc.after, tc.limit, len(got), tc.len)
			}
			for i, e := range got {
				if want := uint64(tc.first + i); e.Seq != want {
					t.Errorf("ListRevocations(%d, %d)[%d].Seq = %d, want %d", tc.after, tc.limit, i, e.Seq, want)
					break
				}
			}
		}
	})
}

func testRevokeConcurrent(t *testing.T, newStore func(t *testing.T) store.Store) {
	const n = 32

	t.Run("ok/same-serial", func(t *testing.T) {
		f := newFixture(t, newStore)
		c := newCert(bigSerial, "dev-1", "k1")
		f.issue(newIssuance(c))
		reqs := make([]store.RevokeRequest, n)
		for i := range n {
			// Each request is told apart by its time and reason.
			reqs[i] = revokeSerial(new(big.Int).Set(bigSerial), revokedAt.Add(time.Duration(i)*time.Second), i, i%2 == 0)
		}
		results := make([][]store.Revocation, n)
		errs := race(n, func(i int) error {
			var err error
			results[i], err = f.s.Revoke(f.ctx, reqs[i])
			return err
		})
		counts := tally(t, errs, store.ErrAlreadyRevoked)
		if counts[nil] != 1 || counts[store.ErrAlreadyRevoked] != n-1 {
			t.Fatalf("%d concurrent Revoke of one serial: %d succeeded, %d ErrAlreadyRevoked, want 1, %d", n, counts[nil], counts[store.ErrAlreadyRevoked], n-1)
		}
		w := slices.IndexFunc(errs, func(err error) bool { return err == nil })
		want := []store.Revocation{entryOf(1, c, reqs[w])}
		if diff := cmp.Diff(want, results[w], cmpOpts); diff != "" {
			t.Errorf("winning Revoke entries (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(want, f.revocations(), cmpOpts); diff != "" {
			t.Errorf("ListRevocations (-want +got):\n%s", diff)
		}
		for i, es := range results {
			if i != w && len(es) != 0 {
				t.Errorf("refused Revoke %d returned %d entries, want none", i, len(es))
			}
		}
		got, err := f.s.GetCertificate(f.ctx, bigSerial)
		if err != nil || !got.RevokedAt.Equal(reqs[w].At) || got.Reason != reqs[w].Reason {
			t.Errorf("GetCertificate = revoked at %v for reason %d, %v, want the winner's %v, %d, nil", got.RevokedAt, got.Reason, err, reqs[w].At, reqs[w].Reason)
		}
		if got := f.blocked(c.KeyHash); got != reqs[w].BlockKeys {
			t.Errorf("KeyBlocked = %v, want the winner's BlockKeys, %v", got, reqs[w].BlockKeys)
		}
		f.checkSeqs(1 + 1)
	})

	t.Run("ok/distinct-serials", func(t *testing.T) {
		f := newFixture(t, newStore)
		certs := make([]store.Certificate, n)
		for i := range n {
			certs[i] = newCert(serial(int64(100+i)), devName(i), devName(i))
			f.issue(newIssuance(certs[i]))
		}
		results := make([][]store.Revocation, n)
		errs := race(n, func(i int) error {
			var err error
			results[i], err = f.s.Revoke(f.ctx, revokeSerial(certs[i].Serial, revokedAt, reasonCessation, i%2 == 0))
			return err
		})
		tally(t, errs)
		var returned []store.Revocation
		for i, es := range results {
			if len(es) != 1 || es[0].Serial.Cmp(certs[i].Serial) != 0 {
				t.Errorf("Revoke %d returned %v, want one entry of serial %x", i, es, certs[i].Serial)
			}
			returned = append(returned, es...)
		}
		slices.SortFunc(returned, func(a, b store.Revocation) int { return int(a.Seq) - int(b.Seq) })
		listed := f.revocations()
		if diff := cmp.Diff(returned, listed, cmpOpts); diff != "" {
			t.Errorf("ListRevocations, against the entries Revoke returned (-returned +listed):\n%s", diff)
		}
		checkRevocationSeqs(t, listed, n)
		for i, c := range certs {
			if got := f.blocked(c.KeyHash); got != (i%2 == 0) {
				t.Errorf("KeyBlocked(key of %s) = %v, want %v", devName(i), got, i%2 == 0)
			}
		}
		f.checkSeqs(n + n)
	})

	t.Run("ok/same-device", func(t *testing.T) {
		f := newFixture(t, newStore)
		for i := range 3 {
			f.issue(newIssuance(newCert(serial(int64(i+1)), "dev-1", "k1")))
		}
		expired := newCert(serial(4), "dev-1", "k2")
		expired.NotAfter = T0
		f.issue(newIssuance(expired))
		results := make([][]store.Revocation, n)
		errs := race(n, func(i int) error {
			var err error
			results[i], err = f.s.Revoke(f.ctx, revokeDevice("dev-1", revokedAt.Add(time.Duration(i)*time.Second), i, true))
			return err
		})
		counts := tally(t, errs, store.ErrAlreadyRevoked)
		if counts[nil] != 1 || counts[store.ErrAlreadyRevoked] != n-1 {
			t.Fatalf("%d concurrent Revoke of one device: %d succeeded, %d ErrAlreadyRevoked, want 1, %d", n, counts[nil], counts[store.ErrAlreadyRevoked], n-1)
		}
		w := slices.IndexFunc(errs, func(err error) bool { return err == nil })
		if len(results[w]) != 3 {
			t.Errorf("winning Revoke returned %d entries, want 3", len(results[w]))
		}
		if diff := cmp.Diff(results[w], f.revocations(), cmpOpts); diff != "" {
			t.Errorf("ListRevocations, against the entries Revoke returned (-returned +listed):\n%s", diff)
		}
		if got, want := f.device("dev-1"), withCert(store.Device{ID: "dev-1", Status: store.DeviceRevoked, CreatedAt: T0, UpdatedAt: revokedAt.Add(time.Duration(w) * time.Second), RevokedAt: revokedAt.Add(time.Duration(w) * time.Second)}, expired); !cmp.Equal(got, want) {
			t.Errorf("GetDevice = %+v, want %+v", got, want)
		}
		if f.blocked(keyHash("k2")) {
			t.Errorf("KeyBlocked(key of the expired certificate) = true, want false")
		}
		f.checkSeqs(4 + 1)
	})

	t.Run("ok/device-and-its-serials", func(t *testing.T) {
		// Half revoke the device (blocking keys), half one certificate
		// each (not blocking): every certificate is revoked once.
		f := newFixture(t, newStore)
		const certs = n / 2
		for i := range certs {
			f.issue(newIssuance(newCert(serial(int64(100+i)), "dev-1", devName(i))))
		}
		results := make([][]store.Revocation, n)
		errs := race(n, func(i int) error {
			r := revokeDevice("dev-1", revokedAt, reasonKeyCompromise, true)
			if i < certs {
				r = revokeSerial(serial(int64(100+i)), revokedAt, reasonSuperseded, false)
			}
			var err error
			results[i], err = f.s.Revoke(f.ctx, r)
			return err
		})
		counts := tally(t, errs, store.ErrAlreadyRevoked)
		deviceWins := 0
		for _, err := range errs[certs:] {
			if err == nil {
				deviceWins++
			}
		}
		if deviceWins != 1 {
			t.Errorf("%d concurrent Revoke of one device: %d succeeded, want 1", n-certs, deviceWins)
		}
		var returned []store.Revocation
		for _, es := range results {
			returned = append(returned, es...)
		}
		slices.SortFunc(returned, func(a, b store.Revocation) int { return int(a.Seq) - int(b.Seq) })
		listed := f.revocations()
		if diff := cmp.Diff(returned, listed, cmpOpts); diff != "" {
			t.Errorf("ListRevocations, against the entries Revoke returned (-returned +listed):\n%s", diff)
		}
		checkRevocationSeqs(t, listed, certs)
		for _, e := range listed {
			wantBlocked := e.Reason == reasonKeyCompromise // revoked with the device
			if got := f.blocked(keyHash(devName(int(e.Serial.Int64() - 100)))); got != wantBlocked {
				t.Errorf("KeyBlocked(key of %x, revoked for reason %d) = %v, want %v", e.Serial, e.Reason, got, wantBlocked)
			}
		}
		for _, c := range f.certs("dev-1") {
			if c.RevokedAt.IsZero() {
				t.Errorf("certificate %x is not revoked", c.Serial)
			}
		}
		f.checkSeqs(certs + counts[nil])
	})

	t.Run("ok/mixed", func(t *testing.T) {
		// Refused and accepted calls share batches: the refusals must not
		// undo the others' writes, nor write anything themselves.
		f := newFixture(t, newStore)
		for i := range n {
			f.issue(newIssuance(newCert(serial(int64(100+i)), devName(i), devName(i))))
		}
		errs := race(n, func(i int) error {
			s := serial(int64(100 + i))
			if i%2 == 1 {
				s = serial(int64(1000 + i)) // unknown
			}
			_, err := f.s.Revoke(f.ctx, revokeSerial(s, revokedAt, reasonKeyCompromise, true))
			return err
		})
		for i, err := range errs {
			want := error(nil)
			if i%2 == 1 {
				want = store.ErrNotFound
			}
			checkErr(t, "Revoke "+devName(i), err, want)
		}
		checkRevocationSeqs(t, f.revocations(), n/2)
		for i := range n {
			if got := f.blocked(keyHash(devName(i))); got != (i%2 == 0) {
				t.Errorf("KeyBlocked(key of %s) = %v, want %v", devName(i), got, i%2 == 0)
			}
		}
		f.checkSeqs(n + n/2)
	})
}

// checkRevocationSeqs reports unless es has n entries with Seq 1..n in
// order and no serial twice.
func checkRevocationSeqs(t *testing.T, es []store.Revocation, n int) {
	t.Helper()
	if len(es) != n {
		t.Errorf("revocation log has %d entries, want %d", len(es), n)
	}
	seen := make(map[string]bool)
	for i, e := range es {
		if e.Seq != uint64(i+1) {
			t.Errorf("revocation entry %d has Seq %d, want %d", i, e.Seq, i+1)
		}
		if seen[e.Serial.Text(16)] {
			t.Errorf("revocation entry %d repeats serial %x", i, e.Serial)
		}
		seen[e.Serial.Text(16)] = true
	}
}

// withRevokeToken returns r spending a use of tok.
func withRevokeToken(r store.RevokeRequest, tok store.Token) store.RevokeRequest {
	r.Token = tok.Hash
	return r
}
