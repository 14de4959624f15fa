package main

import (
	"io"
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
	for _, args := range [][]string{
		{"-concurrency", "1,x"},
		{"-concurrency", "0"},
		{"-proto", "h3"},
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
	if f.csrCheck <= 0 || f.rawSign <= 0 || f.createCert <= 0 || f.floorA <= 0 || f.floorB <= 0 {
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
