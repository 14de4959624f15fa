package storetest

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetca/fleetca/store"
)

func newManufacturer(name string) store.Manufacturer {
	return store.Manufacturer{
		Name: name, CAPEM: "-----BEGIN CERTIFICATE-----\nfake " + name + "\n-----END CERTIFICATE-----\n",
		DeviceIDFrom: "cn", DevicePattern: name + "-*", CreatedAt: T0,
	}
}

func testManufacturer(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("ok/create-list-delete", func(t *testing.T) {
		f := newFixture(t, newStore)
		acme, bolt := newManufacturer("acme"), newManufacturer("bolt")
		bolt.DevicePattern, bolt.DeviceIDFrom = "", "serialNumber"
		for _, m := range []store.Manufacturer{bolt, acme} {
			if err := f.s.CreateManufacturer(f.ctx, m, event("manufacturer.add", m.Name)); err != nil {
				t.Fatalf("CreateManufacturer(%q) error = %v, want nil", m.Name, err)
			}
		}
		got, err := f.s.ListManufacturers(f.ctx)
		if err != nil {
			t.Fatalf("ListManufacturers error = %v", err)
		}
		if diff := cmp.Diff([]store.Manufacturer{acme, bolt}, got); diff != "" {
			t.Errorf("ListManufacturers (-want +got):\n%s", diff)
		}
		if err := f.s.DeleteManufacturer(f.ctx, "acme", event("manufacturer.remove", "acme")); err != nil {
			t.Fatalf("DeleteManufacturer error = %v, want nil", err)
		}
		got, err = f.s.ListManufacturers(f.ctx)
		if err != nil {
			t.Fatalf("ListManufacturers error = %v", err)
		}
		if diff := cmp.Diff([]store.Manufacturer{bolt}, got); diff != "" {
			t.Errorf("ListManufacturers after delete (-want +got):\n%s", diff)
		}
		if n := len(f.audit()); n != 3 {
			t.Errorf("audit rows = %d, want 3", n)
		}
	})
	t.Run("fail/duplicate", func(t *testing.T) {
		f := newFixture(t, newStore)
		m := newManufacturer("acme")
		if err := f.s.CreateManufacturer(f.ctx, m, event("manufacturer.add", "acme")); err != nil {
			t.Fatalf("CreateManufacturer error = %v", err)
		}
		m.CAPEM = "other"
		checkErr(t, "CreateManufacturer(duplicate)", f.s.CreateManufacturer(f.ctx, m, event("manufacturer.add", "acme")), store.ErrConflict)
		got, err := f.s.ListManufacturers(f.ctx)
		if err != nil || len(got) != 1 || got[0].CAPEM == "other" {
			t.Errorf("ListManufacturers = %v, %v, want the first acme alone", got, err)
		}
		if n := len(f.audit()); n != 1 {
			t.Errorf("audit rows = %d, want 1", n)
		}
	})
	t.Run("fail/delete-unknown", func(t *testing.T) {
		f := newFixture(t, newStore)
		checkErr(t, "DeleteManufacturer(unknown)", f.s.DeleteManufacturer(f.ctx, "nobody", event("manufacturer.remove", "")), store.ErrNotFound)
		if n := len(f.audit()); n != 0 {
			t.Errorf("audit rows = %d, want 0", n)
		}
	})
}

// mfrCert names a fake manufacturer certificate.
func mfrCert(name string) *store.ManufacturerCert {
	return &store.ManufacturerCert{Manufacturer: "acme", Serial: "1f" + name, Fingerprint: sha256.Sum256([]byte("mfr cert " + name))}
}

// withMfr returns is authorised by the manufacturer certificate m.
func withMfr(is store.Issuance, m *store.ManufacturerCert) store.Issuance {
	is.Manufacturer = m
	is.Audit.Actor = "manufacturer:" + m.Manufacturer
	return is
}

func testManufacturerIssue(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("ok/records-with-device", func(t *testing.T) {
		f := newFixture(t, newStore)
		f.issue(withMfr(newIssuance(newCert(serial(1), "dev-a", "k1")), mfrCert("a")))
		got := f.device("dev-a")
		if diff := cmp.Diff(mfrCert("a"), got.Manufacturer); diff != "" {
			t.Errorf("device Manufacturer (-want +got):\n%s", diff)
		}
	})
	t.Run("fail/second-use", func(t *testing.T) {
		f := newFixture(t, newStore)
		f.issue(withMfr(newIssuance(newCert(serial(1), "dev-a", "k1")), mfrCert("a")))
		before := f.snapshot(keyHash("k1"), keyHash("k2"))
		// The same certificate, for the same device or (another manufacturer
		// configuration reading another field) another one.
		for _, dev := range []string{"dev-a", "dev-b"} {
			err := f.s.Issue(f.ctx, withMfr(newIssuance(newCert(serial(2), dev, "k2")), mfrCert("a")))
			checkErr(t, "Issue(used manufacturer certificate for "+dev+")", err, store.ErrManufacturerCertUsed)
		}
		if diff := cmp.Diff(before, f.snapshot(keyHash("k1"), keyHash("k2")), cmpOpts); diff != "" {
			t.Errorf("records after refusals (-want +got):\n%s", diff)
		}
	})
	t.Run("fail/existing-device-other-cert", func(t *testing.T) {
		f := newFixture(t, newStore)
		f.issue(newIssuance(newCert(serial(1), "dev-a", "k1")))
		err := f.s.Issue(f.ctx, withMfr(newIssuance(newCert(serial(2), "dev-a", "k2")), mfrCert("a")))
		checkErr(t, "Issue(manufacturer certificate for a token-enrolled device)", err, store.ErrDeviceExists)
		f.issue(withMfr(newIssuance(newCert(serial(3), "dev-b", "k3")), mfrCert("b")))
		err = f.s.Issue(f.ctx, withMfr(newIssuance(newCert(serial(4), "dev-b", "k4")), mfrCert("c")))
		checkErr(t, "Issue(another manufacturer certificate for dev-b)", err, store.ErrDeviceExists)
	})
	t.Run("ok/reset-releases", func(t *testing.T) {
		f := newFixture(t, newStore)
		f.issue(withMfr(newIssuance(newCert(serial(1), "dev-a", "k1")), mfrCert("a")))
		at := T0.Add(time.Hour)
		f.revoke(store.RevokeRequest{DeviceID: "dev-a", At: at, Reason: 5, Audit: event("device.revoke", "dev-a")})
		if _, err := f.s.ResetDevice(f.ctx, "dev-a", at, event("device.reset", "dev-a")); err != nil {
			t.Fatalf("ResetDevice error = %v", err)
		}
		again := withMfr(newIssuance(newCert(serial(2), "dev-a", "k2")), mfrCert("a"))
		again.Now = at
		f.issue(again)
		third := withMfr(newIssuance(newCert(serial(3), "dev-a", "k3")), mfrCert("a"))
		third.Now = at
		checkErr(t, "Issue(third use)", f.s.Issue(f.ctx, third), store.ErrManufacturerCertUsed)
	})
	t.Run("ok/delete-manufacturer-keeps-use", func(t *testing.T) {
		f := newFixture(t, newStore)
		if err := f.s.CreateManufacturer(f.ctx, newManufacturer("acme"), event("manufacturer.add", "acme")); err != nil {
			t.Fatal(err)
		}
		f.issue(withMfr(newIssuance(newCert(serial(1), "dev-a", "k1")), mfrCert("a")))
		if err := f.s.DeleteManufacturer(f.ctx, "acme", event("manufacturer.remove", "acme")); err != nil {
			t.Fatal(err)
		}
		if err := f.s.CreateManufacturer(f.ctx, newManufacturer("acme"), event("manufacturer.add", "acme")); err != nil {
			t.Fatal(err)
		}
		err := f.s.Issue(f.ctx, withMfr(newIssuance(newCert(serial(2), "dev-a", "k2")), mfrCert("a")))
		checkErr(t, "Issue(after remove and add)", err, store.ErrManufacturerCertUsed)
	})
}
