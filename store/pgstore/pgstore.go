package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fleetca/fleetca/store"
)

var _ store.Store = (*Store)(nil)

// DefaultMaxConns is the pool size when Options.MaxConns is zero: enough
// for 32 requests in flight to keep a group commit full, few enough for
// several replicas under PostgreSQL's default max_connections of 100.
const DefaultMaxConns = 16

// Application names, as pg_stat_activity shows the sessions of a replica.
const (
	appName       = "fleetca"
	appNameListen = "fleetca-listen"
)

// maxAttempts bounds the runs of one transaction that PostgreSQL aborted
// with a serialization failure (40001) or a deadlock (40P01): see inTx.
const maxAttempts = 8

// Options configures Open.
type Options struct {
	// DSN is the PostgreSQL connection string, a URL
	// (postgres://user@host:5432/db?sslmode=verify-full) or keyword=value
	// pairs. Required. It should carry no password: see Password.
	DSN string
	// Password, if set, is the password of the DSN's user, overriding any
	// in the DSN. The caller reads it from a file or the environment. It
	// is never logged and never appears in an error.
	Password string
	// Migrate applies the migrations an older schema lacks (under an
	// advisory lock, see Migrate); unset, Open refuses an older schema
	// with ErrSchemaOlder. A newer schema is always refused
	// (ErrSchemaNewer).
	Migrate bool
	// MaxConns is the most connections the pool opens. Zero means
	// DefaultMaxConns (16); negative is refused. The revocation listener
	// (Watch) takes one more of its own.
	MaxConns int32
	// Logger receives the store's operational events (migrations applied,
	// listener reconnects). Nil means slog.DiscardHandler.
	Logger *slog.Logger
}

// Store is the PostgreSQL implementation of store.Store. It is safe for
// concurrent use, and several Stores (replicas, each in its own process)
// may share one database.
type Store struct {
	pool   *pgxpool.Pool
	cfg    *pgxpool.Config // for the listener's own connection
	log    *slog.Logger
	secret redactor
	// auditScanLimit is QueryAudit's store.AuditScanLimit (tests lower it).
	auditScanLimit int

	// mu is held shared by every method while it runs and exclusively by
	// Close, so Close waits for calls under way and later calls see closed.
	mu     sync.RWMutex
	closed bool

	// subs are the Changes channels and the listener that feeds them.
	subs subscribers
}

// Open connects to the database o.DSN names, checks its schema version
// (migrating an older one if o.Migrate) and returns the store. It reads
// every field of o. The error of a refused schema wraps ErrSchemaNewer or
// ErrSchemaOlder; no error contains the password.
func Open(ctx context.Context, o Options) (*Store, error) {
	sec := newRedactor(o.DSN, o.Password)
	if o.MaxConns < 0 {
		return nil, fmt.Errorf("open store: max conns %d is negative", o.MaxConns)
	}
	cfg, err := poolConfig(o.DSN, o.Password, sec)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	cfg.MaxConns = o.MaxConns
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Migrate {
		from, to, err := migrate(ctx, cfg.ConnConfig)
		if err != nil {
			return nil, sec.wrap("open store", err)
		}
		if from != to {
			log.Info("store schema migrated", "from", from, "to", to)
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, sec.wrap("open store", err)
	}
	s := &Store{pool: pool, cfg: cfg, log: log, secret: sec, auditScanLimit: store.AuditScanLimit}
	var v int
	err = pool.QueryRow(ctx, "SELECT version FROM schema_version").Scan(&v)
	if isUndefinedTable(err) {
		err, v = nil, 0
	}
	if err == nil {
		err = checkVersion(v)
	}
	if err != nil {
		pool.Close()
		return nil, sec.wrap("open store", err)
	}
	return s, nil
}

// poolConfig parses dsn into a pool configuration with password set (if
// not empty) and fleetca's application name. The error of a DSN that does
// not parse keeps only the text of pgx's, which masks the password (and
// sec masks it again), not the error itself, whose chain may hold the
// DSN as it was (a *url.Error).
func poolConfig(dsn, password string, sec redactor) (*pgxpool.Config, error) {
	if dsn == "" {
		return nil, errArg("the DSN is required")
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, errArg("the DSN does not parse: %s", sec.redact(err.Error()))
	}
	if password != "" {
		cfg.ConnConfig.Password = password
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = appName
	}
	return cfg, nil
}

// Close waits for the calls under way to finish, stops the revocation
// listeners and closes the pool. Later calls of any method, Close
// included, return store.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("close store: %w", store.ErrClosed)
	}
	s.closed = true
	s.closeSubs()
	s.pool.Close()
	return nil
}

// acquire marks a call under way, or returns store.ErrClosed, after
// checking ctx. The caller must call the returned release.
func (s *Store) acquire(ctx context.Context) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, store.ErrClosed
	}
	return s.mu.RUnlock, nil
}

// read runs fn on a pooled connection, outside a transaction (one
// statement is its own snapshot).
func (s *Store) read(ctx context.Context, fn func(q querier) error) error {
	release, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	return s.dbError(ctx, fn(s.pool))
}

// getRow reads the one row sql selects, decoded by scan, on the pool;
// store.ErrNotFound if there is none.
func getRow[T any](ctx context.Context, s *Store, scan func(pgx.Row) (T, error), sql string, args ...any) (T, error) {
	var v T
	err := s.read(ctx, func(q querier) error {
		var err error
		v, err = scan(q.QueryRow(ctx, sql, args...))
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		return err
	})
	return v, err
}

// querier is what a pool and a transaction share.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// inTx runs fn in a READ COMMITTED transaction of its own and commits it;
// an error from fn rolls it back and is returned. fn reports a refused
// condition by returning it (a store sentinel, wrapped), after which
// nothing it wrote survives.
//
// The statements fn queues with txn.last are sent with the COMMIT in
// one pipeline, one round trip; when fn appended to the logs
// (appendLogs), the logs' statement goes between them and the COMMIT
// (txn.queueLogs): the log_heads row lock it takes is held for the
// server's work on the rest of the pipeline and the commit's WAL flush,
// never for a client round trip.
//
// This is where serialization failures (40001) and deadlocks (40P01) are
// retried: PostgreSQL aborts one of the transactions, and the whole of fn
// runs again in a new one, up to maxAttempts runs with a short random
// pause between them. So fn may run several times: it must reset what it
// reports to its caller on each run, and do nothing but through tx.
func (s *Store) inTx(ctx context.Context, fn func(tx *txn) error) error {
	release, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	for attempt := 1; ; attempt++ {
		err := s.runTx(ctx, fn)
		if err == nil || !retryable(err) || attempt == maxAttempts {
			return s.dbError(ctx, err)
		}
		// Back off a little, more each time, so that the transactions
		// that collided do not collide again at once.
		pause := time.Duration(rand.Int64N(int64(attempt) * int64(time.Millisecond)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
	}
}

// runTx is one run of inTx's transaction, on a connection of the pool.
func (s *Store) runTx(ctx context.Context, fn func(tx *txn) error) (err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	tx := &txn{conn: conn}
	defer func() {
		if err != nil && tx.begun {
			// The pool destroys, rather than reuses, a connection left
			// in a transaction or closed.
			if _, rerr := conn.Exec(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
				_ = conn.Conn().Close(context.WithoutCancel(ctx))
			}
		}
		conn.Release()
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if tx.logs != nil {
		if err := tx.queueLogs(); err != nil {
			return err
		}
	}
	tx.final.Queue("COMMIT")
	if !tx.begun {
		// Nothing was sent yet: the BEGIN goes with the rest.
		tx.final.QueuedQueries = append([]*pgx.QueuedQuery{{SQL: "BEGIN"}}, tx.final.QueuedQueries...)
		tx.begun = true
	}
	return tx.sendFinal(ctx)
}

// sendFinal sends tx.final and reads every result, running the queued
// callbacks; it returns the first error: after an error the server
// skipped the rest (the COMMIT included, when it was queued), and
// runTx's deferred ROLLBACK ends the transaction.
func (tx *txn) sendFinal(ctx context.Context) error {
	err := tx.conn.SendBatch(ctx, &tx.final).Close()
	var pe *pgconn.PgError
	if tx.spends && errors.As(err, &pe) && pe.Code == "22012" { // division_by_zero
		return errTokenRaced
	}
	return err
}

// txn is a write transaction of inTx. Its BEGIN is not sent alone: it
// goes with the first statement (or batch) the transaction sends, in one
// round trip. Statements run at once, except those queued with last,
// which go with the COMMIT (and the logs' statement: appendLogs).
type txn struct {
	conn  *pgxpool.Conn
	begun bool // BEGIN was sent
	final pgx.Batch
	// spends is set when final spends a token (spendToken), the one
	// statement that divides by zero on purpose.
	spends bool
	// logs is what appendLogs appends when the transaction commits.
	logs *logAppend
}

// batch returns a new batch to send with send, which begins with the
// transaction's BEGIN if it was not sent yet.
func (tx *txn) batch() *pgx.Batch {
	b := &pgx.Batch{}
	if !tx.begun {
		b.Queue("BEGIN")
		tx.begun = true
	}
	return b
}

// send sends b (from batch) and reads every result, running the queued
// callbacks; it returns the first error (see pgx.BatchResults.Close).
func (tx *txn) send(ctx context.Context, b *pgx.Batch) error {
	return tx.conn.SendBatch(ctx, b).Close()
}

// QueryRow runs a statement that returns at most one row, with the BEGIN
// if it was not sent yet.
func (tx *txn) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if tx.begun {
		return tx.conn.QueryRow(ctx, sql, args...)
	}
	b := tx.batch()
	b.Queue(sql, args...)
	br := tx.conn.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil { // the BEGIN
		_ = br.Close()
		return errRow{err}
	}
	return batchRow{br}
}

// Exec runs a statement, with the BEGIN if it was not sent yet.
func (tx *txn) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if tx.begun {
		return tx.conn.Exec(ctx, sql, args...)
	}
	var tag pgconn.CommandTag
	b := tx.batch()
	b.Queue(sql, args...).Exec(func(ct pgconn.CommandTag) error {
		tag = ct
		return nil
	})
	return tag, tx.send(ctx, b)
}

// Query runs a statement that returns rows, after sending the BEGIN
// alone if it was not sent yet (the statements that read several rows
// come after others that sent it).
func (tx *txn) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := tx.begin(ctx); err != nil {
		return nil, err
	}
	return tx.conn.Query(ctx, sql, args...)
}

// CopyFrom copies rows into a table (pgx.Conn.CopyFrom) within the
// transaction.
func (tx *txn) CopyFrom(ctx context.Context, table pgx.Identifier, cols []string, src pgx.CopyFromSource) (int64, error) {
	if err := tx.begin(ctx); err != nil {
		return 0, err
	}
	return tx.conn.CopyFrom(ctx, table, cols, src)
}

// begin sends the BEGIN alone if it was not sent yet.
func (tx *txn) begin(ctx context.Context) error {
	if tx.begun {
		return nil
	}
	tx.begun = true
	_, err := tx.conn.Exec(ctx, "BEGIN")
	return err
}

// batchRow is the row of a batch's second statement (the first is the
// BEGIN); Scan reads it and closes the batch.
type batchRow struct{ br pgx.BatchResults }

func (r batchRow) Scan(dest ...any) error {
	err := r.br.QueryRow().Scan(dest...)
	if cerr := r.br.Close(); err == nil {
		err = cerr
	}
	return err
}

// errRow is a row whose statement failed.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// last queues a statement to be sent with the COMMIT (and, if the
// transaction appends to the logs, before the logs' statement), in the
// order queued; row, if not nil, reads its one row.
func (tx *txn) last(sql string, row func(pgx.Row) error, args ...any) {
	q := tx.final.Queue(sql, args...)
	if row != nil {
		q.QueryRow(row)
	}
}

// execFound runs a statement that changes the one row it names (an UPDATE
// or DELETE by key) and returns store.ErrNotFound if it changed none.
func (tx *txn) execFound(ctx context.Context, sql string, args ...any) error {
	tag, err := tx.Exec(ctx, sql, args...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// retryable reports whether err is a serialization failure, a deadlock,
// or errRaced.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01") || errors.Is(err, errRaced)
}

// isUndefinedTable reports whether err is PostgreSQL's 42P01.
func isUndefinedTable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42P01"
}

// dbError turns an error from pgx into one of the store's: ctx's error if
// ctx ended, store.ErrConflict for a unique violation (a duplicate that
// no condition caught first: a concurrent insert), and otherwise an error
// marked as PostgreSQL's with the password removed. Errors made here
// (sentinels, conditions) pass unchanged.
func (s *Store) dbError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		if pe.Code == "23505" {
			return fmt.Errorf("%s: %w", pe.ConstraintName, store.ErrConflict)
		}
		return s.secret.wrap("postgres", err)
	}
	if isOwn(err) {
		return err
	}
	return s.secret.wrap("postgres", err)
}

// isOwn reports whether err is one the store made: a sentinel, a ctx
// error, or an argument error (errArg).
func isOwn(err error) bool {
	var a argError
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) ||
		errors.Is(err, store.ErrClosed) || errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded) || errors.As(err, &a) ||
		errors.Is(err, ErrSchemaNewer) || errors.Is(err, ErrSchemaOlder) || errors.Is(err, errTokenRaced)
}

// argError is an error the store made about its own records or the
// caller's arguments, wrapping no sentinel.
type argError struct{ msg string }

func (e argError) Error() string { return e.msg }

// errArg returns an argError.
func errArg(format string, a ...any) error { return argError{fmt.Sprintf(format, a...)} }

// redactor removes the password (the DSN's and Options.Password) from
// error text: pgx's errors quote connection parameters, and a server
// may echo what it was sent.
type redactor struct{ secrets []string }

func newRedactor(dsn, password string) redactor {
	var r redactor
	if password != "" {
		r.secrets = append(r.secrets, password)
	}
	if cfg, err := pgconn.ParseConfig(dsn); err == nil && cfg.Password != "" {
		r.secrets = append(r.secrets, cfg.Password)
	}
	return r
}

// wrap returns err prefixed with op, its text with every secret replaced.
// The result keeps err in its chain (errors.Is works), but its text is
// the redacted one.
func (r redactor) wrap(op string, err error) error {
	if isOwn(err) {
		return fmt.Errorf("%s: %w", op, err)
	}
	return &redactedError{msg: op + ": " + r.redact(err.Error()), err: err}
}

func (r redactor) redact(s string) string {
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, "REDACTED")
	}
	return s
}

// redactedError is an error whose text had its secrets removed.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
