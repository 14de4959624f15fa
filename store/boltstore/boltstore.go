package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/fleetca/fleetca/store"
)

var _ store.Store = (*Store)(nil)

// ErrLocked is returned by Open when another process (or another Store in
// this one) holds the database file's lock for longer than Options.Timeout.
var ErrLocked = errors.New("database file is locked by another process")

// ErrNotDatabase is returned by Open when the file is not a bbolt
// database (its header is not bbolt's, or of another version, or fails its
// checksum): a file of something else, given by mistake.
var ErrNotDatabase = errors.New("file is not a bbolt database")

// Defaults for the zero values of Options.
//
// DefaultMaxBatchDelay is well under bbolt's own 10ms: it is paid only by a
// write that finds no commit under way (groupCommit), and 2ms still
// gathers a closed-loop burst into one commit.
const (
	DefaultTimeout       = time.Second
	DefaultMaxBatchDelay = 2 * time.Millisecond
	DefaultMaxBatchSize  = 1000
)

// Options tunes Open. The zero value is what production uses.
type Options struct {
	// Timeout is how long Open waits for the exclusive lock on the file
	// before it fails with ErrLocked. Zero means DefaultTimeout (1s);
	// negative is refused.
	Timeout time.Duration
	// NoSync skips fsync on commit, so an acknowledged write can be lost,
	// and the file corrupted, by a crash. For tests and benchmarks only;
	// the default (false) syncs every commit.
	NoSync bool
	// MaxBatchDelay is how long a batched write (Issue, Revoke, Renew,
	// AppendAudit) that finds no commit under way waits for others to
	// share its commit and fsync; writes that arrive while a commit is
	// under way share the next one, which starts as soon as it ends. Zero
	// means DefaultMaxBatchDelay (2ms); negative is refused.
	MaxBatchDelay time.Duration
	// MaxBatchSize is the most writes one batched commit holds. Zero means
	// DefaultMaxBatchSize (1000); negative is refused.
	MaxBatchSize int
	// NoAuditTree, for benchmarks only, drops the audit tree: audit rows
	// are appended without their stored hashes and with a zero Root, as
	// before the tree existed, so that make bench can set the rate with
	// the tree beside the rate without it. The file then fails fleetca
	// audit verify; opening it again without NoAuditTree rebuilds the
	// tree.
	NoAuditTree bool
}

// withDefaults returns a copy of o with zero values replaced by defaults.
func (o Options) withDefaults() Options {
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxBatchDelay == 0 {
		o.MaxBatchDelay = DefaultMaxBatchDelay
	}
	if o.MaxBatchSize == 0 {
		o.MaxBatchSize = DefaultMaxBatchSize
	}
	return o
}

// validate checks o; it never changes it.
func (o Options) validate() error {
	switch {
	case o.Timeout < 0:
		return fmt.Errorf("timeout %v is negative", o.Timeout)
	case o.MaxBatchDelay < 0:
		return fmt.Errorf("max batch delay %v is negative", o.MaxBatchDelay)
	case o.MaxBatchSize < 0:
		return fmt.Errorf("max batch size %d is negative", o.MaxBatchSize)
	}
	return nil
}

// Store is the bbolt implementation of store.Store. It is safe for
// concurrent use; see the package documentation for its layout.
type Store struct {
	db *bbolt.DB
	// group commits the batched writes (batch).
	group *groupCommit
	// auditScanLimit is QueryAudit's store.AuditScanLimit (tests lower it).
	auditScanLimit int

	// mu is held shared by every method while it runs and exclusively by
	// Close, so Close waits for calls under way (batched ones included)
	// and later calls see closed.
	mu     sync.RWMutex
	closed bool

	// subMu guards the Changes subscribers.
	subMu      sync.Mutex
	subs       map[chan struct{}]struct{}
	subsClosed bool
}

// Open opens (creating it if missing, mode 0600) the bbolt file at path and
// creates the buckets it lacks. It waits up to opts.Timeout for the file
// lock and then fails with an error wrapping ErrLocked; a file that is not
// a bbolt database fails with an error wrapping ErrNotDatabase. The parent
// directory must exist.
func Open(path string, opts Options) (*Store, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	opts = opts.withDefaults()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout: opts.Timeout,
		NoSync:  opts.NoSync,
		// The freelist is rebuilt by scanning on open instead of being
		// written at every commit: one page less per commit.
		NoFreelistSync: true,
		FreelistType:   bbolt.FreelistMapType,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %q: %w (waited %v; is another fleetca using this data directory?)", path, ErrLocked, opts.Timeout)
	}
	if err != nil && (errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrVersionMismatch) ||
		errors.Is(err, berrors.ErrChecksum) || !hasMagic(path)) {
		return nil, fmt.Errorf("open store %q: %w (%w)", path, ErrNotDatabase, dbError(err))
	}
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", path, dbError(err))
	}
	db.MaxBatchDelay = opts.MaxBatchDelay
	db.MaxBatchSize = opts.MaxBatchSize
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range append(allBuckets[:len(allBuckets):len(allBuckets)], derivedBuckets...) {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		if err := upgradeLayout(tx); err != nil {
			return err
		}
		if opts.NoAuditTree {
			return tx.DeleteBucket(bucketAuditHashes)
		}
		return upgradeTree(tx)
	})
	if err != nil {
		_ = db.Close() // the Update error says more than this one could
		return nil, fmt.Errorf("open store %q: %w", path, dbError(err))
	}
	return &Store{db: db, group: &groupCommit{db: db, max: opts.MaxBatchSize, delay: opts.MaxBatchDelay}, auditScanLimit: store.AuditScanLimit}, nil
}

// boltMagic is the number at the start of a bbolt file's meta pages.
const boltMagic = 0xED0CDAED

// hasMagic reports whether the file at path starts with a bbolt meta page:
// a 16-byte page header, then the magic number in native byte order. bbolt
// itself refuses a file shorter than two pages with an error of no kind
// before it reads the magic.
func hasMagic(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return true // not a question of format: let bbolt's error stand
	}
	defer f.Close()
	var b [20]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return false
	}
	return binary.NativeEndian.Uint32(b[16:]) == boltMagic
}

// Close waits for the calls under way to finish and closes the file. Later
// calls of any method, Close included, return store.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("close store: %w", store.ErrClosed)
	}
	s.closed = true
	s.closeSubs()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", dbError(err))
	}
	return nil
}

// Check verifies the integrity of the file's pages and free list with
// bbolt's tx.Check, in a read transaction. It returns nil when the file is
// sound, and otherwise every problem found, joined. Tests run it before
// they close a store.
func (s *Store) Check(ctx context.Context) error {
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		var errs []error
		// Drain the channel: the checker goroutine uses tx until it closes it.
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return fmt.Errorf("check store: %w", err)
	}
	return nil
}

// acquire marks a call under way, or returns store.ErrClosed. The caller
// must call the returned release.
func (s *Store) acquire() (release func(), err error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, store.ErrClosed
	}
	return s.mu.RUnlock, nil
}

// view runs fn in a read transaction, after checking ctx.
func (s *Store) view(ctx context.Context, fn func(*bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	release, err := s.acquire()
	if err != nil {
		return err
	}
	defer release()
	return dbError(s.db.View(fn))
}

// update runs fn in a write transaction of its own, after checking ctx;
// an error from fn rolls it back.
func (s *Store) update(ctx context.Context, fn func(*bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	release, err := s.acquire()
	if err != nil {
		return err
	}
	defer release()
	return dbError(s.db.Update(func(tx *bbolt.Tx) error {
		// The write lock may have taken a while.
		if err := ctx.Err(); err != nil {
			return err
		}
		return fn(tx)
	}))
}

// batch runs fn in a write transaction that it may share with other
// batched calls (one commit, one fsync for all of them).
//
// fn returns two errors. cond is a refusal (a condition that failed, or
// ctx ended): fn must have written nothing, and batch returns cond once
// the commit is done. err is an internal failure: it rolls back the whole
// shared transaction, so groupCommit re-runs the other calls, and this one alone.
// Hence fn may run several times and must be idempotent: everything it
// does to the outside world must happen only through tx.
func (s *Store) batch(ctx context.Context, fn func(*bbolt.Tx) (cond, err error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	release, err := s.acquire()
	if err != nil {
		return err
	}
	defer release()
	var cond error
	err = s.group.do(func(tx *bbolt.Tx) error {
		cond = nil // a re-run starts afresh
		if err := ctx.Err(); err != nil {
			cond = err
			return nil
		}
		var err error
		cond, err = fn(tx)
		if err != nil {
			cond = nil
			return err
		}
		return nil
	})
	if err != nil {
		return dbError(err)
	}
	return cond
}

// dbError maps the bbolt errors that mean the database is closed to
// store.ErrClosed and marks the others as errors of the database, so that
// no bare bbolt error leaves the package. Errors made here (sentinels,
// ctx errors) pass unchanged.
func dbError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, berrors.ErrDatabaseNotOpen), errors.Is(err, berrors.ErrTxClosed):
		return store.ErrClosed
	case isBoltError(err):
		return fmt.Errorf("bbolt: %w", err)
	}
	return err
}

// isBoltError reports whether err is one of bbolt's own errors.
func isBoltError(err error) bool {
	for _, b := range []error{
		berrors.ErrInvalid, berrors.ErrInvalidMapping, berrors.ErrVersionMismatch,
		berrors.ErrChecksum, berrors.ErrTimeout, berrors.ErrTxNotWritable,
		berrors.ErrDatabaseReadOnly, berrors.ErrFreePagesNotLoaded,
		berrors.ErrBucketNotFound, berrors.ErrBucketExists, berrors.ErrBucketNameRequired,
		berrors.ErrKeyRequired, berrors.ErrKeyTooLarge, berrors.ErrValueTooLarge,
		berrors.ErrMaxSizeReached, berrors.ErrIncompatibleValue,
	} {
		if errors.Is(err, b) {
			return true
		}
	}
	return false
}
