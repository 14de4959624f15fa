package main

import (
	"bytes"
	"strings"
	"testing"
)

// The whole run on a small fleet: the store is built, cached, reused,
// and every page answers 200 through a logged-in session.
func TestMeasureSmallFleet(t *testing.T) {
	o := options{devices: 200, cache: t.TempDir(), reps: 2}
	for run := range 2 { // the second run reuses the cached store
		var out bytes.Buffer
		if err := measure(t.Context(), o, &out, t.Logf); err != nil {
			t.Fatalf("run %d: measure error = %v", run, err)
		}
		for _, page := range []string{"overview", "devices, first page", "devices, 20 pages deep", "devices, search by prefix", "device"} {
			if !strings.Contains(out.String(), page) {
				t.Errorf("run %d: no figure for %q in:\n%s", run, page, out.String())
			}
		}
	}
}

func TestParse(t *testing.T) {
	o, err := parse([]string{"-devices", "5000", "-reps", "3", "-cache", "/x"}, &bytes.Buffer{})
	if err != nil || o.devices != 5000 || o.reps != 3 || o.cache != "/x" {
		t.Errorf("parse = %+v, %v", o, err)
	}
	if _, err := parse([]string{"-devices", "5"}, &bytes.Buffer{}); err == nil {
		t.Errorf("parse(-devices 5) error = nil, want one")
	}
}
