package enroll

import (
	"strings"
	"testing"

	"github.com/fleetca/fleetca/api"
)

// probeIDs are device IDs that a pattern matching every ID must match:
// every one-character ID, every two-character ID, and for each character
// an ID of 64 characters that is that character after its first.
func probeIDs() []api.DeviceID {
	var ids []api.DeviceID
	for _, a := range idFirst {
		ids = append(ids, api.DeviceID(string(a)))
		for _, b := range idRest {
			ids = append(ids, api.DeviceID(string(a)+string(b)))
		}
	}
	for _, c := range idRest {
		first := "a"
		if strings.ContainsRune(idFirst, c) {
			first = string(c)
		}
		ids = append(ids, api.DeviceID(first+strings.Repeat(string(c), api.MaxDeviceIDLen-1)))
	}
	return ids
}

// missedProbe returns a probe ID p does not match, or "".
func missedProbe(p string, probes []api.DeviceID) api.DeviceID {
	for _, id := range probes {
		if !matchPattern(p, id) {
			return id
		}
	}
	return ""
}

// TestAnyDevice: the analysis says a pattern matches every ID exactly when
// it matches every probe, for patterns near the edge either way.
func TestAnyDevice(t *testing.T) {
	probes := probeIDs()
	for _, tc := range []struct {
		pattern string
		want    bool
	}{
		{"*", true},
		{"**", true},
		{"?*", true},
		{"*?", true},
		{"*?*", true},
		{"**?**", true},
		{"[A-Za-z0-9]*", true},
		{"[0-9A-Za-z]**", true},
		{"*[A-Za-z0-9]*", true},
		{"*[+-.0-9A-Z_a-z]", true}, // + to . holds -
		{"[^~]*", true},
		{"*[^~]", true},
		{"[^!]*", true},
		{"?", false},   // one character only
		{"??*", false}, // not the one-character IDs
		{"*??", false},
		{"*a*", false},
		{"a*", false},
		{"line3-*", false},
		{"[A-Za-z]*", false},    // not IDs starting with a digit
		{"*[A-Za-z0-9]", false}, // not IDs ending in . _ -
		{"*[A-Za-z0-9]*", true},
		{"*[a-z0-9]*", false}, // not "A"
		{"[^a]*", false},
		{"*[^_]", false},
		{"[a-z]", false},
		{"dev-?", false},
	} {
		t.Run(tc.pattern, func(t *testing.T) {
			if err := checkPattern(tc.pattern); err != nil {
				t.Fatalf("checkPattern(%q) = %v, want a valid pattern", tc.pattern, err)
			}
			if got := AnyDevice(tc.pattern); got != tc.want {
				t.Errorf("AnyDevice(%q) = %v, want %v", tc.pattern, got, tc.want)
			}
			if missed := missedProbe(tc.pattern, probes); (missed == "") != tc.want {
				t.Errorf("pattern %q misses probe %q; the table says it matches every ID: %v", tc.pattern, missed, tc.want)
			}
		})
	}
}

// FuzzAnyDevice: no panic; a pattern said to match every ID matches every
// probe, and one that matches every probe is said to match every ID.
func FuzzAnyDevice(f *testing.F) {
	for _, s := range []string{"*", "?*", "*?*", "[A-Za-z0-9]*", "*[^a]", "a*", "[", "[]", "[^]", "[a-]*", "*[!]*", "[]a]*"} {
		f.Add(s)
	}
	probes := probeIDs()
	f.Fuzz(func(t *testing.T, p string) {
		got := AnyDevice(p)
		if checkPattern(p) != nil {
			if got {
				t.Fatalf("AnyDevice(%q) = true for a pattern checkPattern refuses", p)
			}
			return
		}
		if missed := missedProbe(p, probes); got != (missed == "") {
			t.Fatalf("AnyDevice(%q) = %v, but the pattern misses probe %q", p, got, missed)
		}
	})
}
