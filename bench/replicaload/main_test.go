package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/bench/benchutil"
	"github.com/fleetca/fleetca/internal/pgtest"
	"github.com/fleetca/fleetca/internal/testenv"
	"github.com/fleetca/fleetca/store/pgstore"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.conc != 32 || o.devices != 1_000_000 || o.revocations < 50 || o.lists != 21 || len(o.phases) != 3 {
		t.Errorf("defaults = conc %d, devices %d, revocations %d, lists %d, phases %v; want 32, 1M, at least 50, 21, all three",
			o.conc, o.devices, o.revocations, o.lists, o.phases)
	}
	if o, err := parseFlags([]string{"-phases", "list", "-devices", "10k"}, io.Discard); err != nil || !o.phases["list"] || o.phases["enroll"] || o.devices != 10_000 {
		t.Errorf("parseFlags(-phases list -devices 10k) = %v, %d, %v; want list only and 10000", o.phases, o.devices, err)
	}
	for _, args := range [][]string{
		{"-concurrency", "1"},
		{"-phases", "enroll,crl"},
		{"-phases", ","},
		{"-devices", "100"},
		{"-devices", "x"},
		{"-reps", "0"},
		{"-lists", "0"},
		{"-revocations", "0"},
		{"-duration", "0s"},
		{"extra"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded, want an error", args)
		}
	}
}

func TestWaitCounts(t *testing.T) {
	var w waitCounts
	if got := w.String(); got != "no samples" {
		t.Errorf("empty waitCounts = %q, want \"no samples\"", got)
	}
	w.add(waitCounts{samples: 2, seen: map[string]int{"CPU": 2, "Lock:transactionid": 6}})
	w.add(waitCounts{samples: 2, seen: map[string]int{"CPU": 2, "IO:WALSync": 4, "Lock:tuple": 4}})
	want := []waitShare{{"Lock:transactionid", 1.5}, {"CPU", 1}, {"IO:WALSync", 1}, {"Lock:tuple", 1}}
	if diff := cmp.Diff(want, w.top(10), cmp.AllowUnexported(waitShare{})); diff != "" {
		t.Errorf("top (-want +got):\n%s", diff)
	}
	if got, want := w.String(), "Lock:transactionid 1.5, CPU 1.0, IO:WALSync 1.0, Lock:tuple 1.0"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := len(w.top(2)); got != 2 {
		t.Errorf("top(2) has %d states, want 2", got)
	}
}

func TestCheckPage(t *testing.T) {
	page := func(ids ...string) api.DevicePage {
		var p api.DevicePage
		for _, id := range ids {
			p.Devices = append(p.Devices, api.Device{ID: id})
		}
		return p
	}
	full := make([]string, listPage)
	for i := range full {
		full[i] = benchutil.DeviceID(bulkPrefix, 11+i)
	}
	withNext := func(p api.DevicePage) api.DevicePage { p.Next = "x"; return p }
	tests := []struct {
		name  string
		page  api.DevicePage
		after string
		ok    bool
	}{
		{"ok/full", withNext(page(full...)), "m-00000010", true},
		{"ok/last-page", page("m-00000011", "m-00000012"), "m-00000010", true},
		{"ok/empty-last", page(), "zzz", true},
		{"fail/short-with-next", withNext(page("m-00000011")), "m-00000010", false},
		{"fail/not-after-cursor", page("m-00000010", "m-00000011"), "m-00000010", false},
		{"fail/out-of-order", page("m-00000012", "m-00000011"), "m-00000010", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := checkPage(tc.page, tc.after); (err == nil) != tc.ok {
				t.Errorf("checkPage() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// TestCopyDir: a replica's data directory keeps the modes of the one it
// copies, or serve would refuse keys that others can read.
func TestCopyDir(t *testing.T) {
	from := filepath.Join(t.TempDir(), "D")
	if err := os.MkdirAll(filepath.Join(from, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{"fleetca.yaml": 0o644, "secrets/intermediate.key": 0o600} {
		if err := os.WriteFile(filepath.Join(from, name), []byte(name), mode); err != nil {
			t.Fatal(err)
		}
	}
	to := filepath.Join(t.TempDir(), "D-1")
	if err := copyDir(from, to); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{"secrets": os.ModeDir | 0o700, "fleetca.yaml": 0o644, "secrets/intermediate.key": 0o600} {
		st, err := os.Stat(filepath.Join(to, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", name, st.Mode(), mode)
		}
	}
	if b, err := os.ReadFile(filepath.Join(to, "secrets/intermediate.key")); err != nil || string(b) != "secrets/intermediate.key" {
		t.Errorf("the copied key holds %q, %v", b, err)
	}
}

// TestReport checks the verdicts and what the report must say from given
// figures: each setup's row, the SQL load said to be no API call, and a
// target missed or met.
func TestReport(t *testing.T) {
	phase := func(ok int) benchutil.Phase {
		return benchutil.Phase{OK: ok, Elapsed: time.Second, Machine: 2 * time.Second,
			Lat: []time.Duration{time.Millisecond, 3 * time.Millisecond}}
	}
	setup := func(name string, replicas int, onPG bool, ok int) setupResult {
		return setupResult{name: name, replicas: replicas, onPG: onPG, reps: []benchutil.Phase{phase(ok)},
			fleetca: []time.Duration{time.Second}, postgres: []time.Duration{500 * time.Millisecond},
			waits: waitCounts{samples: 1, seen: map[string]int{"IO:WALSync": 3}}}
	}
	ms := func(ds ...int) []time.Duration {
		var out []time.Duration
		for _, d := range ds {
			out = append(out, time.Duration(d)*time.Millisecond)
		}
		return out
	}
	tests := []struct {
		name       string
		pgRate     int
		revokeP99  []time.Duration
		list       []time.Duration
		want       []string
		wantMissed bool
	}{
		{"ok/all-met", 600, ms(10, 20, 900), ms(5, 6, 7),
			[]string{"600 /   1000 = 0.60x   PASS", "900.0 ms               PASS", "6.00 ms               PASS"}, false},
		{"fail/rate", 400, ms(10, 20, 30), ms(5, 6, 7), []string{"400 /   1000 = 0.40x   MISS"}, true},
		{"fail/revoke", 600, ms(10, 20, 1000), ms(5, 6, 7), []string{"1000.0 ms               MISS"}, true},
		{"fail/list", 600, ms(10), ms(40, 60, 70), []string{"60.00 ms               MISS"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			own := setup("1 replica, PostgreSQL, own tokens", 1, true, 800)
			own.ownToken = true
			o, err := parseFlags(nil, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			res := results{
				pg: pgInfo{version: "15.18", pid: 7, settings: "fsync=on, synchronous_commit=on"},
				enroll: []setupResult{setup("1 replica, bbolt", 1, false, 1000), setup("1 replica, PostgreSQL", 1, true, tc.pgRate),
					own, setup("2 replicas, one PostgreSQL", 2, true, 500)},
				revoke: &revokeResult{other: tc.revokeP99, same: ms(1), call: ms(2)},
				list:   &listResult{before: 500, beforeCalls: ms(1), devices: 1_000_500, load: time.Second, calls: tc.list, first: ms(1), sql: ms(1)},
			}
			var out strings.Builder
			if missed := report(&out, o, res); missed != tc.wantMissed {
				t.Errorf("report() missed = %v, want %v", missed, tc.wantMissed)
			}
			text := out.String()
			for _, want := range append([]string{
				"fsync=on, synchronous_commit=on",
				"1 replica, bbolt",
				"2 replicas, one PostgreSQL",
				"IO:WALSync 3.0",
				"1M devices were loaded in SQL (INSERT ... SELECT over generate_series",
				"NOT through the API",
				"(with a one-time token per device, PostgreSQL does 800/s: 0.80x of bbolt's shared-token rate)",
			}, tc.want...) {
				if !strings.Contains(text, want) {
					t.Errorf("the report lacks %q:\n%s", want, text)
				}
			}
		})
	}
}

// TestSQL runs the tool's SQL on pgstore's schema: the bulk load gives the
// devices a page lists in order, and the wait query runs.
func TestSQL(t *testing.T) {
	ctx := t.Context()
	pg, err := pgtest.Start(ctx, pgtest.StartOptions{})
	if err != nil {
		if testenv.InCI() || os.Getenv(pgtest.RequireEnv) == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	t.Cleanup(func() {
		if err := pg.Stop(); err != nil {
			t.Error(err)
		}
	})
	dsn, err := pg.CreateDatabase(ctx, "sql")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := pgstore.Migrate(ctx, dsn, ""); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, bulkInsert, bulkPrefix, 1000); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, listQuery, benchutil.DeviceID(bulkPrefix, 10), listPage)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for rows.Next() {
		ids = append(ids, string(rows.RawValues()[0]))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(ids) != listPage || ids[0] != "m-00000011" || ids[listPage-1] != "m-00000110" {
		t.Errorf("a page after m-00000010 = %d devices from %v, want %d from m-00000011 to m-00000110", len(ids), ids[:min(2, len(ids))], listPage)
	}
	s, err := startWaitSampler(ctx, dsn, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, waitQuery); err != nil {
		t.Errorf("the wait query: %v", err)
	}
	s.stop()
}
