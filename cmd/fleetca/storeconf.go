package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/boltstore"
	"github.com/fleetca/fleetca/store/pgstore"
)

// validate checks the store section; it changes nothing. No error quotes
// the DSN: a wrong one may hold a password.
func (s storeConfig) validate() error {
	switch s.Driver {
	case driverBolt:
		if s.DSN != "" || s.PasswordFile != "" {
			return fault.WithKey(fault.New(fault.Malformed, "store.dsn and store.password_file are for store.driver postgres, not bolt",
				"remove them, or set store.driver: postgres"), "store.driver")
		}
		return nil
	case driverPostgres:
		if s.Path != "" {
			return fault.WithKey(fault.New(fault.Malformed, "store.path is the bbolt file, and store.driver is postgres",
				"remove store.path, or set store.driver: bolt"), "store.path")
		}
		return checkDSN(s.DSN, "store.dsn", "store.password_file names")
	}
	return fault.WithKey(fault.New(fault.Malformed, fmt.Sprintf("store.driver %q is not a store driver", s.Driver),
		"write bolt (the file in the data directory) or postgres"), "store.driver")
}

// checkDSN checks a PostgreSQL connection string given as key (a
// configuration key or a flag, for the error; pwFile says what names the
// password file instead, for the hint): it must be there, be a
// postgres:// or postgresql:// URL or keyword=value pairs, and carry no
// password. pgx parses it in full when it connects; this catches the
// mistakes that must not reach a configuration file or a log.
func checkDSN(dsn, key, pwFile string) error {
	withKey := func(err error) error {
		if strings.HasPrefix(key, "--") { // a flag, not a configuration key
			return err
		}
		return fault.WithKey(err, key)
	}
	if strings.TrimSpace(dsn) == "" {
		return withKey(fault.New(fault.Malformed, key+" is missing: the postgres driver needs the database's DSN",
			"write it like postgres://fleetca@db.example.com:5432/fleetca?sslmode=verify-full"))
	}
	has, err := dsnHasPassword(dsn)
	if err != nil {
		// The error names the problem, never the DSN.
		return withKey(fault.Wrap(err, fault.Malformed, fmt.Sprintf("%s does not parse: %v", key, err),
			"write a URL like postgres://fleetca@db.example.com:5432/fleetca?sslmode=verify-full, or keyword=value pairs like host=db user=fleetca dbname=fleetca"))
	}
	if has {
		return withKey(fault.New(fault.Malformed, key+" carries a password, and a configuration file or command line holds no secret",
			"remove it from the DSN and put it in a file of mode 0600 that "+pwFile+", or in PGPASSWORD or PGPASSFILE"))
	}
	return nil
}

// dsnHasPassword reports whether a libpq connection string sets a
// password: in a URL's user information (user:password@) or its password
// query parameter, or as a password keyword. It never includes the
// string in an error.
func dsnHasPassword(dsn string) (bool, error) {
	if rest, ok := cutScheme(dsn); ok {
		// Not url.Parse: libpq URLs may list several hosts
		// (postgres://a:5432,b:5432/db), which it refuses.
		authority, query := rest, ""
		if i := strings.IndexAny(rest, "/?#"); i >= 0 {
			authority = rest[:i]
			if q := strings.IndexByte(rest, '?'); q >= 0 {
				query, _, _ = strings.Cut(rest[q+1:], "#")
			}
		}
		if at := strings.LastIndexByte(authority, '@'); at >= 0 && strings.Contains(authority[:at], ":") {
			return true, nil
		}
		vals, err := url.ParseQuery(query)
		if err != nil {
			return false, errors.New("its query string is malformed")
		}
		return vals.Has("password"), nil
	}
	keys, err := dsnKeywords(dsn)
	if err != nil {
		return false, err
	}
	for _, k := range keys {
		if k == "password" {
			return true, nil
		}
	}
	return false, nil
}

// cutScheme returns what follows a postgres:// or postgresql:// scheme.
func cutScheme(dsn string) (string, bool) {
	for _, scheme := range []string{"postgres://", "postgresql://"} {
		if len(dsn) >= len(scheme) && strings.EqualFold(dsn[:len(scheme)], scheme) {
			return dsn[len(scheme):], true
		}
	}
	return "", false
}

// dsnKeywords returns the keywords of a keyword=value connection string
// (libpq's "Keyword/Value Connection Strings": spaces around = allowed,
// values single-quoted with \' and \\ escapes, or bare up to a space).
func dsnKeywords(dsn string) ([]string, error) {
	var keys []string
	s := dsn
	for {
		s = strings.TrimLeft(s, " \t\n\r\f\v")
		if s == "" {
			return keys, nil
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || strings.ContainsAny(strings.TrimRight(s[:eq], " \t"), " \t'\\") {
			return nil, errors.New("it is neither a postgres:// URL nor keyword=value pairs")
		}
		keys = append(keys, strings.TrimRight(s[:eq], " \t"))
		s = strings.TrimLeft(s[eq+1:], " \t")
		if strings.HasPrefix(s, "'") {
			i, closed := 1, false
			for i < len(s) {
				if s[i] == '\\' {
					i += 2
					continue
				}
				if s[i] == '\'' {
					closed = true
					break
				}
				i++
			}
			if !closed {
				return nil, errors.New("a quoted value is not closed")
			}
			s = s[i+1:]
			continue
		}
		for s != "" && !strings.ContainsRune(" \t\n\r\f\v", rune(s[0])) {
			if s[0] == '\\' && len(s) > 1 {
				s = s[1:]
			}
			s = s[1:]
		}
	}
}

// readStorePassword returns the database password from file (relative to
// dir unless absolute; mode 0600 or stricter), or "" when file is "".
func readStorePassword(dir, file string) (string, error) {
	if file == "" {
		return "", nil
	}
	if !filepath.IsAbs(file) {
		file = filepath.Join(dir, file)
	}
	if _, err := os.Stat(file); err != nil {
		return "", fault.WithKey(fault.Wrap(err, fault.NotFound, fmt.Sprintf("cannot read the database password file %s", file),
			"check store.password_file"), "store.password_file")
	}
	if err := ca.CheckSecretFile("database password file", file); err != nil {
		return "", err
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read the database password file: %w", err)
	}
	pw := bytes.TrimRight(b, "\r\n")
	if len(pw) == 0 {
		return "", fault.WithKey(fault.New(fault.Malformed, fmt.Sprintf("the database password file %s is empty", file),
			"write the password of the DSN's user into it"), "store.password_file")
	}
	return string(pw), nil
}

// storeOptions are openStore's inputs beyond the configuration.
type storeOptions struct {
	// migrate applies pending schema migrations (postgres).
	migrate bool
	// logger receives the store's events (nil: none).
	logger *slog.Logger
	// noAuditTree: boltstore.Options.NoAuditTree (benchmarks only).
	noAuditTree bool
}

// openStore opens the store sc names: the bbolt file in dir, or the
// PostgreSQL database (reading the password file). A PostgreSQL schema
// newer than this fleetca knows, or older when o.migrate is unset, is
// refused with one line saying what to do.
func openStore(ctx context.Context, dir string, sc storeConfig, o storeOptions) (store.Store, error) {
	if sc.Driver != driverPostgres {
		return boltstore.Open(filepath.Join(dir, sc.Path), boltstore.Options{NoAuditTree: o.noAuditTree})
	}
	pw, err := readStorePassword(dir, sc.PasswordFile)
	if err != nil {
		return nil, err
	}
	st, err := pgstore.Open(ctx, pgstore.Options{DSN: sc.DSN, Password: pw, Migrate: o.migrate, Logger: o.logger})
	if err != nil {
		return nil, pgError(err)
	}
	return st, nil
}

// pgError turns pgstore's errors into the CLI's line: a refused schema
// version says what to do, and anything else (an unreachable server, a
// refused password) says what to check.
func pgError(err error) error {
	switch {
	case errors.Is(err, pgstore.ErrSchemaNewer):
		return fault.Wrap(err, fault.Conflict,
			fmt.Sprintf("the database's schema is newer than this fleetca knows (it knows versions up to %d): a newer fleetca migrated it", pgstore.SchemaVersion),
			"run the fleetca version that the other replicas run; a schema is never migrated down")
	case errors.Is(err, pgstore.ErrSchemaOlder):
		return fault.Wrap(err, fault.Conflict,
			fmt.Sprintf("the database's schema is older than this fleetca needs (version %d)", pgstore.SchemaVersion),
			"run 'fleetca db migrate --dir DIR'")
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	// pgstore's errors carry no password (it redacts them).
	return fault.Wrap(err, fault.Unavailable, "cannot use the PostgreSQL store: "+strings.ReplaceAll(err.Error(), "\n", " "),
		"check store.dsn, the database password (store.password_file, PGPASSWORD or PGPASSFILE) and that the server is up")
}

// describeStore names the store for people: the bbolt file, or the DSN
// (which validate made sure carries no password).
func describeStore(dir string, sc storeConfig) string {
	if sc.Driver == driverPostgres {
		return "PostgreSQL " + sc.DSN
	}
	return filepath.Join(dir, sc.Path)
}
