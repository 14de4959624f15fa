package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/fleetca/fleetca/store"
)

// inPartition returns c assigned CRL partition p.
func inPartition(c store.Certificate, p int) store.Certificate {
	c.Partition = &p
	return c
}

// partitionOf is a Partition for messages: "none" or the number.
func partitionOf(p *int) string {
	if p == nil {
		return "none"
	}
	return fmt.Sprint(*p)
}

// testCertificatePartition: a certificate's Partition is kept as issued
// (none stays none), and its revocation log entries carry it, whether
// revoked by serial, with its device, or superseded by a renewal.
func testCertificatePartition(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("ok/issue-revoke", func(t *testing.T) { testPartitionIssueRevoke(t, newStore) })
	t.Run("ok/supersede", func(t *testing.T) { testPartitionSupersede(t, newStore) })
}

func testPartitionIssueRevoke(t *testing.T, newStore func(t *testing.T) store.Store) {
	f := newFixture(t, newStore)
	f.issue(newIssuance(inPartition(newCert(serial(1), "dev-1", "k1"), 3)))
	f.issue(newIssuance(newCert(serial(2), "dev-2", "k2")))
	f.issue(newIssuance(inPartition(newCert(bigSerial, "dev-3", "k3"), 255)))
	f.issue(newIssuance(inPartition(newCert(serial(4), "dev-4", "k4"), 0)))
	want := map[int64]*int{1: ptr(3), 2: nil, 4: ptr(0)}
	for n, p := range want {
		if got := f.cert(serial(n)).Partition; partitionOf(got) != partitionOf(p) {
			t.Errorf("certificate %d: Partition %s, want %s", n, partitionOf(got), partitionOf(p))
		}
	}
	if got := f.cert(bigSerial).Partition; partitionOf(got) != "255" {
		t.Errorf("certificate 2^130+1: Partition %s, want 255", partitionOf(got))
	}
	certs, err := f.s.ListCertificates(f.ctx, "", store.Page{Limit: store.MaxPageLimit})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range certs {
		if c.Serial.IsInt64() && partitionOf(c.Partition) != partitionOf(want[c.Serial.Int64()]) {
			t.Errorf("ListCertificates: %x has Partition %s, want %s", c.Serial, partitionOf(c.Partition), partitionOf(want[c.Serial.Int64()]))
		}
	}
	revs := f.revoke(revokeSerial(serial(1), T0.Add(time.Hour), reasonCessation, false))
	revs = append(revs, f.revoke(revokeDevice("dev-2", T0.Add(time.Hour), reasonCessation, false))...)
	revs = append(revs, f.revoke(revokeDevice("dev-4", T0.Add(time.Hour), reasonCessation, false))...)
	for _, r := range revs {
		if partitionOf(r.Partition) != partitionOf(want[r.Serial.Int64()]) {
			t.Errorf("Revoke: entry for %x has Partition %s, want %s", r.Serial, partitionOf(r.Partition), partitionOf(want[r.Serial.Int64()]))
		}
	}
	for _, r := range f.revocations() {
		if partitionOf(r.Partition) != partitionOf(want[r.Serial.Int64()]) {
			t.Errorf("ListRevocations: entry for %x has Partition %s, want %s", r.Serial, partitionOf(r.Partition), partitionOf(want[r.Serial.Int64()]))
		}
	}

}

// testPartitionSupersede: a renewal superseding a partitioned certificate
// logs its partition.
func testPartitionSupersede(t *testing.T, newStore func(t *testing.T) store.Store) {
	g := newFixture(t, newStore)
	g.issue(newIssuance(inPartition(newCert(serial(6), "dev-1", "k1"), 9)))
	r := newRenewal(serial(6), serial(10), "dev-1", "k1", renewAt)
	r.Certificate = inPartition(r.Certificate, 2)
	r.MaxActive = 1
	res := g.renew(r)
	if len(res.Superseded) != 1 || partitionOf(res.Superseded[0].Partition) != "9" {
		t.Errorf("Renew superseded %+v, want certificate 6 in partition 9", res.Superseded)
	}
	if got := g.cert(serial(10)).Partition; partitionOf(got) != "2" {
		t.Errorf("renewed certificate: Partition %s, want 2", partitionOf(got))
	}
	if rs := g.revocations(); len(rs) != 1 || partitionOf(rs[0].Partition) != "9" {
		t.Errorf("ListRevocations after the renewal: %+v, want certificate 6 in partition 9", rs)
	}
}

func ptr(p int) *int { return &p }

// testPartitionCRLs: each partition's CRL has a lease, numbers and a
// latest record of its own, apart from the full CRL's and the others'.
func testPartitionCRLs(t *testing.T, newStore func(t *testing.T) store.Store) {
	const a, b = "replica-a", "replica-b"
	lease := func(f fixture, p int, holder string, now, until time.Time, want bool) {
		t.Helper()
		got, err := f.s.LeasePartitionCRL(f.ctx, p, holder, now, until)
		if got != want || err != nil {
			t.Fatalf("LeasePartitionCRL(%d, %s) = %v, %v, want %v, nil", p, holder, got, err, want)
		}
	}
	latest := func(f fixture, p int, newerThan uint64, want *store.CRL) {
		t.Helper()
		got, err := f.s.LatestPartitionCRL(f.ctx, p, newerThan)
		if want == nil {
			checkErr(t, fmt.Sprintf("LatestPartitionCRL(%d, %d)", p, newerThan), err, store.ErrNotFound)
			return
		}
		if err != nil || got.Number != want.Number || string(got.DER) != string(want.DER) ||
			!got.ThisUpdate.Equal(want.ThisUpdate) || !got.NextUpdate.Equal(want.NextUpdate) {
			t.Fatalf("LatestPartitionCRL(%d, %d) = %+v, %v, want CRL %d", p, newerThan, got, err, want.Number)
		}
	}

	t.Run("ok/independent-scopes", func(t *testing.T) {
		f := newFixture(t, newStore)
		latest(f, 3, 0, nil)
		lease(f, 3, a, T0, T0.Add(time.Minute), true)
		lease(f, 3, b, T0, T0.Add(time.Minute), false) // a holds 3
		lease(f, 5, b, T0, T0.Add(time.Minute), true)  // 5 is free
		f.leaseCRL(b, T0, T0.Add(time.Minute), true)   // so is the full CRL's
		c7, c1, c2 := newCRL(7), newCRL(1), newCRL(2)
		if err := f.s.PutPartitionCRL(f.ctx, 3, a, T0, c7); err != nil {
			t.Fatal(err)
		}
		if err := f.s.PutPartitionCRL(f.ctx, 5, b, T0, c1); err != nil {
			t.Fatal(err) // numbers are per partition: 1 after 3's 7
		}
		f.putCRL(b, T0, c2)
		latest(f, 3, 0, &c7)
		latest(f, 3, 6, &c7)
		latest(f, 3, 7, nil)
		latest(f, 5, 0, &c1)
		latest(f, 4, 0, nil)
		f.checkLatestCRL(0, &c2)
		checkErr(t, "PutPartitionCRL(3) by the holder of 5", f.s.PutPartitionCRL(f.ctx, 3, b, T0, newCRL(8)), store.ErrLeaseLost)
		checkErr(t, "PutPartitionCRL(4) never leased", f.s.PutPartitionCRL(f.ctx, 4, a, T0, newCRL(8)), store.ErrLeaseLost)
		checkErr(t, "PutPartitionCRL(3, 7) again", f.s.PutPartitionCRL(f.ctx, 3, a, T0, c7), store.ErrCRLNotNewer)
		checkErr(t, "PutPartitionCRL(3) after its lease ran out", f.s.PutPartitionCRL(f.ctx, 3, a, T0.Add(time.Minute), newCRL(8)), store.ErrLeaseLost)
		// b takes 3 over once a's lease ran out; 3's numbers go on.
		lease(f, 3, b, T0.Add(time.Minute), T0.Add(2*time.Minute), true)
		checkErr(t, "PutPartitionCRL(3, 7) by the new holder", f.s.PutPartitionCRL(f.ctx, 3, b, T0.Add(time.Minute), c7), store.ErrCRLNotNewer)
		c9 := newCRL(9)
		if err := f.s.PutPartitionCRL(f.ctx, 3, b, T0.Add(time.Minute), c9); err != nil {
			t.Fatal(err)
		}
		latest(f, 3, 7, &c9)
		// A holder gives its lease up by shortening it to now.
		lease(f, 5, b, T0.Add(time.Second-time.Nanosecond), T0.Add(time.Second), true)
		lease(f, 5, a, T0.Add(time.Second), T0.Add(time.Minute), true)
	})

	t.Run("fail/arguments", func(t *testing.T) {
		f := newFixture(t, newStore)
		for _, p := range []int{-1, store.MaxCRLPartitions} {
			_, err := f.s.LeasePartitionCRL(f.ctx, p, a, T0, T0.Add(time.Minute))
			checkErr(t, fmt.Sprintf("LeasePartitionCRL(%d)", p), err, errAny)
			checkErr(t, fmt.Sprintf("PutPartitionCRL(%d)", p), f.s.PutPartitionCRL(f.ctx, p, a, T0, newCRL(1)), errAny)
			_, err = f.s.LatestPartitionCRL(f.ctx, p, 0)
			checkErr(t, fmt.Sprintf("LatestPartitionCRL(%d)", p), err, errAny)
		}
		_, err := f.s.LeasePartitionCRL(f.ctx, 1, a, T0, T0)
		checkErr(t, "LeasePartitionCRL until now", err, errAny)
		lease(f, 1, a, T0, T0.Add(time.Minute), true)
		checkErr(t, "PutPartitionCRL numbered 0", f.s.PutPartitionCRL(f.ctx, 1, a, T0, store.CRL{DER: []byte("x")}), errAny)
		checkErr(t, "PutPartitionCRL without DER", f.s.PutPartitionCRL(f.ctx, 1, a, T0, store.CRL{Number: 9}), errAny)
		lease(f, store.MaxCRLPartitions-1, a, T0, T0.Add(time.Minute), true)
	})
}
