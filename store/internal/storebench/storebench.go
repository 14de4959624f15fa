package storebench

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/fleetca/fleetca/store"
)

// DERSize stands for the size of a certificate's DER: about that of a
// P-256 device certificate.
const DERSize = 700

// Device is the ID of a benchmark's n-th device.
func Device(n uint64) string { return fmt.Sprintf("dev-%08d", n) }

// Serial is a serial derived from the numbers, shaped as fleetca's are
// (ca's newSerial): 31 bits of order on top, then 128 random-looking bits.
// The order stands for the issuance time: the numbers, the last one the
// most significant (Serial(n, i), device n's i-th certificate, sorts by i
// and then n, as certificates issued round after round do).
func Serial(n ...uint64) *big.Int {
	var b []byte
	var order uint64
	for i, v := range n {
		b = binary.BigEndian.AppendUint64(b, v)
		order += v << (24 * i)
	}
	sum := sha256.Sum256(b)
	serial := binary.BigEndian.AppendUint32(nil, uint32(order)&0x7fffffff)
	return new(big.Int).SetBytes(append(serial, sum[:16]...))
}

// Certificate is a certificate of device id, whose key is its own, issued
// at issued and live from a minute before for 90 days, with der for DER.
func Certificate(serial *big.Int, id string, issued time.Time, der []byte) store.Certificate {
	return store.Certificate{
		Serial: serial, DeviceID: id, KeyHash: sha256.Sum256([]byte(id)),
		NotBefore: issued.Add(-time.Minute), NotAfter: issued.Add(90 * 24 * time.Hour), IssuedAt: issued, DER: der,
	}
}

// Issue is BenchmarkIssue of a backend: it measures enrollment
// throughput as a factory line sees it, Issue calls kept 32 in flight
// (shared round-robin by stores, the same database's replicas), each a
// new device spending a use of a shared pattern token of uses uses, with
// the conditions enroll sets, at now. One op is one enrollment, so ns/op
// is the inverse of the throughput, which it also reports as
// enrollments/s.
func Issue(b *testing.B, now time.Time, uses int, stores ...store.Store) {
	const inFlight = 32
	ctx := b.Context()
	tok := store.Token{
		ID: "bench", Hash: sha256.Sum256([]byte("bench")), DevicePattern: "dev-*",
		Uses: uses, CreatedAt: now, ExpiresAt: now.Add(time.Hour),
	}
	if err := stores[0].CreateToken(ctx, tok, store.AuditEvent{Time: now, Action: "token.create", Actor: "admin"}); err != nil {
		b.Fatal(err)
	}
	der := make([]byte, DERSize)

	calls := NewInFlight(inFlight)
	var n uint64
	start := time.Now()
	for b.Loop() {
		n++
		id := Device(n)
		serial := Serial(n)
		is := store.Issuance{
			Certificate:      Certificate(serial, id, now, der),
			Token:            tok.Hash,
			Now:              now,
			RequireNewDevice: true,
			MaxActive:        2,
			Audit: store.AuditEvent{
				Time: now, Action: "certificate.issue", Actor: "token:bench",
				DeviceID: id, Serial: serial.Text(16), TokenID: "bench",
			},
		}
		s := stores[n%uint64(len(stores))]
		calls.Go(func() {
			if err := s.Issue(ctx, is); err != nil {
				b.Error(err)
			}
		})
	}
	calls.Wait()
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "enrollments/s")
}

// InFlight runs calls on goroutines of their own, at most a given number
// at a time.
type InFlight struct {
	sem chan struct{}
	wg  sync.WaitGroup
}

// NewInFlight returns an InFlight of at most most calls.
func NewInFlight(most int) *InFlight { return &InFlight{sem: make(chan struct{}, most)} }

// Go runs f once fewer than the most calls are in flight.
func (p *InFlight) Go(f func()) {
	p.sem <- struct{}{}
	p.wg.Go(func() {
		defer func() { <-p.sem }()
		f()
	})
}

// Wait waits for the calls in flight.
func (p *InFlight) Wait() { p.wg.Wait() }
