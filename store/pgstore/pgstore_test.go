package pgstore

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/fleetca/fleetca/internal/pgtest"
	"github.com/fleetca/fleetca/store"
)

// exec runs sql on the database dsn.
func exec(t *testing.T, dsn, sql string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(t.Context()))
	if _, err := conn.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// databaseAt returns a new database as a fleetca of schema version n left
// it: migrations 1..n applied and schema_version saying n.
func databaseAt(t *testing.T, n int) string {
	t.Helper()
	dsn := pgtest.NewEmptyDatabase(t)
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[:n] {
		exec(t, dsn, m.sql)
	}
	exec(t, dsn, `CREATE TABLE schema_version (one boolean PRIMARY KEY DEFAULT true CHECK (one), version integer NOT NULL)`)
	exec(t, dsn, `INSERT INTO schema_version (version) VALUES ($1)`, n)
	return dsn
}

func TestMigrate(t *testing.T) {
	t.Run("ok/replicas-start-together", func(t *testing.T) {
		// Each migration is applied once, by whichever replica takes the
		// advisory lock first; the others find it done.
		dsn := pgtest.NewEmptyDatabase(t)
		const n = 4
		type result struct{ from, to int }
		results := make([]result, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				results[i].from, results[i].to, errs[i] = Migrate(t.Context(), dsn, "")
			})
		}
		close(start)
		wg.Wait()
		fromZero := 0
		for i, r := range results {
			if errs[i] != nil {
				t.Fatalf("Migrate %d error = %v, want nil", i, errs[i])
			}
			if r.to != SchemaVersion {
				t.Errorf("Migrate %d = %d to %d, want to %d", i, r.from, r.to, SchemaVersion)
			}
			if r.from == 0 {
				fromZero++
			}
		}
		if fromZero != 1 {
			t.Errorf("%d of %d concurrent Migrate calls started from version 0, want 1: %v", fromZero, n, results)
		}
		open(t, dsn) // the schema is whole
	})

	t.Run("ok/again-changes-nothing", func(t *testing.T) {
		dsn := pgtest.NewDatabase(t)
		from, to, err := Migrate(t.Context(), dsn, "")
		if from != SchemaVersion || to != SchemaVersion || err != nil {
			t.Errorf("Migrate of a migrated database = %d, %d, %v, want %d, %d, nil", from, to, err, SchemaVersion, SchemaVersion)
		}
	})

	t.Run("fail/older-without-migrate", func(t *testing.T) {
		dsn := pgtest.NewEmptyDatabase(t)
		_, err := Open(t.Context(), Options{DSN: dsn})
		if !errors.Is(err, ErrSchemaOlder) {
			t.Fatalf("Open of an empty database error = %v, want ErrSchemaOlder", err)
		}
		s, err := Open(t.Context(), Options{DSN: dsn, Migrate: true})
		if err != nil {
			t.Fatalf("Open with Migrate error = %v, want nil", err)
		}
		s.Close()
	})

	t.Run("fail/newer", func(t *testing.T) {
		dsn := pgtest.NewDatabase(t)
		exec(t, dsn, "UPDATE schema_version SET version = $1", SchemaVersion+1)
		for _, migrate := range []bool{false, true} {
			_, err := Open(t.Context(), Options{DSN: dsn, Migrate: migrate})
			if !errors.Is(err, ErrSchemaNewer) {
				t.Fatalf("Open(Migrate %v) of a newer schema error = %v, want ErrSchemaNewer", migrate, err)
			}
			// The wording is the feature: the operator learns both
			// versions and what to do.
			for _, want := range []string{fmt.Sprint(SchemaVersion + 1), fmt.Sprint(SchemaVersion), "upgrade fleetca"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Open of a newer schema error = %q, want it to contain %q", err, want)
				}
			}
		}
		if _, _, err := Migrate(t.Context(), dsn, ""); !errors.Is(err, ErrSchemaNewer) {
			t.Errorf("Migrate of a newer schema error = %v, want ErrSchemaNewer", err)
		}
	})
}

// TestPasswordNotInErrors: neither the DSN's password nor
// Options.Password appears in an error of Open or Migrate, whatever
// fails: the DSN's syntax, the connection, the server.
func TestPasswordNotInErrors(t *testing.T) {
	const secret = "s3cret-Pa55"
	dsn := pgtest.NewDatabase(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	server := fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)
	for _, tc := range []struct {
		name     string
		dsn      string
		password string
	}{
		{"url-bad-port", "postgres://fleet:" + secret + "@127.0.0.1:notaport/db", ""},
		{"url-bad-escape", "postgres://fleet:" + secret + "%zz@127.0.0.1/db", ""},
		{"kv-unterminated", "host=127.0.0.1 password='" + secret, ""},
		{"url-refused", "postgres://fleet:" + secret + "@127.0.0.1:1/db?connect_timeout=5", ""},
		{"option-refused", "postgres://fleet@127.0.0.1:1/db?connect_timeout=5", secret},
		{"url-no-such-database", "postgres://fleet:" + secret + "@" + server + "/nosuchdb?sslmode=disable", ""},
		{"option-no-such-database", "postgres://fleet@" + server + "/nosuchdb?sslmode=disable", secret},
		{"kv-no-such-role", "host=127.0.0.1 port=" + fmt.Sprint(cfg.Port) + " user=nobody password=" + secret + " dbname=x sslmode=disable", ""},
	} {
		t.Run("fail/"+tc.name, func(t *testing.T) {
			_, err := Open(t.Context(), Options{DSN: tc.dsn, Password: tc.password})
			if err == nil {
				t.Fatal("Open error = nil, want one")
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("Open error = %q, contains the password", err)
			}
			_, _, err = Migrate(t.Context(), tc.dsn, tc.password)
			if err == nil {
				t.Fatal("Migrate error = nil, want one")
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("Migrate error = %q, contains the password", err)
			}
		})
	}
}

// TestCommitPipelineFailure: the statements sent with the COMMIT (the
// audit rows, appendLogs) can fail; then the server skips the COMMIT, the
// transaction rolls back whole (no device, no certificate, no spent use),
// and the connection goes back to the pool usable.
func TestCommitPipelineFailure(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	// One connection, so the next call surely reuses it.
	s := openWith(t, Options{DSN: dsn, MaxConns: 1})
	ctx := t.Context()
	exec(t, dsn, "ALTER TABLE audit ADD CONSTRAINT no_boom CHECK (action <> 'boom')")
	tok := testToken("tok-1", 5)
	if err := s.CreateToken(ctx, tok, store.AuditEvent{Time: t0, Action: "token.create", Actor: "admin"}); err != nil {
		t.Fatal(err)
	}
	is := issuance(testCert(1, "dev-1"), tok)
	is.Audit.Action = "boom"
	if err := s.Issue(ctx, is); err == nil {
		t.Fatal("Issue with an audit row the table refuses: error = nil, want one")
	}
	if _, err := s.GetDevice(ctx, "dev-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetDevice after the failed Issue error = %v, want ErrNotFound", err)
	}
	if _, err := s.GetCertificate(ctx, big.NewInt(1)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetCertificate after the failed Issue error = %v, want ErrNotFound", err)
	}
	if got, err := s.GetToken(ctx, tok.Hash); err != nil || got.Spent != 0 {
		t.Errorf("GetToken after the failed Issue = spent %d, %v, want 0, nil", got.Spent, err)
	}
	is.Audit.Action = "certificate.issue"
	if err := s.Issue(ctx, is); err != nil {
		t.Fatalf("Issue on the same connection afterwards error = %v, want nil", err)
	}
	es, err := s.ListAudit(ctx, 0, 0)
	if err != nil || len(es) != 2 || es[1].Seq != 2 {
		t.Errorf("ListAudit = %+v, %v, want the token's and the issue's, Seq 1 and 2", es, err)
	}
}
