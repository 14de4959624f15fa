package main

import (
	"fmt"
	"io"
	"time"

	"github.com/fleetca/fleetca/bench/benchutil"
)

// setupSummary is what the enrollment table shows of a setup.
type setupSummary struct {
	benchutil.Summary
	fleetca, postgres time.Duration // CPU per enrollment, medians
}

func summarizeSetup(r setupResult) setupSummary {
	s := setupSummary{Summary: benchutil.Summarize(r.reps)}
	var fc, pc []time.Duration
	var other []float64
	for i, p := range r.reps {
		fc = append(fc, p.PerOp(r.fleetca[i]))
		pc = append(pc, p.PerOp(r.postgres[i]))
		// Phase.Other counts the first replica only as the server: the
		// others and PostgreSQL are part of what is measured, too.
		other = append(other, max(0, benchutil.Share(p.Machine-r.fleetca[i]-r.postgres[i]-p.Client.Total()+p.Steal, p.Elapsed)))
	}
	s.fleetca, s.postgres = benchutil.Median(fc), benchutil.Median(pc)
	s.Other = benchutil.Median(other)
	return s
}

// report prints the results and reports whether a target was missed.
func report(w io.Writer, o options, res results) (missed bool) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	verdict := func(ok bool) string {
		if ok {
			return "PASS"
		}
		missed = true
		return "MISS"
	}
	p("\nfleetca replica benchmark (issue 14), %s\n", res.started.UTC().Format(time.RFC3339))
	p("  machine     %s\n", benchutil.Machine())
	p("  PostgreSQL  %s, started by this tool on loopback (pid %d): %s\n", res.pg.version, res.pg.pid, res.pg.settings)
	p("  servers     fleetca serve processes on loopback; bbolt with fsync on; replicas are copies of one data directory\n")

	var bolt, pg1, pgOwn *setupSummary
	if len(res.enroll) > 0 {
		p("\nEnrollments at concurrency %d (POST /v1/enroll, new P-256 device each; %v warm-up, then %d x %v; medians,\n", o.conc, o.warmup, o.reps, o.duration)
		p("latency over all; two replicas: worker w on replica w mod 2, its own keep-alive connection)\n")
		p("%-34s %9s %13s %7s %7s %10s %10s %10s %6s %6s\n", "setup", "enroll/s", "(min-max)", "p50 ms", "p99 ms",
			"fleetca", "postgres", "client", "other", "errors")
		p("%-34s %9s %13s %7s %7s %10s %10s %10s %6s %6s\n", "", "median", "", "", "", "µs/cert", "µs/cert", "µs/cert", "", "")
		for _, r := range res.enroll {
			s := summarizeSetup(r)
			pg := "-"
			if r.onPG {
				pg = fmt.Sprintf("%.0f", benchutil.Micros(s.postgres))
			}
			p("%-34s %9.0f %13s %7.2f %7.2f %10.0f %10s %10.0f %5.0f%% %6d\n", r.name, s.Rate,
				fmt.Sprintf("(%.0f-%.0f)", s.RateMin, s.RateMax), benchutil.Millis(s.P50), benchutil.Millis(s.P99),
				benchutil.Micros(s.fleetca), pg, benchutil.Micros(s.Client), 100*s.Other, s.Failed)
			for _, e := range s.Errs {
				p("  %s failure: %s\n", r.name, e)
			}
			switch {
			case !r.onPG && bolt == nil:
				bolt = &s
			case r.onPG && r.replicas == 1 && !r.ownToken && pg1 == nil:
				pg1 = &s
			case r.onPG && r.ownToken && pgOwn == nil:
				pgOwn = &s
			}
		}
		p("  Every setup's devices spend uses of one pattern token (100,000 uses), as a factory line's do, but \"own\n")
		p("  tokens\": each device its own one-time token, minted in batches before the timing.\n")
		p("  CPU per certificate: utime+stime from /proc of every fleetca replica, of the PostgreSQL postmaster and its\n")
		p("  backends, and of this client; other = the machine's CPU that none of them used (other load; above 10%%\n")
		p("  the rates are not trustworthy)\n")
		p("\n  Where PostgreSQL's sessions were (pg_stat_activity every %v over the repetitions; sessions on average,\n", waitSampleEvery)
		p("  CPU = running, Lock:* = waiting for a row lock, IO:WALSync/LWLock:WALWrite = a commit's WAL flush,\n")
		p("  \"in transaction, idle\" = between the statements of a transaction, fleetca's turn, its locks held):\n")
		for _, r := range res.enroll {
			if r.onPG {
				p("    %-34s %s\n", r.name, r.waits)
			}
		}
	}

	if r := res.revoke; r != nil {
		p("\nRevocation -> OCSP (revoke through replica A's admin API, then POST /ocsp every %v until it says revoked;\n", ocspPollEvery)
		p("timed from the revocation's 200; the responder had a cached good answer)\n")
		p("  %-44s %5s %9s %9s %9s\n", "", "n", "p50 ms", "p99 ms", "max ms")
		row := func(name string, d []time.Duration) {
			p("  %-44s %5d %9.1f %9.1f %9.1f\n", name, len(d), benchutil.Millis(benchutil.Percentile(d, 50)),
				benchutil.Millis(benchutil.Percentile(d, 99)), benchutil.Millis(benchutil.Percentile(d, 100)))
		}
		row("OCSP of replica B (another replica)", r.other)
		row("OCSP of replica A (the same; baseline)", r.same)
		row("the revoke call itself (until its 200)", r.call)
	}

	if r := res.list; r != nil {
		p("\nListing one page of %d devices (GET /v1/admin/devices?limit=%d&after=<random device>, keep-alive; median of %d calls)\n",
			listPage, listPage, len(r.calls))
		p("  %s devices were loaded in SQL (INSERT ... SELECT over generate_series, then VACUUM ANALYZE: %v), NOT through the API\n",
			benchutil.FormatCount(r.devices-r.before), r.load.Round(time.Millisecond))
		p("  %-52s %9s %9s\n", "", "median ms", "max ms")
		row := func(name string, d []time.Duration) {
			p("  %-52s %9.2f %9.2f\n", name, benchutil.Millis(benchutil.Median(d)), benchutil.Millis(benchutil.Percentile(d, 100)))
		}
		row(fmt.Sprintf("with %d devices (before the load; baseline)", r.before), r.beforeCalls)
		row(fmt.Sprintf("with %d devices, after a random device", r.devices), r.calls)
		row(fmt.Sprintf("with %d devices, the first page", r.devices), r.first)
		row("the SQL statement alone (from this tool, same server)", r.sql)
	}

	p("\nTargets (from the issue, for the 2-core machine)\n")
	if bolt != nil && pg1 != nil {
		ratio := pg1.Rate / bolt.Rate
		p("  1 PostgreSQL replica / 1 bbolt replica, enrollments/s   >= %.2fx   %6.0f / %6.0f = %.2fx   %s\n",
			targetPGRatio, pg1.Rate, bolt.Rate, ratio, verdict(ratio >= targetPGRatio))
		if pgOwn != nil {
			p("    (with a one-time token per device, PostgreSQL does %.0f/s: %.2fx of bbolt's shared-token rate)\n", pgOwn.Rate, pgOwn.Rate/bolt.Rate)
		}
	} else {
		p("  PostgreSQL / bbolt rate: not evaluated (-phases has no enroll)\n")
	}
	if r := res.revoke; r != nil {
		p99 := benchutil.Percentile(r.other, 99)
		p("  revoke -> OCSP revoked on another replica, p99         < %v      %7.1f ms               %s\n",
			targetRevokeP99, benchutil.Millis(p99), verdict(p99 < targetRevokeP99))
	}
	if r := res.list; r != nil {
		med := benchutil.Median(r.calls)
		p("  one page of 100 of %s devices, median                  < %v     %7.2f ms               %s\n",
			benchutil.FormatCount(r.devices), targetList, benchutil.Millis(med), verdict(med < targetList))
	}
	return missed
}
