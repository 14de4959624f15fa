package benchutil

import (
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestNewFlagSet(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		want     Flags
		wantFail bool
	}{
		{"ok/defaults", nil, Flags{Pkg: "./cmd/fleetca"}, false},
		{"ok/all", []string{"-fleetca", "/bin/f", "-pkg", "./x", "-tmp", "/t", "-keep", "-strict",
			"-server-env", "GOGC=400", "-server-env", "GOMAXPROCS="},
			Flags{Fleetca: "/bin/f", Pkg: "./x", Tmp: "/t", Keep: true, Strict: true, ServerEnv: []string{"GOGC=400", "GOMAXPROCS="}}, false},
		{"fail/server-env-no-equals", []string{"-server-env", "GOGC"}, Flags{}, true},
		{"fail/server-env-no-name", []string{"-server-env", "=1"}, Flags{}, true},
		{"fail/positional", []string{"extra"}, Flags{}, true},
		{"fail/unknown", []string{"-nope"}, Flags{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var f Flags
			err := Parse(NewFlagSet("x", io.Discard, &f, "things"), tc.args)
			if (err != nil) != tc.wantFail {
				t.Fatalf("Parse(%q) error = %v, want failure %v", tc.args, err, tc.wantFail)
			}
			if tc.wantFail {
				return
			}
			if f.Fleetca != tc.want.Fleetca || f.Pkg != tc.want.Pkg || f.Tmp != tc.want.Tmp || f.Keep != tc.want.Keep ||
				f.Strict != tc.want.Strict || !slices.Equal(f.ServerEnv, tc.want.ServerEnv) {
				t.Errorf("Parse(%q) = %+v, want %+v", tc.args, f, tc.want)
			}
		})
	}
}

func TestNewFlagSetUsage(t *testing.T) {
	var out strings.Builder
	var f Flags
	err := Parse(NewFlagSet("enrollload", &out, &f, "binary, serve.log"), []string{"-h"})
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("Parse(-h) error = %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"usage (in bench/): go run ./enrollload [flags]\n\nflags:\n", "keep the temporary directory (binary, serve.log)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage = %q, want it to contain %q", out.String(), want)
		}
	}
}

func TestParseCount(t *testing.T) {
	tests := []struct {
		name, in string
		want     int
		wantFail bool
	}{
		{"ok/plain", "7", 7, false},
		{"ok/k", " 10k", 10_000, false},
		{"ok/K", "100K", 100_000, false},
		{"ok/M", "1M", 1_000_000, false},
		{"ok/zero", "0", 0, false},
		{"ok/at-most", "50M", 50_000_000, false},
		{"fail/over", "51M", 0, true},
		{"fail/negative", "-1", 0, true},
		{"fail/word", "ten", 0, true},
		{"fail/empty", "", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCount(tc.in, 50_000_000)
			if (err != nil) != tc.wantFail {
				t.Fatalf("ParseCount(%q) error = %v, want failure %v", tc.in, err, tc.wantFail)
			}
			if got != tc.want {
				t.Errorf("ParseCount(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func TestFormatCount(t *testing.T) {
	for n, want := range map[int]string{1_000_000: "1M", 100_000: "100k", 1234: "1234", 0: "0"} {
		if got := FormatCount(n); got != want {
			t.Errorf("FormatCount(%d) = %q, want %q", n, got, want)
		}
	}
}
