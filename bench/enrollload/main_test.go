package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetca/fleetca/bench/benchutil"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{1, 8, 32}; !slices.Equal(o.concurrency, want) || o.proto != "h1" || o.reps != 3 {
		t.Errorf("defaults = %v %q %d, want %v h1 3", o.concurrency, o.proto, o.reps, want)
	}
	if len(o.clients) != 1 || o.clients[0] != nativeClient {
		t.Errorf("default clients = %v, want native only", o.clients)
	}
	if o, err := parseFlags([]string{"-client", "all"}, io.Discard); err != nil || !slices.Equal(o.clients, clientKinds) {
		t.Errorf("parseFlags(-client all) = %v, %v; want %v", o.clients, err, clientKinds)
	}
	for _, args := range [][]string{
		{"-concurrency", "1,x"},
		{"-concurrency", "0"},
		{"-proto", "h3"},
		{"-client", "scep"},
		{"-reps", "0"},
		{"-duration", "0s"},
		{"extra"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded, want an error", args)
		}
	}
}

// TestMeasureFloor checks that the floor was measured: each operation
// timed the number of runs asked for, each part a figure, the TBS that of
// a device certificate. How large the figures are, and how they compare,
// is for `make bench` to show: a busy machine changes them.
func TestMeasureFloor(t *testing.T) {
	const runs = 3
	f, err := measureFloor(runs, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if f.runs != runs {
		t.Errorf("measureFloor(%d runs) = %+v: %d runs behind the medians, want %d", runs, f, f.runs, runs)
	}
	if f.csrCheck <= 0 || f.rawSign <= 0 || f.createCert <= 0 || f.floorA <= 0 || f.floorB <= 0 || f.floorIssue <= 0 || f.floorIssueAll <= 0 {
		t.Errorf("measureFloor() = %+v, want every part measured", f)
	}
	if f.tbsBytes < 300 {
		t.Errorf("measureFloor() TBS = %d bytes, want a device certificate's some hundreds", f.tbsBytes)
	}
}

// TestReport checks what the report prints from given figures: the floor,
// each level's row with its ratios to the floors and its error count, the
// failures, and the targets' verdicts.
func TestReport(t *testing.T) {
	floor := floorResult{csrCheck: 70 * time.Microsecond, rawSign: 30 * time.Microsecond, createCert: 130 * time.Microsecond,
		floorA: 100 * time.Microsecond, floorB: 200 * time.Microsecond, tbsBytes: 559, runs: 9}
	// rep is one second at concurrency 32 with ok enrollments and 2
	// failures; the server's 300 ms of CPU is 100 µs per certificate at
	// 3000, the client's 90 ms 30 µs; no other process ran.
	rep := func(ok int) benchutil.Phase {
		return benchutil.Phase{OK: ok, Failed: 2, Elapsed: time.Second,
			Server: benchutil.CPUTimes{User: 240 * time.Millisecond, Sys: 60 * time.Millisecond},
			Client: benchutil.CPUTimes{User: 90 * time.Millisecond}, Machine: 390 * time.Millisecond,
			Lat:  []time.Duration{time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond},
			Errs: []string{"b-00000007: status 500"}}
	}
	tests := []struct {
		name       string
		ok         int
		row        []string // the level's columns, but busy and other (they depend on the CPU count)
		verdicts   []string
		wantMissed bool
	}{
		{"ok/targets-met", 3000, []string{"32", "3000", "(3000-3000)", "2.00", "3.00", "100", "(80+20)", "1.00", "0.50", "30"},
			[]string{"3000/s          PASS", "100 µs (1.00x)  PASS", "it is 0.50x"}, false},
		{"ok/rate-missed", 1500, []string{"32", "1500", "(1500-1500)", "2.00", "3.00", "200", "(160+40)", "2.00", "1.00", "60"},
			[]string{"1500/s          MISS", "200 µs (2.00x)  MISS", "it is 1.00x"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			o := options{reps: 1, duration: time.Second, proto: "h1"}
			missed := report(&out, o, &benchutil.Server{PID: 4242}, 40<<20, t.TempDir(), floor,
				[]levelResult{{conc: 32, reps: []benchutil.Phase{rep(tc.ok)}}})
			if missed != tc.wantMissed {
				t.Errorf("report() missed = %v, want %v", missed, tc.wantMissed)
			}
			text := out.String()
			for _, want := range []string{
				"median of 9 runs",
				"CSR signature check (csr.CheckSignature)                             70.0 µs",
				"559-byte TBS",
				"floor A = CSR check + certificate signature   (the issue's floor)   100.0 µs",
				"floor B = CSR check + x509.CreateCertificate  (a Go CA's floor)     200.0 µs",
				"(pid 4242)",
				"peak resident memory over the run: 40 MiB",
				"c=32 failure: b-00000007: status 500",
			} {
				if !strings.Contains(text, want) {
					t.Errorf("report() lacks %q:\n%s", want, text)
				}
			}
			var row []string
			for line := range strings.Lines(text) {
				if f := strings.Fields(line); len(f) == 13 && f[0] == "32" {
					row = f
				}
			}
			if row == nil {
				t.Fatalf("report() has no row for concurrency 32:\n%s", text)
			}
			if got := append(row[:10:10], row[12]); !slices.Equal(got, append(tc.row, "2")) {
				t.Errorf("report() row = %q, want %q (then busy, other and 2 errors)", row, tc.row)
			}
			for _, want := range tc.verdicts {
				if !strings.Contains(text, want) {
					t.Errorf("report() lacks the verdict %q:\n%s", want, text)
				}
			}
		})
	}
}

// TestCompareKinds checks the table of client kinds: each kind's median
// rate and CPU per certificate over the first kind's, the rate ratio the
// CPU per certificate predicts, and the verdict against 0.9x at
// concurrency 32 only.
func TestCompareKinds(t *testing.T) {
	// phase is a second with ok enrollments at cpu of server CPU each.
	phase := func(ok int, cpu time.Duration) benchutil.Phase {
		return benchutil.Phase{OK: ok, Elapsed: time.Second, Server: benchutil.CPUTimes{User: cpu * time.Duration(ok)},
			Lat: []time.Duration{time.Millisecond}}
	}
	phasesAt := func(cpu time.Duration, oks ...int) []benchutil.Phase {
		var ps []benchutil.Phase
		for _, ok := range oks {
			ps = append(ps, phase(ok, cpu))
		}
		return ps
	}
	phases := func(oks ...int) []benchutil.Phase { return phasesAt(500*time.Microsecond, oks...) }
	levels := []levelResult{
		{conc: 8, reps: phases(1000, 1000, 1000), others: []kindResult{{kind: stepClient, reps: phases(500, 500, 500)}}},
		{conc: 32, reps: phases(900, 1000, 5000), others: []kindResult{
			{kind: estClient, reps: phases(100, 950, 960)},
			{kind: stepClient, reps: phasesAt(625*time.Microsecond, 880, 890, 3000)},
		}},
	}
	var out strings.Builder
	if !compareKinds(&out, nativeClient, levels, floorResult{csrCheck: 100 * time.Microsecond}) {
		t.Error("compareKinds() missed = false, want true (step is 0.89x at c=32)")
	}
	rows := map[string][]string{}
	for line := range strings.Lines(out.String()) {
		if f := strings.Fields(line); len(f) >= 10 && (f[0] == "8" || f[0] == "32") {
			rows[f[0]+" "+f[1]] = f
		}
	}
	for _, tc := range []struct {
		row  string
		want []string // rate, x rate, x CPU, x CPU-bound rate, the verdict if any, errors
	}{
		{"8 native", []string{"1000", "1.00x", "1.00x", "1.00x", "0"}},
		{"8 step", []string{"500", "0.50x", "1.00x", "1.00x", "0"}}, // no verdict at c=8
		{"32 native", []string{"1000", "1.00x", "1.00x", "1.00x", "0"}},
		{"32 est", []string{"950", "0.95x", "1.00x", "1.00x", "PASS", "0"}},
		{"32 step", []string{"890", "0.89x", "1.25x", "0.80x", "MISS", "0"}},
	} {
		f := rows[tc.row]
		if f == nil {
			t.Errorf("compareKinds() has no row %q:\n%s", tc.row, out.String())
			continue
		}
		if got := append([]string{f[2], f[7], f[8], f[9]}, f[10:]...); !slices.Equal(got, tc.want) {
			t.Errorf("compareKinds() row %q = %q, want %q", tc.row, f, tc.want)
		}
	}

	// The bounds: native's 500 µs plus one verification (the floor's
	// CSR check, 100 µs) for step, nothing more for EST.
	for _, want := range []string{
		"bound: step pays 1 P-256 verification(s) more than native (its one-time token's ES256 signature; one is 100 µs",
		"at native's 500+0 µs (server+client) per certificate plus that, at most 0.83x with the cores the limit;",
		"measured 625 µs server CPU per certificate, +25 µs over the bound's 600",
		"bound: est pays 0 P-256 verification(s) more than native",
		"measured 500 µs server CPU per certificate, +0 µs over the bound's 500",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("compareKinds() lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "WARNING") {
		t.Errorf("compareKinds() on a quiet machine warns:\n%s", out.String())
	}
	out.Reset()
	busy := phases(1000)
	busy[0].Machine = busy[0].Server.Total() + time.Duration(runtime.NumCPU())*time.Second/2 // others took half the machine
	compareKinds(&out, nativeClient, []levelResult{{conc: 32, reps: phases(1000), others: []kindResult{{kind: estClient, reps: busy}}}}, floorResult{})
	if !strings.Contains(out.String(), "WARNING: other work took up to 50% of the machine") {
		t.Errorf("compareKinds() with half the machine taken lacks the warning:\n%s", out.String())
	}

	out.Reset()
	levels[1].others = levels[1].others[:1] // EST alone passes
	if compareKinds(&out, nativeClient, levels[1:], floorResult{}) {
		t.Errorf("compareKinds() with EST at 0.95x missed = true, want false:\n%s", out.String())
	}
	out.Reset()
	if compareKinds(&out, nativeClient, []levelResult{{conc: 32, reps: phases(1000)}}, floorResult{}) || out.Len() != 0 {
		t.Errorf("compareKinds() with native alone = %q, want nothing printed, no miss", out.String())
	}
}

// TestCompareStepCA checks the step-ca table: the rate ratio against 6x
// and fleetca's CPU per certificate over floor I against 1.3x, and that
// step-ca stays out of the client kinds' 0.9x verdicts.
func TestCompareStepCA(t *testing.T) {
	phase := func(ok int, cpu time.Duration) benchutil.Phase {
		return benchutil.Phase{OK: ok, Elapsed: time.Second, Server: benchutil.CPUTimes{User: cpu * time.Duration(ok)},
			Lat: []time.Duration{time.Millisecond}}
	}
	f := floorResult{floorIssue: 200 * time.Microsecond}
	for _, tc := range []struct {
		name           string
		fleetca, stepc int
		cpu            time.Duration
		missed         bool
		want           []string
	}{
		{"both met", 6000, 1000, 250 * time.Microsecond, false, []string{"6.00x   PASS", "1.25x   PASS",
			// 6,000/s on the test machine's CPUs, less the client's 0 µs.
			fmt.Sprintf("%d CPUs give %.0f µs per certificate", runtime.NumCPU(), float64(runtime.NumCPU())*1e6/6000),
			fmt.Sprintf("server at most %.0f µs (%.2fx floor I)", float64(runtime.NumCPU())*1e6/6000, float64(runtime.NumCPU())*1e6/6000/200)}},
		{"rate missed", 5900, 1000, 250 * time.Microsecond, true, []string{"5.90x   MISS", "1.25x   PASS"}},
		{"floor missed", 7000, 1000, 300 * time.Microsecond, true, []string{"7.00x   PASS", "1.50x   MISS"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			levels := []levelResult{{conc: 32, reps: []benchutil.Phase{phase(tc.fleetca, tc.cpu)},
				others: []kindResult{{kind: stepCAClient, reps: []benchutil.Phase{phase(tc.stepc, 1200*time.Microsecond)}}}}}
			var out strings.Builder
			if got := compareStepCA(&out, nativeClient, levels, f); got != tc.missed {
				t.Errorf("compareStepCA() missed = %v, want %v:\n%s", got, tc.missed, out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("compareStepCA() lacks %q:\n%s", w, out.String())
				}
			}
			out.Reset()
			if compareKinds(&out, nativeClient, levels, floorResult{csrCheck: 100 * time.Microsecond}) || out.Len() != 0 {
				t.Errorf("compareKinds() with step-ca only = %q, want nothing printed, no miss", out.String())
			}
		})
	}
}

// TestCompareStepCABare checks the ceiling lines: the bare server's rate
// over step-ca's against 6x, fleetca's rate and CPU over the bare
// server's, and that the bare server stays out of the client kinds'
// verdicts.
func TestCompareStepCABare(t *testing.T) {
	phase := func(ok int, cpu time.Duration) []benchutil.Phase {
		return []benchutil.Phase{{OK: ok, Elapsed: time.Second, Server: benchutil.CPUTimes{User: cpu * time.Duration(ok)},
			Lat: []time.Duration{time.Millisecond}}}
	}
	f := floorResult{floorIssue: 200 * time.Microsecond}
	for _, tc := range []struct {
		name     string
		bareRate int
		step     bool
		want     []string
		notWant  string
	}{
		{"ceiling above", 6500, true, []string{"step-ca v0.30.2 and the bare server", "bare          6500",
			"the bare server over step-ca                     6.50x   within a Go CA's reach here",
			"enrollments/s 0.62x, server CPU per certificate 1.33x (+100 µs"}, "below"},
		{"ceiling below", 5500, true, []string{"5.50x   below 6.0x even best over worst (5.50x): out of a Go CA's reach here"}, "within"},
		{"no step-ca", 6500, false, []string{"against the bare server, measured", "enrollments/s 0.62x"}, "over step-ca"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			others := []kindResult{{kind: bareClient, reps: phase(tc.bareRate, 300*time.Microsecond)}}
			if tc.step {
				others = append([]kindResult{{kind: stepCAClient, reps: phase(1000, 1200*time.Microsecond)}}, others...)
			}
			levels := []levelResult{{conc: 32, reps: phase(4000, 400*time.Microsecond), others: others}}
			var out strings.Builder
			if !compareStepCA(&out, nativeClient, levels, f) {
				t.Errorf("compareStepCA() at 4.0x and 2.0x floor missed = false, want true:\n%s", out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("compareStepCA() lacks %q:\n%s", w, out.String())
				}
			}
			if strings.Contains(out.String(), tc.notWant) {
				t.Errorf("compareStepCA() says %q:\n%s", tc.notWant, out.String())
			}
			out.Reset()
			if compareKinds(&out, nativeClient, levels, floorResult{csrCheck: 100 * time.Microsecond}) || out.Len() != 0 {
				t.Errorf("compareKinds() with peers only = %q, want nothing printed, no miss", out.String())
			}
		})
	}
}

// TestCeilingVerdict checks that the ceiling is declared out of reach only
// when even the bare server's best repetition over step-ca's worst falls
// short of 6x, and within reach when the medians meet it.
func TestCeilingVerdict(t *testing.T) {
	sum := func(min, med, max float64) benchutil.Summary {
		return benchutil.Summary{Rate: med, RateMin: min, RateMax: max}
	}
	for _, tc := range []struct {
		name      string
		bare, sca benchutil.Summary
		want      string
	}{
		{"within", sum(5900, 6100, 6300), sum(990, 1000, 1010), "within a Go CA's reach here"},
		{"out", sum(5000, 5200, 5500), sum(950, 1000, 1050), "below 6.0x even best over worst (5.79x)"},
		{"unsettled", sum(5000, 5800, 6300), sum(950, 1000, 1050), "not settled in this run (best over worst 6.63x, worst over best 4.76x)"},
	} {
		if got := ceilingVerdict(tc.bare, tc.sca); !strings.Contains(got, tc.want) {
			t.Errorf("%s: ceilingVerdict() = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestLoadedVerify checks that one verification is scaled by floor I's
// all-CPU over one-core cost, and left as timed when that is unknown.
func TestLoadedVerify(t *testing.T) {
	for _, tc := range []struct {
		f    floorResult
		want time.Duration
	}{
		{floorResult{csrCheck: 70 * time.Microsecond, floorIssue: 200 * time.Microsecond, floorIssueAll: 220 * time.Microsecond}, 77 * time.Microsecond},
		{floorResult{csrCheck: 70 * time.Microsecond, floorIssue: 200 * time.Microsecond}, 70 * time.Microsecond},
		{floorResult{csrCheck: 70 * time.Microsecond}, 70 * time.Microsecond},
	} {
		if got := loadedVerify(tc.f); got != tc.want {
			t.Errorf("loadedVerify(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}
}
