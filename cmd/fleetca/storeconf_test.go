package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/boltstore"
)

// secret is the password the tests put where it must not go; no error or
// output may contain it.
const secret = "s3cr3t-Pw"

func TestDSNHasPassword(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		dsn     string
		want    bool
		wantErr bool
	}{
		{"ok/url", "postgres://fleetca@db:5432/fleetca?sslmode=verify-full", false, false},
		{"ok/url-postgresql", "postgresql://fleetca@db/fleetca", false, false},
		{"ok/url-no-user", "postgres://db/fleetca", false, false},
		{"ok/url-multi-host", "postgres://fleetca@a:5432,b:5432/fleetca?target_session_attrs=read-write", false, false},
		{"ok/url-at-in-path", "postgres://db/fleet@ca", false, false},
		{"ok/keywords", "host=db user=fleetca dbname=fleetca sslmode=verify-full", false, false},
		{"ok/keywords-spaces", "host = db  user= fleetca", false, false},
		{"ok/keywords-quoted", `host=db application_name='a b \' password=x'`, false, false},
		{"ok/keywords-empty", "", false, false},
		{"password/url-userinfo", "postgres://fleetca:" + secret + "@db/fleetca", true, false},
		{"password/url-empty", "postgres://fleetca:@db/fleetca", true, false},
		{"password/url-upper-scheme", "POSTGRES://fleetca:" + secret + "@db/fleetca", true, false},
		{"password/url-query", "postgres://fleetca@db/fleetca?sslmode=require&password=" + secret, true, false},
		{"password/keywords", "host=db user=fleetca password=" + secret, true, false},
		{"password/keywords-quoted", "host=db password='" + secret + " x' user=fleetca", true, false},
		{"password/keywords-spaces", "host=db password = " + secret, true, false},
		{"fail/not-keywords", "db.example.com", false, true},
		{"fail/unclosed-quote", "host=db password='" + secret, false, true},
		{"fail/bad-query", "postgres://db/fleetca?password=%zz" + secret, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := dsnHasPassword(tc.dsn)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("dsnHasPassword(%q) = %v, %v; want %v, error %v", tc.dsn, got, err, tc.want, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("dsnHasPassword(%q) error %q contains the password", tc.dsn, err)
			}
		})
	}
}

func TestStoreConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		sc   storeConfig
		key  string // the key the error names; "" for no error
	}{
		{"ok/default", storeConfig{}, ""},
		{"ok/bolt-path", storeConfig{Driver: "bolt", Path: "other.db"}, ""},
		{"ok/postgres-url", storeConfig{Driver: "postgres", DSN: "postgres://fleetca@db:5432/fleetca?sslmode=verify-full"}, ""},
		{"ok/postgres-keywords", storeConfig{Driver: "postgres", DSN: "host=db user=fleetca dbname=fleetca sslmode=disable"}, ""},
		{"ok/postgres-password-file", storeConfig{Driver: "postgres", DSN: "postgres://fleetca@db/fleetca", PasswordFile: "db-password"}, ""},
		{"fail/driver", storeConfig{Driver: "sqlite"}, "store.driver"},
		{"fail/driver-case", storeConfig{Driver: "Postgres", DSN: "postgres://db/x"}, "store.driver"},
		{"fail/bolt-dsn", storeConfig{Driver: "bolt", DSN: "postgres://db/x"}, "store.driver"},
		{"fail/bolt-password-file", storeConfig{PasswordFile: "db-password"}, "store.driver"},
		{"fail/postgres-no-dsn", storeConfig{Driver: "postgres"}, "store.dsn"},
		{"fail/postgres-blank-dsn", storeConfig{Driver: "postgres", DSN: "  "}, "store.dsn"},
		{"fail/postgres-path", storeConfig{Driver: "postgres", DSN: "postgres://db/x", Path: "fleetca.db"}, "store.path"},
		{"fail/postgres-url-password", storeConfig{Driver: "postgres", DSN: "postgres://fleetca:" + secret + "@db/fleetca"}, "store.dsn"},
		{"fail/postgres-query-password", storeConfig{Driver: "postgres", DSN: "postgres://fleetca@db/fleetca?password=" + secret}, "store.dsn"},
		{"fail/postgres-keyword-password", storeConfig{Driver: "postgres", DSN: "host=db password=" + secret}, "store.dsn"},
		{"fail/postgres-unparsable", storeConfig{Driver: "postgres", DSN: "host=db password='" + secret}, "store.dsn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fileConfig{Name: "x", TrustDomain: "x", Store: tc.sc}.withDefaults()
			err := c.validate()
			if tc.key == "" {
				if err != nil {
					t.Fatalf("validate(%+v) = %v, want nil", tc.sc, err)
				}
				return
			}
			fe, ok := errors.AsType[*fault.Error](err)
			if !ok || fe.Kind != fault.Malformed || fe.Key != tc.key {
				t.Fatalf("validate(store %+v) = %#v, want a Malformed fault.Error about %s", tc.sc, err, tc.key)
			}
			if strings.Contains(oneLine(err), secret) {
				t.Errorf("validate(store %+v) line %q contains the password", tc.sc, oneLine(err))
			}
		})
	}
}

// TestStoreConfigDefaults: no store section, or a bolt one without a
// path, is the bbolt file fleetca.db; a postgres one has no path.
func TestStoreConfigDefaults(t *testing.T) {
	t.Parallel()
	if got := (fileConfig{}).withDefaults().Store; got != (storeConfig{Driver: "bolt", Path: "fleetca.db"}) {
		t.Errorf("default store = %+v, want bolt fleetca.db", got)
	}
	pg := storeConfig{Driver: "postgres", DSN: "postgres://db/x"}
	if got := (fileConfig{Store: pg}).withDefaults().Store; got != pg {
		t.Errorf("postgres store with defaults = %+v, want %+v", got, pg)
	}
}

// TestStoreConfigFile: fleetca.yaml's store section, as init writes it
// and as a user edits it, read by loadConfig; a DSN with a password stops
// start-up with a line that names the key and not the password.
func TestStoreConfigFile(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	if r := runCLI(t, nil, initArgs(dir, "--no-password")...); r.code != exitOK {
		t.Fatalf("init: exit %d, want 0; stderr: %q", r.code, r.stderr)
	}
	path := filepath.Join(dir, configName)
	yml := readFile(t, path)
	const boltSection = "driver: \"bolt\"\n  path: \"fleetca.db\"\n"
	if !strings.Contains(yml, boltSection) {
		t.Fatalf("fleetca.yaml from init lacks the store section %q:\n%s", boltSection, yml)
	}
	for _, tc := range []struct {
		name, section string
		want          storeConfig
		key           string // the key the error names; "" for none
	}{
		{"ok/bolt", boltSection, storeConfig{Driver: "bolt", Path: "fleetca.db"}, ""},
		{"ok/path-only", "path: \"other.db\"\n", storeConfig{Driver: "bolt", Path: "other.db"}, ""},
		{"ok/postgres", "driver: postgres\n  dsn: \"postgres://fleetca@db:5432/fleetca?sslmode=verify-full\"\n  password_file: db-password\n",
			storeConfig{Driver: "postgres", DSN: "postgres://fleetca@db:5432/fleetca?sslmode=verify-full", PasswordFile: "db-password"}, ""},
		{"fail/postgres-password", "driver: postgres\n  dsn: \"postgres://fleetca:" + secret + "@db/fleetca\"\n", storeConfig{}, "store.dsn"},
		{"fail/unknown-key", "driver: postgres\n  dsn: \"postgres://db/fleetca\"\n  password: " + secret + "\n", storeConfig{}, "password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			writeFile(t, path, strings.Replace(yml, boltSection, tc.section, 1))
			cfg, err := loadConfig(dir)
			if tc.key == "" {
				if err != nil || cfg.Store != tc.want {
					t.Fatalf("loadConfig store = %+v, %v; want %+v, nil", cfg.Store, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(oneLine(err), tc.key) {
				t.Fatalf("loadConfig = %v, want an error naming %s", err, tc.key)
			}
			if strings.Contains(oneLine(err), secret) {
				t.Errorf("loadConfig error %q contains the password", oneLine(err))
			}
		})
	}
}

// TestInitStoreRefusals: init --store refuses, before writing anything,
// a DSN with a password (one line without it), and a password file that
// others can read; --store-password-file without --store is a usage error.
func TestInitStoreRefusals(t *testing.T) {
	t.Parallel()
	pwFile := filepath.Join(t.TempDir(), "db-password")
	if err := os.WriteFile(pwFile, []byte(secret+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // in the line
	}{
		{"dsn-password", []string{"--store", "postgres://fleetca:" + secret + "@127.0.0.1:1/fleetca"}, exitError, "carries a password"},
		{"dsn-keyword-password", []string{"--store", "host=127.0.0.1 port=1 password=" + secret}, exitError, "use --store"},
		{"dsn-unparsable", []string{"--store", "host=127.0.0.1 password='" + secret}, exitError, "does not parse"},
		{"readable-password-file", []string{"--store", "postgres://fleetca@127.0.0.1:1/fleetca", "--store-password-file", pwFile}, exitError, "chmod 600"},
		{"password-file-without-store", []string{"--store-password-file", pwFile}, exitUsage, "--store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ca")
			r := runCLI(t, nil, initArgs(dir, append([]string{"--no-password"}, tc.args...)...)...)
			wantOneLine(t, "init "+strings.Join(tc.args, " "), r, tc.code)
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("init %s: stderr %q, want it to say %q", strings.Join(tc.args, " "), r.stderr, tc.want)
			}
			if strings.Contains(r.stderr, secret) {
				t.Errorf("init %s: stderr %q contains the password", strings.Join(tc.args, " "), r.stderr)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("init %s left %s behind (stat: %v), want nothing written", strings.Join(tc.args, " "), dir, err)
			}
		})
	}
}

// TestDBCopyRefusesSource: db copy says in one line what is wrong with a
// --from that is missing, a directory, empty, not a bbolt file, or held
// by a running server, and with a --to that carries a password; all
// before it connects to any database.
func TestDBCopyRefusesSource(t *testing.T) {
	t.Parallel()
	ca := startCA(t) // serve holds ca.dir/fleetca.db
	tmp := t.TempDir()
	empty := filepath.Join(tmp, "empty.db")
	writeFile(t, empty, "")
	const to = "postgres://fleetca@127.0.0.1:1/fleetca?sslmode=disable"
	for _, tc := range []struct {
		name     string
		from, to string
		want     string // in the line
	}{
		{"missing", filepath.Join(tmp, "missing.db"), to, "does not exist"},
		{"directory", tmp, to, "is a directory"},
		{"empty", empty, to, "is empty, not a bbolt file"},
		{"not-bolt", filepath.Join(ca.dir, configName), to, "is not a bbolt file"},
		{"held-by-serve", filepath.Join(ca.dir, defaultStorePath), to, "a fleetca serve holds it"},
		{"to-password", filepath.Join(ca.dir, defaultStorePath), "postgres://fleetca:" + secret + "@127.0.0.1:1/fleetca", "--to carries a password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, nil, "db", "copy", "--from", tc.from, "--to", tc.to)
			wantOneLine(t, "db copy --from "+tc.from, r, exitError)
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("db copy --from %s: stderr %q, want it to say %q", tc.from, r.stderr, tc.want)
			}
			if strings.Contains(r.stderr, secret) {
				t.Errorf("db copy: stderr %q contains the password", r.stderr)
			}
		})
	}
}

// TestCopyStore: copyStore moves every record of a CA between two
// stores (bbolt to bbolt here; to PostgreSQL in the pg tests), reports
// matching counts, and refuses a target that holds records.
func TestCopyStore(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	if r := runCLI(t, nil, initArgs(dir, "--no-password")...); r.code != exitOK {
		t.Fatalf("init: exit %d, want 0; stderr: %q", r.code, r.stderr)
	}
	src, err := openCopySource(filepath.Join(dir, defaultStorePath))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := boltstore.Open(filepath.Join(t.TempDir(), "copy.db"), boltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	var last int64
	counts, err := copyStore(t.Context(), src, dst, func(n, _ int64, done bool) {
		if done {
			last = n
		}
	})
	if err != nil {
		t.Fatalf("copyStore = %v, want nil", err)
	}
	var total int64
	for _, n := range counts {
		total += n
	}
	if total == 0 || last != total || counts["meta"] == 0 || counts["audit"] == 0 {
		t.Errorf("copyStore counts = %v, progress ended at %d; want the CA's meta and audit records, all reported", counts, last)
	}
	_, err = copyStore(t.Context(), src, dst, nil)
	if fe, ok := errors.AsType[*fault.Error](err); !ok || fe.Kind != fault.Conflict || !errors.Is(err, store.ErrNotEmpty) {
		t.Errorf("copyStore into a non-empty store = %v, want a Conflict wrapping store.ErrNotEmpty", err)
	}
}

// TestReadStorePassword: store.password_file is relative to the data
// directory, must be mode 0600 and not empty, and loses its line end.
func TestReadStorePassword(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, content := range map[string]string{"pw": secret + "\r\n", "empty": "\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "open"), []byte(secret), 0o640); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file string
		want       string
		kind       fault.Kind // of the error; 0 for none
	}{
		{"ok/none", "", "", 0},
		{"ok/relative", "pw", secret, 0},
		{"ok/absolute", filepath.Join(dir, "pw"), secret, 0},
		{"fail/missing", "missing", "", fault.NotFound},
		{"fail/readable", "open", "", fault.Forbidden},
		{"fail/empty", "empty", "", fault.Malformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readStorePassword(dir, tc.file)
			if tc.kind == 0 {
				if err != nil || got != tc.want {
					t.Fatalf("readStorePassword(%q) = %q, %v; want the password, nil", tc.file, got, err)
				}
				return
			}
			if fe, ok := errors.AsType[*fault.Error](err); !ok || fe.Kind != tc.kind {
				t.Fatalf("readStorePassword(%q) error = %v, want kind %v", tc.file, err, tc.kind)
			}
			if strings.Contains(oneLine(err), secret) {
				t.Errorf("readStorePassword(%q) line %q contains the password", tc.file, oneLine(err))
			}
		})
	}
}
