package main

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkEnrollAuditTree sets the enrollment rate with the audit log's
// tree (every row's stored hashes and root, in its transaction) beside the
// rate with the tree switched off (serveOptions.noAuditTree, which only
// tests set: boltstore.Options.NoAuditTree), measured in the same run:
// two CAs served in process by runServe, with fsync, driven alternately
// over HTTP/1.1 keep-alive by 32 workers, auditRuns runs each of
// auditRunSize enrollments. It prints the medians and their ratio (the
// target is at least 0.95). make bench runs it with -benchtime 1x.
func BenchmarkEnrollAuditTree(b *testing.B) {
	const (
		auditRuns    = 7
		auditRunSize = 1500
		conc         = 32
	)
	servers := map[string]*benchServe{
		"tree":    benchStartServeWith(b, serveOptions{}),
		"no-tree": benchStartServeWith(b, serveOptions{noAuditTree: true}),
	}
	for b.Loop() {
		rates := map[string][]float64{}
		for run := range auditRuns {
			for _, name := range []string{"tree", "no-tree"} {
				bs := servers[name]
				client := benchClient(bs.roots, conc, "h1")
				benchOpenConns(b, client, bs.httpsURL, conc)
				b.StopTimer()
				jobs := bs.jobs(b, auditRunSize)
				b.StartTimer()
				start := time.Now()
				benchDrive(b, "client", conc, jobs, func(j benchJob) error { return benchPost(b.Context(), client, bs.httpsURL+"/v1/enroll", j) })
				rate := float64(auditRunSize) / time.Since(start).Seconds()
				rates[name] = append(rates[name], rate)
				client.CloseIdleConnections()
				b.Logf("run %d %-8s %7.0f enrollments/s", run+1, name, rate)
			}
		}
		tree, noTree := median(rates["tree"]), median(rates["no-tree"])
		fmt.Printf("audit tree: enrollments/s (median of %d runs of %d, c=%d, fsync): with the tree %.0f, without %.0f, ratio %.3f (target >= 0.95)\n",
			auditRuns, auditRunSize, conc, tree, noTree, tree/noTree)
		b.ReportMetric(tree, "enrollments/s-tree")
		b.ReportMetric(noTree, "enrollments/s-no-tree")
		b.ReportMetric(tree/noTree, "ratio")
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
