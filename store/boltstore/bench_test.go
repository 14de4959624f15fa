package boltstore

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/internal/storebench"
)

// BenchmarkIssue measures enrollment throughput as a factory line sees it,
// with fsync on (storebench.Issue: 32 Issue calls in flight, each a new
// device spending a use of a shared pattern token). One op is one
// enrollment; it also reports enrollments/s.
func BenchmarkIssue(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "fleetca.db"), Options{})
	reportPages(b, s, func() { storebench.Issue(b, t0, 1<<40, s) })
}

// BenchmarkIssueNoSync is BenchmarkIssue without fsync: the CPU cost of an
// enrollment in the store (encoding, B-tree updates, the audit tree's
// hashes), which the fsync of BenchmarkIssue hides and makes noisy.
func BenchmarkIssueNoSync(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "fleetca.db"), Options{NoSync: true})
	reportPages(b, s, func() { storebench.Issue(b, t0, 1<<40, s) })
}

// reportPages runs bench, a benchmark loop of b.N writes to s, and reports
// what its commits wrote: pages per write (bbolt's TxStats.PageCount, the
// pages the commits allocated, overflow pages included), and per commit
// (a batch of writes) the writes and the pages.
func reportPages(b *testing.B, s *Store, bench func()) {
	txid := func() int {
		var id int
		_ = s.db.View(func(tx *bbolt.Tx) error { id = tx.ID(); return nil })
		return id
	}
	pageCount := func() int64 { st := s.db.Stats(); return st.TxStats.GetPageCount() }
	pages0, id0 := pageCount(), txid()
	bench()
	pages := pageCount() - pages0
	commits := float64(txid() - id0)
	b.ReportMetric(float64(pages)/float64(b.N), "pages/op")
	b.ReportMetric(float64(b.N)/commits, "ops/commit")
	b.ReportMetric(float64(pages)/commits, "pages/commit")
}

// BenchmarkRevoke measures revocation throughput with fsync on, as an admin
// revoking a lost batch of devices sees it: Revoke calls kept 32 in
// flight, each revoking one certificate, by serial or by its device; every
// other one is keyCompromise and blocks the key. The certificates (one per
// device) are issued beforehand, in chunks, outside the timer and without
// fsync. One op is one revocation, so ns/op is the inverse of the
// throughput, which it also reports as revocations/s.
func BenchmarkRevoke(b *testing.B) {
	for _, by := range []string{"serial", "device"} {
		b.Run(by, func(b *testing.B) { benchmarkRevoke(b, by == "device") })
	}
}

func benchmarkRevoke(b *testing.B, byDevice bool) {
	const inFlight = 32
	ctx := b.Context()
	s := open(b, filepath.Join(b.TempDir(), "fleetca.db"), Options{})
	der := make([]byte, storebench.DERSize)
	serialOf := func(n uint64) *big.Int { return storebench.Serial(n) }

	// seed issues the next chunk certificates (issueUnsynced). No Revoke
	// may be under way.
	var seeded uint64
	seed := func() {
		const chunk = 4096
		certs := make([]store.Certificate, 0, chunk)
		for range chunk {
			seeded++
			certs = append(certs, storebench.Certificate(serialOf(seeded), storebench.Device(seeded), t0, der))
		}
		issueUnsynced(b, s, certs)
	}

	at := t0.Add(time.Hour)
	calls := storebench.NewInFlight(inFlight)
	var n uint64
	var seeding time.Duration
	start := time.Now()
	for b.Loop() {
		n++
		if n > seeded {
			seeding += untimed(b, calls, seed)
		}
		r := store.RevokeRequest{
			At: at, Reason: 5, // cessationOfOperation
			Audit: store.AuditEvent{Time: at, Action: "certificate.revoke", Actor: "admin", Serial: serialOf(n).Text(16)},
		}
		if byDevice {
			r.DeviceID, r.Audit.Action = storebench.Device(n), "device.revoke"
		} else {
			r.Serial = serialOf(n)
		}
		if n%2 == 0 {
			r.Reason, r.BlockKeys = 1, true // keyCompromise
		}
		calls.Go(func() {
			if es, err := s.Revoke(ctx, r); err != nil || len(es) != 1 {
				b.Errorf("Revoke = %d entries, %v, want 1, nil", len(es), err)
			}
		})
	}
	calls.Wait()
	b.ReportMetric(float64(n)/(time.Since(start)-seeding).Seconds(), "revocations/s")
}

// BenchmarkRenew measures renewal throughput with fsync on, as a fleet
// renewing at once sees it: Renew calls kept 32 in flight, each renewing
// the newest certificate of its own device with the conditions the RA
// sets (a day's retry window, an hour's minimum interval, two live
// certificates at most, so that each renewal supersedes nothing but a
// third one would); every other one spends a nonce, as a renewal after
// expiry does. Each device has history certificates beforehand (its
// enrollment and earlier renewals, expired), issued in chunks outside the
// timer and without fsync: Renew reads them all. One op is one renewal, so
// ns/op is the inverse of the throughput, which it also reports as
// renewals/s, to set beside BenchmarkIssue's enrollments/s.
func BenchmarkRenew(b *testing.B) {
	for _, history := range []int{1, 24} {
		b.Run(fmt.Sprintf("history-%d", history), func(b *testing.B) { benchmarkRenew(b, history) })
	}
}

func benchmarkRenew(b *testing.B, history int) {
	const inFlight = 32
	ctx := b.Context()
	s := open(b, filepath.Join(b.TempDir(), "fleetca.db"), Options{})
	der := make([]byte, storebench.DERSize)
	serialOf := func(n uint64, i int) *big.Int { return storebench.Serial(n, uint64(i)) }
	const period = 60 * 24 * time.Hour // a renewal every 60 days
	at := t0.Add(time.Duration(history) * period)

	// seed issues the next chunk devices' histories (issueUnsynced). No
	// Renew may be under way.
	var seeded uint64
	seed := func() {
		const chunk = 1024
		certs := make([]store.Certificate, 0, chunk*history)
		for range chunk {
			seeded++
			for i := range history {
				c := storebench.Certificate(serialOf(seeded, i), storebench.Device(seeded), t0.Add(time.Duration(i)*period), der)
				if i > 0 {
					c.Parent = serialOf(seeded, i-1)
				}
				certs = append(certs, c)
			}
		}
		issueUnsynced(b, s, certs)
	}

	calls := storebench.NewInFlight(inFlight)
	var n uint64
	var seeding time.Duration
	start := time.Now()
	for b.Loop() {
		n++
		if n > seeded {
			seeding += untimed(b, calls, seed)
		}
		id := storebench.Device(n)
		r := store.Renewal{
			Parent:      serialOf(n, history-1),
			Certificate: storebench.Certificate(serialOf(n, history), id, at, der),
			Now:         at,
			RetryWindow: 24 * time.Hour,
			MinInterval: time.Hour,
			MaxActive:   2,
			Audit: store.AuditEvent{
				Time: at, Action: "certificate.renew", Actor: "device:" + id,
				DeviceID: id, Serial: serialOf(n, history).Text(16),
			},
		}
		if n%2 == 0 {
			r.Nonce = &store.Nonce{Hash: sha256.Sum256([]byte(id)), Expires: at.Add(5 * time.Minute)}
		}
		calls.Go(func() {
			if res, err := s.Renew(ctx, r); err != nil || res.Replayed {
				b.Errorf("Renew = replayed %v, %v, want a new certificate, nil", res.Replayed, err)
			}
		})
	}
	calls.Wait()
	b.ReportMetric(float64(n)/(time.Since(start)-seeding).Seconds(), "renewals/s")
}

// issueUnsynced records certs as Issue does, through issueTx, each issued
// at its IssuedAt, in one transaction without fsync: a benchmark's setup,
// outside its timer. No other write may be under way: it toggles the DB's
// NoSync.
func issueUnsynced(b *testing.B, s *Store, certs []store.Certificate) {
	b.Helper()
	s.db.NoSync = true
	defer func() { s.db.NoSync = false }()
	err := s.db.Update(func(tx *bbolt.Tx) error {
		for _, c := range certs {
			key, err := serialKey(c.Serial)
			if err != nil {
				return err
			}
			certRec, err := encodeCertificate(c)
			if err != nil {
				return err
			}
			is := store.Issuance{Certificate: c, Now: c.IssuedAt, Audit: store.AuditEvent{Time: c.IssuedAt, Action: "certificate.issue"}}
			cond, err := issueTx(tx, is, key, certRec)
			if err := errors.Join(cond, err); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// untimed waits for the calls in flight, then runs f with the benchmark's
// timer stopped, and returns how long f took.
func untimed(b *testing.B, calls *storebench.InFlight, f func()) time.Duration {
	calls.Wait()
	b.StopTimer()
	defer b.StartTimer()
	t := time.Now()
	f()
	return time.Since(t)
}
