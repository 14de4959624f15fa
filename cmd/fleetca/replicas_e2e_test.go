package main

// Three replicas end to end (issue 14): one real PostgreSQL (pgtest), one
// `fleetca init --store`, and three `fleetca serve` processes on copies of
// the data directory, as three machines behind a load balancer would run
// them. Every replica-wide rule is checked through the replicas' own
// interfaces: the enrollment API, the admin API, openssl ocsp, the
// revocation feed and /crl.

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/pgtest"
	"github.com/fleetca/fleetca/internal/testenv"
)

const (
	// replicaWait bounds each wait for something another replica did to
	// show (a revocation in OCSP, the feed's last entry, one CRL on every
	// replica): a hang guard, never a measure of speed.
	replicaWait = 30 * time.Second
	// replicaCRLLease is revocation.crl_lease in the replicas' fleetca.yaml:
	// its minimum, so that the replica killed below, which last signed a
	// CRL, is replaced within seconds, as the issue asks.
	replicaCRLLease = "2s"
	// crlSampleEvery is the wait between two rounds of /crl fetches of the
	// CRL collector.
	crlSampleEvery = 50 * time.Millisecond
)

func TestReplicas(t *testing.T) {
	t.Parallel()
	testenv.Need(t, "openssl")
	began := time.Now()
	dsn := pgtest.NewDatabase(t)
	f := initFixtureWith(t, "--store", dsn)
	editConfig(t, f.dataDir, `crl_lease: "15s"`, `crl_lease: "`+replicaCRLLease+`"`)

	// Three machines: each its own copy of D, its own kernel-chosen ports.
	names := []string{"A", "B", "C"}
	reps := make([]*fixture, len(names))
	for i, name := range names {
		g := *f
		g.dataDir = filepath.Join(filepath.Dir(f.dataDir), "D-"+name)
		copyDir(t, f.dataDir, g.dataDir)
		g.start()
		reps[i] = &g
	}
	t.Logf("three replicas started in %v", time.Since(began).Round(time.Millisecond))
	A, B, C := reps[0], reps[1], reps[2]
	hc := f.loadClient(64, nil)
	admin := f.adminToken()

	crls := startCRLCollector(t, reps)

	// enroll sends one enrollment to replica r and returns the answer.
	enroll := func(t *testing.T, r *fixture, token, device string) (answer, error) {
		return send(t.Context(), hc, "POST", r.srv.httpsURL+api.EnrollPath, enrollHeader(token), newCSRPEM(t, device))
	}
	mustEnroll := func(t *testing.T, r *fixture, token, device string) api.EnrollResponse {
		t.Helper()
		a, err := enroll(t, r, token, device)
		var got api.EnrollResponse
		if err != nil || a.status != http.StatusCreated || json.Unmarshal(a.body, &got) != nil || got.DeviceID != device {
			t.Fatalf("enroll %s through %s: %v, status %d, body %s; want 201 for it", device, r.srv.httpsURL, err, a.status, a.body)
		}
		return got
	}
	revoke := func(ctx context.Context, r *fixture, serial, reason string) (answer, error) {
		return send(ctx, hc, "POST", r.srv.httpsURL+api.AdminPrefix+"/certificates/"+serial+"/revoke", adminHeader(admin),
			[]byte(`{"reason":"`+reason+`"}`))
	}

	// ocspDevice is enrolled through A; its certificate is revoked below.
	var ocspDevice api.EnrollResponse
	t.Run("enrollments spread over all three", func(t *testing.T) {
		token, _ := A.newToken(hc, api.TokenRequest{DevicePattern: "spread-*", Uses: 9})
		for i := range 9 {
			r, device := reps[i%3], fmt.Sprintf("spread-%d", i)
			got := mustEnroll(t, r, token, device)
			if i == 0 {
				ocspDevice = got
			}
			// Another replica lists it: the record is in the database.
			other := reps[(i+1)%3].with(t)
			if certs := other.deviceCerts(device); len(certs) != 1 || certs[0].Serial != got.Serial {
				t.Errorf("%s enrolled through replica %s: replica %s lists %+v, want its serial %s", device, names[i%3], names[(i+1)%3], certs, got.Serial)
			}
		}
	})
	if ocspDevice.Serial == "" {
		t.FailNow()
	}

	// race sends 3 x 16 enrollments at once, racer i to replica i%3.
	const racers = 48
	raceEnroll := func(t *testing.T, token string, device func(i int) string) []answer {
		csrs := make([][]byte, racers)
		for i := range csrs {
			csrs[i] = newCSRPEM(t, device(i))
		}
		answers := make([]answer, racers)
		errs := make([]error, racers)
		race(racers, func(i int) {
			answers[i], errs[i] = send(t.Context(), hc, "POST", reps[i%3].srv.httpsURL+api.EnrollPath, enrollHeader(token), csrs[i])
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("racer %d (replica %s): %v", i, names[i%3], err)
			}
		}
		for _, a := range answers {
			if a.status != http.StatusCreated && a.problemType() != "unauthorized" {
				t.Errorf("a refused racer got %d %q, want an unauthorized problem", a.status, a.body)
				break
			}
		}
		return answers
	}
	t.Run("a one-time token raced from all three", func(t *testing.T) {
		g := B.with(t)
		token, id := g.newToken(hc, api.TokenRequest{DeviceID: "race-once"})
		answers := raceEnroll(t, token, func(int) string { return "race-once" })
		if diff := cmp.Diff(map[int]int{201: 1, 401: racers - 1}, countStatuses(answers)); diff != "" {
			t.Errorf("%d enrollments with one one-time token over three replicas: statuses (-want +got):\n%s", racers, diff)
		}
		if n := C.with(t).tokenSpent(id); n != 1 {
			t.Errorf("the token's spent uses = %d, want 1", n)
		}
		if n := len(A.with(t).deviceCerts("race-once")); n != 1 {
			t.Errorf("race-once has %d certificates, want 1", n)
		}
	})
	t.Run("a pattern token with 5 uses raced from all three", func(t *testing.T) {
		const uses = 5
		g := C.with(t)
		token, id := g.newToken(hc, api.TokenRequest{DevicePattern: "race-p-*", Uses: uses})
		answers := raceEnroll(t, token, func(i int) string { return fmt.Sprintf("race-p-%02d", i) })
		if diff := cmp.Diff(map[int]int{201: uses, 401: racers - uses}, countStatuses(answers)); diff != "" {
			t.Errorf("%d enrollments with a %d-use pattern token over three replicas: statuses (-want +got):\n%s", racers, uses, diff)
		}
		if n := A.with(t).tokenSpent(id); n != uses {
			t.Errorf("the token's spent uses = %d, want %d", n, uses)
		}
		certs := 0
		for _, c := range B.with(t).allCerts() {
			if strings.HasPrefix(c.DeviceID, "race-p-") {
				certs++
			}
		}
		if certs != uses {
			t.Errorf("the race-p-* devices have %d certificates, want %d", certs, uses)
		}
	})

	t.Run("revoked through A, openssl ocsp against B says revoked", func(t *testing.T) {
		b, c := B.with(t), C.with(t)
		writeFile(t, filepath.Join(f.work, "ocsp-dev.crt"), ocspDevice.Certificate)
		// Without a nonce B caches its good answer: the revocation through
		// A must replace it.
		b.wantOCSP(b.ocsp("ocsp-dev.crt", "-no_nonce"), "good", "")
		c.wantOCSP(c.ocsp("ocsp-dev.crt"), "good", "")
		a, err := revoke(t.Context(), A, ocspDevice.Serial, "keyCompromise")
		if err != nil || a.status != http.StatusOK {
			t.Fatalf("revoke %s through A: %v, status %d, body %s; want 200", ocspDevice.Serial, err, a.status, a.body)
		}
		acked := time.Now()
		took := waitWithin(t, acked, replicaWait, "openssl ocsp against B saying revoked", func() bool {
			return b.ocsp("ocsp-dev.crt", "-no_nonce").status == "revoked"
		})
		// The target is one second; bench/replicaload measures it.
		t.Logf("revoked through A: B's OCSP answer (cached as good before) said revoked %v after A's 200", took.Round(time.Millisecond))
		b.wantOCSP(b.ocsp("ocsp-dev.crt", "-no_nonce"), "revoked", "keyCompromise")
		b.wantOCSP(b.ocsp("ocsp-dev.crt"), "revoked", "keyCompromise")
		c.wantOCSP(c.ocsp("ocsp-dev.crt"), "revoked", "keyCompromise")
	})

	t.Run("the feed read from B then C with one cursor", func(t *testing.T) {
		const n = 12
		token, _ := A.newToken(hc, api.TokenRequest{DevicePattern: "feed-*", Uses: n})
		want := map[string]bool{ocspDevice.Serial: true}
		serials := make([]string, n)
		for i := range n {
			serials[i] = mustEnroll(t, reps[i%3], token, fmt.Sprintf("feed-%02d", i)).Serial
			want[serials[i]] = true
		}
		// The revocations go through all three at once while one reader
		// pages the feed, three entries a page, alternating between B and
		// C with the cursor the last page gave.
		var revokers sync.WaitGroup
		revokeErrs := make([]error, n)
		for i := range n {
			revokers.Go(func() {
				a, err := revoke(t.Context(), reps[i%3], serials[i], "superseded")
				if err == nil && a.status != http.StatusOK {
					err = fmt.Errorf("status %d, body %s", a.status, a.body)
				}
				revokeErrs[i] = err
			})
		}
		ctx, cancel := context.WithTimeout(t.Context(), replicaWait)
		defer cancel()
		seen := map[string]int{}
		var since uint64
		var pages []string
		for page := 0; len(seen) < len(want) && ctx.Err() == nil; page++ {
			r, name := B, "B"
			if page%2 == 1 {
				r, name = C, "C"
			}
			a, err := send(ctx, hc, "GET", api.FeedURL(r.srv.httpsURL, since, 3, 2*time.Second), nil, nil)
			var fr api.FeedResponse
			if err != nil || a.status != http.StatusOK || json.Unmarshal(a.body, &fr) != nil {
				if ctx.Err() != nil {
					break
				}
				t.Fatalf("GET the feed from %s since %d: %v, status %d, body %s", name, since, err, a.status, a.body)
			}
			for _, e := range fr.Revocations {
				if e.Seq <= since {
					t.Errorf("the feed from %s since %d gave seq %d, not after the cursor", name, since, e.Seq)
				}
				since = e.Seq
				seen[e.Serial]++
			}
			if fr.Last != since {
				t.Errorf("the feed from %s: last = %d, want %d (its last entry's seq, or the cursor)", name, fr.Last, since)
			}
			pages = append(pages, fmt.Sprintf("%s:%d", name, len(fr.Revocations)))
		}
		revokers.Wait()
		for i, err := range revokeErrs {
			if err != nil {
				t.Errorf("revoke %s through %s: %v; want 200", serials[i], names[i%3], err)
			}
		}
		t.Logf("feed pages (replica:entries): %s", strings.Join(pages, " "))
		for serial, times := range seen {
			if times != 1 || !want[serial] {
				t.Errorf("the feed gave %s %d times (revoked by this test: %v), want once", serial, times, want[serial])
			}
		}
		for serial := range want {
			if seen[serial] == 0 {
				t.Errorf("the feed, read from B and C in turn, skipped the revocation of %s", serial)
			}
		}
	})

	t.Run("kill -9 of the last CRL signer under load", func(t *testing.T) {
		victim := lastSigner(reps)
		survivors := []*fixture{}
		for _, r := range reps {
			if r != victim {
				survivors = append(survivors, r)
			}
		}
		token, _ := A.newToken(hc, api.TokenRequest{DevicePattern: "load-*", Uses: 100_000})
		l := &ledger{enrolled: map[string]string{}, revoked: map[string]bool{}}
		l.acked, l.target, l.trip = 0, 60, make(chan struct{})
		trip := l.trip
		var killed atomic.Bool
		ctx, cancel := context.WithCancel(t.Context())
		var workers sync.WaitGroup
		for w := range 12 {
			r := reps[w%3]
			workers.Go(func() {
				replicaWorker(ctx, hc, l, r.srv.httpsURL, token, admin, w, func() bool { return r == victim && killed.Load() })
			})
		}
		select {
		case <-trip:
		case <-time.After(replicaWait):
			cancel()
			workers.Wait()
			t.Fatalf("fewer than 60 writes acknowledged within %s; answers: %v", replicaWait, l.errs)
		}
		killed.Store(true)
		crls.down(victim)
		victim.srv.kill(t)
		l.mu.Lock()
		before := l.acked
		l.acked, l.target, l.trip = 0, 60, make(chan struct{})
		trip = l.trip
		l.mu.Unlock()
		select {
		case <-trip:
		case <-time.After(replicaWait):
			cancel()
			workers.Wait()
			t.Fatalf("the two replicas left acknowledged fewer than 60 writes within %s of the kill; answers: %v", replicaWait, l.errs)
		}
		cancel()
		workers.Wait()
		l.mu.Lock()
		t.Logf("killed %s (the last CRL signer) after %d acknowledged writes; %d more after it; %d enrollments and %d revocations acknowledged",
			victim.srv.httpsURL, before, l.acked, len(l.enrolled), len(l.revoked))
		l.mu.Unlock()
		for _, err := range l.errs {
			t.Errorf("a request that a live replica did not answer with its acknowledgement: %v", err)
		}
		// Every acknowledged write is in the database: through a survivor's
		// admin API (certificates), its feed and, once a survivor took the
		// lease over, its CRL.
		if lost := survivors[0].with(t).lostWrites(l); lost != 0 {
			t.Errorf("lost %d acknowledged writes, want 0", lost)
		}
	})

	t.Run("CRL numbers strictly increase, and the replicas settle on one CRL", func(t *testing.T) {
		// The killed replica held the CRL lease, and it may have died
		// within revocation.crl_publish_delay of the revocations before
		// it, signing none: a survivor signs them once the lease runs out
		// (replicaCRLLease, then a poll). Wait until the samples hold a
		// second CRL, whatever the kill's timing.
		waitWithin(t, time.Now(), replicaWait, "a second distinct CRL among the samples", func() bool {
			return crls.distinct() >= 2
		})
		samples := crls.stop(t)
		checkCRLSamples(t, names, samples)
		// The killed replica restarts from its data directory; then all
		// three serve the same CRL, numbered at least as high as any seen.
		for i, r := range reps {
			if r.srv.stopped {
				reps[i].t = t
				reps[i].start()
				reps[i].t = f.t
			}
		}
		var ders [][]byte
		waitWithin(t, time.Now(), replicaWait, "the three replicas serving the same CRL", func() bool {
			ders = ders[:0]
			for _, r := range reps {
				_, der, err := fetchCRL(t.Context(), hc, r.srv.httpURL)
				if err != nil {
					return false
				}
				ders = append(ders, der)
			}
			return string(ders[0]) == string(ders[1]) && string(ders[1]) == string(ders[2])
		})
		last, err := x509.ParseRevocationList(ders[0])
		if err != nil {
			t.Fatal(err)
		}
		maxSeen := new(big.Int)
		for _, s := range samples {
			if s.number.Cmp(maxSeen) > 0 {
				maxSeen = s.number
			}
		}
		if c := last.Number.Cmp(maxSeen); c < 0 || (c == 0 && sha256.Sum256(ders[0]) != sampleOf(samples, maxSeen)) {
			t.Errorf("the settled CRL is number %s, want above %s (the highest collected) or that very CRL", last.Number, maxSeen)
		}
		t.Logf("settled on CRL %s (%d entries) on all three replicas; %d CRL fetches collected, numbers up to %s",
			last.Number, len(last.RevokedCertificateEntries), len(samples), maxSeen)
	})
	t.Logf("TestReplicas took %v", time.Since(began).Round(time.Millisecond))
}

// TestReplicasOneCRLSigner: a second replica started while the first
// holds the CRL lease serves the first one's CRL, byte for byte, and
// signs none of its own (TestPostgresTwoReplicas checks the lease row's
// holder name; this, what a verifier sees). serve once named every
// replica of a PostgreSQL store "fleetca-bolt" to the lease, as it names
// its one process on bbolt, so each replica took the lease it believed
// its own and signed.
func TestReplicasOneCRLSigner(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t)
	f := initFixtureWith(t, "--store", dsn)
	// A lease that outlasts the test: the first replica keeps it.
	editConfig(t, f.dataDir, `crl_lease: "15s"`, `crl_lease: "10m"`)
	g := *f
	g.dataDir = filepath.Join(filepath.Dir(f.dataDir), "D-2")
	copyDir(t, f.dataDir, g.dataDir)
	f.start()
	first, firstDER, err := fetchCRL(t.Context(), f.client, f.srv.httpURL)
	if err != nil {
		t.Fatal(err)
	}
	g.start()
	second, secondDER, err := fetchCRL(t.Context(), g.client, g.srv.httpURL)
	if err != nil {
		t.Fatal(err)
	}
	if string(firstDER) != string(secondDER) {
		t.Errorf("the second replica serves CRL %s, the first CRL %s: want the first replica's CRL, which holds the lease", second.Number, first.Number)
	}
	if n := strings.Count(g.srv.log.String(), `"msg":"CRL published"`); n != 0 {
		t.Errorf("the second replica logged \"CRL published\" %d times while the first held the CRL lease, want 0", n)
	}
}

// editConfig replaces old, which must be there, with new in dir's
// fleetca.yaml.
func editConfig(t *testing.T, dir, old, new string) {
	t.Helper()
	path := filepath.Join(dir, configName)
	yml := readFile(t, path)
	if !strings.Contains(yml, old) {
		t.Fatalf("%s lacks %q:\n%s", path, old, yml)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(yml, old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// allCerts lists every certificate through f's admin API, page by page.
func (f *fixture) allCerts() []api.Certificate {
	f.t.Helper()
	var all []api.Certificate
	after := ""
	for {
		var page api.CertificatePage
		f.adminGET(api.AdminPrefix+"/certificates?limit=1000&after="+after, &page)
		all = append(all, page.Certificates...)
		if page.Next == "" {
			return all
		}
		after = page.Next
	}
}

// replicaWorker enrolls new devices load-W-I through the replica at base
// and revokes, every third request, one it enrolled, until ctx ends, like
// crashWorker. Unlike it, a request that failed is a failure (l.fail)
// unless gone reports that this replica was killed.
func replicaWorker(ctx context.Context, hc *http.Client, l *ledger, base, token, admin string, w int, gone func() bool) {
	var mine []string
	failed := func(err error) {
		if ctx.Err() == nil && !gone() {
			l.fail(fmt.Errorf("%s: %w", base, err))
		}
	}
	for i := 0; ctx.Err() == nil; i++ {
		if gone() {
			return
		}
		if i%3 == 2 && len(mine) > 0 {
			serial := mine[0]
			mine = mine[1:]
			a, err := send(ctx, hc, "POST", base+api.AdminPrefix+"/certificates/"+serial+"/revoke", adminHeader(admin),
				[]byte(`{"reason":"cessationOfOperation"}`))
			switch {
			case err != nil:
				failed(fmt.Errorf("revoke %s: %w", serial, err))
			case a.status == http.StatusOK:
				l.ack(func() { l.revoked[serial] = true })
			default:
				failed(fmt.Errorf("revoke %s: status %d, body %s; want 200", serial, a.status, a.body))
			}
			continue
		}
		device := fmt.Sprintf("load-%d-%d", w, i)
		csr, err := deviceCSR(device)
		if err != nil {
			l.fail(err)
			return
		}
		a, err := send(ctx, hc, "POST", base+api.EnrollPath, enrollHeader(token), csr)
		var got api.EnrollResponse
		switch {
		case err != nil:
			failed(fmt.Errorf("enroll %s: %w", device, err))
		case a.status != http.StatusCreated || json.Unmarshal(a.body, &got) != nil || got.DeviceID != device || got.Serial == "":
			failed(fmt.Errorf("enroll %s: status %d, body %s; want 201 for it", device, a.status, a.body))
		default:
			l.ack(func() { l.enrolled[got.Serial] = device })
			mine = append(mine, got.Serial)
		}
	}
}

// lastSigner is the replica whose log has the latest "CRL published" line
// (the one holding, or last holding, the CRL lease); C if none has one.
func lastSigner(reps []*fixture) *fixture {
	victim, latest := reps[len(reps)-1], time.Time{}
	for _, r := range reps {
		for line := range strings.Lines(r.srv.log.String()) {
			var ev struct {
				Time time.Time
				Msg  string
			}
			if json.Unmarshal([]byte(line), &ev) == nil && ev.Msg == "CRL published" && ev.Time.After(latest) {
				victim, latest = r, ev.Time
			}
		}
	}
	return victim
}

// crlSample is one fetch of a replica's /crl.
type crlSample struct {
	replica int
	number  *big.Int
	sum     [32]byte // SHA-256 of the DER
}

// crlCollector fetches /crl from every replica in rounds, from its start
// to its stop, and keeps what each served.
type crlCollector struct {
	stopc   chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	gone    map[int]bool // replicas killed: their failures are expected
	samples []crlSample
	errs    []string
	reps    []*fixture
}

// startCRLCollector starts collecting the CRLs of reps (whose servers
// must not be replaced until stop).
func startCRLCollector(t *testing.T, reps []*fixture) *crlCollector {
	c := &crlCollector{stopc: make(chan struct{}), done: make(chan struct{}), gone: map[int]bool{}, reps: reps}
	urls := make([]string, len(reps))
	for i, r := range reps {
		urls[i] = r.srv.httpURL
	}
	hc := &http.Client{Timeout: cmdTimeout}
	go func() {
		defer close(c.done)
		tick := time.NewTicker(crlSampleEvery)
		defer tick.Stop()
		for {
			for i, u := range urls {
				l, der, err := fetchCRL(context.Background(), hc, u)
				c.mu.Lock()
				switch {
				case err != nil && !c.gone[i]:
					if len(c.errs) < 10 {
						c.errs = append(c.errs, fmt.Sprintf("replica %d: %v", i, err))
					}
				case err == nil:
					c.samples = append(c.samples, crlSample{replica: i, number: l.Number, sum: sha256.Sum256(der)})
				}
				c.mu.Unlock()
			}
			select {
			case <-c.stopc:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			close(c.stopc)
			<-c.done
		}
	})
	return c
}

// down tells c that r is about to be killed.
func (c *crlCollector) down(r *fixture) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.reps {
		if x == r {
			c.gone[i] = true
		}
	}
}

// distinct is how many CRL numbers c has collected so far.
func (c *crlCollector) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[string]bool{}
	for _, s := range c.samples {
		seen[s.number.String()] = true
	}
	return len(seen)
}

// stop ends the collection, reports the failed fetches from live
// replicas, and returns the samples in the order they were taken.
func (c *crlCollector) stop(t *testing.T) []crlSample {
	t.Helper()
	close(c.stopc)
	<-c.done
	for _, e := range c.errs {
		t.Errorf("GET /crl from a live replica failed: %s", e)
	}
	return c.samples
}

// checkCRLSamples checks what the replicas served over the test: one CRL
// per number whoever served it (one signer per number), each replica's
// numbers never going down and changing only upwards, and more than one
// CRL (the revocations were published).
func checkCRLSamples(t *testing.T, names []string, samples []crlSample) {
	t.Helper()
	byNumber := map[string][32]byte{}
	last := map[int]crlSample{}
	for _, s := range samples {
		n := s.number.String()
		if sum, ok := byNumber[n]; ok && sum != s.sum {
			t.Errorf("two different CRLs numbered %s (replica %s served the second)", n, names[s.replica])
		}
		byNumber[n] = s.sum
		if prev, ok := last[s.replica]; ok {
			if c := s.number.Cmp(prev.number); c < 0 || (c == 0 && s.sum != prev.sum) {
				t.Errorf("replica %s served CRL %s after CRL %s: its numbers must strictly increase from one CRL to the next", names[s.replica], s.number, prev.number)
			}
		}
		last[s.replica] = s
	}
	if len(byNumber) < 2 {
		t.Errorf("the replicas served %d distinct CRLs over the test, want several (every revocation publishes one)", len(byNumber))
	}
	numbers := make([]string, 0, len(byNumber))
	for n := range byNumber {
		numbers = append(numbers, n)
	}
	t.Logf("%d fetches of /crl saw %d CRLs: numbers %s", len(samples), len(byNumber), strings.Join(sortedNumbers(numbers), " "))
}

// sortedNumbers sorts decimal numbers by value.
func sortedNumbers(ns []string) []string {
	return slices.SortedFunc(slices.Values(ns), func(a, b string) int {
		x, _ := new(big.Int).SetString(a, 10)
		y, _ := new(big.Int).SetString(b, 10)
		return x.Cmp(y)
	})
}

// sampleOf is the SHA-256 of the CRL numbered n among samples.
func sampleOf(samples []crlSample, n *big.Int) [32]byte {
	for _, s := range samples {
		if s.number.Cmp(n) == 0 {
			return s.sum
		}
	}
	return [32]byte{}
}

// fetchCRL fetches and parses base's /crl. It may run on any goroutine.
func fetchCRL(ctx context.Context, hc *http.Client, base string) (*x509.RevocationList, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", base+api.CRLPath, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	der, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("GET %s: status %d", base+api.CRLPath, resp.StatusCode)
	}
	l, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", base+api.CRLPath, err)
	}
	return l, der, nil
}
