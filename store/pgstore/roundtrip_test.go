package pgstore

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fleetca/fleetca/internal/pgtest"
	"github.com/fleetca/fleetca/store"
)

// tripCounter is a pgx tracer that counts round trips: each statement
// sent alone and each batch (a pipeline, answered at once) is one.
type tripCounter struct{ n atomic.Int64 }

func (c *tripCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *tripCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *tripCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *tripCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (c *tripCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// TestRoundTrips pins the round trips of the writes that append to the
// audit log: the conditions (with the BEGIN), then the writes with the
// log_heads UPDATE that gives the Seq and the tree's right edge, then
// the audit rows, their hashes and roots with the COMMIT (AppendAudit has
// no conditions).
func TestRoundTrips(t *testing.T) {
	ctx := t.Context()
	cfg, err := poolConfig(pgtest.NewDatabase(t), "", redactor{})
	if err != nil {
		t.Fatal(err)
	}
	var trips tripCounter
	cfg.ConnConfig.Tracer = &trips
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &Store{pool: pool, cfg: cfg, log: slog.New(slog.DiscardHandler)}
	t.Cleanup(func() { s.Close() })
	tok := testToken("tok-1", 10)
	for _, tc := range []struct {
		name string
		fn   func() error
		want int64
	}{
		{"append-audit", func() error {
			return s.AppendAudit(ctx, store.AuditEvent{Time: t0, Action: "admin.login"})
		}, 2},
		{"create-token", func() error {
			return s.CreateToken(ctx, tok, store.AuditEvent{Time: t0, Action: "token.create"})
		}, 3},
		{"issue-new-device", func() error { return s.Issue(ctx, issuance(testCert(1, "dev-1"), tok)) }, 3},
	} {
		before := trips.n.Load()
		if err := tc.fn(); err != nil {
			t.Fatalf("%s error = %v", tc.name, err)
		}
		if got := trips.n.Load() - before; got != tc.want {
			t.Errorf("%s: %d round trips, want %d", tc.name, got, tc.want)
		}
	}
}
