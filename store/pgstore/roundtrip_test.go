package pgstore

import (
	"context"
	"log/slog"
	"math/big"
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
// audit log: the conditions (with the BEGIN), in one batch where their
// order allows, then the writes with the logs' statement (which takes
// the log_heads row lock, gives the Seq values and appends the audit rows
// with their hashes and roots) and the COMMIT, in one. AppendAudit has no
// conditions: one round trip in all. With the tree hashed in Go (issue
// 16) they were one more each, and Renew, Revoke and an Issue to an
// existing device one more again (3, 4, 6, 4 and 4 from create-token on).
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
		}, 1},
		{"create-token", func() error {
			return s.CreateToken(ctx, tok, store.AuditEvent{Time: t0, Action: "token.create"})
		}, 2},
		{"issue-new-device", func() error { return s.Issue(ctx, issuance(testCert(1, "dev-1"), tok)) }, 2},
		{"renew-superseding", func() error {
			_, err := s.Renew(ctx, store.Renewal{
				Parent: big.NewInt(1), Certificate: testCert(2, "dev-1"), Now: t0, MaxActive: 1,
				Audit: store.AuditEvent{Time: t0, Action: "certificate.renew", DeviceID: "dev-1"},
			})
			return err
		}, 3},
		{"revoke-serial", func() error {
			_, err := s.Revoke(ctx, store.RevokeRequest{Serial: big.NewInt(2), At: t0, Reason: 1,
				Audit: store.AuditEvent{Time: t0, Action: "certificate.revoke"}})
			return err
		}, 2},
		{"issue-existing-device", func() error {
			is := issuance(testCert(3, "dev-1"), tok)
			is.RequireNewDevice = false
			return s.Issue(ctx, is)
		}, 2},
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
