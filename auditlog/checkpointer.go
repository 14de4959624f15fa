package auditlog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// DefaultCheckpointEvery is Config.CheckpointEvery's default.
const DefaultCheckpointEvery = time.Minute

// Allowed range of Config.CheckpointEvery (zero means the default).
const (
	minCheckpointEvery = time.Second
	maxCheckpointEvery = 24 * time.Hour
)

// Config is the audit section of fleetca.yaml.
type Config struct {
	// CheckpointEvery is how often, at most, serve signs a checkpoint of
	// the audit log when it grew, a Go duration. Default 1m; range 1s to
	// 24h. serve also signs at start-up and at graceful shutdown.
	CheckpointEvery time.Duration `yaml:"checkpoint_every,omitempty"`
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	c.CheckpointEvery = cmp.Or(c.CheckpointEvery, DefaultCheckpointEvery)
	return c
}

// Validate returns a fault.Malformed naming a key out of range; it never
// changes c.
func (c Config) Validate() error {
	if c.CheckpointEvery != 0 && (c.CheckpointEvery < minCheckpointEvery || c.CheckpointEvery > maxCheckpointEvery) {
		return fault.WithKey(fault.New(fault.Malformed, fmt.Sprintf("audit.checkpoint_every %s is out of range", c.CheckpointEvery),
			"use a duration from 1s to 24h, or leave it unset for 1m"), "audit.checkpoint_every")
	}
	return nil
}

// CheckpointStore is the part of the store the Checkpointer uses.
type CheckpointStore interface {
	AuditTree(ctx context.Context) (size int64, root tlog.Hash, err error)
	PutCheckpoint(ctx context.Context, c store.Checkpoint) error
	LatestCheckpoint(ctx context.Context) (store.Checkpoint, error)
}

// Deps are the Checkpointer's collaborators. Store and Signer are
// required.
type Deps struct {
	Store CheckpointStore
	// Signer is the audit key (ca.AuditKey).
	Signer note.Signer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
}

// Checkpointer signs checkpoints of the audit tree.
type Checkpointer struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	now  func() time.Time
}

// NewCheckpointer returns a Checkpointer; cfg must be valid.
func NewCheckpointer(cfg Config, deps Deps) (*Checkpointer, error) {
	if deps.Store == nil || deps.Signer == nil {
		return nil, errors.New("auditlog.NewCheckpointer: Store and Signer are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Checkpointer{cfg: cfg.WithDefaults(), deps: deps, log: deps.Logger, now: deps.Now}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// Sign signs and stores a checkpoint of the tree if it grew past the
// latest checkpoint, and reports whether it stored one. Another replica
// storing one first (store.ErrStaleCheckpoint) is not an error.
func (c *Checkpointer) Sign(ctx context.Context) (bool, error) {
	size, root, err := c.deps.Store.AuditTree(ctx)
	if err != nil {
		return false, fmt.Errorf("read audit tree: %w", err)
	}
	latest, err := c.deps.Store.LatestCheckpoint(ctx)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return false, fmt.Errorf("read latest checkpoint: %w", err)
	}
	if size == 0 || size <= latest.Size {
		return false, nil
	}
	cp, err := SignCheckpoint(c.deps.Signer, size, root, c.now())
	if err != nil {
		return false, err
	}
	switch err := c.deps.Store.PutCheckpoint(ctx, cp); {
	case errors.Is(err, store.ErrStaleCheckpoint):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("store checkpoint of size %d: %w", size, err)
	}
	c.log.InfoContext(ctx, "signed audit checkpoint", "size", size, "root", root.String())
	return true, nil
}

// Run signs a checkpoint now and then every Config.CheckpointEvery while
// the tree grows, until ctx ends; it returns nil then. A failed signing
// is logged at Warn and retried at the next tick. It does not sign at the
// end: the caller calls Sign once the requests under way have drained.
func (c *Checkpointer) Run(ctx context.Context) error {
	c.signLogged(ctx)
	t := time.NewTicker(c.cfg.CheckpointEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			c.signLogged(ctx)
		}
	}
}

func (c *Checkpointer) signLogged(ctx context.Context) {
	if _, err := c.Sign(ctx); err != nil && ctx.Err() == nil {
		c.log.WarnContext(ctx, "audit checkpoint not signed", "err", err)
	}
}
