package auditlog

import (
	"flag"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/boltstore"
)

var benchRows = flag.Int("audit.rows", 1_000_000, "BenchmarkVerify: audit rows in the log it verifies")

// BenchmarkVerify times Verify (every leaf, root, stored hash, checkpoint
// and the completeness scan) over a bbolt log of -audit.rows rows (1,000,000;
// the target is under 30 s), built fast with Load (rows and their roots
// computed here, the stored hashes by the store) and a checkpoint every
// 100,000 rows. make bench runs it with -benchtime 1x.
func BenchmarkVerify(b *testing.B) {
	n := *benchRows
	st, err := boltstore.Open(filepath.Join(b.TempDir(), "fleetca.db"), boltstore.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	s, v := testKey(b, "bench/fleetca-audit")
	t := &tree{}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var cps []store.Checkpoint
	i := 0
	setup := time.Now()
	err = st.Load(b.Context(), func() (store.Record, bool, error) {
		if i < n {
			i++
			e := store.AuditEvent{Seq: uint64(i), Time: start.Add(time.Duration(i) * time.Millisecond), Action: "certificate.issue",
				Actor: "token:0123456789abcdef", DeviceID: fmt.Sprintf("dev-%07d", i), Serial: fmt.Sprintf("%032x", i), TokenID: "0123456789abcdef"}
			root, err := t.add(int64(i-1), e)
			if err != nil {
				return store.Record{}, false, err
			}
			e.Root = root
			if i%100_000 == 0 || i == n {
				c, err := SignCheckpoint(s, int64(i), root, e.Time)
				if err != nil {
					return store.Record{}, false, err
				}
				cps = append(cps, c)
			}
			return store.Record{Audit: &e}, true, nil
		}
		if len(cps) > 0 {
			c := cps[0]
			cps = cps[1:]
			return store.Record{Checkpoint: &c}, true, nil
		}
		return store.Record{}, false, nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("built a log of %d rows in %s", n, time.Since(setup).Round(time.Millisecond))
	for b.Loop() {
		began, cpu0 := time.Now(), cpuTime(b)
		rep, err := Verify(b.Context(), st, Options{Key: v, Records: st, Now: start.Add(time.Duration(n) * time.Millisecond)})
		if err != nil {
			b.Fatal(err)
		}
		took, cpu := time.Since(began), cpuTime(b)-cpu0
		fmt.Printf("audit verify: %d rows, %d stored hashes, %d checkpoints in %.1f s (target < 30 s), %.1f s of CPU\n",
			rep.Rows, rep.StoredHashes, rep.Checkpoints, took.Seconds(), cpu.Seconds())
		b.ReportMetric(cpu.Seconds(), "cpu-s/verify")
		b.ReportMetric(took.Seconds(), "s/verify")
		b.ReportMetric(float64(rep.Rows)/took.Seconds(), "rows/s")
	}
}

// cpuTime is the process's user and system CPU time so far: on a busy
// machine it says more than the wall time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
