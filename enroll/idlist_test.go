package enroll

import (
	"slices"
	"strings"
	"testing"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
)

func TestParseDeviceIDList(t *testing.T) {
	long := strings.Repeat("a", api.MaxDeviceIDLen+1)
	for _, tc := range []struct {
		name, in string
		want     []api.DeviceID
		// wantErr is a prefix of the refusal's detail ("" for none).
		wantErr string
	}{
		{"ok/one", "dev-1\n", []api.DeviceID{"dev-1"}, ""},
		{"ok/no-final-newline", "dev-1\ndev-2", []api.DeviceID{"dev-1", "dev-2"}, ""},
		{"ok/blank-and-comments", "# station 3\n\ndev-1\n   \n  # dev-9 retired\ndev-2\n", []api.DeviceID{"dev-1", "dev-2"}, ""},
		{"ok/crlf", "dev-1\r\ndev-2\r\n", []api.DeviceID{"dev-1", "dev-2"}, ""},
		{"ok/surrounding-space", "  dev-1\t\n", []api.DeviceID{"dev-1"}, ""},
		{"ok/bom", "\uFEFFdev-1\n", []api.DeviceID{"dev-1"}, ""},
		{"ok/longest-id", strings.Repeat("a", api.MaxDeviceIDLen) + "\n", []api.DeviceID{api.DeviceID(strings.Repeat("a", api.MaxDeviceIDLen))}, ""},
		{"fail/empty", "", nil, "the device-ID list names no device"},
		{"fail/only-comments", "# nothing\n\n", nil, "the device-ID list names no device"},
		{"fail/bad-id", "dev-1\ndev-2\n-dev-3\n", nil, "line 3: "},
		{"fail/inner-space", "dev-1\ndev 2\n", nil, "line 2: "},
		{"fail/trailing-comment", "dev-1 # ok\n", nil, "line 1: "},
		{"fail/id-too-long", "# c\n" + long + "\n", nil, "line 2: "},
		{"fail/bom-not-first", "dev-1\n\uFEFFdev-2\n", nil, "line 2: "},
		{"fail/repeated", "dev-1\ndev-2\n\ndev-1\n", nil, `line 4: the device ID "dev-1" was given on line 1 already`},
		{"fail/line-too-long", "dev-1\n#" + strings.Repeat("x", maxIDListLine) + "\n", nil, "line 2 is longer than"},
		{"fail/nul", "dev-1\x00\n", nil, "line 1: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDeviceIDList(strings.NewReader(tc.in))
			if tc.wantErr == "" {
				if err != nil || !slices.Equal(got, tc.want) {
					t.Fatalf("ParseDeviceIDList = %q, %v; want %q, nil", got, err, tc.want)
				}
				return
			}
			fe, ok := err.(*fault.Error)
			if !ok || fe.Kind != fault.Malformed || !strings.HasPrefix(fe.Detail, tc.wantErr) || got != nil {
				t.Fatalf("ParseDeviceIDList = %q, %v; want no IDs and a Malformed fault starting %q", got, err, tc.wantErr)
			}
		})
	}
}

func FuzzParseDeviceIDList(f *testing.F) {
	for _, s := range []string{"dev-1\n", "# c\n\ndev-1\r\ndev-2", "\uFEFFa\n", "a\na\n", "-x\n", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		ids, err := ParseDeviceIDList(strings.NewReader(in))
		if err != nil {
			if _, ok := err.(*fault.Error); !ok || ids != nil {
				t.Fatalf("ParseDeviceIDList(%q) = %q, %v: a refusal must be a fault with no IDs", in, ids, err)
			}
			return
		}
		seen := map[api.DeviceID]bool{}
		for _, id := range ids {
			if _, err := api.ParseDeviceID(string(id)); err != nil || seen[id] {
				t.Fatalf("ParseDeviceIDList(%q) returned %q: bad or repeated", in, id)
			}
			seen[id] = true
		}
		if len(ids) == 0 {
			t.Fatalf("ParseDeviceIDList(%q) accepted a list with no ID", in)
		}
	})
}
