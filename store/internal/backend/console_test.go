package backend

import (
	"errors"
	"testing"
	"time"

	"github.com/fleetca/fleetca/store"
)

func TestCheckDeviceQuery(t *testing.T) {
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		q    store.DeviceQuery
		ok   bool
		sort store.DeviceSort
	}{
		{store.DeviceQuery{}, true, store.SortID},
		{store.DeviceQuery{Prefix: "dev-", Status: store.DeviceRevoked, Sort: store.SortIDDesc}, true, store.SortIDDesc},
		{store.DeviceQuery{Sort: store.SortRenewBy, Status: store.DeviceActive, RenewByBefore: at}, true, store.SortRenewBy},
		{store.DeviceQuery{Sort: store.SortCreatedDesc, Status: store.DeviceRevoked}, true, store.SortCreatedDesc},
		{store.DeviceQuery{Prefix: "dev-", Sort: store.SortRenewBy}, false, ""},
		{store.DeviceQuery{Prefix: "dev-", Sort: store.SortCreatedDesc}, false, ""},
		{store.DeviceQuery{Sort: store.SortRenewBy, Status: store.DeviceRevoked}, false, ""},
		{store.DeviceQuery{RenewByBefore: at}, false, ""},
		{store.DeviceQuery{Sort: store.SortCreatedDesc, RenewByBefore: at}, false, ""},
		{store.DeviceQuery{Sort: "name"}, false, ""},
		{store.DeviceQuery{Status: "lost"}, false, ""},
	} {
		got, err := CheckDeviceQuery(tc.q)
		if tc.ok && (err != nil || got.Sort != tc.sort) {
			t.Errorf("CheckDeviceQuery(%+v) = sort %q, %v, want %q, nil", tc.q, got.Sort, err, tc.sort)
		}
		if !tc.ok && !errors.Is(err, store.ErrBadQuery) {
			t.Errorf("CheckDeviceQuery(%+v) error = %v, want ErrBadQuery", tc.q, err)
		}
	}
}

func TestDecodeCursor(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"", "", true},
		{EncodeCursor([]byte("active\x00dev-1")), "active\x00dev-1", true},
		{"not a cursor!", "", false},
		{"a+b/", "", false},
		{"=", "", false},
	} {
		got, err := DecodeCursor(tc.in)
		if tc.ok && (err != nil || string(got) != tc.want) {
			t.Errorf("DecodeCursor(%q) = %q, %v, want %q, nil", tc.in, got, err, tc.want)
		}
		if !tc.ok && !errors.Is(err, store.ErrBadQuery) {
			t.Errorf("DecodeCursor(%q) error = %v, want ErrBadQuery", tc.in, err)
		}
	}
}

// FuzzDecodeCursor: a cursor from a URL either decodes to bytes that
// encode back to it, or is ErrBadQuery.
func FuzzDecodeCursor(f *testing.F) {
	f.Add("")
	f.Add(EncodeCursor([]byte("revoked\x00x")))
	f.Add("%%%")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := DecodeCursor(s)
		if err != nil {
			if !errors.Is(err, store.ErrBadQuery) {
				t.Fatalf("DecodeCursor(%q) error = %v, not ErrBadQuery", s, err)
			}
			return
		}
		if s != "" && EncodeCursor(b) != s {
			t.Fatalf("DecodeCursor(%q) = %x, which encodes as %q", s, b, EncodeCursor(b))
		}
		for _, r := range EncodeCursor(b) {
			if r < 0x21 || r > 0x7e {
				t.Fatalf("EncodeCursor(%x) = %q is not printable ASCII", b, EncodeCursor(b))
			}
		}
	})
}

func TestAuditQueryLimits(t *testing.T) {
	for _, tc := range []struct {
		name                string
		qLimit, scanLimit   int
		wantLimit, wantScan int
	}{
		{"defaults", 0, 0, store.DefaultPageLimit, store.AuditScanLimit},
		{"set", 10, 5, 10, 5},
		{"bounded", store.MaxPageLimit + 1, -1, store.MaxPageLimit, store.AuditScanLimit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			limit, scan := AuditQueryLimits(store.AuditQuery{Limit: tc.qLimit}, tc.scanLimit)
			if limit != tc.wantLimit || scan != tc.wantScan {
				t.Errorf("AuditQueryLimits(limit %d, scan %d) = %d, %d, want %d, %d", tc.qLimit, tc.scanLimit, limit, scan, tc.wantLimit, tc.wantScan)
			}
		})
	}
}
