package ui

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/boltstore"
)

// BenchmarkPages measures the server time of the read pages (the handler,
// from request to rendered HTML) over a bbolt store holding
// FLEETCA_UI_BENCH_DEVICES devices (default 10,000; the issue's figure is
// 1,000,000) with three certificates each (an enrollment and two
// renewals) and their audit rows. The store is seeded without fsync,
// outside the timer; seeding a million devices takes a while and a few
// GB of disk (FLEETCA_UI_BENCH_DIR, default the test's temp dir).
func BenchmarkPages(b *testing.B) {
	n := 10_000
	if v := os.Getenv("FLEETCA_UI_BENCH_DEVICES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("FLEETCA_UI_BENCH_DEVICES=%q: want a positive count", v)
		}
	}
	dir := os.Getenv("FLEETCA_UI_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	s, err := boltstore.Open(filepath.Join(dir, fmt.Sprintf("ui-bench-%d.db", n)), boltstore.Options{NoSync: true, MaxBatchDelay: time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	const period = 30 * 24 * time.Hour
	now := t0.Add(2*period + time.Hour)
	start := time.Now()
	if st, err := s.Stats(b.Context(), now); err != nil {
		b.Fatal(err)
	} else if st.Active+st.Revoked < n {
		seedPages(b, s, st.Active+st.Revoked, n, period)
	}
	b.Logf("%d devices, 3 certificates each, ready in %v", n, time.Since(start).Round(time.Second))

	r := newRigWith(b, s, now)
	br, _ := r.login("viewer-token")
	mid := benchDevice(n / 2)
	for _, p := range []struct{ name, path string }{
		{"overview", "/ui/"},
		{"devices", "/ui/devices"},
		{"devices-prefix", "/ui/devices?q=" + mid[:len(mid)-2]},
		{"devices-stopped", "/ui/devices?status=stopped"},
		{"devices-newest", "/ui/devices?sort=-created"},
		{"device", "/ui/devices/" + mid},
		{"audit-device", "/ui/audit?device=" + mid},
		{"audit", "/ui/audit"},
	} {
		b.Run(p.name, func(b *testing.B) {
			for b.Loop() {
				if a := br.do("GET", p.path, nil); a.code != http.StatusOK {
					b.Fatalf("GET %s: %d", p.path, a.code)
				}
			}
		})
	}
}

func benchDevice(i int) string { return fmt.Sprintf("dev-%08d", i) }

// seedPages issues devices [from, to), three certificates each, 64 Issue
// calls in flight so that bbolt's batches fill.
func seedPages(b *testing.B, s *boltstore.Store, from, to int, period time.Duration) {
	der := make([]byte, 600)
	work := make(chan int)
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := range work {
				var parent *big.Int
				for k := range 3 {
					serial := new(big.Int).SetUint64(uint64(i)<<8 | uint64(k) | 1<<62)
					var kh store.KeyHash
					binary.BigEndian.PutUint64(kh[:], serial.Uint64())
					kh = sha256.Sum256(kh[:])
					at := t0.Add(time.Duration(k) * period)
					c := store.Certificate{Serial: serial, DeviceID: benchDevice(i), KeyHash: kh, NotBefore: at, NotAfter: at.Add(3 * period / 2),
						IssuedAt: at, DER: der, Parent: parent}
					if err := s.Issue(b.Context(), store.Issuance{Certificate: c, Now: at,
						Audit: store.AuditEvent{Time: at, Action: "certificate.issue", Actor: "token:bench", DeviceID: c.DeviceID, Serial: serial.Text(16)}}); err != nil {
						b.Errorf("Issue %s: %v", c.DeviceID, err)
						return
					}
					parent = serial
				}
			}
		})
	}
	for i := from; i < to; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
}
