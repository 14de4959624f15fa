package main

// The user's side of PostgreSQL (issue 14), through the fleetca binary on
// a real PostgreSQL server that internal/pgtest starts: init --store,
// serve, db migrate and db copy.

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/fleetca/fleetca/internal/pgtest"
	"github.com/fleetca/fleetca/store/pgstore"
)

// boltSection is the store section init writes for bbolt.
const boltSection = "driver: \"bolt\"\n  path: \"fleetca.db\"\n"

// pgSection is a store section for the database dsn.
func pgSection(dsn, passwordFile string) string {
	return fmt.Sprintf("driver: \"postgres\"\n  dsn: %q\n  password_file: %q\n", dsn, passwordFile)
}

// setStore replaces the store section of dir's fleetca.yaml.
func setStore(t *testing.T, dir, old, section string) {
	t.Helper()
	path := filepath.Join(dir, configName)
	yml := readFile(t, path)
	if !strings.Contains(yml, old) {
		t.Fatalf("%s has no store section %q:\n%s", path, old, yml)
	}
	writeFile(t, path, strings.Replace(yml, old, section, 1))
}

// dsnWith returns the keyword=value DSN dsn (as pgtest gives it) with the
// keyword key set to value.
func dsnWith(dsn, key, value string) string {
	fields := strings.Fields(dsn)
	for i, f := range fields {
		if strings.HasPrefix(f, key+"=") {
			fields[i] = key + "=" + value
			return strings.Join(fields, " ")
		}
	}
	return dsn + " " + key + "=" + value
}

// dsnValue returns the value of key in the keyword=value DSN dsn.
func dsnValue(dsn, key string) string {
	for _, f := range strings.Fields(dsn) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// superuser connects to the server of dsn's database as pgtest's
// superuser, to the postgres database.
func superuser(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsnWith(dsn, "dbname", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.WithoutCancel(t.Context())) })
	return conn
}

// execSQL runs statements on conn, failing the test on an error.
func execSQL(t *testing.T, conn *pgx.Conn, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := conn.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// get fetches url with f's client and returns the status and body.
func (f *fixture) get(url string) (int, []byte) {
	f.t.Helper()
	req, err := http.NewRequestWithContext(f.t.Context(), "GET", url, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		f.t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		f.t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, b
}

// TestPostgresInitServeEnroll: init --store creates the CA with its
// records in PostgreSQL (no bbolt file), serve runs from it and enrolls a
// device, /healthz follows the database's reachability, and a second init
// into the same database is refused before it writes anything.
func TestPostgresInitServeEnroll(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t)
	f := initFixtureWith(t, "--store", dsn)
	D := f.dataDir
	if yml := readFile(t, filepath.Join(D, configName)); !strings.Contains(yml, pgSection(dsn, "")) {
		t.Errorf("fleetca.yaml after init --store lacks the store section %q:\n%s", pgSection(dsn, ""), yml)
	}
	if _, err := os.Stat(filepath.Join(D, defaultStorePath)); !os.IsNotExist(err) {
		t.Errorf("init --store made %s (stat: %v), want no bbolt file", defaultStorePath, err)
	}
	f.start()
	serial := f.fleetcaEnroll(f.plainToken("--device-id", "dev-1"), "dev-1")
	if r := f.mustFleetca("certs", "list", "--dir", D, "--device-id", "dev-1"); !strings.Contains(r.stdout, serial) {
		t.Errorf("certs list --device-id dev-1 = %q, want serial %s", r.stdout, serial)
	}

	t.Run("healthz follows the database", func(t *testing.T) {
		f := f.with(t)
		if code, body := f.get(f.srv.httpURL + "/healthz"); code != http.StatusOK {
			t.Fatalf("GET /healthz = %d %s, want 200", code, body)
		}
		su := superuser(t, dsn)
		db := dsnValue(dsn, "dbname")
		execSQL(t, su, "ALTER DATABASE "+db+" ALLOW_CONNECTIONS false",
			"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '"+db+"'")
		if code, body := f.get(f.srv.httpURL + "/healthz"); code != http.StatusServiceUnavailable {
			t.Errorf("GET /healthz with the database unreachable = %d %s, want 503", code, body)
		}
		execSQL(t, su, "ALTER DATABASE "+db+" ALLOW_CONNECTIONS true")
		// The pool may hand out one connection the server ended before it
		// notices; a few requests later every one is new.
		code := 0
		for range 20 {
			if code, _ = f.get(f.srv.httpURL + "/healthz"); code == http.StatusOK {
				break
			}
		}
		if code != http.StatusOK {
			t.Errorf("GET /healthz with the database back = %d, want 200", code)
		}
	})

	t.Run("a second init into the database is refused", func(t *testing.T) {
		f := f.with(t)
		D2 := filepath.Join(t.TempDir(), "D2")
		r := f.fleetca("init", "--dir", D2, "--name", "Other", "--no-password", "--store", dsn)
		if r.code != 1 || !oneLineError.MatchString(r.stderr) || !strings.Contains(r.stderr, "already holds a CA") ||
			!strings.Contains(r.stderr, "copy its data directory") {
			t.Errorf("init --store into a database with a CA: exit %d, stderr %q; want 1 and one line saying it holds a CA and how to add a replica", r.code, r.stderr)
		}
		if _, err := os.Stat(D2); !os.IsNotExist(err) {
			t.Errorf("the refused init left %s (stat: %v), want nothing written", D2, err)
		}
	})
}

// TestPostgresTwoReplicas: a replica is added as init's refusal says, by
// copying the data directory; both serve from one database, a device
// enrolled through one is revoked through the other and the first
// publishes it, and the replicas share the CRL lease under names of their
// own (bbolt's fixed name would let both hold it at once).
func TestPostgresTwoReplicas(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t)
	a := initFixtureWith(t, "--store", dsn)
	b := *a
	b.dataDir = filepath.Join(t.TempDir(), "D2")
	copyDir(t, a.dataDir, b.dataDir)
	a.start()
	b.start()
	serial := a.fleetcaEnroll(a.plainToken("--device-id", "dev-1"), "dev-1")
	b.mustFleetca("revoke", "--dir", b.dataDir, "--serial", serial, "--reason", "keyCompromise")
	if p := a.pollCRL(func(l *x509.RevocationList) bool { return lists(l, serial) }); p.err != nil {
		t.Errorf("replica A's CRL after a revocation through B: %v", p.err)
	}
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(t.Context()))
	var holder string
	if err := conn.QueryRow(t.Context(), "SELECT holder FROM crl_lease").Scan(&holder); err != nil {
		t.Fatal(err)
	}
	if holder == boltCRLHolder {
		t.Errorf("CRL lease holder = %q, bbolt's fixed name: replicas on PostgreSQL need names of their own", holder)
	}
}

// copyDir copies the regular files under from to to, keeping their modes.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), info.Mode().Perm())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDBCopyToPostgres: a bbolt CA that enrolled, renewed and revoked is
// copied to PostgreSQL with db copy; served from there it answers the
// same devices, certificates and revocation feed, and its CRL numbers
// continue increasing. A second copy into the database is refused.
func TestDBCopyToPostgres(t *testing.T) {
	t.Parallel()
	f := initFixture(t)
	D := f.dataDir
	f.start()
	serials := map[string]string{}
	for _, d := range []string{"dev-1", "dev-2", "dev-3"} {
		serials[d] = f.fleetcaEnroll(f.plainToken("--device-id", d), d)
	}
	f.mustFleetca("renew", "--ca", f.srv.httpsURL, "--fingerprint", f.srv.fingerprint, "--cert", "dev-1.crt", "--key", "dev-1.key", "--force")
	f.mustFleetca("revoke", "--dir", D, "--device-id", "dev-2", "--reason", "keyCompromise")
	revoked := f.pollCRL(func(l *x509.RevocationList) bool { return lists(l, serials["dev-2"]) })
	if revoked.err != nil {
		t.Fatalf("the bbolt CA's CRL: %v", revoked.err)
	}

	type view struct {
		Devices, Certificates any
		Feed                  any
	}
	look := func() view {
		var v view
		f.adminGET("/v1/admin/devices?limit=1000", &v.Devices)
		f.adminGET("/v1/admin/certificates?limit=1000", &v.Certificates)
		code, body := f.get(f.srv.httpsURL + "/v1/revocations?since=0")
		if code != http.StatusOK {
			t.Fatalf("GET /v1/revocations?since=0 = %d %s, want 200", code, body)
		}
		if err := json.Unmarshal(body, &v.Feed); err != nil {
			t.Fatal(err)
		}
		return v
	}
	before := look()
	f.srv.stop(t)

	dsn := pgtest.NewDatabase(t)
	from := filepath.Join(D, defaultStorePath)
	r := f.mustFleetca("db", "copy", "--from", from, "--to", dsn)
	t.Logf("db copy:\n%s%s", r.stdout, r.stderr)
	for _, want := range []string{"copied ", "  device            3\n", "driver: postgres", fmt.Sprintf("dsn: %q", dsn)} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("db copy stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	// The bbolt file moves aside: what serve answers comes from PostgreSQL.
	if err := os.Rename(from, from+".bak"); err != nil {
		t.Fatal(err)
	}
	setStore(t, D, boltSection, pgSection(dsn, ""))
	f.start()
	if diff := cmp.Diff(before, look()); diff != "" {
		t.Errorf("served from PostgreSQL, the CA answers differently (-bbolt +postgres):\n%s", diff)
	}
	first, err := f.getCRL(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if first.Number.Cmp(revoked.crl.Number) < 0 || !lists(first, serials["dev-2"]) {
		t.Errorf("CRL from PostgreSQL: number %s listing dev-2 %v; want >= %s (the bbolt CA's) and listing it", first.Number, lists(first, serials["dev-2"]), revoked.crl.Number)
	}
	f.mustFleetca("revoke", "--dir", D, "--serial", serials["dev-3"], "--reason", "superseded")
	next := f.pollCRL(func(l *x509.RevocationList) bool { return lists(l, serials["dev-3"]) })
	if next.err != nil {
		t.Fatalf("the PostgreSQL CA's CRL: %v", next.err)
	}
	if next.crl.Number.Cmp(first.Number) <= 0 {
		t.Errorf("CRL number after a revocation on PostgreSQL = %s, want > %s", next.crl.Number, first.Number)
	}
	f.fleetcaEnroll(f.plainToken("--device-id", "dev-4"), "dev-4")

	r = f.fleetca("db", "copy", "--from", from+".bak", "--to", dsn)
	if r.code != 1 || !oneLineError.MatchString(r.stderr) || !strings.Contains(r.stderr, "not empty") {
		t.Errorf("db copy into a database with records: exit %d, stderr %q; want 1 and one line saying it is not empty", r.code, r.stderr)
	}
}

// TestPostgresPassword: the database password reaches PostgreSQL from
// store.password_file or PGPASSWORD, and never appears in fleetca.yaml,
// in init's, serve's or db migrate's output, or in an error.
func TestPostgresPassword(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t)
	db := dsnValue(dsn, "dbname")
	role := "pw_" + db
	su := superuser(t, dsn)
	execSQL(t, su, "CREATE ROLE "+role+" LOGIN PASSWORD '"+secret+"'", "ALTER DATABASE "+db+" OWNER TO "+role)
	requirePassword(t, su, dsn, role)
	roleDSN := dsnWith(dsn, "user", role)
	pwFile := filepath.Join(t.TempDir(), "db-password")
	if err := os.WriteFile(pwFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noSecret := func(what, text string) {
		t.Helper()
		if strings.Contains(text, secret) {
			t.Errorf("%s contains the database password:\n%s", what, text)
		}
	}

	f := initFixtureWith(t, "--store", roleDSN, "--store-password-file", pwFile)
	D := f.dataDir
	yml := readFile(t, filepath.Join(D, configName))
	noSecret("fleetca.yaml", yml)
	if !strings.Contains(yml, pgSection(roleDSN, pwFile)) {
		t.Errorf("fleetca.yaml lacks the store section %q:\n%s", pgSection(roleDSN, pwFile), yml)
	}
	f.start()
	f.fleetcaEnroll(f.plainToken("--device-id", "dev-1"), "dev-1")
	r := f.mustFleetca("db", "migrate", "--dir", D)
	if want := fmt.Sprintf("schema at version %d (was %d)\n", pgstore.SchemaVersion, pgstore.SchemaVersion); r.stdout != want {
		t.Errorf("db migrate stdout = %q, want %q", r.stdout, want)
	}
	noSecret("db migrate's output", r.stdout+r.stderr)
	noSecret("fleetca version", f.mustFleetca("version").stdout)
	f.srv.stop(t)
	noSecret("serve's log and stderr", f.srv.log.String())

	// Without the file the server refuses the role (it was honoured);
	// PGPASSWORD stands in for it.
	setStore(t, D, pgSection(roleDSN, pwFile), pgSection(roleDSN, ""))
	r = f.fleetca("db", "migrate", "--dir", D)
	t.Logf("db migrate without a password: %s", r.stderr)
	if r.code != 1 || !oneLineError.MatchString(r.stderr) {
		t.Errorf("db migrate without a password: exit %d, stderr %q; want 1 and one line", r.code, r.stderr)
	}
	f.extraEnv = []string{"PGPASSWORD=" + secret}
	r = f.mustFleetca("db", "migrate", "--dir", D)
	noSecret("db migrate's output with PGPASSWORD", r.stdout+r.stderr)

	// A wrong password is refused without being shown.
	wrong := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrong, []byte(secret+"-wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.extraEnv = nil
	setStore(t, D, pgSection(roleDSN, ""), pgSection(roleDSN, wrong))
	r = f.fleetca("serve", "--dir", D)
	if r.code != 1 || !oneLineError.MatchString(r.stderr) {
		t.Errorf("serve with a wrong database password: exit %d, stderr %q; want 1 and one line", r.code, r.stderr)
	}
	noSecret("serve's output with a wrong password", r.stdout+r.stderr)
}

// requirePassword makes the server of dsn ask role for its password
// (scram-sha-256) on 127.0.0.1, ahead of pgtest's trust rule, and waits
// until a connection without one is refused.
func requirePassword(t *testing.T, su *pgx.Conn, dsn, role string) {
	t.Helper()
	ctx := t.Context()
	var hbaFile, hba string
	if err := su.QueryRow(ctx, "SHOW hba_file").Scan(&hbaFile); err != nil {
		t.Fatal(err)
	}
	if err := su.QueryRow(ctx, "SELECT pg_read_file($1)", hbaFile).Scan(&hba); err != nil {
		t.Fatal(err)
	}
	hba = "host all " + role + " 127.0.0.1/32 scram-sha-256\n" + hba
	// A large object written out by the server: the file stays the
	// server's own, byte for byte.
	var lo uint32
	if err := su.QueryRow(ctx, "SELECT lo_from_bytea(0, convert_to($1, 'UTF8'))", hba).Scan(&lo); err != nil {
		t.Fatal(err)
	}
	if _, err := su.Exec(ctx, "SELECT lo_export($1, $2)", lo, hbaFile); err != nil {
		t.Fatalf("write %s: %v", hbaFile, err)
	}
	if _, err := su.Exec(ctx, "SELECT lo_unlink($1)", lo); err != nil {
		t.Fatal(err)
	}
	execSQL(t, su, "SELECT pg_reload_conf()")
	// pg_reload_conf signals the postmaster; new sessions see the rule
	// once it has read the file.
	for range 1000 {
		conn, err := pgx.Connect(ctx, dsnWith(dsn, "user", role))
		if err != nil {
			return
		}
		conn.Close(ctx)
	}
	t.Fatalf("the server still lets %s in without a password after pg_reload_conf", role)
}

// TestPostgresSchemaVersions: db migrate creates the schema of an empty
// database and says from which version; serve and db migrate refuse a
// schema newer than this fleetca knows, in one line.
func TestPostgresSchemaVersions(t *testing.T) {
	t.Parallel()
	f := initFixture(t)
	D := f.dataDir
	dsn := pgtest.NewEmptyDatabase(t) // no schema yet
	setStore(t, D, boltSection, pgSection(dsn, ""))
	want := fmt.Sprintf("schema at version %d (was 0)\n", pgstore.SchemaVersion)
	if r := f.mustFleetca("db", "migrate", "--dir", D); r.stdout != want {
		t.Errorf("db migrate of an empty database: stdout %q, want %q", r.stdout, want)
	}
	want = fmt.Sprintf("schema at version %d (was %d)\n", pgstore.SchemaVersion, pgstore.SchemaVersion)
	if r := f.mustFleetca("db", "migrate", "--dir", D); r.stdout != want {
		t.Errorf("db migrate again: stdout %q, want %q", r.stdout, want)
	}

	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(t.Context()))
	if _, err := conn.Exec(t.Context(), "UPDATE schema_version SET version = $1", pgstore.SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"serve", "--dir", D}, {"db", "migrate", "--dir", D}} {
		r := f.fleetca(args...)
		t.Logf("fleetca %s: %s", strings.Join(args, " "), r.stderr)
		if r.code != 1 || !oneLineError.MatchString(r.stderr) || !strings.Contains(r.stderr, "newer than this fleetca knows") {
			t.Errorf("fleetca %s against a newer schema: exit %d, stderr %q; want 1 and one line saying the schema is newer",
				strings.Join(args, " "), r.code, r.stderr)
		}
	}
}
