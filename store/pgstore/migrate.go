package pgstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// SchemaVersion is the schema version this fleetca knows: the number of
// the last file in migrations/.
const SchemaVersion = 7

// Errors of a schema version Open cannot use. Test with errors.Is.
var (
	// ErrSchemaNewer: the database was migrated by a newer fleetca.
	ErrSchemaNewer = errors.New("database schema is newer than this fleetca knows")
	// ErrSchemaOlder: the database needs migrating (Options.Migrate unset).
	ErrSchemaOlder = errors.New("database schema is older than this fleetca needs")
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the pg_advisory_xact_lock key that serialises
// migrations across replicas: "fleetca" in ASCII.
const migrationLock = 0x666c656574636100

// migration is one numbered file of migrations/.
type migration struct {
	version int
	name    string
	sql     string
}

// auditTreeVersion is the migration that adds the audit tree.
const auditTreeVersion = 5

// migrationSteps are the steps in Go that follow a migration's SQL, in
// its transaction, by version: work SQL must not do (tlog's hashing).
var migrationSteps = map[int]func(ctx context.Context, tx pgx.Tx) error{
	auditTreeVersion: func(ctx context.Context, tx pgx.Tx) error {
		if _, err := buildAuditTree(ctx, tx, true); err != nil {
			return fmt.Errorf("build the audit tree: %w", err)
		}
		_, err := tx.Exec(ctx, "ALTER TABLE audit ALTER COLUMN root SET NOT NULL")
		return err
	},
}

// migrations returns the embedded migrations in version order, checking
// that they are numbered 1, 2, 3, ... SchemaVersion.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries { // ReadDir sorts by name
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v != len(out)+1 {
			return nil, fmt.Errorf("migration %s is out of sequence: want %04d_*.sql", e.Name(), len(out)+1)
		}
		sql, err := fs.ReadFile(migrationFiles, path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(sql)})
	}
	if len(out) != SchemaVersion {
		return nil, fmt.Errorf("%d migrations embedded, SchemaVersion is %d", len(out), SchemaVersion)
	}
	return out, nil
}

// Migrate brings the schema of the database dsn names up to
// SchemaVersion: it applies each migration it lacks in a transaction of
// its own, holding pg_advisory_xact_lock, so that replicas starting
// together apply each one once, and records each version in the
// schema_version table. It returns the versions before and after (equal
// when there was nothing to do). password, if set, overrides the DSN's;
// no error contains it. A schema newer than SchemaVersion is refused with
// an error wrapping ErrSchemaNewer.
func Migrate(ctx context.Context, dsn, password string) (from, to int, err error) {
	sec := newRedactor(dsn, password)
	cfg, err := poolConfig(dsn, password, sec)
	if err != nil {
		return 0, 0, fmt.Errorf("migrate store: %w", err)
	}
	from, to, err = migrate(ctx, cfg.ConnConfig)
	if err != nil {
		return from, to, sec.wrap("migrate store", err)
	}
	return from, to, nil
}

// migrate is Migrate on a parsed configuration.
func migrate(ctx context.Context, cfg *pgx.ConnConfig) (from, to int, err error) {
	ms, err := migrations()
	if err != nil {
		return 0, 0, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	from = -1
	for _, m := range ms {
		var before int
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrationLock)); err != nil {
				return err
			}
			// Read under the lock: another replica may have just
			// applied this migration.
			var err error
			if before, err = schemaVersion(ctx, tx); err != nil {
				return err
			}
			if err := checkNotNewer(before); err != nil || before >= m.version {
				return err
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			if step := migrationSteps[m.version]; step != nil {
				if err := step(ctx, tx); err != nil {
					return fmt.Errorf("migration %s: %w", m.name, err)
				}
			}
			_, err = tx.Exec(ctx, "UPDATE schema_version SET version = $1", m.version)
			return err
		})
		if from < 0 {
			from = before
		}
		if err != nil {
			return from, before, err
		}
	}
	to, err = schemaVersion(ctx, conn)
	return from, to, err
}

// schemaVersion creates the schema_version table if it is missing (as
// version 0) and returns the version it records.
func schemaVersion(ctx context.Context, q querier) (int, error) {
	_, err := q.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		one     boolean PRIMARY KEY DEFAULT true CHECK (one),
		version integer NOT NULL
	)`)
	if err != nil {
		return 0, err
	}
	if _, err := q.Exec(ctx, "INSERT INTO schema_version (version) VALUES (0) ON CONFLICT DO NOTHING"); err != nil {
		return 0, err
	}
	var v int
	err = q.QueryRow(ctx, "SELECT version FROM schema_version").Scan(&v)
	return v, err
}

// checkNotNewer refuses a schema version above SchemaVersion.
func checkNotNewer(v int) error {
	if v > SchemaVersion {
		return fmt.Errorf("%w: the database is at schema version %d, this fleetca knows versions up to %d (upgrade fleetca)",
			ErrSchemaNewer, v, SchemaVersion)
	}
	return nil
}

// checkVersion refuses a schema version other than SchemaVersion.
func checkVersion(v int) error {
	if v < SchemaVersion {
		return fmt.Errorf("%w: the database is at schema version %d, this fleetca needs version %d (migrate the database)",
			ErrSchemaOlder, v, SchemaVersion)
	}
	return checkNotNewer(v)
}
