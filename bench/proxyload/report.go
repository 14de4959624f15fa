package main

import (
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/fleetca/fleetca/bench/benchutil"
)

// summary is what the table shows of one target at one concurrency:
// medians over the repetitions, latency percentiles over all of them.
type summary struct {
	name                   string
	rate, rateMin, rateMax float64
	p50, p99               time.Duration
	proxy, upstream        time.Duration // CPU per operation
	client                 time.Duration
	proxyKnown             bool
	other                  float64
	dials                  int
	failed                 int
	errs                   []string
}

func summarize(name string, runs []runResult) summary {
	s := summary{name: name, rateMin: -1, proxyKnown: true}
	var rates []float64
	var proxy, upstream, client []time.Duration
	var other []float64
	var lat []time.Duration
	for _, r := range runs {
		rate := r.rate()
		rates = append(rates, rate)
		if s.rateMin < 0 || rate < s.rateMin {
			s.rateMin = rate
		}
		s.rateMax = max(s.rateMax, rate)
		proxy = append(proxy, r.perOp(r.proxy.Total()))
		s.proxyKnown = s.proxyKnown && r.proxyCPURead
		upstream = append(upstream, r.perOp(r.upstream.Total()))
		client = append(client, r.perOp(r.client.Total()))
		other = append(other, r.other())
		lat = append(lat, r.lat...)
		s.dials += r.dials
		s.failed += r.failed
		for _, e := range r.errs {
			if len(s.errs) < benchutil.MaxFailures {
				s.errs = append(s.errs, e)
			}
		}
	}
	s.rate = benchutil.Median(rates)
	s.proxy, s.upstream, s.client, s.other = benchutil.Median(proxy), benchutil.Median(upstream), benchutil.Median(client), benchutil.Median(other)
	s.p50, s.p99 = benchutil.Percentile(lat, 50), benchutil.Percentile(lat, 99)
	return s
}

// writeProblems writes, under s's row, its failures and a warning if
// other processes took over a tenth of the machine, and reports whether
// requests failed.
func (s summary) writeProblems(w io.Writer) (failed bool) {
	if s.failed > 0 {
		for _, e := range s.errs {
			fmt.Fprintf(w, "         failure: %s\n", e)
		}
	}
	if s.other > 0.10 {
		fmt.Fprintf(w, "         WARNING: other processes took %.0f%% of the machine during these runs: the rate is not trustworthy\n", 100*s.other)
	}
	return s.failed > 0
}

// check is one line of the targets table.
type check struct {
	name, want, got, verdict string
}

// report prints the results. missed: a target was missed; broken:
// requests failed where none should, so the figures mean little.
func report(w io.Writer, o options, res results) (missed, broken bool) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	si := res.setup
	var checks []check
	add := func(name, want, got string, ok bool) {
		v := "PASS"
		if !ok {
			v, missed = "MISS", true
		}
		checks = append(checks, check{name, want, got, v})
	}
	notMeasured := func(name, want, why string) {
		checks = append(checks, check{name, want, "not measured: " + why, "-"})
	}
	nginxWhy := "nginx SKIPPED (" + si.nginxSkip + ")"

	p("\nfleetca proxy benchmark, %s (took %v)\n", time.Now().UTC().Format(time.RFC3339), si.elapsed.Round(time.Second))
	p("  Figures are medians of %d interleaved repetitions of %v on a small shared machine (%d CPUs): expect 10-20%% noise\n", o.reps, o.duration, runtime.NumCPU())
	p("  from run to run. The client, the proxies, the upstream and the CA share the same cores, so the rates are the\n")
	p("  machine's; CPU per operation (utime+stime from /proc over each repetition) is the fairer comparison.\n")
	p("  machine   %s\n", benchutil.Machine())
	p("  upstream  this program run with %s, its own process (pid %d): net/http on loopback, 200 \"ok\", every core\n", upstreamArg, si.upstreamPID)
	p("  fleetca   fleetca proxy (pid %d), --ca root+intermediate, --crl-url <CA>, --revocation-feed <CA>; JSON access log to a file\n", si.fleetPID)
	if len(o.proxyEnv) > 0 {
		p("            with %s in its environment\n", strings.Join(o.proxyEnv, " "))
	}
	if si.nginxSkip != "" {
		p("  nginx     SKIPPED: %s\n", si.nginxSkip)
	} else {
		p("  nginx     %s (master pid %d), worker_processes %d (one per CPU: fleetca proxy uses every CPU too), same certificate,\n", si.nginxVersion, si.nginxPID, si.nginxWorkers)
		p("            bundle and CRLs (device + root: ssl_crl checks every CA of the chain), ssl_verify_client on, depth 2, no session\n")
		p("            cache or tickets, proxy_pass over keep-alive upstream connections, same identity headers, JSON access log to a file\n")
	}
	p("  client    this process: crypto/tls, TLS 1.3 with X25519 only (nginx 1.22 has no ML-KEM), P-256 device certificates,\n")
	p("            %d devices round robin, the proxies' certificate pinned rather than verified, no session resumption; a lean\n", o.devices)
	p("            HTTP/1.1 client (requests serialized once, answers read just enough to check them)\n")
	p("  setup     fleetca serve (pid %d) on a new CA; %d devices enrolled in %v; checked that both proxies pass the\n", si.caPID, si.enrolled, si.enrollTime.Round(time.Millisecond))
	p("            device ID on (the upstream echoes X-Device-Id) and drop a spoofed one\n")

	table := func(levels []levelResult, unit string) map[int]map[string]summary {
		out := map[int]map[string]summary{}
		p("   %5s %-24s %9s %15s %7s %7s %10s %10s %10s %6s %7s %6s\n", "conc", "target", unit+"/s", "(min-max)", "p50 ms", "p99 ms",
			"proxy µs/", "upstr. µs/", "client µs/", "other", "redials", "errors")
		p("   %5s %-24s %9s %15s %7s %7s %10s %10s %10s %6s %7s %6s\n", "", "", "median", "", "", "", unit, unit, unit, "", "", "")
		for _, lr := range levels {
			out[lr.conc] = map[string]summary{}
			for _, name := range lr.targets {
				s := summarize(name, lr.runs[name])
				out[lr.conc][name] = s
				proxy := "-"
				if s.proxyKnown && name != "direct to upstream" {
					proxy = fmt.Sprintf("%.0f", benchutil.Micros(s.proxy))
				}
				redials := "-" // every operation dials
				if lr.mode == modeKeepAlive {
					redials = fmt.Sprint(s.dials)
				}
				p("   %5d %-24s %9.0f %15s %7.2f %7.2f %10s %10.0f %10.0f %5.0f%% %7s %6d\n", lr.conc, name, s.rate,
					fmt.Sprintf("(%.0f-%.0f)", s.rateMin, s.rateMax), benchutil.Millis(s.p50), benchutil.Millis(s.p99), proxy, benchutil.Micros(s.upstream), benchutil.Micros(s.client), 100*s.other, redials, s.failed)
				if s.writeProblems(w) {
					broken = true
				}
			}
		}
		p("   proxy µs = CPU of the proxy's processes (fleetca proxy; nginx's master and workers) per operation; upstr. µs =\n")
		p("   the upstream's; client µs = this process's; other = CPU that processes outside the benchmark took, stolen time\n")
		p("   included; redials = connections the client had to reopen (the proxy closed a kept-alive one)\n")
		return out
	}
	ratioCheck := func(name string, sums map[int]map[string]summary, conc int, target float64, what string) {
		s := sums[conc]
		f, n := s["fleetca proxy"], s["nginx"]
		want := fmt.Sprintf(">= %.1fx nginx", target)
		if n.rate == 0 {
			notMeasured(name, want, nginxWhy)
			return
		}
		r := f.rate / n.rate
		add(name, want, fmt.Sprintf("%.0f / %.0f %s = %.2fx", f.rate, n.rate, what, r), r >= target)
	}

	if len(res.handshake) > 0 {
		p("\n1. Full handshakes per second: a new connection per request (TLS 1.3, X25519, ECDSA P-256 both sides, no resumption),\n")
		p("   GET / with Connection: close, answer read, close\n")
		sums := table(res.handshake, "hs")
		p("   fleetca proxy caches verified client chains (%d devices here, cache of 65536): the revocation check still runs\n", o.devices)
		p("   on every handshake; nginx verifies the chain and CRLs on every handshake\n")
		for _, lr := range res.handshake {
			ratioCheck(fmt.Sprintf("full handshakes/s at concurrency %d", lr.conc), sums, lr.conc, targetHandshakeRatio, "hs/s")
		}
	} else {
		notMeasured("full handshakes/s", fmt.Sprintf(">= %.1fx nginx", targetHandshakeRatio), "phase not run")
	}

	if len(res.keepalive) > 0 {
		p("\n2. Keep-alive requests per second: one connection per worker, opened before timing, GET / on it again and again\n")
		sums := table(res.keepalive, "req")
		for _, lr := range res.keepalive {
			ratioCheck(fmt.Sprintf("keep-alive requests/s at concurrency %d", lr.conc), sums, lr.conc, targetKeepAliveRatio, "req/s")
		}
	} else {
		notMeasured("keep-alive requests/s", fmt.Sprintf(">= %.1fx nginx", targetKeepAliveRatio), "phase not run")
	}

	if r := res.latency; r != nil {
		p("\n3. Latency added by the proxy: one request at a time on a kept-alive connection (%d per target, in %d interleaved\n", o.latencyN, o.reps)
		p("   blocks, after 50 untimed); added = through the proxy minus direct to the upstream (plain HTTP), same percentile\n")
		p("   %-24s %8s %8s %8s %12s %12s %7s\n", "target", "requests", "p50 µs", "p99 µs", "added p50 µs", "added p99 µs", "errors")
		direct := r.lat["direct to upstream"]
		d50, d99 := benchutil.Percentile(slices.Clone(direct), 50), benchutil.Percentile(slices.Clone(direct), 99)
		for _, name := range r.targets {
			l := r.lat[name]
			p50, p99 := benchutil.Percentile(slices.Clone(l), 50), benchutil.Percentile(slices.Clone(l), 99)
			added50, added99 := "-", "-"
			if name != "direct to upstream" {
				added50, added99 = fmt.Sprintf("%.0f", benchutil.Micros(p50-d50)), fmt.Sprintf("%.0f", benchutil.Micros(p99-d99))
				checks = append(checks, check{"latency added, " + name, "(no target)", fmt.Sprintf("p50 +%.0f µs, p99 +%.0f µs", benchutil.Micros(p50-d50), benchutil.Micros(p99-d99)), "-"})
			}
			p("   %-24s %8d %8.0f %8.0f %12s %12s %7d\n", name, len(l), benchutil.Micros(p50), benchutil.Micros(p99), added50, added99, r.failed[name])
			if r.failed[name] > 0 {
				broken = true
			}
		}
		for _, e := range r.errs {
			p("     failure: %s\n", e)
		}
		if si.nginxSkip != "" {
			checks = append(checks, check{"latency added, nginx", "(no target)", "not measured: " + nginxWhy, "-"})
		}
	}

	if r := res.crl; r != nil {
		p("\n4. A CRL of %d entries (random 20-octet serials, mixed reasons, plus one enrolled device: the canary), signed in\n", r.entries)
		p("   process with the data directory's intermediate in %.1f s: %.1f MiB DER, %.1f MiB PEM with the root CRL for nginx\n",
			r.signTime.Seconds(), mib(int64(r.derBytes)), mib(int64(r.pemBytes)))
		p("   verify.ParseCRL of it, in this process: %.2f s, %.0f MiB allocated, %.0f MiB kept (the *CRL, after a GC)\n",
			r.parse.elapsed.Seconds(), mib(int64(r.parse.allocated)), mib(int64(r.parse.retained)))
		p("   A second fleetca proxy and a second nginx, started on the CA's small CRL, are switched to it with SIGHUP (fleetca:\n")
		p("   its --crl-url now serves it; nginx: its ssl_crl file replaced); switched = the canary's next handshake refused\n")
		p("   (tried every %v)\n", o.poll)
		p("   %-24s %14s %16s %22s %22s\n", "", "SIGHUP->refused", "old workers gone", "memory before->after", "after the runs")
		if f := r.fleet; f != nil {
			p("   %-24s %13.2fs %16s %22s %22s%s\n", "fleetca proxy (RSS)", f.refused.Seconds(), "-",
				fmt.Sprintf("%.0f -> %.0f MiB", mib(f.memBefore), mib(f.memAfter)), fmt.Sprintf("%.0f MiB (peak %.0f)", mib(f.memAfterRun), mib(f.peak)), errNote(f.err))
		}
		if n := r.nginx; n != nil {
			p("   %-24s %13.2fs %15.2fs %22s %22s%s\n", "nginx (PSS, all procs)", n.refused.Seconds(), n.settled.Seconds(),
				fmt.Sprintf("%.0f -> %.0f MiB", mib(n.memBefore), mib(n.memAfter)), fmt.Sprintf("%.0f MiB", mib(n.memAfterRun)), errNote(n.err))
		} else {
			p("   nginx: %s\n", nginxWhy)
		}
		if r.level != nil {
			p("   Handshakes per second with and without it, at concurrency %d (as in 1.)\n", r.level.conc)
			sums := table([]levelResult{*r.level}, "hs")[r.level.conc]
			fa, fb := sums[r.fleetA], sums[r.fleetBig]
			if fa.rate > 0 {
				q := fb.rate / fa.rate
				add(fmt.Sprintf("handshakes/s with the %s-entry CRL / without", benchutil.FormatCount(r.entries)), fmt.Sprintf(">= %.0f%%", 100*targetCRLRatio),
					fmt.Sprintf("%.0f / %.0f = %.0f%%", fb.rate, fa.rate, 100*q), q >= targetCRLRatio)
			}
			p("   fleetca proxy with the big CRL may be faster: its ~100 MB heap (the index, which holds no pointers) makes the\n")
			p("   collector run less often at the default GOGC=100; GOGC=400 (-proxy-env GOGC=400) gives both the same benefit\n")
			if na, nb := sums[r.nginxA], sums[r.nginxBig]; na.rate > 0 {
				checks = append(checks, check{"  nginx, the same (for comparison)", "(no target)",
					fmt.Sprintf("%.0f / %.0f = %.0f%%", nb.rate, na.rate, 100*nb.rate/na.rate), "-"})
			}
		}
		p("   The issue quotes nginx on its machine at about %d handshakes/s without and %d with a 1M-entry CRL, and %v and\n", quotedNginxHS, quotedNginxHS1M, quotedNginxReload)
		p("   %d MiB to reload it: quoted, NOT measured here\n", quotedNginxReloadM)
	} else {
		notMeasured("handshakes/s with a big CRL / without", fmt.Sprintf(">= %.0f%%", 100*targetCRLRatio), "phase not run (-crl-size 0 or -phases)")
	}

	if r := res.revoke; r != nil {
		p("\n5. Revoke to deny, fleetca proxy following the CA's revocation feed: %d devices one at a time, each with a kept-alive\n", r.n)
		p("   connection open through the proxy; POST /v1/admin/certificates/{serial}/revoke {\"reason\":%q}, then from the call\n", r.reason)
		p("   returning: a new handshake tried every %v until refused, and the wait for the proxy to close the open connection\n", r.poll)
		line := func(name string, d []time.Duration, extra string) {
			p("   %-40s p50 %7.1f ms  p99 %7.1f ms  max %7.1f ms%s\n", name, benchutil.Millis(benchutil.Percentile(slices.Clone(d), 50)),
				benchutil.Millis(benchutil.Percentile(slices.Clone(d), 99)), benchutil.Millis(benchutil.Percentile(slices.Clone(d), 100)), extra)
		}
		line("the revoke call itself", r.revokeCall, "")
		line("call returned -> new handshake refused", r.deny, fmt.Sprintf("  (at the first attempt: %d of %d; not within %v: %d)", r.firstRefused, r.n, r.deadline, r.denyMissed))
		if r.closedNoAlert > 0 {
			p("   %d refusal(s) came as the connection closed without a TLS alert (EOF), counted as refusals: the revocation\n", r.closedNoAlert)
			p("   landed while the handshake ran, and the proxy's check after it hangs up rather than sending an alert\n")
		}
		line("call returned -> open connection closed", r.closed, fmt.Sprintf("  (before the call returned: %d; not within %v: %d)", r.closedEarly, r.deadline, r.closeMissed))
		p("   (with %d samples, p99 is the largest but one at most)\n", r.n)
		for _, e := range r.errs {
			p("     attempt failed without a refusal: %s\n", e)
		}
		d99, c99 := benchutil.Percentile(slices.Clone(r.deny), 99), benchutil.Percentile(slices.Clone(r.closed), 99)
		add("revoke -> new handshake refused, p99", fmt.Sprintf("< %v", targetRevokeP99), fmt.Sprintf("%.0f ms (max %.0f ms)", benchutil.Millis(d99), benchutil.Millis(benchutil.Percentile(slices.Clone(r.deny), 100))),
			r.denyMissed == 0 && d99 < targetRevokeP99)
		add("revoke -> open connection closed, p99", fmt.Sprintf("< %v", targetRevokeP99), fmt.Sprintf("%.0f ms (max %.0f ms)", benchutil.Millis(c99), benchutil.Millis(benchutil.Percentile(slices.Clone(r.closed), 100))),
			r.closeMissed == 0 && c99 < targetRevokeP99)
	} else {
		notMeasured("revoke -> denied, p99", fmt.Sprintf("< %v", targetRevokeP99), "phase not run")
	}

	if r := res.jwt; r != nil {
		jwtRatio := func(name string, sums map[int]map[string]summary, conc int, target float64, what string) {
			f, j := sums[conc]["fleetca proxy"], sums[conc][jwtTargetName]
			want := fmt.Sprintf(">= %.1fx mTLS", target)
			if f.rate == 0 {
				notMeasured(name, want, "no mTLS figure")
				return
			}
			ratio := j.rate / f.rate
			add(name, want, fmt.Sprintf("%.0f / %.0f %s = %.2fx", j.rate, f.rate, what, ratio), ratio >= target)
		}
		p("\n7. Device JWTs: %s (pid %d, --jwt-audience %s) beside the mTLS fleetca proxy, same run, interleaved\n",
			jwtTargetName, si.jwtPID, jwtAudience)
		p("   a. keep-alive, as 2.: the JWT proxy's workers send Authorization: Bearer <an ES256 token signed at setup, one per\n")
		p("      device> on every request, checked each time (the verifier's result cache, and the revocation check)\n")
		sums := table(r.keepalive, "req")
		for _, lr := range r.keepalive {
			jwtRatio(fmt.Sprintf("JWT keep-alive req/s at concurrency %d", lr.conc), sums, lr.conc, targetJWTKeepAliveRatio, "req/s")
		}
		p("   b. new connections, as 1.: to the JWT proxy a new TLS connection without a client certificate per request, each\n")
		p("      with a token signed for it (ES256, a new jti: the proxy verifies its signature); to the mTLS proxy full handshakes\n")
		p("      (client µs includes signing the token, or the handshake's CertificateVerify)\n")
		sums = table(r.handshake, "conn")
		for _, lr := range r.handshake {
			jwtRatio(fmt.Sprintf("JWT new connections/s at concurrency %d", lr.conc), sums, lr.conc, targetJWTHandshakeRatio, "conn/s")
		}
	} else {
		notMeasured("JWT keep-alive req/s", fmt.Sprintf(">= %.1fx mTLS", targetJWTKeepAliveRatio), "phase not run")
		notMeasured("JWT new connections/s", fmt.Sprintf(">= %.1fx mTLS", targetJWTHandshakeRatio), "phase not run")
	}

	if r := res.verifier; r != nil {
		vchecks, vbroken := reportVerifier(w, o, r)
		checks = append(checks, vchecks...)
		broken = broken || vbroken
	}

	p("\nTargets (from the issue)\n")
	for _, c := range checks {
		p("  %-46s %-16s %-44s %s\n", c.name, c.want, c.got, c.verdict)
	}
	return missed, broken
}

// reportVerifier prints the verifier phase and returns its lines for the
// targets table (none has a target: the issue asks for figures) and
// whether requests failed where none should.
func reportVerifier(w io.Writer, o options, r *verifierResult) (checks []check, broken bool) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("\n6. nginx as `fleetca export nginx` configures it, the issue's verifier-kit question\n")
	if r.skip != "" {
		p("   nginx SKIPPED: %s\n", r.skip)
		return []check{{"exported nginx, big CRL / no CRL", "(no target)", "not measured: nginx SKIPPED", "-"}}, false
	}
	p("   %s, worker_processes %d. One `fleetca export nginx` per row (median %v each), its own port, the file included as\n",
		r.version, r.workers, r.exportTime.Round(time.Millisecond))
	p("   written inside the http { } of a minimal main configuration (pid, logs, temporary files in its own directory). As\n")
	p("   exported, in every row: no session cache (nginx's default) and tickets on (the client refuses them, so every\n")
	p("   handshake is full), proxy_pass over kept-alive upstream connections (the export's upstream block)\n")
	p("     a.  nginx.conf with its ssl_crl line removed (a copy): the baseline\n")
	p("     b.  nginx.conf: ssl_crl with the CA's device CRL (%d entries) and root CRL, as exported, then `fleetca crl sync\n", r.caEntries)
	p("         --once --exec '<nginx -s reload>'` against the CA (%.2f s)\n", r.caSync.Seconds())
	p("     c.  nginx.conf, its crl.pem installed by `fleetca crl sync --once --exec '<nginx -s reload>'`: %d random serials\n", r.bigEntries)
	p("         + the canary, signed in process with the intermediate (c. and e.: %.1f s), %.1f MiB PEM with the CA's root CRL\n",
		r.signTime.Seconds(), mib(int64(r.bigPEMBytes)))
	p("     e.  the same with %d entries (%.2f MiB): what each verifier checks with a %d-way partitioned CRL, or with\n",
		r.partEntries, mib(int64(r.partPEMBytes)), r.partitions)
	p("         device_validity %d times shorter (fleetca drops an entry once its certificate has expired)\n", r.partitions)
	p("     d.  nginx-ocsp.conf: ssl_ocsp leaf against the CA's /ocsp, ssl_ocsp_cache commented out as exported: nginx asks\n")
	p("         the responder at every full handshake (CA µs = fleetca serve's CPU per handshake)\n")
	p("     d'. nginx-ocsp.conf with its ssl_ocsp_cache line uncommented (a copy): an answer is kept until its nextUpdate\n")
	var a0 map[string]summary
	for _, lv := range r.levels {
		p("   %4s %-36s %7s %13s %6s %6s %6s %9s %8s %6s %6s %5s %14s %6s\n", "conc", "row", "hs/s", "(min-max)", "vs a.", "p50 ms", "p99 ms",
			"nginx µs", "+ vs a.", "CA µs", "client", "other", "nginx PSS MiB", "errors")
		p("   %4s %-36s %7s %13s %6s %6s %6s %9s %8s %6s %6s %5s %14s %6s\n", "", "", "median", "", "", "", "", "per hs", "", "per hs", "µs/hs", "", "idle -> loaded", "")
		sums := map[string]summary{}
		var base summary
		for i, row := range r.rows {
			s := summarize(row.name, lv.runs[row.name])
			sums[row.key] = s
			if i == 0 {
				base = s
			}
			ratio, delta := "-", "-"
			if base.rate > 0 && row.key != vNoCRL {
				ratio = fmt.Sprintf("%.0f%%", 100*s.rate/base.rate)
				delta = fmt.Sprintf("%+.0f", benchutil.Micros(s.proxy-base.proxy))
			}
			p("   %4d %-36s %7.0f %13s %6s %6.2f %6.2f %9.0f %8s %6.0f %6.0f %4.0f%% %14s %6d\n", lv.conc, row.name, s.rate,
				fmt.Sprintf("(%.0f-%.0f)", s.rateMin, s.rateMax), ratio, benchutil.Millis(s.p50), benchutil.Millis(s.p99), benchutil.Micros(s.proxy), delta,
				benchutil.Micros(benchutil.Median(lv.caCPU[row.name])), benchutil.Micros(s.client), 100*s.other,
				fmt.Sprintf("%.0f -> %.0f", mib(row.memIdle), mib(row.memAfter)), s.failed)
			if s.writeProblems(w) {
				broken = true
			}
		}
		if a0 == nil {
			a0 = sums
		}
	}
	p("   vs a. = the row over row a., both medians; nginx µs = CPU of nginx's master and workers per handshake\n")

	p("   Switching the CRL file: `fleetca crl sync --once --exec '%s -p DIR/run -c DIR/run/nginx.conf -s reload'` from a\n", filepath.Base(o.nginx))
	p("   server with the new device CRL and the CA's root CRL; meanwhile the canary's handshake is tried every %v\n", o.poll)
	p("   %-34s %9s %13s %15s %16s %15s\n", "switch", "crl sync", "then nginx", "canary's answer", "old workers", "nginx PSS MiB")
	p("   %-34s %9s %13s %15s %16s %15s\n", "", "(command)", "until it", "changed (total)", "gone", "before -> after")
	for _, rl := range []*verifierReload{r.toBig, r.toPart, r.back} {
		if rl == nil {
			continue
		}
		p("   %-34s %8.2fs %12.2fs %14.2fs %15.2fs %15s%s\n", rl.what, rl.sync.Seconds(), max(0, rl.switched-rl.sync).Seconds(),
			rl.switched.Seconds(), rl.settled.Seconds(), fmt.Sprintf("%.0f -> %.0f", mib(rl.memBefore), mib(rl.memAfter)), errNote(rl.err))
	}
	p("   crl sync's time includes `nginx -s reload`, which parses the whole configuration, CRL included, before it signals\n")
	p("   the master; the master then parses it again and starts new workers\n")
	p("   Why a CRL costs nginx at every handshake: OpenSSL 3.0 checks the CRL's signature again at each chain verification\n")
	p("   (perf on row c. puts half of nginx's CPU in SHA-256, then memmove and OPENSSL_cleanse), so the cost grows with the\n")
	p("   CRL's bytes. A verifier that checks a smaller CRL (e.: a partition, or shorter lifetimes) pays less; OCSP (d.)\n")
	p("   costs a request to the CA per full handshake instead, and the cache (d'.) almost nothing, for a revocation\n")
	p("   seen only when the cached answer expires (the CA's revocation.ocsp_validity, 1h by default)\n")

	if a0 != nil {
		base := a0[vNoCRL]
		ratio := func(key, label string) {
			s := a0[key]
			if base.rate == 0 {
				return
			}
			checks = append(checks, check{"exported nginx: " + label + " / no CRL", "(no target)",
				fmt.Sprintf("%.0f / %.0f hs/s = %.0f%%, nginx %+.0f µs/hs", s.rate, base.rate, 100*s.rate/base.rate, benchutil.Micros(s.proxy-base.proxy)), "-"})
		}
		ratio(vBig, benchutil.FormatCount(r.bigEntries)+" CRL")
		ratio(vPart, benchutil.FormatCount(r.partEntries)+" CRL")
		ratio(vOCSP, "ssl_ocsp")
		ratio(vOCSPCache, "ssl_ocsp + cache")
	}
	if rl := r.toBig; rl != nil {
		checks = append(checks, check{"exported nginx: crl sync to the " + benchutil.FormatCount(r.bigEntries) + " CRL", "(no target)",
			fmt.Sprintf("refused in %.2f s (sync %.2f s), PSS %.0f -> %.0f MiB", rl.switched.Seconds(), rl.sync.Seconds(), mib(rl.memBefore), mib(rl.memAfter)), "-"})
	}
	return checks, broken
}
