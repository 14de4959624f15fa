package boltstore

import (
	"encoding/json"
	"fmt"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.etcd.io/bbolt"

	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/storetest"
)

// consoleFleet writes a small history: enrollments over several days, a
// renewal, a device revoked, one reset, a certificate revoked.
func consoleFleet(t *testing.T, s *Store) {
	t.Helper()
	ctx := t.Context()
	for i := range 6 {
		at := t0.Add(time.Duration(i) * 25 * time.Hour)
		id := fmt.Sprint("dev-", i)
		c := store.Certificate{
			Serial: big.NewInt(int64(i + 1)), DeviceID: id, KeyHash: store.KeyHash{byte(i + 1)},
			NotBefore: at, NotAfter: at.Add(time.Duration(i+1) * 300 * time.Hour), IssuedAt: at, DER: []byte("fake DER"),
		}
		err := s.Issue(ctx, store.Issuance{Certificate: c, Now: at,
			Audit: store.AuditEvent{Time: at, Action: "certificate.issue", DeviceID: id}})
		if err != nil {
			t.Fatalf("Issue(%s) error = %v", id, err)
		}
	}
	if _, err := s.Renew(ctx, renewalOf(big.NewInt(1), big.NewInt(10), "dev-0", 10, t0.Add(200*time.Hour))); err != nil {
		t.Fatalf("Renew error = %v", err)
	}
	for _, id := range []string{"dev-2", "dev-3"} {
		r := store.RevokeRequest{DeviceID: id, At: t0.Add(150 * time.Hour), Reason: 1,
			Audit: store.AuditEvent{Time: t0.Add(150 * time.Hour), Action: "device.revoke", DeviceID: id}}
		if _, err := s.Revoke(ctx, r); err != nil {
			t.Fatalf("Revoke(%s) error = %v", id, err)
		}
	}
	if _, err := s.ResetDevice(ctx, "dev-3", t0.Add(160*time.Hour), store.AuditEvent{Action: "device.reset", DeviceID: "dev-3"}); err != nil {
		t.Fatalf("ResetDevice error = %v", err)
	}
	r := store.RevokeRequest{Serial: big.NewInt(5), At: t0.Add(170 * time.Hour), Reason: 1,
		Audit: store.AuditEvent{Action: "certificate.revoke"}}
	if _, err := s.Revoke(ctx, r); err != nil {
		t.Fatalf("Revoke(5) error = %v", err)
	}
}

// consoleView is what Stats, QueryDevices and QueryAudit say of s.
type consoleView struct {
	Stats   []store.Stats
	Devices [][]store.Device
	Audit   [][]store.AuditEvent
}

func viewConsole(t *testing.T, s *Store) consoleView {
	t.Helper()
	ctx := t.Context()
	var v consoleView
	for h := range 20 {
		st, err := s.Stats(ctx, t0.Add(time.Duration(h)*50*time.Hour+30*time.Minute))
		if err != nil {
			t.Fatalf("Stats error = %v", err)
		}
		v.Stats = append(v.Stats, st)
	}
	for _, q := range []store.DeviceQuery{{}, {Status: store.DeviceRevoked}, {Sort: store.SortRenewBy}, {Sort: store.SortCreatedDesc}} {
		ds, _, err := s.QueryDevices(ctx, q)
		if err != nil {
			t.Fatalf("QueryDevices(%+v) error = %v", q, err)
		}
		v.Devices = append(v.Devices, ds)
	}
	for i := range 6 {
		es, _, err := s.QueryAudit(ctx, store.AuditQuery{DeviceID: fmt.Sprint("dev-", i)})
		if err != nil {
			t.Fatalf("QueryAudit error = %v", err)
		}
		v.Audit = append(v.Audit, es)
	}
	return v
}

// A file written before the console's buckets existed (no derived
// buckets, devices without NotAfter and RenewBy) gets them built on Open.
func TestOpenBuildsConsoleIndexes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleetca.db")
	s := open(t, path, Options{})
	consoleFleet(t, s)
	want := viewConsole(t, s)
	if want.Stats[0] == (store.Stats{}) || len(want.Devices[2]) == 0 {
		t.Fatalf("the fleet shows nothing to compare: %+v", want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range derivedBuckets {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		devices := tx.Bucket(bucketDevices)
		old := map[string][]byte{}
		err := devices.ForEach(func(k, v []byte) error {
			// Files of that layout held devices in JSON.
			var dev store.Device
			if err := decodeRecord(v, &dev); err != nil {
				return err
			}
			js, err := json.Marshal(dev)
			if err != nil {
				return err
			}
			var d map[string]any
			if err := json.Unmarshal(js, &d); err != nil {
				return err
			}
			delete(d, "not_after")
			delete(d, "renew_by")
			data, err := json.Marshal(d)
			old[string(k)] = data
			return err
		})
		if err != nil {
			return err
		}
		for k, v := range old {
			if err := devices.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err != nil || cerr != nil {
		t.Fatalf("write the old layout: %v, %v", err, cerr)
	}
	s = open(t, path, Options{})
	if diff := cmp.Diff(want, viewConsole(t, s)); diff != "" {
		t.Errorf("console views after the upgrade (-before +after):\n%s", diff)
	}
}

// A query no index answers examines at most auditScanLimit events per
// call, and says where to go on.
func TestQueryAuditScanLimit(t *testing.T) {
	storetest.RunAuditScanLimit(t, func(t *testing.T, scanLimit int) store.Store {
		s := open(t, filepath.Join(t.TempDir(), "fleetca.db"), Options{})
		s.auditScanLimit = scanLimit
		return s
	})
}
