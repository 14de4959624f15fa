package api

import (
	"net/url"
	"strings"
	"testing"

	"github.com/fleetca/fleetca/internal/fault"
)

// kindOf is the fault kind of err, or 0 for nil or an internal error.
func kindOf(err error) fault.Kind {
	k, _ := fault.KindOf(err)
	return k
}

func TestParseDeviceID(t *testing.T) {
	for _, tc := range []struct {
		name, id string
		ok       bool
	}{
		{"ok/simple", "dev-1", true},
		{"ok/dots-underscores", "line3.station_2-x", true},
		{"ok/64", strings.Repeat("a", 64), true},
		{"ok/one-char", "7", true},
		{"ok/uppercase", "SN-0042", true},
		{"fail/empty", "", false},
		{"fail/65", strings.Repeat("a", 65), false},
		{"fail/leading-dash", "-dev", false},
		{"fail/leading-dot", ".dev", false},
		{"fail/leading-underscore", "_dev", false},
		{"fail/space", "dev 1", false},
		{"fail/slash", "dev/1", false},
		{"fail/dot-dot-segment", "a/../b", false},
		{"fail/colon", "dev:1", false},
		{"fail/unicode", "dév", false},
		{"fail/unicode-umlaut", "gerät", false},
		{"fail/nul", "dev\x00", false},
		{"fail/newline", "dev\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := ParseDeviceID(tc.id)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseDeviceID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
			}
			if err != nil {
				if kindOf(err) != fault.Malformed {
					t.Errorf("ParseDeviceID(%q) kind = %v, want Malformed", tc.id, kindOf(err))
				}
				return
			}
			if string(id) != tc.id {
				t.Errorf("ParseDeviceID(%q) = %q, want it unchanged", tc.id, id)
			}
		})
	}
}

func TestParseTrustDomain(t *testing.T) {
	for _, tc := range []struct {
		name, td string
		ok       bool
	}{
		{"ok/dns-like", "fleet.example.net", true},
		{"ok/one-label", "fleet", true},
		{"ok/underscore-dash", "a_b-c.d", true},
		{"ok/digits", "fleet1.example2", true},
		{"ok/255", strings.Repeat("a", 255), true},
		{"fail/empty", "", false},
		{"fail/256", strings.Repeat("a", 256), false},
		{"fail/uppercase", "Fleet.example.net", false},
		{"fail/uppercase-all", "Fleet.Example", false},
		{"fail/port", "fleet.example.net:443", false},
		{"fail/slash", "fleet/x", false},
		{"fail/space", "fleet example", false},
		{"fail/userinfo", "u@fleet", false},
		{"fail/unicode", "flöte.example", false},
		{"fail/empty-label", "fleet..net", false},
		{"fail/trailing-dot", "fleet.net.", false},
		{"fail/leading-dot", ".fleet.net", false},
		{"fail/only-dot", ".", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			td, err := ParseTrustDomain(tc.td)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseTrustDomain(%q) = %v, want ok=%v", tc.td, err, tc.ok)
			}
			if err != nil {
				if kindOf(err) != fault.Malformed {
					t.Errorf("ParseTrustDomain(%q) kind = %v, want Malformed", tc.td, kindOf(err))
				}
				return
			}
			if string(td) != tc.td {
				t.Errorf("ParseTrustDomain(%q) = %q, want it unchanged", tc.td, td)
			}
		})
	}
}

func TestDeviceSPIFFEID(t *testing.T) {
	td, id := TrustDomain("fleet.example.net"), DeviceID("line3.station_2-x")
	u := DeviceSPIFFEID(td, id)
	const want = "spiffe://fleet.example.net/device/line3.station_2-x"
	if got := u.String(); got != want {
		t.Errorf("DeviceSPIFFEID(%q, %q) = %q, want %q", td, id, got, want)
	}
	if got := DeviceSPIFFEIDPrefix(td) + string(id); got != want {
		t.Errorf("DeviceSPIFFEIDPrefix(%q) + id = %q, want %q", td, got, want)
	}
}

// FuzzParseDeviceID: device IDs come from CSRs and API requests. No
// panic; a refusal is Malformed; an accepted ID is its input unchanged,
// and its SPIFFE ID needs no escaping and parses back to the same path.
func FuzzParseDeviceID(f *testing.F) {
	for _, s := range []string{"dev-1", "", "-dev", "a/../b", "dév", strings.Repeat("a", 64), strings.Repeat("a", 65), "line3.station_2-x", "a b", "x\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseDeviceID(s)
		if err != nil {
			if kindOf(err) != fault.Malformed {
				t.Fatalf("ParseDeviceID(%q) refusal kind = %v (%v), want Malformed", s, kindOf(err), err)
			}
			return
		}
		if string(id) != s || len(s) == 0 || len(s) > MaxDeviceIDLen {
			t.Fatalf("ParseDeviceID(%q) = %q", s, id)
		}
		uri := DeviceSPIFFEID("fleet.test", id).String()
		if uri != DeviceSPIFFEIDPrefix("fleet.test")+s {
			t.Fatalf("SPIFFE ID of %q = %q: it was escaped", s, uri)
		}
		back, err := url.Parse(uri)
		if err != nil || back.Path != "/device/"+s || back.Host != "fleet.test" {
			t.Fatalf("SPIFFE ID %q does not parse back: %v, %+v", uri, err, back)
		}
	})
}

func TestFieldPointer(t *testing.T) {
	for _, tc := range []struct{ field, pointer string }{
		{"ttl", "#/ttl"},
		{"device_id", "#/device_id"},
		{"a/b~c", "#/a~1b~0c"},
	} {
		if got := FieldPointer(tc.field); got != tc.pointer {
			t.Errorf("FieldPointer(%q) = %q, want %q", tc.field, got, tc.pointer)
		}
		if got, ok := PointerField(tc.pointer); !ok || got != tc.field {
			t.Errorf("PointerField(%q) = %q, %v, want %q, true", tc.pointer, got, ok, tc.field)
		}
	}
	if got := FieldPointer(""); got != "" {
		t.Errorf("FieldPointer(\"\") = %q, want \"\"", got)
	}
	for _, p := range []string{"", "#/", "/ttl", "#/a/b", "ttl"} {
		if got, ok := PointerField(p); ok {
			t.Errorf("PointerField(%q) = %q, true; want false: not one top-level member", p, got)
		}
	}
}
