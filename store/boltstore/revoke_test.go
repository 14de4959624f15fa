package boltstore

import (
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.etcd.io/bbolt"

	"github.com/fleetca/fleetca/store"
)

var cmpSerials = cmp.Comparer(func(a, b *big.Int) bool { return a.Cmp(b) == 0 })

// issueFor issues a certificate with serial n and key key to device, live
// from t0 for a day, failing the test on error.
func issueFor(t testing.TB, s *Store, n *big.Int, device string, key byte) store.Certificate {
	t.Helper()
	c := store.Certificate{
		Serial: n, DeviceID: device, KeyHash: store.KeyHash{key},
		NotBefore: t0, NotAfter: t0.Add(24 * time.Hour), IssuedAt: t0, DER: []byte("fake DER"),
	}
	is := store.Issuance{Certificate: c, Now: t0, Audit: store.AuditEvent{Time: t0, Action: "certificate.issue", DeviceID: device}}
	if err := s.Issue(t.Context(), is); err != nil {
		t.Fatalf("Issue(%x) error = %v, want nil", n, err)
	}
	return c
}

func TestReopenKeepsRevocations(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "fleetca.db")
	s := open(t, path, Options{})

	big1 := new(big.Int).Lsh(big.NewInt(5), 140) // above 2^128
	issueFor(t, s, big1, "dev-1", 1)
	issueFor(t, s, big.NewInt(2), "dev-2", 2)
	issueFor(t, s, big.NewInt(3), "dev-3", 3)
	at := t0.Add(time.Hour)
	var want []store.Revocation
	for _, r := range []store.RevokeRequest{
		{Serial: big1, At: at, Reason: 1, BlockKeys: true, Audit: store.AuditEvent{Time: at, Action: "certificate.revoke"}},
		{DeviceID: "dev-2", At: at, Reason: 5, Audit: store.AuditEvent{Time: at, Action: "device.revoke"}},
	} {
		es, err := s.Revoke(ctx, r)
		if err != nil {
			t.Fatalf("Revoke error = %v, want nil", err)
		}
		want = append(want, es...)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close error = %v, want nil", err)
	}

	s = open(t, path, Options{})
	got, err := s.ListRevocations(ctx, 0, 0)
	if err != nil {
		t.Fatalf("ListRevocations after reopen error = %v, want nil", err)
	}
	if diff := cmp.Diff(want, got, cmpSerials); diff != "" {
		t.Errorf("ListRevocations after reopen (-want +got):\n%s", diff)
	}
	if got[0].Serial.Cmp(big1) != 0 {
		t.Errorf("first entry's serial = %x, want %x", got[0].Serial, big1)
	}
	if b, err := s.KeyBlocked(ctx, store.KeyHash{1}); !b || err != nil {
		t.Errorf("KeyBlocked(key 1) after reopen = %v, %v, want true, nil", b, err)
	}
	if b, err := s.KeyBlocked(ctx, store.KeyHash{2}); b || err != nil {
		t.Errorf("KeyBlocked(key 2) after reopen = %v, %v, want false, nil", b, err)
	}
	if d, err := s.GetDevice(ctx, "dev-2"); d.Status != store.DeviceRevoked || err != nil {
		t.Errorf("GetDevice(dev-2) after reopen = %+v, %v, want revoked, nil", d, err)
	}
	if c, err := s.GetCertificate(ctx, big1); !c.RevokedAt.Equal(at) || c.Reason != 1 || err != nil {
		t.Errorf("GetCertificate(%x) after reopen = revoked at %v for %d, %v, want %v, 1, nil", big1, c.RevokedAt, c.Reason, err, at)
	}
	// The log's sequence continues.
	es, err := s.Revoke(ctx, store.RevokeRequest{Serial: big.NewInt(3), At: at, Reason: 4})
	if err != nil || len(es) != 1 || es[0].Seq != 3 {
		t.Errorf("Revoke after reopen = %+v, %v, want one entry with Seq 3, nil", es, err)
	}
}

// TestOpenAddsMissingBuckets opens a file written before revocation
// existed: Open adds the buckets, and revocation works on the old records.
func TestOpenAddsMissingBuckets(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "fleetca.db")
	s := open(t, path, Options{})
	issueFor(t, s, big.NewInt(1), "dev-1", 1)
	s = reopenWithout(t, s, path, bucketRevocations, bucketBlockedKeys)
	es, err := s.Revoke(ctx, store.RevokeRequest{DeviceID: "dev-1", At: t0, BlockKeys: true})
	if err != nil || len(es) != 1 || es[0].Seq != 1 {
		t.Errorf("Revoke on an upgraded file = %+v, %v, want one entry with Seq 1, nil", es, err)
	}
}

// TestRevokeBatchInternalError checks that Revoke keeps the Batch
// discipline: re-run after a neighbour's internal failure, it neither
// revokes twice nor leaves a gap in the log, and a refusal it reported in
// an abandoned run does not stick if the re-run succeeds.
func TestRevokeBatchInternalError(t *testing.T) {
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), "fleetca.db"), Options{MaxBatchDelay: 20 * time.Millisecond})
	const n = 32
	for i := range n {
		issueFor(t, s, big.NewInt(int64(100+i)), fmt.Sprintf("dev-%02d", i), byte(i+1))
	}
	errBoom := errors.New("boom")
	errs := make([]error, n)
	results := make([][]store.Revocation, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			switch {
			case i%4 == 0:
				errs[i] = s.batch(ctx, func(tx *bbolt.Tx) (cond, err error) {
					if _, err := tx.Bucket(bucketRevocations).NextSequence(); err != nil {
						return nil, err
					}
					return nil, errBoom
				})
			case i%4 == 1:
				// Eight callers revoke one certificate.
				results[i], errs[i] = s.Revoke(ctx, store.RevokeRequest{Serial: big.NewInt(101), At: t0.Add(time.Duration(i) * time.Second), BlockKeys: true})
			default:
				results[i], errs[i] = s.Revoke(ctx, store.RevokeRequest{DeviceID: fmt.Sprintf("dev-%02d", i), At: t0})
			}
		})
	}
	wg.Wait()

	var returned []store.Revocation
	var shared, already int
	for i, err := range errs {
		switch {
		case i%4 == 0:
			if !errors.Is(err, errBoom) {
				t.Errorf("failing batch %d error = %v, want %v", i, err, errBoom)
			}
		case i%4 == 1 && err == nil:
			shared++
		case i%4 == 1 && errors.Is(err, store.ErrAlreadyRevoked):
			already++
		case err != nil:
			t.Errorf("Revoke %d error = %v, want nil", i, err)
		}
		returned = append(returned, results[i]...)
	}
	if shared != 1 || already != n/4-1 {
		t.Errorf("Revoke of one certificate: %d succeeded, %d ErrAlreadyRevoked, want 1, %d", shared, already, n/4-1)
	}
	slices.SortFunc(returned, func(a, b store.Revocation) int { return int(a.Seq) - int(b.Seq) })
	listed, err := s.ListRevocations(ctx, 0, 0)
	if err != nil {
		t.Fatalf("ListRevocations error = %v, want nil", err)
	}
	if diff := cmp.Diff(returned, listed, cmpSerials); diff != "" {
		t.Errorf("ListRevocations, against the entries Revoke returned (-returned +listed):\n%s", diff)
	}
	// One per device revoked (16) and the shared certificate.
	if len(listed) != n/2+1 {
		t.Errorf("revocation log has %d entries, want %d", len(listed), n/2+1)
	}
	for i, e := range listed {
		if e.Seq != uint64(i+1) {
			t.Errorf("revocation entry %d Seq = %d, want %d", i, e.Seq, i+1)
		}
	}
	events, err := s.ListAudit(ctx, 0, store.MaxPageLimit)
	if err != nil || len(events) != n+n/2+1 {
		t.Fatalf("ListAudit = %d events, %v, want %d, nil", len(events), err, n+n/2+1)
	}
	for i, e := range events {
		if e.Seq != uint64(i+1) {
			t.Errorf("audit event %d Seq = %d, want %d", i, e.Seq, i+1)
		}
	}
}

// TestRevokeMalformedRecord checks that a malformed record is an internal
// error that wraps no sentinel, and rolls back only its own call.
func TestRevokeMalformedRecord(t *testing.T) {
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), "fleetca.db"), Options{})
	issueFor(t, s, big.NewInt(1), "dev-1", 1)
	key, _ := serialKey(big.NewInt(1))
	err := s.update(ctx, func(tx *bbolt.Tx) error { return tx.Bucket(bucketCerts).Put(key, []byte("{")) })
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []store.RevokeRequest{
		{Serial: big.NewInt(1), At: t0, BlockKeys: true},
		{DeviceID: "dev-1", At: t0, BlockKeys: true},
	} {
		es, err := s.Revoke(ctx, r)
		if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) || len(es) != 0 {
			t.Errorf("Revoke(%+v) of a malformed record = %v, %v, want no entries and an internal error", r, es, err)
		}
	}
	if d, err := s.GetDevice(ctx, "dev-1"); d.Status != store.DeviceActive || err != nil {
		t.Errorf("GetDevice after failed Revoke = %+v, %v, want active, nil", d, err)
	}
	if es, err := s.ListRevocations(ctx, 0, 0); len(es) != 0 || err != nil {
		t.Errorf("ListRevocations after failed Revoke = %v, %v, want none, nil", es, err)
	}
}
