package main

import (
	"io"
	"slices"
	"testing"
	"time"
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
