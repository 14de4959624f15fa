package benchutil

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestSizeFor(t *testing.T) {
	tests := []struct {
		name       string
		rate       float64
		d          time.Duration
		most, want int
	}{
		{"ok/margin", 2000, 5 * time.Second, 100_000, 15_256},
		{"ok/capped", 1e6, 5 * time.Second, 100_000, 100_000},
		{"ok/capped-lower", 1e6, 5 * time.Second, 60_000, 60_000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := SizeFor(tc.rate, tc.d, tc.most); got != tc.want {
				t.Errorf("SizeFor(%v/s, %v, %d) = %d, want %d", tc.rate, tc.d, tc.most, got, tc.want)
			}
		})
	}
}

// TestRunPhase checks that a phase takes every job once, counts successes
// and failures, checks the first answer kept and fails on a wrong one.
// The phase's time is long enough that the jobs run out.
func TestRunPhase(t *testing.T) {
	const n, conc = 50, 4
	var done [n]atomic.Int32
	var kept atomic.Int32
	l := Load{Conc: conc, Jobs: n,
		Do: func(w, i int, keep bool) ([]byte, error) {
			done[i].Add(1)
			if i%10 == 3 {
				return nil, fmt.Errorf("job %d: refused", i)
			}
			if !keep {
				return nil, nil
			}
			kept.Add(1)
			return fmt.Appendf(nil, "answer %d", i), nil
		},
		Check: func(i int, answer []byte) error {
			if string(answer) != fmt.Sprintf("answer %d", i) {
				return fmt.Errorf("job %d answered %q", i, answer)
			}
			return nil
		},
	}
	p, err := RunPhase(t.Context(), os.Getpid(), time.Hour, l)
	if err != nil {
		t.Fatal(err)
	}
	if p.OK != n-5 || p.Failed != 5 || !p.Exhausted || len(p.Lat) != p.OK {
		t.Errorf("RunPhase() ok, failed, exhausted, latencies = %d, %d, %v, %d, want %d, 5, true, %d", p.OK, p.Failed, p.Exhausted, len(p.Lat), n-5, n-5)
	}
	if len(p.Errs) != MaxFailures || !strings.HasSuffix(p.Errs[0], ": refused") {
		t.Errorf("RunPhase() failures = %q, want %d of the refusals", p.Errs, MaxFailures)
	}
	for i := range done {
		if got := done[i].Load(); got != 1 {
			t.Errorf("job %d ran %d times, want once", i, got)
		}
	}
	if kept.Load() < 1 {
		t.Error("no answer was kept for the check")
	}
	if err := p.Failure(); err == nil || !strings.Contains(err.Error(), "5 of 50 requests failed") {
		t.Errorf("Failure() = %v, want 5 of 50 failed", err)
	}

	l.Check = func(int, []byte) error { return errors.New("not the device asked for") }
	if _, err := RunPhase(t.Context(), os.Getpid(), time.Hour, l); err == nil || !strings.Contains(err.Error(), "not the device asked for") {
		t.Errorf("RunPhase(a wrong first answer) error = %v, want the check's", err)
	}
}

func TestForEach(t *testing.T) {
	const n = 100
	var done [n]atomic.Int32
	if err := ForEach(t.Context(), 8, n, func(i int) error {
		done[i].Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := range done {
		if got := done[i].Load(); got != 1 {
			t.Errorf("f(%d) ran %d times, want once", i, got)
		}
	}
	errBad := errors.New("bad")
	if err := ForEach(t.Context(), 8, n, func(i int) error {
		if i == 42 {
			return errBad
		}
		return nil
	}); !errors.Is(err, errBad) {
		t.Errorf("ForEach(one failure) = %v, want it", err)
	}
}

// TestSummarize checks the medians, the spread of the rates and the
// counts over three phases.
func TestSummarize(t *testing.T) {
	phase := func(ok, failed, dials int) Phase {
		return Phase{OK: ok, Failed: failed, Dials: dials, Elapsed: time.Second,
			Server: CPUTimes{User: time.Duration(ok) * 400 * time.Microsecond, Sys: time.Duration(ok) * 100 * time.Microsecond},
			Client: CPUTimes{User: time.Duration(ok) * 50 * time.Microsecond},
			Lat:    []time.Duration{time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond},
			Errs:   []string{fmt.Sprintf("failure of %d", ok)}}
	}
	ex := phase(1200, 0, 0)
	ex.Exhausted = true
	s := Summarize([]Phase{phase(900, 1, 910), phase(1000, 2, 1002), ex})
	if s.Rate != 1000 || s.RateMin != 900 || s.RateMax != 1200 {
		t.Errorf("Summarize() rate %v (%v-%v), want 1000 (900-1200)", s.Rate, s.RateMin, s.RateMax)
	}
	if s.Server != 500*time.Microsecond || s.User != 400*time.Microsecond || s.Sys != 100*time.Microsecond || s.Client != 50*time.Microsecond {
		t.Errorf("Summarize() CPU per request %v (%v+%v), client %v, want 500µs (400µs+100µs), 50µs", s.Server, s.User, s.Sys, s.Client)
	}
	if s.Conns != 1 || s.OK != 3100 || s.Failed != 3 || s.Exhausted != 1 || len(s.Errs) != 3 {
		t.Errorf("Summarize() conns %v, ok %d, failed %d, exhausted %d, errs %q; want 1, 3100, 3, 1 and three", s.Conns, s.OK, s.Failed, s.Exhausted, s.Errs)
	}
	if s.P50 != 2*time.Millisecond || s.P99 != 3*time.Millisecond {
		t.Errorf("Summarize() p50, p99 = %v, %v, want 2ms, 3ms", s.P50, s.P99)
	}
}

func TestParsePhases(t *testing.T) {
	all := []string{"ocsp", "revoke", "crl"}
	tests := []struct {
		name, in string
		want     []string
		wantErr  bool
	}{
		{"ok/all", "ocsp,revoke,crl", all, false},
		{"ok/spaces-and-empty", " crl, ,ocsp", []string{"crl", "ocsp"}, false},
		{"ok/none", "", nil, false},
		{"fail/unknown", "ocsp,speed", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePhases(tc.in, all)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParsePhases(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if len(got) != len(tc.want) {
				t.Errorf("ParsePhases(%q) = %v, want %v", tc.in, got, tc.want)
			}
			for _, p := range tc.want {
				if !got[p] {
					t.Errorf("ParsePhases(%q) = %v, lacks %s", tc.in, got, p)
				}
			}
		})
	}
}
