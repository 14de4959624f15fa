package boltstore

import (
	"bytes"
	"errors"
	"math/big"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.etcd.io/bbolt"

	"github.com/fleetca/fleetca/store"
)

// renewalOf returns the renewal of parent (device's) by serial n with key
// key at at, with no conditions but a day's RetryWindow.
func renewalOf(parent, n *big.Int, device string, key byte, at time.Time) store.Renewal {
	return store.Renewal{
		Parent: parent,
		Certificate: store.Certificate{
			Serial: n, DeviceID: device, KeyHash: store.KeyHash{key},
			NotBefore: at, NotAfter: at.Add(24 * time.Hour), IssuedAt: at, DER: []byte("fake DER"),
		},
		Now:         at,
		RetryWindow: 24 * time.Hour,
		Audit:       store.AuditEvent{Time: at, Action: "certificate.renew", DeviceID: device},
	}
}

// nonceRecords returns the nonces bucket as hash -> expiry, and reports
// any disagreement between it and its expiry index.
func nonceRecords(t *testing.T, s *Store) map[[32]byte]time.Time {
	t.Helper()
	out := make(map[[32]byte]time.Time)
	err := s.view(t.Context(), func(tx *bbolt.Tx) error {
		index := tx.Bucket(bucketNonceExpiry)
		err := tx.Bucket(bucketNonces).ForEach(func(k, v []byte) error {
			exp, err := parseTimeKey(v)
			if err != nil {
				return err
			}
			if index.Get(append(bytes.Clone(v), k...)) == nil {
				t.Errorf("nonce %x has no expiry index entry", k[:4])
			}
			out[[32]byte(k)] = exp
			return nil
		})
		if err != nil {
			return err
		}
		return index.ForEach(func(k, _ []byte) error {
			if exp, ok := out[[32]byte(k[timeKeyLen:])]; !ok || !bytes.Equal(timeKey(exp), k[:timeKeyLen]) {
				t.Errorf("expiry index entry %x names no nonce with that expiry", k)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatalf("read nonces: %v", err)
	}
	return out
}

// TestNonceSweep checks that a spend forgets at most maxNonceSweep expired
// nonces, oldest first, keeps the unexpired ones, and that an expired
// nonce not yet forgotten is usable again.
func TestNonceSweep(t *testing.T) {
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), "fleetca.db"), Options{})
	const n = 40
	nonce := func(i int) store.Nonce {
		return store.Nonce{Hash: [32]byte{byte(i)}, Expires: t0.Add(time.Duration(i) * time.Second)}
	}
	spend := func(nn store.Nonce, now time.Time) {
		t.Helper()
		if err := s.update(ctx, func(tx *bbolt.Tx) error { return spendNonce(tx, nn, now) }); err != nil {
			t.Fatalf("spendNonce(%x) error = %v, want nil", nn.Hash[:1], err)
		}
	}
	for i := 1; i <= n; i++ {
		spend(nonce(i), t0)
	}
	if got := len(nonceRecords(t, s)); got != n {
		t.Fatalf("%d nonces recorded, want %d", got, n)
	}

	// At t0+30s, nonces 1..30 have expired (Expires is not after now).
	now := t0.Add(30 * time.Second)
	var spent20 bool
	if err := s.view(ctx, func(tx *bbolt.Tx) (err error) { spent20, err = nonceSpent(tx, nonce(20).Hash, now); return err }); err != nil || spent20 {
		t.Errorf("nonceSpent(expired nonce 20) = %v, %v, want false, nil", spent20, err)
	}
	spend(nonce(100), now)
	got := nonceRecords(t, s)
	for i := 1; i <= n; i++ {
		_, kept := got[nonce(i).Hash]
		if want := i > maxNonceSweep; kept != want {
			t.Errorf("after one spend at +30s, nonce %d kept = %v, want %v", i, kept, want)
		}
	}
	if _, ok := got[nonce(100).Hash]; !ok {
		t.Errorf("nonce 100 not recorded")
	}

	// Spending an expired nonce that is still recorded replaces its record.
	respent := store.Nonce{Hash: nonce(30).Hash, Expires: now.Add(time.Minute)}
	spend(respent, now)
	got = nonceRecords(t, s)
	for i := maxNonceSweep + 1; i < 30; i++ {
		if _, kept := got[nonce(i).Hash]; kept {
			t.Errorf("after two spends at +30s, expired nonce %d kept", i)
		}
	}
	if exp, ok := got[respent.Hash]; !ok || !exp.Equal(respent.Expires) {
		t.Errorf("respent nonce 30 expires %v (recorded %v), want %v", exp, ok, respent.Expires)
	}
	if want := n - 29 + 1; len(got) != want { // 30..40 and 100
		t.Errorf("%d nonces recorded, want %d", len(got), want)
	}
}

// TestReopenKeepsRenewals checks that a renewal's records survive Close
// and Open: the Parent, the device's times, the fleet's, a spent nonce.
func TestReopenKeepsRenewals(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "fleetca.db")
	s := open(t, path, Options{})
	parent := new(big.Int).Lsh(big.NewInt(7), 140)
	issueFor(t, s, parent, "dev-1", 1)
	at := t0.Add(time.Hour)
	r := renewalOf(parent, big.NewInt(2), "dev-1", 1, at)
	r.Nonce = &store.Nonce{Hash: [32]byte{9}, Expires: at.Add(5 * time.Minute)}
	if _, err := s.Renew(ctx, r); err != nil {
		t.Fatalf("Renew error = %v, want nil", err)
	}
	if err := s.RenewNow(ctx, "dev-1", at.Add(time.Minute), store.AuditEvent{Action: "device.renew_now"}); err != nil {
		t.Fatalf("RenewNow(dev-1) error = %v, want nil", err)
	}
	if err := s.RenewNow(ctx, "", at.Add(2*time.Minute), store.AuditEvent{Action: "fleet.renew_now"}); err != nil {
		t.Fatalf("RenewNow(fleet) error = %v, want nil", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close error = %v, want nil", err)
	}

	s = open(t, path, Options{})
	if c, err := s.GetCertificate(ctx, big.NewInt(2)); err != nil || c.Parent == nil || c.Parent.Cmp(parent) != 0 {
		t.Errorf("GetCertificate(2) after reopen = Parent %v, %v, want %x, nil", c.Parent, err, parent)
	}
	want := store.Device{ID: "dev-1", Status: store.DeviceActive, CreatedAt: t0, UpdatedAt: at, LastRenewalAt: at, RenewNowAt: at.Add(time.Minute),
		NotAfter: r.Certificate.NotAfter}
	_, want.RenewBy = store.RenewalWindow(r.Certificate.NotBefore, r.Certificate.NotAfter)
	if d, err := s.GetDevice(ctx, "dev-1"); err != nil || !cmp.Equal(d, want) {
		t.Errorf("GetDevice after reopen = %+v, %v, want %+v, nil", d, err, want)
	}
	if got, err := s.FleetRenewNow(ctx); err != nil || !got.Equal(at.Add(2*time.Minute)) {
		t.Errorf("FleetRenewNow after reopen = %v, %v, want %v, nil", got, err, at.Add(2*time.Minute))
	}
	issueFor(t, s, big.NewInt(3), "dev-3", 3)
	r3 := renewalOf(big.NewInt(3), big.NewInt(4), "dev-3", 3, at.Add(time.Minute))
	r3.Nonce = r.Nonce
	if _, err := s.Renew(ctx, r3); !errors.Is(err, store.ErrNonceSpent) {
		t.Errorf("Renew with the nonce spent before reopen error = %v, want ErrNonceSpent", err)
	}
}

// TestOpenAddsRenewalBuckets opens a file written before renewal existed:
// Open adds the buckets, and renewal works on the old records.
func TestOpenAddsRenewalBuckets(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "fleetca.db")
	s := open(t, path, Options{})
	issueFor(t, s, big.NewInt(1), "dev-1", 1)
	s = reopenWithout(t, s, path, bucketNonces, bucketNonceExpiry, bucketFleet)
	if got, err := s.FleetRenewNow(ctx); !got.IsZero() || err != nil {
		t.Errorf("FleetRenewNow on an upgraded file = %v, %v, want zero, nil", got, err)
	}
	r := renewalOf(big.NewInt(1), big.NewInt(2), "dev-1", 1, t0.Add(time.Hour))
	r.Nonce = &store.Nonce{Hash: [32]byte{1}, Expires: t0.Add(2 * time.Hour)}
	if res, err := s.Renew(ctx, r); err != nil || res.Certificate.Parent.Cmp(big.NewInt(1)) != 0 {
		t.Errorf("Renew on an upgraded file = Parent %v, %v, want 1, nil", res.Certificate.Parent, err)
	}
}

// TestRenewBatchInternalError checks that Renew keeps the Batch
// discipline: re-run after a neighbour's internal failure, it records one
// certificate, supersedes once and spends its nonce once, and retries see
// the certificate of the run that committed.
func TestRenewBatchInternalError(t *testing.T) {
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), "fleetca.db"), Options{MaxBatchDelay: 20 * time.Millisecond})
	issueFor(t, s, big.NewInt(1), "dev-1", 1)
	const n = 32
	errBoom := errors.New("boom")
	errs := make([]error, n)
	results := make([]store.RenewResult, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if i%4 == 0 {
				errs[i] = s.batch(ctx, func(tx *bbolt.Tx) (cond, err error) {
					if err := spendNonce(tx, store.Nonce{Hash: [32]byte{byte(i)}, Expires: t0.Add(48 * time.Hour)}, t0.Add(48*time.Hour)); err != nil {
						return nil, err
					}
					return nil, errBoom
				})
				return
			}
			r := renewalOf(big.NewInt(1), big.NewInt(int64(100+i)), "dev-1", 1, t0.Add(time.Hour))
			r.MaxActive = 1
			r.Nonce = &store.Nonce{Hash: [32]byte{byte(i)}, Expires: t0.Add(2 * time.Hour)}
			results[i], errs[i] = s.Renew(ctx, r)
		})
	}
	wg.Wait()

	var issued *big.Int
	replayed := 0
	for i, err := range errs {
		switch {
		case i%4 == 0:
			if !errors.Is(err, errBoom) {
				t.Errorf("failing batch %d error = %v, want %v", i, err, errBoom)
			}
			continue
		case err != nil:
			t.Errorf("Renew %d error = %v, want nil", i, err)
			continue
		case results[i].Replayed:
			replayed++
		default:
			issued = results[i].Certificate.Serial
			if len(results[i].Superseded) != 1 || results[i].Superseded[0].Seq != 1 {
				t.Errorf("Renew %d superseded %+v, want serial 1 with Seq 1", i, results[i].Superseded)
			}
		}
	}
	if issued == nil || replayed != n-n/4-1 {
		t.Fatalf("Renew: issued %v, %d replayed, want one issued, %d replayed", issued, replayed, n-n/4-1)
	}
	for i, res := range results {
		if i%4 != 0 && res.Certificate.Serial.Cmp(issued) != 0 {
			t.Errorf("Renew %d returned serial %x, want %x", i, res.Certificate.Serial, issued)
		}
	}
	certs, err := s.ListCertificates(ctx, "dev-1", store.Page{})
	if err != nil || len(certs) != 2 {
		t.Errorf("ListCertificates(dev-1) = %d certificates, %v, want 2, nil", len(certs), err)
	}
	if es, err := s.ListRevocations(ctx, 0, 0); err != nil || len(es) != 1 {
		t.Errorf("ListRevocations = %v, %v, want one entry, nil", es, err)
	}
	if events, err := s.ListAudit(ctx, 0, 0); err != nil || len(events) != 2 {
		t.Errorf("ListAudit = %d events, %v, want 2, nil", len(events), err)
	}
	// Every renewal's nonce is spent (the retries' too), no failed one's.
	got := nonceRecords(t, s)
	for i := range n {
		if _, spent := got[[32]byte{byte(i)}]; spent != (i%4 != 0) {
			t.Errorf("nonce %d spent = %v, want %v", i, spent, i%4 != 0)
		}
	}
}

// TestTimeKeyOrder checks that timeKey's byte order is time order, before
// 1970 too, and that parseTimeKey inverts it.
func TestTimeKeyOrder(t *testing.T) {
	times := []time.Time{
		time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(-1, 999_999_999),
		time.Unix(0, 0),
		time.Unix(0, 1),
		t0,
		t0.Add(time.Nanosecond),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
	}
	for i, tm := range times {
		back, err := parseTimeKey(timeKey(tm))
		if err != nil || !back.Equal(tm) {
			t.Errorf("parseTimeKey(timeKey(%v)) = %v, %v, want %v, nil", tm, back, err, tm)
		}
		if i > 0 && bytes.Compare(timeKey(times[i-1]), timeKey(tm)) >= 0 {
			t.Errorf("timeKey(%v) does not sort before timeKey(%v)", times[i-1], tm)
		}
	}
	for _, k := range [][]byte{nil, make([]byte, 11), append(make([]byte, 8), 0x3b, 0x9a, 0xca, 0x00)} {
		if _, err := parseTimeKey(k); err == nil {
			t.Errorf("parseTimeKey(%x) error = nil, want one", k)
		}
	}
}
