package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/fleetca/fleetca/internal/testenv"
)

// RequireEnv is the environment variable that, set to 1, makes a missing
// PostgreSQL fail the tests outside CI too (.ci/run sets it).
const RequireEnv = "FLEETCA_REQUIRE_PG"

// superuser is the role initdb creates and the tests connect as.
const superuser = "fleet"

// templateDB is the database prepare migrates and NewDatabase copies.
const templateDB = "fleetca_template"

// server is the one PostgreSQL of the test binary.
type server struct {
	bin     string // directory of initdb and pg_ctl
	dir     string // data directory
	port    int
	runAs   string // "postgres" when running as root, "" otherwise
	missing string // why there is no server; set instead of the rest
	durable bool   // fsync is on again (NewDurableDatabase)
}

var (
	// prepare is Main's template function.
	prepare func(ctx context.Context, dsn string) error
	// once starts srv (or records why not, or startErr).
	once     sync.Once
	srv      *server
	startErr error
	// durableMu serialises turning fsync on.
	durableMu sync.Mutex
	// dbCount numbers the databases.
	dbCount atomic.Int64
)

// Main runs the tests of m, then stops the server if one was started, and
// exits with m's code. prep is run once on the template database that
// every NewDatabase copies (nil leaves it empty).
func Main(m *testing.M, prep func(ctx context.Context, dsn string) error) {
	os.Exit(Run(m, prep))
}

// Run is Main for a TestMain that has more to do: it runs the tests of m
// (m.Run), stops the server if one was started, and returns the code to
// exit with, 1 if stopping failed.
func Run(m *testing.M, prep func(ctx context.Context, dsn string) error) int {
	prepare = prep
	code := m.Run()
	if srv != nil && srv.missing == "" {
		if err := srv.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// NewDatabase returns the DSN (a keyword/value connection string) of a new
// database, a copy of the migrated template, on the test binary's server,
// which it starts on first use. Without PostgreSQL it fails the test in CI
// or with FLEETCA_REQUIRE_PG=1, and skips it otherwise.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	s := need(tb)
	name := fmt.Sprintf("t_%d", dbCount.Add(1))
	if err := s.exec(tb.Context(), "CREATE DATABASE "+name+" TEMPLATE "+templateDB); err != nil {
		tb.Fatalf("create database %s: %v", name, err)
	}
	return s.dsn(name)
}

// NewEmptyDatabase is NewDatabase without the template: an empty
// database, as a new installation's.
func NewEmptyDatabase(tb testing.TB) string {
	tb.Helper()
	s := need(tb)
	name := fmt.Sprintf("t_%d", dbCount.Add(1))
	if err := s.exec(tb.Context(), "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("create database %s: %v", name, err)
	}
	return s.dsn(name)
}

// NewDurableDatabase is NewDatabase for benchmarks: before it returns, the
// whole server syncs its writes again (fsync and full_page_writes on,
// through ALTER SYSTEM and a reload, for the rest of the test binary) and
// the database has synchronous_commit on. It checks that the settings
// took.
func NewDurableDatabase(tb testing.TB) string {
	tb.Helper()
	s := need(tb)
	ctx := tb.Context()
	durableMu.Lock()
	defer durableMu.Unlock()
	if !s.durable {
		for _, q := range []string{
			"ALTER SYSTEM SET fsync = on",
			"ALTER SYSTEM SET full_page_writes = on",
			"ALTER SYSTEM SET synchronous_commit = on",
			"SELECT pg_reload_conf()",
		} {
			if err := s.exec(ctx, q); err != nil {
				tb.Fatalf("make the server durable: %s: %v", q, err)
			}
		}
		s.durable = true
	}
	dsn := NewDatabase(tb)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// pg_reload_conf only signals: the new values arrive at a session
	// started after the postmaster read them, which SHOW confirms.
	for _, setting := range []string{"fsync", "full_page_writes", "synchronous_commit"} {
		var v string
		if err := conn.QueryRow(ctx, "SHOW "+setting).Scan(&v); err != nil {
			tb.Fatal(err)
		}
		if v != "on" {
			tb.Fatalf("%s = %s on the durable server, want on", setting, v)
		}
	}
	return dsn
}

// Terminate ends, with pg_terminate_backend, every session on the
// database of dsn (one NewDatabase returned) whose application_name is
// name, and returns how many it ended.
func Terminate(tb testing.TB, dsn, name string) int {
	tb.Helper()
	s := need(tb)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	conn, err := pgx.Connect(tb.Context(), s.dsn("postgres"))
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(tb.Context()))
	var n int
	err = conn.QueryRow(tb.Context(),
		`SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = $1 AND application_name = $2) t`, cfg.Database, name).Scan(&n)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// need returns the started server, or ends the test (skip or fail).
func need(tb testing.TB) *server {
	tb.Helper()
	once.Do(func() { srv, startErr = start(context.Background(), "", false, true, prepare) })
	switch {
	case startErr != nil:
		tb.Fatalf("start PostgreSQL: %v", startErr)
	case srv.missing != "" && (testenv.InCI() || os.Getenv(RequireEnv) == "1"):
		tb.Fatalf("PostgreSQL is required (CI=true or %s=1) but %s (apt-get install postgresql; .ci/run should install it)", RequireEnv, srv.missing)
	case srv.missing != "":
		tb.Skipf("PostgreSQL not found: %s; apt-get install postgresql to run this test", srv.missing)
	}
	return srv
}

// Server is a PostgreSQL server that Start ran, for a program that is not
// a test (bench/replicaload): a test uses NewDatabase instead.
type Server struct{ s *server }

// StartOptions are Start's settings. The zero value is a fast server in
// the system's temporary directory.
type StartOptions struct {
	// Dir is the parent of the server's directory; "" is os.TempDir().
	// The postgres user must be able to enter it when running as root.
	Dir string
	// Durable starts the server as production runs it: fsync,
	// full_page_writes and synchronous_commit on (PostgreSQL's defaults),
	// which Start checks. Otherwise all three are off, as for the tests.
	Durable bool
}

// Start starts a PostgreSQL server as NewDatabase does (initdb into a new
// directory, pg_ctl on 127.0.0.1 at a port the kernel chose, trust
// authentication for the superuser), for a program outside the tests.
// Without PostgreSQL it returns an error saying what to install. Stop the
// server with Stop.
func Start(ctx context.Context, opts StartOptions) (*Server, error) {
	s, err := start(ctx, opts.Dir, opts.Durable, false, nil)
	if err != nil {
		return nil, err
	}
	if s.missing != "" {
		return nil, fmt.Errorf("PostgreSQL not found: %s; apt-get install postgresql", s.missing)
	}
	srv := &Server{s: s}
	if opts.Durable {
		conn, err := pgx.Connect(ctx, s.dsn("postgres"))
		if err != nil {
			return nil, errors.Join(err, s.stop())
		}
		defer conn.Close(context.WithoutCancel(ctx))
		for _, setting := range []string{"fsync", "full_page_writes", "synchronous_commit"} {
			var v string
			if err := conn.QueryRow(ctx, "SHOW "+setting).Scan(&v); err != nil {
				return nil, errors.Join(err, s.stop())
			}
			if v != "on" {
				return nil, errors.Join(fmt.Errorf("%s = %s on the durable server, want on", setting, v), s.stop())
			}
		}
	}
	return srv, nil
}

// CreateDatabase creates an empty database name (letters, digits and _)
// and returns its DSN, a keyword/value connection string.
func (s *Server) CreateDatabase(ctx context.Context, name string) (string, error) {
	if err := s.s.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return s.s.dsn(name), nil
}

// PID is the postmaster's process ID (its first line of postmaster.pid):
// the server's backends are its children.
func (s *Server) PID() (int, error) {
	b, err := os.ReadFile(filepath.Join(s.s.dir, "data", "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(line))
}

// Dir is the server's directory: its data directory is Dir/data and its
// log Dir/log.
func (s *Server) Dir() string { return s.s.dir }

// Stop stops the server at once (pg_ctl -m immediate) and deletes its
// directory.
func (s *Server) Stop() error { return s.s.stop() }

// start finds PostgreSQL, makes a directory under parent ("" is
// os.TempDir()), starts the server (with fsync, full_page_writes and
// synchronous_commit off unless durable) and, if template, creates the
// template database and runs prep, if not nil, on it.
func start(ctx context.Context, parent string, durable, template bool, prep func(ctx context.Context, dsn string) error) (*server, error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			matches = []string{p}
		}
	}
	if len(matches) == 0 {
		return &server{missing: "no initdb under /usr/lib/postgresql/*/bin or on PATH"}, nil
	}
	slices.Sort(matches) // the newest major version last (15 < 16 ...)
	s := &server{bin: filepath.Dir(matches[len(matches)-1])}

	dir, err := os.MkdirTemp(parent, "fleetca-pg-")
	if err != nil {
		return nil, err
	}
	s.dir = dir
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, PostgreSQL needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
		s.runAs = "postgres"
	}
	data := filepath.Join(dir, "data")
	if out, err := s.command("initdb", "-D", data, "-A", "trust", "-U", superuser,
		"--no-sync", "-E", "UTF8", "--locale=C").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	// Settings for speed go in postgresql.conf, not on the command line,
	// which would override ALTER SYSTEM (NewDurableDatabase).
	conf, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	settings := "\n# pgtest: speed over durability (NewDurableDatabase undoes it)\n" +
		"fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
	if durable {
		settings = "\n# pgtest.Start: durable (fsync, full_page_writes and synchronous_commit on by default)\n"
	}
	_, err = conf.WriteString(settings + "max_connections = 300\nshared_buffers = 128MB\n")
	if err := errors.Join(err, conf.Close()); err != nil {
		return nil, err
	}
	// A port the kernel chose, free a moment ago. PostgreSQL cannot take
	// a listener, so another process could take the port in between:
	// then pg_ctl fails and the next attempt draws another.
	for attempt := 0; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			return nil, err
		}
		opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s", s.port, data)
		out, err := s.command("pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-o", opts, "-w", "start").CombinedOutput()
		if err == nil {
			break
		}
		if attempt == 2 {
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			return nil, fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, log)
		}
	}
	if !template {
		return s, nil
	}
	if err := s.exec(ctx, "CREATE DATABASE "+templateDB); err != nil {
		return nil, errors.Join(err, s.stop())
	}
	if prep != nil {
		if err := prep(ctx, s.dsn(templateDB)); err != nil {
			return nil, errors.Join(fmt.Errorf("prepare the template database: %w", err), s.stop())
		}
	}
	return s, nil
}

// freePort returns a loopback TCP port that the kernel chose.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// command returns the PostgreSQL program name with args, run as the
// postgres user when we are root.
func (s *server) command(name string, args ...string) *exec.Cmd {
	prog := filepath.Join(s.bin, name)
	if s.runAs != "" {
		return exec.Command("runuser", append([]string{"-u", s.runAs, "--", prog}, args...)...)
	}
	return exec.Command(prog, args...)
}

// dsn is the connection string of database db.
func (s *server) dsn(db string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s sslmode=disable", s.port, superuser, db)
}

// exec runs one statement on the postgres database.
func (s *server) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.dsn("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// stop stops the server at once (the data is thrown away) and deletes its
// directory.
func (s *server) stop() error {
	out, err := s.command("pg_ctl", "-D", filepath.Join(s.dir, "data"), "-m", "immediate", "-w", "stop").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %w\n%s", err, strings.TrimSpace(string(out)))
	}
	return os.RemoveAll(s.dir)
}
