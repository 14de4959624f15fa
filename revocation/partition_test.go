package revocation

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/boltstore"
)

// publishDue does what Run's CRL loops do once their timers fire: build
// the full CRL and each partition's if due.
func (f *fixture) publishDue(t testing.TB, s *Service) {
	t.Helper()
	if _, err := s.buildCRL(t.Context(), false); err != nil {
		t.Fatalf("buildCRL: %v", err)
	}
	for p := range s.parts.urls {
		if _, err := s.buildPartition(t.Context(), p, false); err != nil {
			t.Fatalf("buildPartition(%d): %v", p, err)
		}
	}
}

// issueIn issues device certificates until one is in partition p.
func (f *fixture) issueIn(t testing.TB, p int) *x509.Certificate {
	t.Helper()
	for i := range 2000 {
		c := f.issue(t, "dev-p"+strconv.Itoa(p)+"-"+strconv.Itoa(i))
		if got := ca.PartitionOf(c); got != nil && *got == p {
			return c
		}
	}
	t.Fatalf("no certificate in partition %d after 2000", p)
	return nil
}

// partitionNumbers returns each partition CRL's number.
func partitionNumbers(t testing.TB, s *Service) []*big.Int {
	t.Helper()
	out := make([]*big.Int, len(s.parts.urls))
	for p := range out {
		pub := s.PartitionCRL(p)
		if pub == nil {
			t.Fatalf("partition %d has no CRL", p)
		}
		out[p] = pub.Number
	}
	return out
}

// TestPartitionRevocation: a revocation in partition 3 gives partition 3
// (and the full CRL) a new CRL listing it, under the partition's IDP, and
// leaves every other partition's CRL as it was.
func TestPartitionRevocation(t *testing.T) {
	f := newFixture(t, fixtureOptions{cfg: Config{CRLPartitions: 16}})
	in3, in5 := f.issueIn(t, 3), f.issueIn(t, 5)
	before := partitionNumbers(t, f.svc)
	full := f.svc.CRL().Number
	f.clock.Add(time.Second)
	f.revoke(t, in3, api.ReasonKeyCompromise)
	f.publishDue(t, f.svc)
	after := partitionNumbers(t, f.svc)
	for p := range after {
		switch {
		case p == 3 && after[p].Cmp(before[p]) <= 0:
			t.Errorf("partition 3: number %v after the revocation, was %v; want a new CRL", after[p], before[p])
		case p != 3 && after[p].Cmp(before[p]) != 0:
			t.Errorf("partition %d: number %v after a revocation in 3, was %v; want unchanged", p, after[p], before[p])
		}
	}
	if got := f.svc.CRL().Number; got.Cmp(full) <= 0 {
		t.Errorf("full CRL number %v, was %v; want a new CRL", got, full)
	}
	rl := parseCRL(t, f.svc.PartitionCRL(3), f.ca.Intermediate())
	if _, ok := serials(rl)[hexSerial(in3.SerialNumber)]; !ok || len(rl.RevokedCertificateEntries) != 1 {
		t.Errorf("partition 3 CRL lists %v, want only %x", serials(rl), in3.SerialNumber)
	}
	if err := checkIDP(rl, testPublicURL+"/crl/3"); err != nil {
		t.Errorf("partition 3 CRL: %v", err)
	}
	if rl5 := parseCRL(t, f.svc.PartitionCRL(5), f.ca.Intermediate()); len(rl5.RevokedCertificateEntries) != 0 {
		t.Errorf("partition 5 CRL lists %v, want none", serials(rl5))
	}
	if _, ok := serials(parseCRL(t, f.svc.CRL(), f.ca.Intermediate()))[hexSerial(in3.SerialNumber)]; !ok {
		t.Errorf("the full CRL does not list %x", in3.SerialNumber)
	}

	// Nothing more revoked: nothing is due, no partition changes.
	f.publishDue(t, f.svc)
	if again := partitionNumbers(t, f.svc); again[3].Cmp(after[3]) != 0 || again[5].Cmp(after[5]) != 0 {
		t.Errorf("with nothing revoked, numbers changed: %v -> %v", after, again)
	}

	// Lowered to 4 partitions, a restart still publishes the 16 that
	// live certificates point at, numbered on from each partition's
	// counter, and the certificate in partition 5 stays there.
	f.svc.releasePartitionLeases(t.Context())
	f.cfg.CRLPartitions = 4
	s2 := f.restart(t)
	if got := s2.Partitions(); got.Partitions != 16 || len(got.CRLs) != 16 || got.Full.Needed {
		t.Errorf("after N 16 -> 4: discovery %+v, want 16 partitions and the full CRL not needed", got)
	}
	restarted := partitionNumbers(t, s2)
	for p := range restarted {
		if restarted[p].Cmp(after[p]) <= 0 {
			t.Errorf("partition %d after a restart: number %v, want above %v", p, restarted[p], after[p])
		}
	}
	f.clock.Add(time.Second)
	if _, err := s2.Revoke(t.Context(), RevokeRequest{Serial: in5.SerialNumber, Reason: api.ReasonSuperseded}); err != nil {
		t.Fatal(err)
	}
	f.publishDue(t, s2)
	if _, ok := serials(parseCRL(t, s2.PartitionCRL(5), f.ca.Intermediate()))[hexSerial(in5.SerialNumber)]; !ok {
		t.Errorf("partition 5 does not list %x after N 16 -> 4", in5.SerialNumber)
	}
	if got := s2.PartitionCRL(3).Number; got.Cmp(restarted[3]) != 0 {
		t.Errorf("partition 3 number %v after a revocation in 5, want %v", got, restarted[3])
	}
}

// TestPartitionsFullNeeded: the discovery document says the full CRL is
// needed while a live certificate without a partition exists (issued
// before partitions), and lists no partitions without them.
func TestPartitionsFullNeeded(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	if got := f.svc.Partitions(); got.Partitions != 0 || len(got.CRLs) != 0 || !got.Full.Needed ||
		got.Full.URL != testPublicURL+"/crl" {
		t.Errorf("without partitions: %+v, want none and the full CRL needed", got)
	}
	old := f.issue(t, "dev-old")
	if ca.PartitionOf(old) != nil {
		t.Fatalf("certificate issued without partitions has partition %d", *ca.PartitionOf(old))
	}
	f.cfg.CRLPartitions = 8
	s := f.restart(t)
	got := s.Partitions()
	if got.Partitions != 8 || !got.Full.Needed {
		t.Errorf("with a live certificate without partition: %+v, want 8 partitions and the full CRL needed", got)
	}
	for p, c := range got.CRLs {
		if c.Partition != p || c.URL != testPublicURL+"/crl/"+strconv.Itoa(p) || c.Number == "" || c.NextUpdate == "" {
			t.Errorf("crls[%d] = %+v", p, c)
		}
	}
	// Once it expires, the full CRL is no longer needed.
	f.clock.Set(old.NotAfter.Add(time.Second))
	if s.Partitions().Full.Needed {
		t.Error("full CRL still needed after the last certificate without partition expired")
	}
}

// TestReplicaPartitionOneSigner: three replicas with partitions. Each
// partition has one signer at a time (its lease holder); the others serve
// its CRL byte for byte from the store, and a revocation through any
// replica reaches the partition CRL of its certificate on every replica.
func TestReplicaPartitionOneSigner(t *testing.T) {
	f := newFixture(t, fixtureOptions{cfg: Config{CRLPartitions: 4}})
	lease := Config{}.WithDefaults().CRLLease
	b, c := f.newReplica(t, nil), f.newReplica(t, nil)
	replicas := []*Service{f.svc, b.svc, c.svc}
	for p := range 4 {
		for i, s := range replicas[1:] {
			if !bytes.Equal(s.PartitionCRL(p).DER, f.svc.PartitionCRL(p).DER) {
				t.Errorf("partition %d: replica %d started with CRL %v, want A's %v", p, i+1, s.PartitionCRL(p).Number, f.svc.PartitionCRL(p).Number)
			}
		}
	}
	for round := range 4 {
		leaf := f.issue(t, fmt.Sprintf("dev-part-%d", round))
		p := *ca.PartitionOf(leaf)
		if _, err := replicas[round%3].Revoke(t.Context(), RevokeRequest{Serial: leaf.SerialNumber, Reason: api.ReasonKeyCompromise}); err != nil {
			t.Fatal(err)
		}
		if round%2 == 1 {
			f.clock.Add(lease) // whoever takes p's lease next signs
		}
		outcomes := make([]crlOutcome, len(replicas))
		var wg sync.WaitGroup
		for i, s := range replicas {
			wg.Go(func() {
				if err := s.catchUp(t.Context(), false); err != nil {
					t.Error(err)
				}
				var err error
				if outcomes[i], err = s.buildPartition(t.Context(), p, false); err != nil {
					t.Errorf("round %d: replica %d buildPartition(%d): %v", round, i, p, err)
				}
			})
		}
		wg.Wait()
		built := 0
		for _, o := range outcomes {
			if o == crlBuilt {
				built++
			}
		}
		if built != 1 {
			t.Fatalf("round %d: %d replicas signed partition %d (outcomes %v), want exactly 1", round, built, p, outcomes)
		}
		latest, err := f.st.LatestPartitionCRL(t.Context(), p, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range replicas {
			if err := s.followPartitions(t.Context()); err != nil {
				t.Fatal(err)
			}
			pub := s.PartitionCRL(p)
			if !bytes.Equal(pub.DER, latest.DER) {
				t.Errorf("round %d: replica %d serves partition %d CRL %v, want the store's %d", round, i, p, pub.Number, latest.Number)
			}
			if _, ok := serials(parseCRL(t, pub, f.ca.Intermediate()))[hexSerial(leaf.SerialNumber)]; !ok {
				t.Errorf("round %d: replica %d's partition %d CRL does not list %x", round, i, p, leaf.SerialNumber)
			}
			s.mu.RLock()
			pending := len(s.parts.pending[p])
			s.mu.RUnlock()
			if pending != 0 {
				t.Errorf("round %d: replica %d has %d revocations pending in partition %d after adopting its CRL", round, i, pending, p)
			}
		}
		f.clock.Add(time.Second)
	}
}

// TestPartitionPublishedByRun runs Run on synctest's fake clock: a
// revocation's partition CRL is re-signed CRLPublishDelay after it, and
// only that partition's; without revocations each partition gets a new
// CRL once half of CRLValidity has passed.
func TestPartitionPublishedByRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		now := func() time.Time { return testNow.Add(time.Since(start)) }
		const delay = 200 * time.Millisecond
		cfg := Config{CRLPublishDelay: delay, CRLValidity: 24 * time.Hour, CRLPartitions: 8}
		f := newFixture(t, fixtureOptions{now: now, cfg: cfg})
		in2 := f.issueIn(t, 2)
		f.issueIn(t, 6) // a live certificate in 6, never revoked
		first := make([]*Published, 8)
		for p := range first {
			first[p] = f.svc.PartitionCRL(p)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- f.svc.Run(ctx) }()
		synctest.Wait()
		for p := range first {
			if f.svc.PartitionCRL(p) != first[p] {
				t.Fatalf("Run published partition %d at start with nothing due", p)
			}
		}
		if _, err := f.svc.Revoke(ctx, RevokeRequest{Serial: in2.SerialNumber, Reason: api.ReasonKeyCompromise}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if f.svc.PartitionCRL(2) != first[2] {
			t.Fatal("partition 2 was re-signed before CRLPublishDelay")
		}
		time.Sleep(delay)
		synctest.Wait()
		for p := range first {
			got := f.svc.PartitionCRL(p)
			switch {
			case p == 2 && got.Number.Cmp(first[p].Number) <= 0:
				t.Errorf("CRLPublishDelay after a revocation in 2: partition 2 number %v, want a new one", got.Number)
			case p != 2 && got != first[p]:
				t.Errorf("partition %d re-signed (number %v) for a revocation in 2", p, got.Number)
			}
		}
		if _, ok := serials(parseCRL(t, f.svc.PartitionCRL(2), f.ca.Intermediate()))[hexSerial(in2.SerialNumber)]; !ok {
			t.Errorf("partition 2 does not list %x", in2.SerialNumber)
		}
		after := f.svc.PartitionCRL(6)
		half := after.ThisUpdate.Add(cfg.CRLValidity / 2)
		time.Sleep(half.Sub(now()) - time.Second)
		synctest.Wait()
		if f.svc.PartitionCRL(6) != after {
			t.Fatal("partition 6 was re-signed before half of CRLValidity")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got := f.svc.PartitionCRL(6); got.Number.Cmp(after.Number) <= 0 {
			t.Errorf("after half of CRLValidity: partition 6 number %v, want a new one after %v", got.Number, after.Number)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}

// latestCounter counts LatestPartitionCRL reads by partition.
type latestCounter struct {
	*boltstore.Store
	mu    sync.Mutex
	reads map[int]int
}

func (c *latestCounter) LatestPartitionCRL(ctx context.Context, p int, newerThan uint64) (store.CRL, error) {
	c.mu.Lock()
	c.reads[p]++
	c.mu.Unlock()
	return c.Store.LatestPartitionCRL(ctx, p, newerThan)
}

// TestFollowPartitionsReadsDueOnly: a replica following the store reads
// the latest CRL of the partitions it has a revocation pending in (or
// whose CRL is past half its validity), not all of them every poll.
func TestFollowPartitionsReadsDueOnly(t *testing.T) {
	f := newFixture(t, fixtureOptions{cfg: Config{CRLPartitions: 16}})
	counter := &latestCounter{Store: f.st, reads: map[int]int{}}
	b := f.newReplica(t, counter)
	leaf := f.issueIn(t, 9)
	f.clock.Add(time.Second)
	f.revoke(t, leaf, api.ReasonKeyCompromise)
	if _, err := f.svc.buildPartition(t.Context(), 9, false); err != nil {
		t.Fatal(err)
	}
	counter.mu.Lock()
	clear(counter.reads)
	counter.mu.Unlock()
	if err := b.svc.catchUp(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	if err := b.svc.followPartitions(t.Context()); err != nil {
		t.Fatal(err)
	}
	counter.mu.Lock()
	reads := maps.Clone(counter.reads)
	counter.mu.Unlock()
	if len(reads) != 1 || reads[9] != 1 {
		t.Errorf("LatestPartitionCRL reads by partition %v, want only partition 9, once", reads)
	}
	if got, want := b.svc.PartitionCRL(9).Number, f.svc.PartitionCRL(9).Number; got.Cmp(want) != 0 {
		t.Errorf("replica B serves partition 9 CRL %v, want A's %v", got, want)
	}
	// Nothing pending: a poll reads nothing.
	counter.mu.Lock()
	clear(counter.reads)
	counter.mu.Unlock()
	if err := b.svc.followPartitions(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(counter.reads) != 0 {
		t.Errorf("with nothing pending, LatestPartitionCRL reads %v, want none", counter.reads)
	}
}

// failingPartitionStore refuses to store partition fail's CRLs.
type failingPartitionStore struct {
	*boltstore.Store
	fail int
}

func (s failingPartitionStore) PutPartitionCRL(ctx context.Context, p int, holder string, now time.Time, c store.CRL) error {
	if p == s.fail {
		return errors.New("disk full")
	}
	return s.Store.PutPartitionCRL(ctx, p, holder, now, c)
}

// A partition whose CRL cannot be published is retried without holding up
// the others: a revocation in partition 2 is published while partition
// 1's publication keeps failing.
func TestPartitionFailureHoldsUpNoOther(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		now := func() time.Time { return testNow.Add(time.Since(start)) }
		const delay = 200 * time.Millisecond
		cfg := Config{CRLPublishDelay: delay, CRLValidity: 24 * time.Hour, CRLPartitions: 4}
		f := newFixture(t, fixtureOptions{now: now, cfg: cfg})
		in1, in2 := f.issueIn(t, 1), f.issueIn(t, 2)
		b := f.newReplica(t, failingPartitionStore{Store: f.st, fail: 1})
		time.Sleep(time.Minute) // past the first Service's leases: b signs
		first := b.svc.PartitionCRL(2)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- b.svc.Run(ctx) }()
		synctest.Wait()
		for _, c := range []*x509.Certificate{in1, in2} {
			if _, err := b.svc.Revoke(ctx, RevokeRequest{Serial: c.SerialNumber, Reason: api.ReasonKeyCompromise}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(delay + time.Second)
		synctest.Wait()
		got := b.svc.PartitionCRL(2)
		if got.Number.Cmp(first.Number) <= 0 {
			t.Errorf("partition 2 number %v after a revocation in it while partition 1 fails, want newer than %v", got.Number, first.Number)
		} else if _, ok := serials(parseCRL(t, got, f.ca.Intermediate()))[hexSerial(in2.SerialNumber)]; !ok {
			t.Errorf("partition 2 does not list %x", in2.SerialNumber)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}
