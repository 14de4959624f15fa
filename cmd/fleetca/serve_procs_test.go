package main

import (
	"runtime"
	"testing"
)

// TestSetMaxProcs checks that serve doubles the runtime's own GOMAXPROCS,
// the same however often it runs, and leaves an operator's GOMAXPROCS
// alone.
func TestSetMaxProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	unset := env{getenv: func(string) string { return "" }}
	for range 3 {
		setMaxProcs(unset)
		if got := runtime.GOMAXPROCS(0); got != 2*startProcs {
			t.Fatalf("GOMAXPROCS after setMaxProcs = %d, want %d (twice the runtime's %d)", got, 2*startProcs, startProcs)
		}
	}
	runtime.GOMAXPROCS(startProcs)
	setMaxProcs(env{getenv: func(k string) string {
		if k == "GOMAXPROCS" {
			return "1"
		}
		return ""
	}})
	if got := runtime.GOMAXPROCS(0); got != startProcs {
		t.Errorf("GOMAXPROCS with the variable set = %d, want it untouched (%d)", got, startProcs)
	}
}
