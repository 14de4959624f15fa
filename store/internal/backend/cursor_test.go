package backend

import (
	"context"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/fleetca/fleetca/store"
)

func TestParseSerialCursor(t *testing.T) {
	tests := []struct {
		after string
		want  string // hex; "" for an error
	}{
		{"", "0"},
		{"0", "0"},
		{"1f", "1f"},
		{"1F", "1f"},
		{"00ff", "ff"},
		{"200000000000000000000000000000001", "200000000000000000000000000000001"},
		{"-1", ""},
		{"+1", ""},
		{"0x1f", ""},
		{"1g", ""},
		{" 1", ""},
		{"１", ""}, // a full-width digit
	}
	for _, tc := range tests {
		t.Run(tc.after, func(t *testing.T) {
			n, err := ParseSerialCursor(tc.after)
			switch {
			case tc.want == "" && err == nil:
				t.Errorf("ParseSerialCursor(%q) = %x, want an error", tc.after, n)
			case tc.want != "" && err != nil:
				t.Errorf("ParseSerialCursor(%q) error = %v, want nil", tc.after, err)
			case tc.want != "" && n.Text(16) != tc.want:
				t.Errorf("ParseSerialCursor(%q) = %x, want %s", tc.after, n, tc.want)
			}
		})
	}
}

func FuzzParseSerialCursor(f *testing.F) {
	for _, s := range []string{"", "0", "1f", "DEADbeef", "-1", "0x1", "1_0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, after string) {
		n, err := ParseSerialCursor(after)
		if err != nil {
			return
		}
		if n.Sign() < 0 {
			t.Fatalf("ParseSerialCursor(%q) = %v, want not negative", after, n)
		}
		// What it accepts is hex digits only, and means their value.
		if want := strings.TrimLeft(strings.ToLower(after), "0"); n.Sign() > 0 && n.Text(16) != want {
			t.Fatalf("ParseSerialCursor(%q) = %x, want %s", after, n, want)
		}
	})
}

func TestLoadRecords(t *testing.T) {
	recs := []store.Record{
		{Device: &store.Device{ID: "d-1"}},
		{Certificate: &store.Certificate{Serial: big.NewInt(1)}},
		{Device: &store.Device{ID: "d-2"}},
	}
	source := func() func() (store.Record, bool, error) {
		i := 0
		return func() (store.Record, bool, error) {
			if i == len(recs) {
				return store.Record{}, false, nil
			}
			i++
			return recs[i-1], true, nil
		}
	}

	t.Run("all", func(t *testing.T) {
		var got int
		err := LoadRecords(t.Context(), source(), func(store.Record) error { got++; return nil })
		if err != nil || got != len(recs) {
			t.Errorf("LoadRecords = %d records, %v, want %d, nil", got, err, len(recs))
		}
	})
	t.Run("add-fails", func(t *testing.T) {
		bad := errors.New("bad")
		err := LoadRecords(t.Context(), source(), func(r store.Record) error {
			if r.Certificate != nil {
				return bad
			}
			return nil
		})
		if !errors.Is(err, bad) || !strings.HasPrefix(err.Error(), "record 2 (") {
			t.Errorf("LoadRecords error = %v, want record 2's, wrapping %v", err, bad)
		}
	})
	t.Run("next-fails", func(t *testing.T) {
		bad := errors.New("bad")
		err := LoadRecords(t.Context(), func() (store.Record, bool, error) { return store.Record{}, false, bad },
			func(store.Record) error { return nil })
		if !errors.Is(err, bad) {
			t.Errorf("LoadRecords error = %v, want %v", err, bad)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		var got int
		err := LoadRecords(ctx, func() (store.Record, bool, error) {
			return store.Record{Device: &store.Device{ID: "d"}}, true, nil
		}, func(store.Record) error { got++; return nil })
		if !errors.Is(err, context.Canceled) || got != 1023 {
			t.Errorf("LoadRecords = %d records, %v, want 1023, %v", got, err, context.Canceled)
		}
	})
}
