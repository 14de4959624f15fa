package pgtest

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/fleetca/fleetca/internal/testenv"
)

// TestStartDurable: Start, for a program outside the tests, runs a server
// with fsync, full_page_writes and synchronous_commit on, gives empty
// databases and the postmaster's PID, and Stop removes its directory.
func TestStartDurable(t *testing.T) {
	s, err := Start(t.Context(), StartOptions{Durable: true})
	if err != nil {
		if testenv.InCI() || os.Getenv(RequireEnv) == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = s.Stop()
		}
	})
	dsn, err := s.CreateDatabase(t.Context(), "bench_1")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	for _, setting := range []string{"fsync", "full_page_writes", "synchronous_commit"} {
		var v string
		if err := conn.QueryRow(t.Context(), "SHOW "+setting).Scan(&v); err != nil || v != "on" {
			t.Errorf("SHOW %s = %q, %v; want on", setting, v, err)
		}
	}
	var tables int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil || tables != 0 {
		t.Errorf("the new database has %d tables (%v), want an empty one", tables, err)
	}
	conn.Close(context.WithoutCancel(t.Context()))
	if pid, err := s.PID(); err != nil || pid <= 0 {
		t.Errorf("PID() = %d, %v; want the postmaster's", pid, err)
	}
	dir := s.Dir()
	stopped = true
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Stop, %s: %v; want it removed", dir, err)
	}
}
