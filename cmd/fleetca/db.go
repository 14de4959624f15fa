package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/boltstore"
	"github.com/fleetca/fleetca/store/pgstore"
)

func newDBCmd(e env) *cobra.Command {
	cmd := &cobra.Command{Use: "db", Short: "Migrate the PostgreSQL store's schema; copy a CA from bbolt to PostgreSQL"}
	cmd.AddCommand(newDBMigrateCmd(e), newDBCopyCmd(e))
	return cmd
}

func newDBMigrateCmd(e env) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "migrate --dir DIR",
		Short: "Apply the schema migrations the PostgreSQL store lacks",
		Long: `migrate brings the schema of the PostgreSQL database that DIR's fleetca.yaml
names (store.dsn) up to the version this fleetca knows, and prints
"schema at version N (was M)". serve does the same at start, so this is for
upgrading ahead of the replicas. Migrations run under a lock: running it
beside starting replicas is safe. A schema newer than this fleetca knows is
refused. A bbolt store needs no migration.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := dataDir(dir, e.getenv)
			if err != nil {
				return err
			}
			return runDBMigrate(cmd.Context(), e, d)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "data directory (default $FLEETCA_DIR, or ./fleetca-data)")
	return cmd
}

// runDBMigrate migrates the schema of dir's PostgreSQL store.
func runDBMigrate(ctx context.Context, e env, dir string) error {
	cfg, err := loadConfig(dir)
	if err != nil {
		return err
	}
	if cfg.Store.Driver != driverPostgres {
		fmt.Fprintf(e.stdout, "nothing to migrate: the store is the bbolt file %s (store.driver: bolt)\n", describeStore(dir, cfg.Store))
		return nil
	}
	pw, err := readStorePassword(dir, cfg.Store.PasswordFile)
	if err != nil {
		return err
	}
	from, to, err := pgstore.Migrate(ctx, cfg.Store.DSN, pw)
	if err != nil {
		return pgError(err)
	}
	fmt.Fprintf(e.stdout, "schema at version %d (was %d)\n", to, from)
	return nil
}

func newDBCopyCmd(e env) *cobra.Command {
	var from, to, toPasswordFile string
	cmd := &cobra.Command{
		Use:   "copy --from DIR/fleetca.db --to DSN",
		Short: "Copy a CA's records from its bbolt file into an empty PostgreSQL database",
		Long: `copy moves an existing CA from bbolt to PostgreSQL: every device,
certificate (with its lineage), token, revocation, counter, audit event and
the latest CRL, read in one snapshot of the bbolt file, written in one
transaction into the database (whose schema it creates). It refuses a
database that holds records, and a bbolt file that a running fleetca serve
holds: stop the server first. At the end it counts the records of each kind
on both sides, prints them, and fails if any count differs.

The DSN carries no password: give it in --to-password-file (mode 0600), or
PGPASSWORD or PGPASSFILE. Then set store.driver: postgres and store.dsn in
the data directory's fleetca.yaml, as copy prints, and start serve.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || to == "" {
				return usagef("copy needs --from DIR/fleetca.db and --to DSN")
			}
			return runDBCopy(cmd.Context(), e, from, to, toPasswordFile)
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "the bbolt file to copy from (DIR/fleetca.db)")
	f.StringVar(&to, "to", "", "DSN of the empty PostgreSQL database to copy to, without a password (postgres://user@host:5432/db?sslmode=verify-full)")
	f.StringVar(&toPasswordFile, "to-password-file", "", "file with the --to database's password (mode 0600; default PGPASSWORD or PGPASSFILE)")
	return cmd
}

// runDBCopy copies the bbolt file from into the PostgreSQL database to.
func runDBCopy(ctx context.Context, e env, from, to, toPasswordFile string) error {
	if err := checkDSN(to, "--to", "--to-password-file names"); err != nil {
		return err
	}
	pwFile, err := absPath(toPasswordFile)
	if err != nil {
		return err
	}
	pw, err := readStorePassword("", pwFile)
	if err != nil {
		return err
	}
	src, err := openCopySource(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := pgstore.Open(ctx, pgstore.Options{DSN: to, Password: pw, Migrate: true})
	if err != nil {
		return pgError(err)
	}
	defer dst.Close()
	counts, err := copyStore(ctx, src, dst, progressTo(e.stderr))
	if err != nil {
		return err
	}
	printCounts(e.stdout, from, to, counts)
	fmt.Fprintf(e.stdout, `
Every count matches. To serve the CA from PostgreSQL, replace the store section of
%s with:
store:
  driver: postgres
  dsn: %q
`, filepath.Join(filepath.Dir(from), configName), to)
	if pwFile != "" {
		fmt.Fprintf(e.stdout, "  password_file: %q\n", pwFile)
	}
	fmt.Fprintf(e.stdout, "and start fleetca serve (the bbolt file is left as it was).\n")
	return nil
}

// openCopySource opens the bbolt file of db copy, refusing what is not one
// and a file a server holds.
func openCopySource(path string) (*boltstore.Store, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fault.Wrap(err, fault.NotFound, fmt.Sprintf("--from %s does not exist", path), "give the CA's bbolt file, DIR/fleetca.db")
	case err != nil:
		return nil, fmt.Errorf("--from: %w", err)
	case fi.IsDir():
		return nil, fault.New(fault.Malformed, fmt.Sprintf("--from %s is a directory, not a bbolt file", path),
			"give the bbolt file in it, "+filepath.Join(path, defaultStorePath))
	case fi.Size() == 0:
		// bbolt would make an empty file a new database.
		return nil, fault.New(fault.Malformed, fmt.Sprintf("--from %s is empty, not a bbolt file", path), "give the CA's bbolt file, DIR/fleetca.db")
	}
	st, err := boltstore.Open(path, boltstore.Options{})
	switch {
	case errors.Is(err, boltstore.ErrNotDatabase):
		return nil, fault.Wrap(err, fault.Malformed, fmt.Sprintf("--from %s is not a bbolt file", path), "give the CA's bbolt file, DIR/fleetca.db")
	case errors.Is(err, boltstore.ErrLocked):
		return nil, fault.Wrap(err, fault.Conflict, fmt.Sprintf("--from %s is in use: a fleetca serve holds it", path),
			"stop that server first, so that no write comes after the copy")
	case err != nil:
		return nil, err
	}
	return st, nil
}

// copyStore loads every record of src into dst, which must be empty, in
// one transaction, and then checks that both count the same records of
// each kind; it returns the counts. progress, if not nil, is told how
// many records were copied of how many, as the copy goes, and once more
// with done at the end.
func copyStore(ctx context.Context, src store.Dumper, dst interface {
	store.Dumper
	store.Loader
}, progress func(n, total int64, done bool)) (map[string]int64, error) {
	want, err := src.Counts(ctx)
	if err != nil {
		return nil, fmt.Errorf("count the source's records: %w", err)
	}
	var total int64
	for _, n := range want {
		total += n
	}
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	recs := make(chan store.Record, 256)
	var dumpErr error // set before recs is closed
	go func() {
		defer close(recs)
		dumpErr = src.Dump(dctx, func(r store.Record) error {
			select {
			case recs <- r:
				return nil
			case <-dctx.Done():
				return dctx.Err()
			}
		})
	}()
	var n int64
	err = dst.Load(ctx, func() (store.Record, bool, error) {
		r, ok := <-recs
		if !ok {
			if dumpErr != nil {
				return store.Record{}, false, fmt.Errorf("read the source: %w", dumpErr)
			}
			return store.Record{}, false, nil
		}
		if n++; progress != nil && n%1000 == 0 {
			progress(n, total, false)
		}
		return r, true, nil
	})
	cancel()
	for range recs { // let Dump end
	}
	if progress != nil {
		progress(n, total, true)
	}
	if errors.Is(err, store.ErrNotEmpty) {
		return nil, fault.Wrap(err, fault.Conflict, "the target database is not empty: it holds records already, and db copy fills only an empty database",
			"create a new database (createdb) and copy into it")
	}
	if err != nil {
		return nil, fmt.Errorf("copy: %w", err)
	}
	got, err := dst.Counts(ctx)
	if err != nil {
		return nil, fmt.Errorf("count the copied records: %w", err)
	}
	if diff := countDiff(want, got); diff != "" {
		return nil, fmt.Errorf("the copy does not hold what the source holds (%s); the source is unchanged", diff)
	}
	return want, nil
}

// countDiff describes the kinds whose counts differ ("device 10 in the
// source, 9 in the target"), "" if none does.
func countDiff(want, got map[string]int64) string {
	var diffs []string
	for _, k := range sortedKinds(want, got) {
		if want[k] != got[k] {
			diffs = append(diffs, fmt.Sprintf("%s %d in the source, %d in the target", k, want[k], got[k]))
		}
	}
	return strings.Join(diffs, "; ")
}

// sortedKinds returns the keys of the maps, sorted, once each.
func sortedKinds(ms ...map[string]int64) []string {
	var kinds []string
	for _, m := range ms {
		for k := range m {
			kinds = append(kinds, k)
		}
	}
	slices.Sort(kinds)
	return slices.Compact(kinds)
}

// printCounts prints what db copy copied, a kind a line.
func printCounts(w io.Writer, from, to string, counts map[string]int64) {
	var total int64
	for _, n := range counts {
		total += n
	}
	fmt.Fprintf(w, "copied %d records from %s to PostgreSQL %s:\n", total, from, to)
	for _, k := range sortedKinds(counts) {
		fmt.Fprintf(w, "  %-17s %d\n", k, counts[k])
	}
}

// progressTo returns a progress function that rewrites one line on w if w
// is a terminal, and nil (no progress) otherwise.
func progressTo(w io.Writer) func(n, total int64, done bool) {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return func(n, total int64, done bool) {
		fmt.Fprintf(w, "\rcopying: %d of %d records", n, total)
		if done {
			fmt.Fprintln(w)
		}
	}
}
