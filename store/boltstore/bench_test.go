package boltstore

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
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
	der := make([]byte, 700) // about the size of a P-256 device certificate

	sem := make(chan struct{}, inFlight)
	var wg sync.WaitGroup
	var n uint64
	start := time.Now()
	for b.Loop() {
		n++
		id := fmt.Sprintf("dev-%08d", n)
		sum := sha256.Sum256(binary.BigEndian.AppendUint64(nil, n))
		serial := new(big.Int).SetBytes(sum[:16]) // 128 random-looking bits
		is := store.Issuance{
			Certificate: store.Certificate{
				Serial: serial, DeviceID: id, KeyHash: sha256.Sum256([]byte(id)),
				NotBefore: t0.Add(-time.Minute), NotAfter: t0.Add(90 * 24 * time.Hour), IssuedAt: t0, DER: der,
			},
			Token:            tok.Hash,
			Now:              t0,
			RequireNewDevice: true,
			MaxActive:        2,
			Audit: store.AuditEvent{
				Time: t0, Action: "certificate.issue", Actor: "token:bench",
				DeviceID: id, Serial: serial.Text(16), TokenID: "bench",
			},
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := s.Issue(ctx, is); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
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
	der := make([]byte, 700) // about the size of a P-256 device certificate
	deviceOf := func(n uint64) string { return fmt.Sprintf("dev-%08d", n) }
	serialOf := func(n uint64) *big.Int {
		sum := sha256.Sum256(binary.BigEndian.AppendUint64(nil, n))
		return new(big.Int).SetBytes(sum[:16]) // 128 random-looking bits
	}

	// seed issues the next chunk certificates in one unsynced transaction,
	// through issueTx, so that the records are Issue's. No Revoke may be
	// under way: it toggles the DB's NoSync.
	var seeded uint64
	seed := func() {
		const chunk = 4096
		s.db.NoSync = true
		defer func() { s.db.NoSync = false }()
		err := s.db.Update(func(tx *bbolt.Tx) error {
			for range chunk {
				seeded++
				c := store.Certificate{
					Serial: serialOf(seeded), DeviceID: deviceOf(seeded), KeyHash: sha256.Sum256([]byte(deviceOf(seeded))),
					NotBefore: t0.Add(-time.Minute), NotAfter: t0.Add(90 * 24 * time.Hour), IssuedAt: t0, DER: der,
				}
				key, err := serialKey(c.Serial)
				if err != nil {
					return err
				}
				certJSON, err := json.Marshal(c)
				if err != nil {
					return err
				}
				cond, err := issueTx(tx, store.Issuance{Certificate: c, Now: t0, Audit: store.AuditEvent{Time: t0, Action: "certificate.issue"}}, key, certJSON)
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

	at := t0.Add(time.Hour)
	sem := make(chan struct{}, inFlight)
	var wg sync.WaitGroup
	var n uint64
	var seeding time.Duration
	start := time.Now()
	for b.Loop() {
		n++
		if n > seeded {
			wg.Wait()
			b.StopTimer()
			t := time.Now()
			seed()
			seeding += time.Since(t)
			b.StartTimer()
		}
		r := store.RevokeRequest{
			At: at, Reason: 5, // cessationOfOperation
			Audit: store.AuditEvent{Time: at, Action: "certificate.revoke", Actor: "admin", Serial: serialOf(n).Text(16)},
		}
		if byDevice {
			r.DeviceID, r.Audit.Action = deviceOf(n), "device.revoke"
		} else {
			r.Serial = serialOf(n)
		}
		if n%2 == 0 {
			r.Reason, r.BlockKeys = 1, true // keyCompromise
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if es, err := s.Revoke(ctx, r); err != nil || len(es) != 1 {
				b.Errorf("Revoke = %d entries, %v, want 1, nil", len(es), err)
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(n)/(time.Since(start)-seeding).Seconds(), "revocations/s")
}
