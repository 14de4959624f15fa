package boltstore

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/big"
	"path/filepath"
	"sync"
	"testing"
	"time"

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
