package boltstore

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/fleetca/fleetca/store"
)

// BenchmarkIssue measures enrollment throughput as a factory line sees it,
// with fsync on: Issue calls kept 32 in flight, each a new device spending
// a use of a shared pattern token, with the conditions enroll sets. One
// op is one enrollment, so ns/op is the inverse of the throughput, which
// it also reports as enrollments/s.
func BenchmarkIssue(b *testing.B) {
	const inFlight = 32
	ctx := b.Context()
	s := open(b, filepath.Join(b.TempDir(), "fleetca.db"), Options{})
	tok := store.Token{
		ID: "bench", Hash: sha256.Sum256([]byte("bench")), DevicePattern: "dev-*",
		Uses: 1 << 40, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour),
	}
	if err := s.CreateToken(ctx, tok, store.AuditEvent{Time: t0, Action: "token.create", Actor: "admin"}); err != nil {
		b.Fatal(err)
	}
	der := make([]byte, benchDERSize)

	calls := newInFlight(inFlight)
	var n uint64
	start := time.Now()
	for b.Loop() {
		n++
		id := benchDevice(n)
		sum := sha256.Sum256(binary.BigEndian.AppendUint64(nil, n))
		serial := new(big.Int).SetBytes(sum[:16]) // 128 random-looking bits
		is := store.Issuance{
			Certificate:      benchCert(serial, id, t0, der),
			Token:            tok.Hash,
			Now:              t0,
			RequireNewDevice: true,
			MaxActive:        2,
			Audit: store.AuditEvent{
				Time: t0, Action: "certificate.issue", Actor: "token:bench",
				DeviceID: id, Serial: serial.Text(16), TokenID: "bench",
			},
		}
		calls.Go(func() {
			if err := s.Issue(ctx, is); err != nil {
				b.Error(err)
			}
		})
	}
	calls.Wait()
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "enrollments/s")
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
	der := make([]byte, benchDERSize)
	serialOf := func(n uint64) *big.Int {
		sum := sha256.Sum256(binary.BigEndian.AppendUint64(nil, n))
		return new(big.Int).SetBytes(sum[:16]) // 128 random-looking bits
	}

	// seed issues the next chunk certificates (issueUnsynced). No Revoke
	// may be under way.
	var seeded uint64
	seed := func() {
		const chunk = 4096
		certs := make([]store.Certificate, 0, chunk)
		for range chunk {
			seeded++
			certs = append(certs, benchCert(serialOf(seeded), benchDevice(seeded), t0, der))
		}
		issueUnsynced(b, s, certs)
	}

	at := t0.Add(time.Hour)
	calls := newInFlight(inFlight)
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
			r.DeviceID, r.Audit.Action = benchDevice(n), "device.revoke"
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
	der := make([]byte, benchDERSize)
	serialOf := func(n uint64, i int) *big.Int {
		sum := sha256.Sum256(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, n), uint64(i)))
		return new(big.Int).SetBytes(sum[:16]) // 128 random-looking bits
	}
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
				c := benchCert(serialOf(seeded, i), benchDevice(seeded), t0.Add(time.Duration(i)*period), der)
				if i > 0 {
					c.Parent = serialOf(seeded, i-1)
				}
				certs = append(certs, c)
			}
		}
		issueUnsynced(b, s, certs)
	}

	calls := newInFlight(inFlight)
	var n uint64
	var seeding time.Duration
	start := time.Now()
	for b.Loop() {
		n++
		if n > seeded {
			seeding += untimed(b, calls, seed)
		}
		id := benchDevice(n)
		r := store.Renewal{
			Parent:      serialOf(n, history-1),
			Certificate: benchCert(serialOf(n, history), id, at, der),
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

// benchDERSize stands for the size of a certificate's DER: about that of
// a P-256 device certificate.
const benchDERSize = 700

// benchDevice is the ID of a benchmark's n-th device.
func benchDevice(n uint64) string { return fmt.Sprintf("dev-%08d", n) }

// benchCert is a certificate of device id, whose key is its own, issued
// at issued and live from a minute before for 90 days, with der for DER.
func benchCert(serial *big.Int, id string, issued time.Time, der []byte) store.Certificate {
	return store.Certificate{
		Serial: serial, DeviceID: id, KeyHash: sha256.Sum256([]byte(id)),
		NotBefore: issued.Add(-time.Minute), NotAfter: issued.Add(90 * 24 * time.Hour), IssuedAt: issued, DER: der,
	}
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
			certJSON, err := encodeCertificate(c)
			if err != nil {
				return err
			}
			is := store.Issuance{Certificate: c, Now: c.IssuedAt, Audit: store.AuditEvent{Time: c.IssuedAt, Action: "certificate.issue"}}
			cond, err := issueTx(tx, is, key, certJSON)
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
func untimed(b *testing.B, calls *inFlight, f func()) time.Duration {
	calls.Wait()
	b.StopTimer()
	defer b.StartTimer()
	t := time.Now()
	f()
	return time.Since(t)
}

// inFlight runs calls on goroutines of their own, at most a given number
// at a time.
type inFlight struct {
	sem chan struct{}
	wg  sync.WaitGroup
}

func newInFlight(most int) *inFlight { return &inFlight{sem: make(chan struct{}, most)} }

// Go runs f once fewer than the most calls are in flight.
func (p *inFlight) Go(f func()) {
	p.sem <- struct{}{}
	p.wg.Go(func() {
		defer func() { <-p.sem }()
		f()
	})
}

// Wait waits for the calls in flight.
func (p *inFlight) Wait() { p.wg.Wait() }
