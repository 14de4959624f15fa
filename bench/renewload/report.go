package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fleetca/fleetca/bench/benchutil"
)

// summary is what the table shows of a mode: medians over its
// repetitions, latency percentiles over all of them; CPU per request.
type summary struct {
	name string
	benchutil.Summary
}

func summarize(r modeResult) summary {
	return summary{name: r.mode.name, Summary: benchutil.Summarize(r.reps)}
}

// pair is a ratio the report prints: renewals/s of one mode over
// enrollments/s of another.
type pair struct {
	renew, enroll string
	likeForLike   bool // the target is judged on it
	what          string
	// The public-key operations the renewal pays beyond the enrollment,
	// P-256 each, for the bound printed beside a like-for-like ratio:
	// verifications by the server, signatures by the client (whose CPU
	// shares the machine), and why.
	verifies, signs int
	extra           string
}

// pairs: each renewal mode against the enrollment mode that uses
// connections as it does, then the literal pairing, which is not
// like for like.
var pairs = []pair{
	{"renew-mtls-conn", "enroll-conn", true, "both a new connection (full TLS handshake) per request", 1, 1,
		"the handshake verifies the device certificate's signature and the client's CertificateVerify (2) where an " +
			"enrollment checks its CSR's (1), and the client signs its CertificateVerify"},
	{"renew-token-ka", "enroll-ka", true, "both keep-alive, one connection per worker", 0, 0,
		"none: the token's signature is checked where an enrollment checks its CSR's, and the token's certificate " +
			"is proved by the CA's record of it, not by its signature"},
	{"renew-mtls-conn", "enroll-ka", false, "a full handshake per renewal, none per enrollment", 0, 0, ""},
}

// report prints the results and reports whether a target was missed.
// peakRSS is the server's peak resident memory in bytes, 0 if unknown; pk
// is the P-256 operations' cost measured in the run (zero: no bounds).
func report(w io.Writer, o options, srv *benchutil.Server, peakRSS int64, dataDir string, enrolled setupStats, pk pkCost, results []modeResult) (missed bool) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("\nfleetca renewal benchmark, %s\n", time.Now().UTC().Format(time.RFC3339))
	p("  machine  %s\n", benchutil.Machine())
	p("  server   fleetca serve as its own process (pid %d), bbolt with fsync on %s, HTTPS on loopback;\n", srv.PID, benchutil.FSType(dataDir))
	p("           ca.renew_min_interval %v: each device renews once, none is refused as too soon\n", o.minInterval)
	if len(o.ServerEnv) > 0 {
		p("           with %s in its environment\n", strings.Join(o.ServerEnv, " "))
	}
	p("  client   %d workers, HTTP/1.1 over TLS 1.3 (X25519, no session resumption), on the same machine; the server's\n", o.conc)
	p("           certificate pinned, no chain verified; CSRs, renewal tokens and the devices to renew made before timing\n")
	if enrolled.n > 0 {
		p("           (%d devices enrolled to be renewed, outside the timed phases, in %v: %.0f/s)\n",
			enrolled.n, enrolled.elapsed.Round(time.Millisecond), float64(enrolled.n)/enrolled.elapsed.Seconds())
	}
	p("  method   per mode: %v warm-up, then %d x %v, the modes interleaved; medians of the repetitions,\n", o.warmup, o.reps, o.duration)
	p("           latency percentiles over all of them; only 201 Created counts, any other answer is an error\n")
	p("           server CPU = utime+stime of /proc/<pid>/stat over each repetition, divided by the requests answered\n")

	// µ is two bytes: the headers are padded by hand.
	p("\n%-16s %8s %13s %7s %7s  server µs/ %11s  client µs/ %8s %5s %6s %6s\n",
		"mode", "req/s", "(min-max)", "p50 ms", "p99 ms", "(user+sys)", "conns/", "busy", "other", "errors")
	p("%-16s %8s %13s %7s %7s %10s %11s %10s %8s %5s %6s %6s\n",
		"", "median", "", "", "", "req", "", "req", "req", "", "", "")
	sums := map[string]summary{}
	var order []summary
	for _, r := range results {
		s := summarize(r)
		sums[s.name] = s
		order = append(order, s)
		p("%-16s %8.0f %13s %7.2f %7.2f %10.0f %11s %10.0f %8.2f %4.0f%% %5.0f%% %6d\n",
			s.name, s.Rate, fmt.Sprintf("(%.0f-%.0f)", s.RateMin, s.RateMax), benchutil.Millis(s.P50), benchutil.Millis(s.P99),
			benchutil.Micros(s.Server), fmt.Sprintf("(%.0f+%.0f)", benchutil.Micros(s.User), benchutil.Micros(s.Sys)), benchutil.Micros(s.Client), s.Conns, 100*s.Busy, 100*s.Other, s.Failed)
	}
	for _, s := range order {
		for _, e := range s.Errs {
			p("  %s failure: %s\n", s.name, e)
		}
	}
	for _, r := range results {
		p("  %-16s %s\n", r.mode.name, r.mode.desc)
	}
	benchutil.WriteCPULegend(w, peakRSS)
	for _, s := range order {
		if s.Exhausted > 0 {
			p("  NOTE: %s ran out of prepared requests in %d repetition(s) (raise -max-jobs); its rate is still right\n", s.name, s.Exhausted)
		}
		if s.Other > 0.10 {
			p("  WARNING: during %s other work took %.0f%% of the machine: the rates are not trustworthy; run again on a quiet machine\n",
				s.name, 100*s.Other)
		}
	}

	p("\nRenewals/s over enrollments/s, same run, concurrency %d (target, from the issue: at least %.2fx)\n", o.conc, targetRatio)
	judged := o.conc == targetConc
	pass := func(ok bool) string {
		if ok {
			return "PASS"
		}
		missed = true
		return "MISS"
	}
	line := func(pr pair, verdict bool) {
		r, okR := sums[pr.renew]
		e, okE := sums[pr.enroll]
		if !okR || !okE || e.Rate == 0 || e.Server == 0 {
			p("  %-15s / %-11s  not measured\n", pr.renew, pr.enroll)
			return
		}
		ratio := r.Rate / e.Rate
		v := ""
		if verdict {
			v = pass(ratio >= targetRatio)
		}
		p("  %-15s / %-11s %6.0f/s / %6.0f/s = %4.2fx %-4s  server CPU/req %4.2fx  (%s)\n",
			pr.renew, pr.enroll, r.Rate, e.Rate, ratio, v, float64(r.Server)/float64(e.Server), pr.what)
		if pr.likeForLike && pk.verify > 0 {
			writeBound(w, pr, e, r, pk)
		}
	}
	p("  like for like:\n")
	for _, pr := range pairs {
		if pr.likeForLike {
			line(pr, judged)
		}
	}
	if !judged {
		p("  not judged: the target is set for concurrency %d\n", targetConc)
	}
	p("  not like for like, no verdict (the issue's pairing of mTLS renewals with keep-alive enrollments):\n")
	for _, pr := range pairs {
		if !pr.likeForLike {
			line(pr, false)
		}
	}
	p("  There is no \"renewals over mTLS with keep-alive\" row: a connection's client certificate is fixed at its\n")
	p("  handshake, so only its first request can renew; a second is a retry (200, the certificate already issued,\n")
	p("  nothing signed) or a 409. A device renews once per connection, so mTLS renewals are measured one connection\n")
	p("  each, against enrollments one connection each; the token form renews on kept-alive connections.\n")
	return missed
}

// writeBound prints what the public-key operations a renewal pays beyond
// its enrollment allow, at the enrollment's measured CPU plus those
// operations' measured cost: the ratio where the two cores are the limit
// ((server + client CPU) of the enrollment over that plus the extra
// operations), the server's CPU per request, and how far the renewal's
// measured CPU is above it.
func writeBound(w io.Writer, pr pair, e, r summary, pk pkCost) {
	extraServer := time.Duration(pr.verifies) * pk.verify
	extraClient := time.Duration(pr.signs) * pk.sign
	base := e.Server + e.Client
	fmt.Fprintf(w, "    bound: extra public-key work: %s\n", pr.extra)
	fmt.Fprintf(w, "    (+%d verification on the server, +%d signature on the client; P-256 timed here on one idle core: verify %.0f µs,\n",
		pr.verifies, pr.signs, benchutil.Micros(pk.verify))
	fmt.Fprintf(w, "    sign %.0f µs; a few %% more under load, so the bound is a little high):\n", benchutil.Micros(pk.sign))
	fmt.Fprintf(w, "    at %s's CPU plus that, the rest of the path costing what it does there, the ratio could be at most\n", pr.enroll)
	fmt.Fprintf(w, "    %.2fx with the cores the limit, and the server\n", benchutil.Ratio(base, base+extraServer+extraClient))
	fmt.Fprintf(w, "    CPU/req as low as %.2fx; measured %.0f µs/req, %+.0f µs over the bound's %.0f\n",
		benchutil.Ratio(e.Server+extraServer, e.Server), benchutil.Micros(r.Server),
		benchutil.Micros(r.Server-e.Server-extraServer), benchutil.Micros(e.Server+extraServer))
}
