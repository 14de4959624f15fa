package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/fleetca/fleetca/bench/benchutil"
)

// levelSummary is what the table shows of a level: medians over its
// repetitions, latency percentiles over all of them; CPU per certificate.
type levelSummary struct {
	conc int
	benchutil.Summary
}

func summarize(l levelResult) levelSummary {
	s := levelSummary{conc: l.conc, Summary: benchutil.Summarize(l.reps)}
	// This table's other clamps the other processes' share at 0 before it
	// adds the stolen time (Phase.Other adds it first): kept, so that the
	// figures read as they always have.
	var other []float64
	for _, r := range l.reps {
		others := max(0, benchutil.Share(r.Machine-r.Server.Total()-r.Client.Total(), r.Elapsed))
		other = append(other, others+benchutil.Share(r.Steal, r.Elapsed))
	}
	s.Other = benchutil.Median(other)
	return s
}

// report prints the results and reports whether a target was missed.
// peakRSS is the server's peak resident memory in bytes, 0 if unknown.
func report(w io.Writer, o options, srv *benchutil.Server, peakRSS int64, dataDir string, f floorResult, levels []levelResult) (missed bool) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	client := "HTTP/1.1 keep-alive, one TLS connection per worker (a lean client in the manner of wrk: benchutil.Conn)"
	if o.proto == "h2" {
		client = "HTTP/2, all workers multiplexed on one TLS connection"
	}
	p("\nfleetca enrollment benchmark, %s\n", time.Now().UTC().Format(time.RFC3339))
	p("  machine  %s\n", benchutil.Machine())
	p("  server   fleetca serve as its own process (pid %d), bbolt with fsync on %s, HTTPS on loopback\n", srv.PID, benchutil.FSType(dataDir))
	if len(o.ServerEnv) > 0 {
		p("           with %s in its environment\n", strings.Join(o.ServerEnv, " "))
	}
	p("  client   %s, on the same machine; P-256 CSRs generated before timing\n", client)
	lead := primaryKind(o)
	p("           %s: POST %s, %s\n", lead.name, lead.path, lead.desc)
	for _, k := range o.clients[min(1, len(o.clients)):] {
		p("           %s: POST %s, %s\n", k.name, k.path, k.desc)
	}
	if len(o.clients) > 1 {
		p("           (the kinds interleaved in each repetition; tokens minted through the admin API before timing)\n")
	}
	p("  method   per level: %v warm-up, then %d x %v; medians of the repetitions, latency percentiles over all of them\n",
		o.warmup, o.reps, o.duration)
	p("           server CPU = utime+stime of /proc/<pid>/stat over each repetition, divided by the certificates issued\n")

	p("\nCrypto floor per certificate (P-256 device key and intermediate; one core; median of %d runs)\n", f.runs)
	p("  CSR signature check (csr.CheckSignature)                          %7.1f µs\n", benchutil.Micros(f.csrCheck))
	p("  certificate signature (SHA-256 + ecdsa.SignASN1, %d-byte TBS)     %7.1f µs\n", f.tbsBytes, benchutil.Micros(f.rawSign))
	p("  x509.CreateCertificate (encodes, signs, verifies its signature)   %7.1f µs\n", benchutil.Micros(f.createCert))
	p("  floor A = CSR check + certificate signature   (the issue's floor) %7.1f µs\n", benchutil.Micros(f.floorA))
	p("  floor B = CSR check + x509.CreateCertificate  (a Go CA's floor)   %7.1f µs\n", benchutil.Micros(f.floorB))
	p("  floor I = CSR parse + check + x509.CreateCertificate (issue 19)   %7.1f µs\n", benchutil.Micros(f.floorIssue))
	p("  floor I with a worker per CPU, all at once (CPU time per cert)     %7.1f µs\n", benchutil.Micros(f.floorIssueAll))

	p("\nClient %s, POST %s\n", lead.name, lead.path)
	p("%5s %9s %13s %7s %7s %11s %11s %7s %7s %10s %5s %6s %6s\n",
		"conc", "enroll/s", "(min-max)", "p50 ms", "p99 ms", "server µs/", "(user+sys)", "x fl.A", "x fl.B", "client µs/", "busy", "other", "errors")
	p("%5s %9s %13s %7s %7s %11s %11s %7s %7s %10s %5s %6s %6s\n",
		"", "median", "", "", "", "cert", "", "", "", "cert", "", "", "")
	var sums []levelSummary
	for _, l := range levels {
		s := summarize(l)
		sums = append(sums, s)
		p("%5d %9.0f %13s %7.2f %7.2f %11.0f %11s %7.2f %7.2f %10.0f %4.0f%% %5.0f%% %6d\n",
			s.conc, s.Rate, fmt.Sprintf("(%.0f-%.0f)", s.RateMin, s.RateMax),
			benchutil.Millis(s.P50), benchutil.Millis(s.P99), benchutil.Micros(s.Server), fmt.Sprintf("(%.0f+%.0f)", benchutil.Micros(s.User), benchutil.Micros(s.Sys)),
			benchutil.Ratio(s.Server, f.floorA), benchutil.Ratio(s.Server, f.floorB), benchutil.Micros(s.Client), 100*s.Busy, 100*s.Other, s.Failed)
	}
	for _, s := range sums {
		for _, e := range s.Errs {
			p("  c=%d failure: %s\n", s.conc, e)
		}
	}
	benchutil.WriteCPULegend(w, peakRSS)
	for _, s := range sums {
		if s.Other > 0.10 {
			p("  WARNING: at c=%d other work took %.0f%% of the machine: the rate and latency are not trustworthy; run again on a quiet machine\n",
				s.conc, 100*s.Other)
		}
	}

	if compareKinds(w, lead, levels, f) {
		missed = true
	}
	if compareStepCA(w, lead, levels, f) {
		missed = true
	}

	p("\nEarlier targets (the issue that asked for this benchmark; issue 19's are above), for the 2-core machine\n")
	var at *levelSummary
	for i := range sums {
		if sums[i].conc == targetConc {
			at = &sums[i]
		}
	}
	if lead != nativeClient {
		p("  not evaluated: they are set for the native client, and this run's main table is %s's\n", lead.name)
	} else if at == nil {
		p("  not evaluated: concurrency %d was not run\n", targetConc)
	} else {
		pass := func(ok bool) string {
			if ok {
				return "PASS"
			}
			missed = true
			return "MISS"
		}
		p("  enrollments/s at concurrency %d          >= %5d/s                  %8.0f/s          %s\n",
			targetConc, targetRate, at.Rate, pass(at.Rate >= targetRate))
		limit := time.Duration(float64(f.floorA) * targetCPURatio)
		p("  server CPU per certificate at c=%d       <= %.1f x floor A = %5.0f µs   %8.0f µs (%.2fx)  %s\n",
			targetConc, targetCPURatio, benchutil.Micros(limit), benchutil.Micros(at.Server), benchutil.Ratio(at.Server, f.floorA), pass(at.Server <= limit))
		p("    (against floor B, %.0f µs, it is %.2fx)\n", benchutil.Micros(f.floorB), benchutil.Ratio(at.Server, f.floorB))
		if runtime.NumCPU() != 2 {
			p("  note: this machine has %d CPUs; the rate target is set for 2\n", runtime.NumCPU())
		}
	}
	return missed
}

// compareStepCA prints, for the level where step-ca or the bare server
// ran, fleetca's and their medians side by side; with step-ca, the rate
// ratio against targetStepCARatio and fleetca's CPU per certificate over
// floor I against targetFloorRatio; with the bare server too, the ceiling:
// the bare server's rate over step-ca's, which no CA on Go's crypto can
// beat here, and fleetca's over the bare server's. It reports whether a
// target was missed.
func compareStepCA(w io.Writer, lead clientKind, levels []levelResult, f floorResult) (missed bool) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	pass := func(ok bool) string {
		if ok {
			return "PASS"
		}
		missed = true
		return "MISS"
	}
	for _, l := range levels {
		var sca, bare *kindResult
		for i := range l.others {
			switch l.others[i].kind {
			case stepCAClient:
				sca = &l.others[i]
			case bareClient:
				bare = &l.others[i]
			}
		}
		if sca == nil && bare == nil {
			continue
		}
		type row struct {
			name string
			s    benchutil.Summary
		}
		rows := []row{{"fleetca", benchutil.Summarize(l.reps)}}
		var names []string
		if sca != nil {
			rows = append(rows, row{"step-ca", benchutil.Summarize(sca.reps)})
			names = append(names, "step-ca "+stepCAVersion)
		}
		if bare != nil {
			rows = append(rows, row{"bare", benchutil.Summarize(bare.reps)})
			names = append(names, "the bare server")
		}
		p("\nfleetca against %s, measured in this run at c=%d (issue 19)\n", strings.Join(names, " and "), l.conc)
		if sca != nil {
			p("  step-ca: `go install %s@%s` with CGO_ENABLED=0, run by this program as its own process:\n", stepCAModule, stepCAVersion)
			p("  one JWK provisioner, bbolt, root and intermediate from go.step.sm/crypto's minica, tokens minted\n")
			p("  before timing with the provisioner's key (aud /1.0/sign, sha = root fingerprint, sans, a unique jti)\n")
		}
		if bare != nil {
			p("  bare: a Go HTTPS server (net/http, crypto/tls 1.2+, P-256, serve's GOGC and GOMAXPROCS), its own process,\n")
			p("  that parses and checks the CSR and calls x509.CreateCertificate (floor I) per request and nothing else:\n")
			p("  no token store, database, fsync, policy or log; native's request and answer (json.Marshal). A CA on Go's\n")
			p("  crypto and net/http does at least this per certificate: the bare server's rate is about its ceiling here\n")
		}
		p("%-8s %9s %13s %7s %7s %11s %8s %6s\n", "server", "enroll/s", "(min-max)", "p50 ms", "p99 ms", "server µs/", "x fl.I", "errors")
		for _, r := range rows {
			p("%-8s %9.0f %13s %7.2f %7.2f %11.0f %7.2fx %6d\n", r.name, r.s.Rate, fmt.Sprintf("(%.0f-%.0f)", r.s.RateMin, r.s.RateMax),
				benchutil.Millis(r.s.P50), benchutil.Millis(r.s.P99), benchutil.Micros(r.s.Server), benchutil.Ratio(r.s.Server, f.floorIssue), r.s.Failed)
		}
		if lead != nativeClient {
			p("  (fleetca's row is the %s client's)\n", lead.name)
		}
		fc := rows[0].s
		if sca != nil {
			sc := rows[1].s
			rr := ratio(fc.Rate, sc.Rate)
			p("  enrollments/s, fleetca over step-ca        >= %.1fx          %6.2fx   %s\n", targetStepCARatio, rr, pass(rr >= targetStepCARatio))
			p("  server CPU per certificate, step-ca over fleetca        %6.2fx\n", benchutil.Ratio(sc.Server, fc.Server))
		}
		fr := benchutil.Ratio(fc.Server, f.floorIssue)
		p("  fleetca server CPU per certificate / floor I <= %.1fx      %6.2fx   %s\n", targetFloorRatio, fr, pass(fr <= targetFloorRatio))
		if f.floorIssueAll > 0 {
			p("    (over floor I with every CPU busy, %.0f µs, as under this load: %.2fx)\n",
				benchutil.Micros(f.floorIssueAll), benchutil.Ratio(fc.Server, f.floorIssueAll))
		}
		if bare != nil {
			bs := rows[len(rows)-1].s
			if sca != nil {
				sc := rows[1].s
				p("  ceiling: the bare server over step-ca                   %6.2fx   %s\n", ratio(bs.Rate, sc.Rate), ceilingVerdict(bs, sc))
			}
			p("  fleetca over the bare server: enrollments/s %.2fx, server CPU per certificate %.2fx (%+.0f µs: the floor,\n",
				ratio(fc.Rate, bs.Rate), benchutil.Ratio(fc.Server, bs.Server), benchutil.Micros(fc.Server-bs.Server))
			p("  TLS and net/http are in both; the rest is fleetca's: echo, token, policy, store with fsync, audit tree, log)\n")
		}
		if sca != nil {
			writeBudget(w, rows[1].s.Rate, fc.Client, f.floorIssue)
		}
	}
	return missed
}

// ceilingVerdict says whether targetStepCARatio is within the bare
// server's reach in this run, from the spread of the repetitions: out of
// reach only if even the bare server's best over step-ca's worst falls
// short, within it if its median ratio meets it, else not settled.
func ceilingVerdict(bare, sca benchutil.Summary) string {
	switch {
	case ratio(bare.RateMax, sca.RateMin) < targetStepCARatio:
		return fmt.Sprintf("below %.1fx even best over worst (%.2fx): out of a Go CA's reach here", targetStepCARatio, ratio(bare.RateMax, sca.RateMin))
	case ratio(bare.Rate, sca.Rate) >= targetStepCARatio:
		return "within a Go CA's reach here"
	}
	return fmt.Sprintf("not settled in this run (best over worst %.2fx, worst over best %.2fx)", ratio(bare.RateMax, sca.RateMin), ratio(bare.RateMin, sca.RateMax))
}

// writeBudget prints what targetStepCARatio asks of the server on this
// machine: at targetStepCARatio times step-ca's rate, the CPUs give each
// certificate a fixed CPU time, of which the load generator (on the same
// machine) takes clientCPU and the server may use the rest.
func writeBudget(w io.Writer, stepRate float64, clientCPU, floor time.Duration) {
	if stepRate <= 0 {
		return
	}
	need := targetStepCARatio * stepRate
	total := time.Duration(float64(runtime.NumCPU()) * float64(time.Second) / need)
	server := total - clientCPU
	fmt.Fprintf(w, "  budget: %.1fx step-ca = %.0f/s; %d CPUs give %.0f µs per certificate; the client here takes %.0f µs,\n",
		targetStepCARatio, need, runtime.NumCPU(), benchutil.Micros(total), benchutil.Micros(clientCPU))
	fmt.Fprintf(w, "          leaving the server at most %.0f µs (%.2fx floor I) with every CPU 100%% busy\n",
		benchutil.Micros(server), benchutil.Ratio(server, floor))
}

// primaryKind is the client kind of the main table: the first of
// o.clients, native when none is named.
func primaryKind(o options) clientKind {
	if len(o.clients) == 0 {
		return nativeClient
	}
	return o.clients[0]
}

// kindVerifies is the P-256 verifications the server pays for an
// enrollment of kind k beyond a native one, and what they are: the bound
// compareKinds prints beside each ratio.
func kindVerifies(k clientKind) (int, string) {
	if k == stepClient {
		return 1, "its one-time token's ES256 signature"
	}
	return 0, "the same CSR check and signature; the answer's encoding only differs"
}

// loadedVerify is one P-256 verification (the floor's CSR check, timed on
// one core) as it costs with every CPU busy: scaled by floor I's all-CPU
// over one-core cost, since the load keeps both cores busy.
func loadedVerify(f floorResult) time.Duration {
	if f.floorIssue <= 0 || f.floorIssueAll <= f.floorIssue {
		return f.csrCheck
	}
	return time.Duration(float64(f.csrCheck) * float64(f.floorIssueAll) / float64(f.floorIssue))
}

// compareKinds prints, for each level where other client kinds ran beside
// the main one, each kind's enrollments/s and server CPU per certificate
// and their ratios to the main kind's, the rate ratio its CPU per
// certificate predicts, and a verdict on the measured rates against
// targetKindRatio at targetConc; it reports whether one was missed. With
// native the main kind and f's CSR check timed (one P-256 verification),
// it prints under each kind's row the bound its extra public-key
// operations alone allow (kindVerifies): the main kind's measured (server
// + client) CPU per certificate plus them.
func compareKinds(w io.Writer, lead clientKind, levels []levelResult, f floorResult) (missed bool) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	others := false
	for _, l := range levels {
		for _, k := range l.others {
			others = others || !isPeer(k.kind)
		}
	}
	if !others {
		return false
	}
	p("\nClients compared, same CA, same run (target, from the issue: EST and step each at least %.2fx native at c=%d)\n", targetKindRatio, targetConc)
	if lead != nativeClient {
		p("  the first row is %s, not native: the ratios are to %s\n", lead.name, lead.name)
	}
	// µ is two bytes: the header is padded by hand.
	p("%5s %-6s %9s %13s %7s %7s  server µs/ %9s %9s %11s %7s %6s\n",
		"conc", "client", "enroll/s", "(min-max)", "p50 ms", "p99 ms", "x rate", "x CPU", "x CPU-bound", "target", "errors")
	p("%5s %-6s %9s %13s %7s %7s %10s %9s %9s %11s\n", "", "", "median", "", "", "", "cert", "", "", "rate")
	busy := 0.0 // the largest share of the machine other work took
	for _, l := range levels {
		if !slices.ContainsFunc(l.others, func(k kindResult) bool { return !isPeer(k.kind) }) {
			continue
		}
		base := benchutil.Summarize(l.reps)
		row := func(name string, s benchutil.Summary, verdict string) {
			p("%5d %-6s %9.0f %13s %7.2f %7.2f %10.0f %8.2fx %8.2fx %10.2fx %7s %6d\n",
				l.conc, name, s.Rate, fmt.Sprintf("(%.0f-%.0f)", s.RateMin, s.RateMax), benchutil.Millis(s.P50), benchutil.Millis(s.P99),
				benchutil.Micros(s.Server), ratio(s.Rate, base.Rate), benchutil.Ratio(s.Server, base.Server),
				benchutil.Ratio(base.Server+base.Client, s.Server+s.Client), verdict, s.Failed)
			busy = max(busy, s.Other)
		}
		row(lead.name, base, "")
		for _, k := range l.others {
			if isPeer(k.kind) {
				continue // another server: compareStepCA
			}
			s := benchutil.Summarize(k.reps)
			verdict := ""
			if l.conc == targetConc {
				verdict = "PASS"
				if ratio(s.Rate, base.Rate) < targetKindRatio {
					verdict, missed = "MISS", true
				}
			}
			row(k.kind.name, s, verdict)
			if lead == nativeClient && f.csrCheck > 0 {
				n, what := kindVerifies(k.kind)
				verify := loadedVerify(f)
				extra := time.Duration(n) * verify
				p("        bound: %s pays %d P-256 verification(s) more than %s (%s; one is %.0f µs: the floor's CSR check,\n",
					k.kind.name, n, lead.name, what, benchutil.Micros(verify))
				p("        as under this load, and the rest of the path costing what %s's does):\n", lead.name)
				p("        at %s's %.0f+%.0f µs (server+client) per certificate plus that, at most %.2fx with the cores the limit;\n",
					lead.name, benchutil.Micros(base.Server), benchutil.Micros(base.Client), benchutil.Ratio(base.Server+base.Client, base.Server+base.Client+extra))
				p("        measured %.0f µs server CPU per certificate, %+.0f µs over the bound's %.0f\n",
					benchutil.Micros(s.Server), benchutil.Micros(s.Server-base.Server-extra), benchutil.Micros(base.Server+extra))
			}
			for _, e := range s.Errs {
				p("  c=%d %s failure: %s\n", l.conc, k.kind.name, e)
			}
		}
	}
	p("  x rate = enrollments/s over the first row's; x CPU = server CPU per certificate over the first row's;\n")
	p("  x CPU-bound rate = the first row's (server + client) CPU per certificate over this row's: the rate ratio\n")
	p("  to expect where the two cores, not latency, are the limit; other load on the machine changes it less\n")
	if busy > 0.10 {
		p("  WARNING: other work took up to %.0f%% of the machine: the rates, x rate and the verdicts are not\n", 100*busy)
		p("  trustworthy (x CPU and x CPU-bound rate suffer less); run again on a quiet machine\n")
	}
	return missed
}

// ratio is a/b, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// writeProfile prints the grouped profile.
func writeProfile(w io.Writer, r profileResult) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("\nWhere fleetca's server CPU goes: in-process CPU profile (runtime/pprof) of serve's HTTPS enrollment path\n")
	p("  go test ./cmd/fleetca -run '^$' -bench '%s' -cpuprofile; the load generator's and CSR\n", profileBench)
	p("  making's goroutines (pprof labels side=client, side=setup) dropped; %d samples of 10 ms\n", r.samples)
	if r.bench != "" {
		p("  %s\n", r.bench)
	}
	for _, a := range r.areas {
		p("  %-52s %5.1f%%\n", a.name, 100*a.share)
	}
}
