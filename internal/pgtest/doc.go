// Package pgtest runs a real PostgreSQL server for fleetca's tests: one
// server per test binary, one database per test.
//
// # Basics
//
// A test binary that uses it calls Main from its TestMain, with the
// function that prepares a template database (pgstore's migrations):
//
//	func TestMain(m *testing.M) { pgtest.Main(m, migrate) }
//
// (or code := pgtest.Run(m, migrate) in place of m.Run() in a TestMain
// with more to do).
//
// The first NewDatabase starts the server: initdb (Debian's postgresql
// package, found under /usr/lib/postgresql/*/bin) into a directory made
// with os.MkdirTemp, then pg_ctl on 127.0.0.1 at a port the kernel chose,
// its unix socket in the data directory, with fsync and
// synchronous_commit off for speed. It then creates the template database
// and runs prepare on it, once. Each NewDatabase returns the DSN of a new
// database copied from the template (CREATE DATABASE ... TEMPLATE), so
// every test starts from a migrated, empty schema in a few milliseconds.
// Main stops the server with pg_ctl -m immediate stop, and deletes the
// data directory, after the tests.
//
// NewDurableDatabase is NewDatabase for benchmarks: it turns fsync and
// full_page_writes back on for the whole server (ALTER SYSTEM and a
// reload) and synchronous_commit on for the database, so a figure measured
// on it is one a production server would give.
//
// Start runs a server the same way for a program that is not a test
// (bench/replicaload): durable if asked (fsync, full_page_writes and
// synchronous_commit on, checked), with CreateDatabase for empty
// databases, PID for the postmaster and Stop.
//
// # Invariants
//
//   - PostgreSQL refuses to run as root: as root, the data directory is
//     chowned to the postgres user and initdb and pg_ctl run through
//     `runuser -u postgres --`; as anyone else they run directly.
//   - A missing PostgreSQL fails the test in CI (CI=true) or when
//     FLEETCA_REQUIRE_PG=1, and skips it elsewhere, saying "apt-get
//     install postgresql".
//   - The server accepts connections from 127.0.0.1 only, without a
//     password (trust), as the superuser "fleet".
//
// # What it must not do
//
// It is imported only from _test.go files and from the benchmarks
// (bench/replicaload, through Start), and imports nothing of fleetca's
// but internal/testenv. It downloads nothing and runs no
// container. It does not synchronise tests: pg_ctl -w waits for the
// server to accept connections.
//
// # Caveats
//
// A test binary that does not call Main leaves its server running after
// the tests (and its data directory in the temporary directory). Data
// directories are outside t.TempDir(), whose root-owned 0700 parent the
// postgres user could not enter.
package pgtest
