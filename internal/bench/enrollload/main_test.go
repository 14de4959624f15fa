package main

import (
	"io"
	"slices"
	"testing"
	"time"
)

func TestParseListening(t *testing.T) {
	tests := []struct {
		name, log, want string
	}{
		{"ok/after-other-lines", `{"time":"t","level":"INFO","msg":"certificate authority loaded","issuer":"Bench Intermediate CA"}
{"time":"t","level":"INFO","msg":"listening","https":"https://127.0.0.1:43503","http":"http://127.0.0.1:45915","public_url":"http://127.0.0.1:45915"}

fleetca is serving CA "Bench" from d
`, "https://127.0.0.1:43503"},
		{"fail/not-yet", `{"time":"t","level":"INFO","msg":"certificate authority loaded"}` + "\n", ""},
		{"fail/partial-line", `{"time":"t","level":"INFO","msg":"listening","https":"https://127.0.0.1:4`, ""},
		{"fail/banner-only", "  HTTPS (enrollment, admin API): https://127.0.0.1:1\n", ""},
		{"fail/not-https", `{"msg":"listening","https":"http://127.0.0.1:1"}` + "\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseListening([]byte(tc.log)); got != tc.want {
				t.Errorf("parseListening() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPercentileAndMedian(t *testing.T) {
	ds := func(ms ...int) []time.Duration {
		var out []time.Duration
		for _, m := range ms {
			out = append(out, time.Duration(m)*time.Millisecond)
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // 100..1, unsorted
	}
	tests := []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"p50/odd", ds(3, 1, 2), 50, 2 * time.Millisecond},
		{"p99/hundred", ds(hundred...), 99, 99 * time.Millisecond},
		{"p50/hundred", ds(hundred...), 50, 50 * time.Millisecond},
		{"p100/hundred", ds(hundred...), 100, 100 * time.Millisecond},
		{"p99/one", ds(7), 99, 7 * time.Millisecond},
		{"p50/none", nil, 50, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(slices.Clone(tc.in), tc.p); got != tc.want {
				t.Errorf("percentile(%v) = %v, want %v", tc.p, got, tc.want)
			}
		})
	}
	if got, want := median(ds(4, 1, 3, 2)), 2500*time.Microsecond; got != want {
		t.Errorf("median(even) = %v, want %v", got, want)
	}
	if got, want := medianFloat([]float64{5, 1, 3}), 3.0; got != want {
		t.Errorf("medianFloat = %v, want %v", got, want)
	}
}

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

func TestSizeFor(t *testing.T) {
	if got := sizeFor(2000, 5*time.Second, 100_000); got != 15_256 {
		t.Errorf("sizeFor(2000/s, 5s) = %d, want 15256", got)
	}
	if got := sizeFor(1e6, 5*time.Second, 100_000); got != 100_000 {
		t.Errorf("sizeFor(1e6/s, 5s) = %d, want the cap 100000", got)
	}
}

// TestMeasureFloor checks that the floor's parts are consistent: each
// floor is at least its slowest part.
func TestMeasureFloor(t *testing.T) {
	f, err := measureFloor(1, 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if f.csrCheck <= 0 || f.rawSign <= 0 || f.createCert <= 0 || f.tbsBytes < 300 {
		t.Fatalf("measureFloor() = %+v, want positive parts and a TBS of some hundreds of bytes", f)
	}
	if f.floorA < max(f.csrCheck, f.rawSign)/2 || f.floorB < max(f.csrCheck, f.createCert)/2 {
		t.Errorf("measureFloor() = %+v: a floor is far below one of its parts", f)
	}
}
