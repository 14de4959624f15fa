package revocation

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/ocsp"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/boltstore"
)

// Several Services on one boltstore *Store stand for fleetca replicas on
// one shared database: each has its own CRL lease holder, OCSP responder
// and cache, revoked index and metrics, and learns of the others only
// through the store (the log, the latest CRL, the Changes signals).

// replica is one more Service on the fixture's store and CA.
type replica struct {
	svc *Service
	reg *prometheus.Registry
}

// newReplica starts another Service on f's store (or st, a view of it)
// and CA, as another fleetca serve on the same database would.
func (f *fixture) newReplica(t testing.TB, st Store) replica {
	t.Helper()
	deps := f.deps
	if st != nil {
		deps.Store = st
	}
	r := replica{reg: prometheus.NewRegistry()}
	deps.Metrics = r.reg
	var err error
	if r.svc, err = New(t.Context(), f.cfg, deps); err != nil {
		t.Fatalf("New replica: %v", err)
	}
	return r
}

// deafStore is the shared store as a replica sees it while every change
// signal is lost (its database listener reconnecting): only polling the
// log and the latest CRL tells it of other replicas' changes.
type deafStore struct{ *boltstore.Store }

func (deafStore) Changes(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{})
	context.AfterFunc(ctx, func() { close(ch) })
	return ch
}

// run runs s until the returned stop is called; stop fails the test if
// Run did not return nil.
func run(t testing.TB, s *Service) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	}
}

// synctestNow is a clock on synctest's fake time, shifted to the test
// CA's era (synctest's starts in 2000).
func synctestNow() func() time.Time {
	start := time.Now()
	return func() time.Time { return testNow.Add(time.Since(start)) }
}

// ocspStatus is s's OCSP answer about leaf (SHA-1 CertID, no nonce: the
// cached kind).
func (f *fixture) ocspStatus(t testing.TB, s *Service, leaf *x509.Certificate) int {
	t.Helper()
	return respond(t, s, newOCSPRequest(t, leaf, f.ca.Intermediate(), 0)).Status
}

// TestReplicaOCSPFollowsChanges: a revocation through A turns B's cached
// good OCSP answer into revoked once B hears the store's Changes signal,
// with no fake time passing (no poll).
func TestReplicaOCSPFollowsChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A poll so rare that only the signal can explain a prompt answer.
		const poll = time.Minute
		f := newFixture(t, fixtureOptions{now: synctestNow(), cfg: Config{PollInterval: poll}})
		b := f.newReplica(t, nil)
		leaf := f.issue(t, "dev-changes")
		if got := f.ocspStatus(t, b.svc, leaf); got != ocsp.Good {
			t.Fatalf("B's OCSP before the revocation = %d, want good", got)
		}
		stop := run(t, b.svc)
		defer stop()
		synctest.Wait()
		before := time.Now()
		rev := f.revoke(t, leaf, api.ReasonKeyCompromise)
		synctest.Wait()
		if time.Since(before) >= poll {
			t.Fatal("a poll interval of fake time passed: the answer below may come from the poll, not the signal")
		}
		if got := f.ocspStatus(t, b.svc, leaf); got != ocsp.Revoked {
			t.Errorf("B's OCSP after A revoked and the store signalled = %d, want revoked", got)
		}
		if got := metricValue(t, b.reg, "fleetca_revocation_log_seq", nil); got != float64(rev.Seq) {
			t.Errorf("B's fleetca_revocation_log_seq = %v, want %d", got, rev.Seq)
		}
	})
}

// TestReplicaOCSPFollowsPoll: with every Changes signal lost, B still
// answers revoked after its next poll, driven by the fake clock.
func TestReplicaOCSPFollowsPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const poll = 2 * time.Second
		f := newFixture(t, fixtureOptions{now: synctestNow(), cfg: Config{PollInterval: poll}})
		b := f.newReplica(t, deafStore{f.st})
		leaf := f.issue(t, "dev-poll")
		if got := f.ocspStatus(t, b.svc, leaf); got != ocsp.Good {
			t.Fatalf("B's OCSP before the revocation = %d, want good", got)
		}
		stop := run(t, b.svc)
		defer func() { stop() }()
		synctest.Wait()
		f.revoke(t, leaf, api.ReasonCessationOfOperation)
		synctest.Wait()
		if got := f.ocspStatus(t, b.svc, leaf); got != ocsp.Good {
			t.Fatalf("B's OCSP with the signal lost, before its poll = %d, want its cached good (is the signal really lost?)", got)
		}
		time.Sleep(poll)
		synctest.Wait()
		if got := f.ocspStatus(t, b.svc, leaf); got != ocsp.Revoked {
			t.Errorf("B's OCSP after its poll = %d, want revoked", got)
		}
		// Stopped, B follows no more, and its gauge says since when.
		stop()
		stop = func() {}
		time.Sleep(time.Minute)
		if age := metricValue(t, b.reg, "fleetca_revocation_follow_age_seconds", nil); age < 60 {
			t.Errorf("fleetca_revocation_follow_age_seconds a minute after B stopped = %v, want at least 60", age)
		}
	})
}

// TestReplicaFeed: the feed through B delivers every revocation once and
// in order, whichever replica revoked it; a client that moves from A to B
// with its cursor neither skips nor repeats; and B's long-poll wakes for
// A's revocation.
func TestReplicaFeed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, fixtureOptions{now: synctestNow()})
		b := f.newReplica(t, nil)
		stop := run(t, b.svc)
		defer stop()
		var want []string
		for i := range 6 {
			leaf := f.issue(t, fmt.Sprintf("dev-feed-%d", i))
			through := f.svc
			if i%2 == 1 {
				through = b.svc
			}
			if _, err := through.Revoke(t.Context(), RevokeRequest{Serial: leaf.SerialNumber, Reason: api.ReasonSuperseded}); err != nil {
				t.Fatalf("Revoke %d: %v", i, err)
			}
			want = append(want, hexSerial(leaf.SerialNumber))
		}
		var got []string
		var seq uint64
		for _, step := range []struct {
			name string
			s    *Service
		}{{"A", f.svc}, {"B", b.svc}, {"A", f.svc}, {"B", b.svc}} {
			revs, err := step.s.Feed(t.Context(), seq, 2, 0)
			if err != nil {
				t.Fatalf("Feed(%d) through %s: %v", seq, step.name, err)
			}
			for _, r := range revs {
				got = append(got, hexSerial(r.Serial))
				seq = r.Seq
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("the feed read through A and B in turn = %v, want every revocation once, in order: %v", got, want)
		}

		// B's waiter, for A's next revocation.
		leaf := f.issue(t, "dev-feed-wait")
		done := make(chan []store.Revocation, 1)
		go func() {
			revs, err := b.svc.Feed(t.Context(), seq, 0, api.FeedMaxWait)
			if err != nil {
				t.Errorf("B's waiting Feed: %v", err)
			}
			done <- revs
		}()
		synctest.Wait()
		f.revoke(t, leaf, api.ReasonKeyCompromise)
		synctest.Wait()
		select {
		case revs := <-done:
			if len(revs) != 1 || revs[0].Serial.Cmp(leaf.SerialNumber) != 0 {
				t.Errorf("B's waiting Feed = %+v, want A's revocation of %s", revs, hexSerial(leaf.SerialNumber))
			}
		default:
			t.Fatal("B's waiting Feed did not return when A revoked (B was not woken)")
		}
	})
}

// TestReplicaCRLOneSigner: CRL builds on three replicas at once: one
// signer per lease, the numbers in the store strictly increase, and every
// replica serves the signer's CRL, byte for byte.
func TestReplicaCRLOneSigner(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	lease := Config{}.WithDefaults().CRLLease
	b, c := f.newReplica(t, nil), f.newReplica(t, nil)
	replicas := []*Service{f.svc, b.svc, c.svc}
	// A signed at New and holds the lease: B and C adopted its CRL.
	for i, s := range replicas[1:] {
		if !bytes.Equal(s.CRL().DER, f.svc.CRL().DER) {
			t.Errorf("replica %d started with CRL %v, want A's %v (A holds the lease)", i+1, s.CRL().Number, f.svc.CRL().Number)
		}
	}
	if got := metricValue(t, f.reg, "fleetca_revocation_crl_lease_held", nil); got != 1 {
		t.Errorf("A's fleetca_revocation_crl_lease_held = %v, want 1", got)
	}
	if got := metricValue(t, b.reg, "fleetca_revocation_crl_lease_held", nil); got != 0 {
		t.Errorf("B's fleetca_revocation_crl_lease_held = %v, want 0", got)
	}

	var numbers []uint64
	revoked := map[string]store.Revocation{}
	for round := range 6 {
		leaf := f.issue(t, fmt.Sprintf("dev-signer-%d", round))
		rev, err := replicas[round%3].Revoke(t.Context(), RevokeRequest{Serial: leaf.SerialNumber, Reason: api.ReasonKeyCompromise})
		if err != nil {
			t.Fatal(err)
		}
		revoked[hexSerial(leaf.SerialNumber)] = rev[0]
		if round%2 == 1 {
			// The lease runs out: whoever takes it next signs.
			f.clock.Add(lease)
		}
		outcomes := make([]crlOutcome, len(replicas))
		var wg sync.WaitGroup
		for i, s := range replicas {
			wg.Go(func() {
				var err error
				if outcomes[i], err = s.buildCRL(t.Context(), true); err != nil {
					t.Errorf("round %d: replica %d buildCRL: %v", round, i, err)
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
			t.Fatalf("round %d: %d replicas signed a CRL (outcomes %v), want exactly 1", round, built, outcomes)
		}
		latest, err := f.st.LatestCRL(t.Context(), 0)
		if err != nil {
			t.Fatal(err)
		}
		numbers = append(numbers, latest.Number)
		for i, s := range replicas {
			if err := s.catchUp(t.Context(), true); err != nil {
				t.Fatal(err)
			}
			if p := s.CRL(); !bytes.Equal(p.DER, latest.DER) {
				t.Errorf("round %d: replica %d serves CRL %v, want the store's latest, %d, byte for byte", round, i, p.Number, latest.Number)
			}
		}
		checkEntries(t, parseCRL(t, b.svc.CRL(), f.ca.Intermediate()), revoked)
		f.clock.Add(time.Second)
	}
	for i := 1; i < len(numbers); i++ {
		if numbers[i] <= numbers[i-1] {
			t.Fatalf("CRL numbers %v do not strictly increase", numbers)
		}
	}
	// A replica restarted (a new holder) numbers on.
	f.clock.Add(lease)
	again := f.restart(t)
	if again.CRL().Number.Uint64() <= numbers[len(numbers)-1] {
		t.Errorf("a restarted replica's CRL number %v, want > %d", again.CRL().Number, numbers[len(numbers)-1])
	}
}

// TestReplicaCRLFailover: A holds the lease and dies (no Run, no
// release): B, which has a revocation to publish, serves A's CRL until the
// lease runs out and then signs, numbering on. A that stops cleanly hands
// the lease over at once.
func TestReplicaCRLFailover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const lease = 10 * time.Second
		now := synctestNow()
		f := newFixture(t, fixtureOptions{now: now, cfg: Config{CRLLease: lease}})
		leaseEnd := now().Add(lease)
		first := f.svc.CRL()
		b := f.newReplica(t, nil)
		stop := run(t, b.svc)
		defer func() { stop() }()
		leaf := f.issue(t, "dev-failover")
		if _, err := b.svc.Revoke(t.Context(), RevokeRequest{Serial: leaf.SerialNumber, Reason: api.ReasonKeyCompromise}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(leaseEnd.Sub(now()) - time.Second)
		synctest.Wait()
		if got := b.svc.CRL(); !bytes.Equal(got.DER, first.DER) {
			t.Fatalf("B signed CRL %v while A's lease ran; want A's %v served", got.Number, first.Number)
		}
		if got := metricValue(t, b.reg, "fleetca_revocation_crl_lease_held", nil); got != 0 {
			t.Errorf("B's fleetca_revocation_crl_lease_held while A's lease runs = %v, want 0", got)
		}
		time.Sleep(time.Second + Config{}.WithDefaults().PollInterval)
		synctest.Wait()
		got := b.svc.CRL()
		if got.Number.Cmp(first.Number) <= 0 {
			t.Fatalf("after A's lease ran out, B serves CRL %v, want one it signed after %v", got.Number, first.Number)
		}
		if _, ok := serials(parseCRL(t, got, f.ca.Intermediate()))[hexSerial(leaf.SerialNumber)]; !ok {
			t.Error("B's CRL does not list the revocation made through B")
		}
		if got := metricValue(t, b.reg, "fleetca_revocation_crl_lease_held", nil); got != 1 {
			t.Errorf("B's fleetca_revocation_crl_lease_held after it signed = %v, want 1", got)
		}
		if got := metricValue(t, b.reg, "fleetca_revocation_crl_number", nil); got != float64(b.svc.CRL().Number.Uint64()) {
			t.Errorf("B's fleetca_revocation_crl_number = %v, want %v", got, b.svc.CRL().Number)
		}

		// B stops cleanly: C, with a revocation to publish, signs at once.
		c := f.newReplica(t, nil)
		stopC := run(t, c.svc)
		defer stopC()
		synctest.Wait()
		stop()
		stop = func() {}
		leaf2 := f.issue(t, "dev-handover")
		if _, err := c.svc.Revoke(t.Context(), RevokeRequest{Serial: leaf2.SerialNumber, Reason: api.ReasonSuperseded}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(Config{}.WithDefaults().CRLPublishDelay)
		synctest.Wait()
		if _, ok := serials(parseCRL(t, c.svc.CRL(), f.ca.Intermediate()))[hexSerial(leaf2.SerialNumber)]; !ok {
			t.Errorf("C's CRL %v, a publish delay after its revocation, does not list it: B did not hand the lease over", c.svc.CRL().Number)
		}
	})
}

// TestReplicaAdoptChecks: a CRL in the store is served only if this CA's
// intermediate issued and signed it, its number is the store's, and it is
// not stale; one that fails stays unserved.
func TestReplicaAdoptChecks(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	b := f.newReplica(t, nil)
	inter := f.ca.Intermediate()
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherTmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Other CA"},
		NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCRLSign | x509.KeyUsageCertSign}
	otherDER, err := x509.CreateCertificate(rand.Reader, otherTmpl, otherTmpl, otherKey.Public(), otherKey)
	if err != nil {
		t.Fatal(err)
	}
	other, err := x509.ParseCertificate(otherDER)
	if err != nil {
		t.Fatal(err)
	}
	// sameName signs with another key under the intermediate's own name.
	sameNameTmpl := *otherTmpl
	sameNameTmpl.Subject = inter.Subject
	sameNameDER, err := x509.CreateCertificate(rand.Reader, &sameNameTmpl, &sameNameTmpl, otherKey.Public(), otherKey)
	if err != nil {
		t.Fatal(err)
	}
	sameName, err := x509.ParseCertificate(sameNameDER)
	if err != nil {
		t.Fatal(err)
	}
	foreign := func(issuer *x509.Certificate) func(n uint64, now time.Time) []byte {
		return func(n uint64, now time.Time) []byte {
			der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: new(big.Int).SetUint64(n),
				ThisUpdate: now, NextUpdate: now.Add(time.Hour)}, issuer, otherKey)
			if err != nil {
				t.Fatal(err)
			}
			return der
		}
	}
	ours := func(n uint64, this, next time.Time) []byte {
		der, err := f.ca.SignCRL(t.Context(), ca.CRLTemplate{Number: new(big.Int).SetUint64(n), ThisUpdate: this, NextUpdate: next})
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	for _, tc := range []struct {
		name string
		der  func(n uint64, now time.Time) []byte
		// number is what the store records, relative to the CRL's own.
		numberOff int
		ok        bool
	}{
		{"fail/other-issuer", foreign(other), 0, false},
		{"fail/intermediate-name-other-key", foreign(sameName), 0, false},
		{"fail/stale", func(n uint64, now time.Time) []byte { return ours(n, now.Add(-2*time.Hour), now) }, 0, false},
		{"fail/number-not-the-stores", func(n uint64, now time.Time) []byte { return ours(n, now, now.Add(time.Hour)) }, 1, false},
		{"fail/not-a-crl", func(uint64, time.Time) []byte { return []byte("not DER") }, 0, false},
		{"ok/ours", func(n uint64, now time.Time) []byte { return ours(n, now, now.Add(time.Hour)) }, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.clock.Add(time.Minute) // past any lease
			now := f.now()
			before := b.svc.CRL()
			latest, err := f.st.LatestCRL(t.Context(), 0)
			if err != nil {
				t.Fatal(err)
			}
			n := latest.Number + 10
			const holder = "another-writer"
			if ok, err := f.st.LeaseCRL(t.Context(), holder, now, now.Add(time.Minute)); !ok || err != nil {
				t.Fatalf("LeaseCRL = %v, %v", ok, err)
			}
			der := tc.der(n, now.UTC().Truncate(time.Second))
			if err := f.st.PutCRL(t.Context(), holder, now, store.CRL{Number: n + uint64(tc.numberOff), ThisUpdate: now, NextUpdate: now.Add(time.Hour), DER: der}); err != nil {
				t.Fatalf("PutCRL: %v", err)
			}
			if err := b.svc.catchUp(t.Context(), true); err != nil {
				t.Fatalf("catchUp: %v", err)
			}
			served := !bytes.Equal(b.svc.CRL().DER, before.DER)
			if served != tc.ok {
				t.Errorf("B serves the store's CRL = %v, want %v", served, tc.ok)
			}
			if served && !bytes.Equal(b.svc.CRL().DER, der) {
				t.Error("B serves a CRL that is not the store's")
			}
		})
	}
}

// leaseCounter is the shared store as a replica sees it, counting its
// LeaseCRL calls; past limit, a call blocks until ctx ends, so that a loop
// spinning on the lease is reported instead of stopping the fake clock.
type leaseCounter struct {
	*boltstore.Store
	limit int
	mu    sync.Mutex
	n     int
}

func (c *leaseCounter) LeaseCRL(ctx context.Context, holder string, now, until time.Time) (bool, error) {
	c.mu.Lock()
	c.n++
	n := c.n
	c.mu.Unlock()
	if n > c.limit {
		<-ctx.Done()
		return false, ctx.Err()
	}
	return c.Store.LeaseCRL(ctx, holder, now, until)
}

func (c *leaseCounter) calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestReplicaCRLWaitsForHolder: when B's CRL is due (half its validity
// passed) and A holds the lease without publishing yet (signing a large
// CRL), B asks for the lease once a PollInterval, not in a busy loop, and
// serves A's CRL meanwhile.
func TestReplicaCRLWaitsForHolder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		now := synctestNow()
		cfg := Config{CRLValidity: 10 * time.Minute, PollInterval: time.Second}
		f := newFixture(t, fixtureOptions{now: now, cfg: cfg})
		first := f.svc.CRL()
		st := &leaseCounter{Store: f.st, limit: 100}
		b := f.newReplica(t, st)
		stop := run(t, b.svc)
		defer stop()
		due := first.ThisUpdate.Add(cfg.CRLValidity / 2)
		time.Sleep(due.Sub(now()) - time.Second)
		synctest.Wait()
		// A takes the lease for its next CRL, and is slow to sign it.
		if ok, err := f.st.LeaseCRL(t.Context(), f.svc.holder, now(), now().Add(time.Hour)); !ok || err != nil {
			t.Fatalf("A's LeaseCRL = %v, %v", ok, err)
		}
		before := st.calls()
		const polls = 10
		time.Sleep(time.Second + polls*cfg.PollInterval)
		synctest.Wait()
		if got := st.calls() - before; got < polls/2 || got > polls+2 {
			t.Errorf("B asked for the lease %d times in %d poll intervals after its CRL fell due, want about one per interval", got, polls)
		}
		if got := b.svc.CRL(); !bytes.Equal(got.DER, first.DER) {
			t.Errorf("B serves CRL %v while A holds the lease, want A's %v", got.Number, first.Number)
		}
	})
}

// slowSigner is the CA whose CRL signing, once armed, takes d on the
// fixture's clock, and calls during (if set) while it signs.
type slowSigner struct {
	*ca.Authority
	clock  *clock
	d      time.Duration
	armed  *bool
	during func()
}

func (s slowSigner) SignCRL(ctx context.Context, tmpl ca.CRLTemplate) ([]byte, error) {
	if *s.armed {
		s.clock.Add(s.d)
		if s.during != nil {
			s.during()
		}
	}
	return s.Authority.SignCRL(ctx, tmpl)
}

// TestReplicaCRLSignedPastLease: a CRL whose signing outlasts the lease is
// still recorded and served when no other replica took the lease
// meanwhile, and refused, the other's CRL served, when one did.
func TestReplicaCRLSignedPastLease(t *testing.T) {
	lease := Config{}.WithDefaults().CRLLease
	for _, tc := range []struct {
		name       string
		otherSigns bool
		want       crlOutcome
	}{
		{"ok/no-other-replica", false, crlBuilt},
		{"ok/another-took-the-lease", true, crlNotHolder},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, fixtureOptions{})
			armed := false
			var other crlOutcome
			var otherErr error
			signer := slowSigner{Authority: f.ca, clock: f.clock, d: lease + time.Second, armed: &armed}
			if tc.otherSigns {
				signer.during = func() { other, otherErr = f.svc.buildCRL(t.Context(), true) }
			}
			deps := f.deps
			deps.Metrics = nil
			deps.CA = signer
			f.clock.Add(lease) // A's lease from New ran out
			slow, err := New(t.Context(), f.cfg, deps)
			if err != nil {
				t.Fatal(err)
			}
			before := slow.CRL().Number
			armed = true
			out, err := slow.buildCRL(t.Context(), true)
			if err != nil || out != tc.want {
				t.Fatalf("buildCRL signing past its lease = %v, %v; want %v", out, err, tc.want)
			}
			if !tc.otherSigns {
				if slow.CRL().Number.Cmp(before) <= 0 {
					t.Errorf("CRL number after the build = %v, want > %v", slow.CRL().Number, before)
				}
				return
			}
			if otherErr != nil || other != crlBuilt {
				t.Fatalf("A's buildCRL while the slow replica signed = %v, %v; want built", other, otherErr)
			}
			if !bytes.Equal(slow.CRL().DER, f.svc.CRL().DER) {
				t.Errorf("the slow replica serves CRL %v, want A's %v", slow.CRL().Number, f.svc.CRL().Number)
			}
		})
	}
}

// TestReplicaCRLNumbersRunning: three running replicas, revocations
// through each in turn, and one replica restarted now and then: no
// replica ever serves a CRL numbered below one it served before, the
// store's latest number never falls, and in the end all three serve
// the same CRL, listing every revocation.
func TestReplicaCRLNumbersRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		now := synctestNow()
		f := newFixture(t, fixtureOptions{now: now})
		type running struct {
			svc  *Service
			stop func()
		}
		start := func(s *Service) *running { return &running{svc: s, stop: run(t, s)} }
		reps := []*running{start(f.svc), start(f.newReplica(t, nil).svc), start(f.newReplica(t, nil).svc)}
		defer func() {
			for _, r := range reps {
				r.stop()
			}
		}()
		served := make([]*big.Int, len(reps))
		var latest uint64
		revoked := map[string]store.Revocation{}
		for round := range 12 {
			leaf := f.issue(t, fmt.Sprintf("dev-running-%d", round))
			revs, err := reps[round%3].svc.Revoke(t.Context(), RevokeRequest{Serial: leaf.SerialNumber, Reason: api.ReasonKeyCompromise})
			if err != nil {
				t.Fatal(err)
			}
			revoked[hexSerial(leaf.SerialNumber)] = revs[0]
			if round%4 == 3 {
				// A restart: the old process hands the lease over, the
				// new one has a holder name of its own.
				i := (round / 4) % 3
				reps[i].stop()
				reps[i] = start(f.newReplica(t, nil).svc)
				served[i] = nil
			}
			time.Sleep(2 * time.Second)
			synctest.Wait()
			c, err := f.st.LatestCRL(t.Context(), 0)
			if err != nil {
				t.Fatal(err)
			}
			if c.Number < latest {
				t.Fatalf("round %d: the store's latest CRL number went from %d to %d", round, latest, c.Number)
			}
			latest = c.Number
			for i, r := range reps {
				n := r.svc.CRL().Number
				if served[i] != nil && n.Cmp(served[i]) < 0 {
					t.Errorf("round %d: replica %d serves CRL %v after %v", round, i, n, served[i])
				}
				served[i] = n
			}
		}
		want := reps[0].svc.CRL()
		checkEntries(t, parseCRL(t, want, f.ca.Intermediate()), revoked)
		for i, r := range reps[1:] {
			if !bytes.Equal(r.svc.CRL().DER, want.DER) {
				t.Errorf("replica %d serves CRL %v, replica 0 serves %v: want the same", i+1, r.svc.CRL().Number, want.Number)
			}
		}
		if want.Number.Uint64() != latest {
			t.Errorf("replicas serve CRL %v, the store's latest is %d", want.Number, latest)
		}
	})
}
