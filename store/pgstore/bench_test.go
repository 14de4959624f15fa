package pgstore

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/fleetca/fleetca/internal/pgtest"
	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/internal/storebench"
)

// BenchmarkIssue measures enrollment throughput as a factory line sees
// it, with the server durable (fsync, full_page_writes and
// synchronous_commit on: pgtest.NewDurableDatabase), to set beside
// store/boltstore's BenchmarkIssue (fsync on): Issue calls kept 32 in
// flight, each a new device spending a use of a shared pattern token,
// with the conditions enroll sets. With replicas-2 and replicas-3, two
// and three Stores (replicas' pools) share the 32 calls. One op is one
// enrollment, so ns/op is the inverse of the throughput, which it also
// reports as enrollments/s.
//
// What limits it: rows every enrollment updates. The log_heads row gives
// each write its audit Seq and the audit tree's right edge, and the shared
// token's row its use; each transaction takes their locks in its last
// round trip (the server hashes the tree: fleetca_append_logs) and holds
// them through its commit's WAL flush (log_heads so that Seq values
// follow commit order). Commits therefore flush one at a time and
// PostgreSQL cannot group them (fdatasync: 0.6 to 1.6ms on the 2-core
// test machine, by pg_test_fsync), where bbolt's Batch commits many
// enrollments with one fsync. More replicas add connections, not
// flushes.
func BenchmarkIssue(b *testing.B) {
	for _, n := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("replicas-%d", n), func(b *testing.B) { benchmarkIssue(b, n) })
	}
}

func benchmarkIssue(b *testing.B, replicas int) {
	dsn := pgtest.NewDurableDatabase(b)
	stores := make([]store.Store, replicas)
	for i := range stores {
		stores[i] = openWith(b, Options{DSN: dsn}) // the production pool size
	}
	storebench.Issue(b, t0, 1<<30, stores...)
}

// BenchmarkListDevices measures ListDevices of one page (100 devices)
// from a random place among a million devices: the admin API's paging
// read, one range scan of the devices primary key. The devices are
// loaded once, outside the timer, by Load (COPY). It reports the time of
// one page as ms/page.
func BenchmarkListDevices(b *testing.B) {
	const devices = 1_000_000
	ctx := b.Context()
	s := open(b, pgtest.NewDurableDatabase(b))
	i := 0
	err := s.Load(ctx, func() (store.Record, bool, error) {
		if i == devices {
			return store.Record{}, false, nil
		}
		i++
		return store.Record{Device: &store.Device{ID: storebench.Device(uint64(i)), Status: store.DeviceActive, CreatedAt: t0, UpdatedAt: t0}}, true, nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, "VACUUM ANALYZE devices"); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	var pages int
	for b.Loop() {
		pages++
		after := storebench.Device(1 + rng.Uint64N(devices-store.DefaultPageLimit))
		got, err := s.ListDevices(ctx, store.Page{After: after})
		if err != nil || len(got) != store.DefaultPageLimit {
			b.Fatalf("ListDevices(after %s) = %d devices, %v, want %d, nil", after, len(got), err, store.DefaultPageLimit)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(pages), "ms/page")
}

// BenchmarkRevokeSignal measures how soon a revocation committed through
// one replica reaches another's Changes channel (by NOTIFY, on commit):
// one op is one Revoke on replica B, timed from its call to A's signal.
// It reports the median and 99th percentile.
func BenchmarkRevokeSignal(b *testing.B) {
	ctx := b.Context()
	dsn := pgtest.NewDurableDatabase(b)
	a, bs := open(b, dsn), open(b, dsn)
	listening := make(chan struct{}, 1)
	a.subs.onListen = func() { listening <- struct{}{} }
	ch := a.Changes(ctx)
	<-listening
	der := make([]byte, storebench.DERSize)
	var seeded uint64
	var lat []time.Duration
	var n uint64
	for b.Loop() {
		n++
		if n > seeded {
			b.StopTimer()
			for range 256 {
				seeded++
				c := storebench.Certificate(big.NewInt(int64(seeded)), storebench.Device(seeded), t0, der)
				if err := bs.Issue(ctx, store.Issuance{Certificate: c, Now: t0, Audit: store.AuditEvent{Time: t0, Action: "certificate.issue"}}); err != nil {
					b.Fatal(err)
				}
			}
			drain(ch)
			b.StartTimer()
		}
		start := time.Now()
		if _, err := bs.Revoke(ctx, store.RevokeRequest{Serial: big.NewInt(int64(n)), At: t0, Reason: 1}); err != nil {
			b.Fatal(err)
		}
		select {
		case <-ch:
		case <-time.After(signalWait):
			b.Fatalf("no signal in %v", signalWait)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkConsole measures the console's reads on 100,000 devices with
// three certificates each, loaded once by Load (COPY) outside the timer:
// Stats (console_counts shards and index range counts), a
// page of QueryDevices in RenewBy order and by status, and QueryAudit of
// one device. It reports ms/op.
func BenchmarkConsole(b *testing.B) {
	const devices = 100_000
	ctx := b.Context()
	s := open(b, pgtest.NewDurableDatabase(b))
	der := make([]byte, storebench.DERSize)
	i, k := 0, 0
	err := s.Load(ctx, func() (store.Record, bool, error) {
		if i == devices {
			return store.Record{}, false, nil
		}
		id := storebench.Device(uint64(i))
		at := t0.Add(-time.Duration(i%(60*24)) * time.Hour)
		if k < 3 {
			k++
			c := storebench.Certificate(big.NewInt(int64(i*3+k)), id, at.Add(time.Duration(k)*time.Hour), der)
			return store.Record{Certificate: &c}, true, nil
		}
		k = 0
		i++
		d := store.Device{ID: id, Status: store.DeviceActive, CreatedAt: at, UpdatedAt: at,
			NotAfter: at.Add(90 * 24 * time.Hour), RenewBy: at.Add(60 * 24 * time.Hour)}
		if i%100 == 0 {
			d.Status = store.DeviceRevoked
		}
		return store.Record{Device: &d}, true, nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		fn   func() error
	}{
		{"stats", func() error { _, err := s.Stats(ctx, t0); return err }},
		{"devices-renew-by", func() error {
			_, _, err := s.QueryDevices(ctx, store.DeviceQuery{Sort: store.SortRenewBy, Limit: 50})
			return err
		}},
		{"devices-revoked", func() error {
			_, _, err := s.QueryDevices(ctx, store.DeviceQuery{Status: store.DeviceRevoked, Limit: 50})
			return err
		}},
		{"audit-device", func() error {
			_, _, err := s.QueryAudit(ctx, store.AuditQuery{DeviceID: storebench.Device(500)})
			return err
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			start := time.Now()
			n := 0
			for b.Loop() {
				n++
				if err := bc.fn(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(n), "ms/op")
		})
	}
}
