package pgstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fleetca/fleetca/internal/pgtest"
	"github.com/fleetca/fleetca/store"
)

// t0 is these tests' "now".
var t0 = time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)

// replicas opens n stores on one new database, as n fleetca replicas
// would.
func replicas(t *testing.T, n int) []*Store {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	out := make([]*Store, n)
	for i := range out {
		out[i] = open(t, dsn)
	}
	return out
}

// testCert is a certificate of device id with a key of its own.
func testCert(serial int64, id string) store.Certificate {
	return store.Certificate{
		Serial: big.NewInt(serial), DeviceID: id, KeyHash: sha256.Sum256([]byte("key of " + id)),
		NotBefore: t0.Add(-time.Minute), NotAfter: t0.Add(90 * 24 * time.Hour), IssuedAt: t0,
		DER: fmt.Appendf(nil, "fake DER %d", serial),
	}
}

func testToken(id string, uses int) store.Token {
	return store.Token{
		ID: id, Hash: sha256.Sum256([]byte("secret of " + id)), DevicePattern: "dev-*",
		Uses: uses, CreatedAt: t0.Add(-time.Hour), ExpiresAt: t0.Add(24 * time.Hour),
	}
}

func issuance(c store.Certificate, tok store.Token) store.Issuance {
	return store.Issuance{
		Certificate: c, Token: tok.Hash, Now: t0, RequireNewDevice: true, MaxActive: 2,
		Audit: store.AuditEvent{Time: t0, Action: "certificate.issue", Actor: "token:" + tok.ID, DeviceID: c.DeviceID},
	}
}

// raceReplicas calls fn perStore times on each store at once and returns
// the errors, by store then call.
func raceReplicas(stores []*Store, perStore int, fn func(s *Store, i int) error) []error {
	errs := make([]error, len(stores)*perStore)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for si, s := range stores {
		for j := range perStore {
			i := si*perStore + j
			wg.Go(func() {
				<-start
				errs[i] = fn(s, i)
			})
		}
	}
	close(start)
	wg.Wait()
	return errs
}

// TestReplicasSpendToken: a token raced from every replica at once gives
// exactly as many certificates as it has uses, and its Spent says so.
func TestReplicasSpendToken(t *testing.T) {
	const nStores, perStore = 3, 16
	for _, uses := range []int{1, 5} {
		t.Run(fmt.Sprintf("ok/uses-%d", uses), func(t *testing.T) {
			stores := replicas(t, nStores)
			ctx := t.Context()
			tok := testToken("tok-1", uses)
			if err := stores[0].CreateToken(ctx, tok, store.AuditEvent{Time: t0, Action: "token.create", Actor: "admin"}); err != nil {
				t.Fatal(err)
			}
			errs := raceReplicas(stores, perStore, func(s *Store, i int) error {
				return s.Issue(ctx, issuance(testCert(int64(100+i), fmt.Sprintf("dev-%d", i)), tok))
			})
			ok, usedUp := 0, 0
			for i, err := range errs {
				switch {
				case err == nil:
					ok++
				case errors.Is(err, store.ErrTokenUsedUp):
					usedUp++
				default:
					t.Errorf("Issue %d error = %v, want nil or ErrTokenUsedUp", i, err)
				}
			}
			if want := nStores*perStore - uses; ok != uses || usedUp != want {
				t.Errorf("%d Issue from %d replicas with a %d-use token: %d succeeded, %d ErrTokenUsedUp, want %d, %d",
					nStores*perStore, nStores, uses, ok, usedUp, uses, want)
			}
			got, err := stores[1].GetToken(ctx, tok.Hash)
			if err != nil || got.Spent != uses {
				t.Errorf("GetToken = spent %d, %v, want %d, nil", got.Spent, err, uses)
			}
			certs, err := stores[2].ListCertificates(ctx, "", store.Page{Limit: store.MaxPageLimit})
			if err != nil || len(certs) != uses {
				t.Errorf("ListCertificates = %d certificates, %v, want %d, nil", len(certs), err, uses)
			}
			audit, err := stores[0].ListAudit(ctx, 0, store.MaxPageLimit)
			if err != nil || len(audit) != 1+uses {
				t.Errorf("ListAudit = %d events, %v, want %d, nil", len(audit), err, 1+uses)
			}
		})
	}
}

// TestForUpdateDoubleSpend is why spending is INSERT ... ON CONFLICT DO
// NOTHING RETURNING (or a conditional UPDATE ... RETURNING), never a
// SELECT ... FOR UPDATE that checks a row is absent before an upsert, as
// step-ca's PostgreSQL backend does (nosql postgresql.go, CmpAndSwap).
//
// FOR UPDATE locks the rows it finds; a row that does not exist yet it
// cannot lock. Under READ COMMITTED two transactions both find no row
// for the token ID, both accept, and both upserts succeed: the second
// merely overwrites the first. With ON CONFLICT DO NOTHING RETURNING, the
// unique index lets one insert in, and the other (after waiting for the
// first to commit, if it is still open) gets no row back: one spend.
func TestForUpdateDoubleSpend(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.NewDatabase(t)
	conn := func() *pgx.Conn {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.WithoutCancel(ctx)) })
		return c
	}
	a, b := conn(), conn()
	if _, err := a.Exec(ctx, "CREATE TABLE used (jti text PRIMARY KEY, n integer NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	begin := func(c *pgx.Conn) pgx.Tx {
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tx.Rollback(context.WithoutCancel(ctx)) })
		return tx
	}

	t.Run("fail/select-for-update-then-upsert", func(t *testing.T) {
		// Each spender: accept if SELECT ... FOR UPDATE finds no row, then
		// upsert the row. The steps interleave as two replicas' can.
		txA, txB := begin(a), begin(b)
		accepts := 0
		found := func(tx pgx.Tx) bool {
			rows, err := tx.Query(ctx, "SELECT n FROM used WHERE jti = 'tok' FOR UPDATE")
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			return rows.Next()
		}
		upsert := func(tx pgx.Tx) {
			if _, err := tx.Exec(ctx, "INSERT INTO used VALUES ('tok', 1) ON CONFLICT (jti) DO UPDATE SET n = excluded.n"); err != nil {
				t.Fatal(err)
			}
		}
		if !found(txA) {
			accepts++
		}
		if !found(txB) { // A's lock covers no row: B is not stopped
			accepts++
		}
		upsert(txA)
		if err := txA.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		upsert(txB) // overwrites A's row: no error to stop B either
		if err := txB.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if accepts != 2 {
			t.Fatalf("SELECT FOR UPDATE then upsert: %d spenders accepted the token, the double spend this test shows is 2", accepts)
		}
	})

	t.Run("ok/insert-on-conflict-do-nothing", func(t *testing.T) {
		txA, txB := begin(a), begin(b)
		spend := func(tx pgx.Tx) bool {
			ok, err := returnsRow(ctx, tx, "INSERT INTO used VALUES ('tok-2', 1) ON CONFLICT DO NOTHING RETURNING true")
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		accepts := 0
		if spend(txA) {
			accepts++
		}
		if err := txA.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if spend(txB) {
			accepts++
		}
		if err := txB.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if accepts != 1 {
			t.Errorf("INSERT ... ON CONFLICT DO NOTHING RETURNING: %d spenders accepted the token, want 1", accepts)
		}
	})
}

// TestReplicasRevocationSeq: revokers on three replicas at once, while a
// reader on another pages the revocation log and the audit log by cursor
// as the proxies' feed does: the reader sees every Seq once, in order,
// with no gap, although the Seq values come from transactions committing
// in any order on different connections.
func TestReplicasRevocationSeq(t *testing.T) {
	const nStores, perStore, each = 3, 8, 8
	const total = nStores * perStore * each
	stores := replicas(t, nStores+1)
	writers, reader := stores[:nStores], stores[nStores]
	ctx := t.Context()
	for i := range total {
		is := issuance(testCert(int64(1+i), fmt.Sprintf("dev-%d", i)), store.Token{})
		if err := writers[0].Issue(ctx, is); err != nil {
			t.Fatal(err)
		}
	}

	// follow pages a log by cursor until it has seen want entries,
	// checking that each Seq is the last one plus one.
	follow := func(name string, want int, list func(after uint64) ([]uint64, error)) error {
		var last uint64
		seen := 0
		for seen < want {
			seqs, err := list(last)
			if err != nil {
				return err
			}
			for _, seq := range seqs {
				if seq != last+1 {
					return fmt.Errorf("%s: Seq %d after %d: a gap, or one seen twice", name, seq, last)
				}
				last = seq
				seen++
			}
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("%s: %d of %d entries seen: %w", name, seen, want, err)
			}
		}
		return nil
	}
	auditBefore := uint64(total) // the issuances'
	var readErrs [2]error
	var readers sync.WaitGroup
	readers.Go(func() {
		readErrs[0] = follow("revocations", total, func(after uint64) ([]uint64, error) {
			es, err := reader.ListRevocations(ctx, after, 7)
			seqs := make([]uint64, len(es))
			for i, e := range es {
				seqs[i] = e.Seq
			}
			return seqs, err
		})
	})
	readers.Go(func() {
		readErrs[1] = follow("audit", total, func(after uint64) ([]uint64, error) {
			es, err := reader.ListAudit(ctx, after+auditBefore, 7)
			seqs := make([]uint64, len(es))
			for i, e := range es {
				seqs[i] = e.Seq - auditBefore
			}
			return seqs, err
		})
	})

	errs := raceReplicas(writers, perStore, func(s *Store, i int) error {
		for k := range each {
			n := int64(1 + i*each + k)
			r := store.RevokeRequest{At: t0.Add(time.Hour), Reason: 1, Audit: store.AuditEvent{Time: t0, Action: "certificate.revoke", Actor: "admin"}}
			if n%2 == 0 {
				r.Serial = big.NewInt(n)
			} else {
				r.DeviceID = fmt.Sprintf("dev-%d", n-1)
			}
			if _, err := s.Revoke(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("revoker %d: %v", i, err)
		}
	}
	if t.Failed() {
		t.FailNow() // the readers would wait for ever
	}
	readers.Wait()
	for _, err := range readErrs {
		if err != nil {
			t.Error(err)
		}
	}
}

// TestChangesAfterListenerKilled: a replica's listener whose connection
// the server ended (pg_terminate_backend, as a failover or an idle
// timeout would) reconnects, signals that notifications may have been
// lost, and signals the revocations of other replicas again.
func TestChangesAfterListenerKilled(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	a, b := open(t, dsn), open(t, dsn)
	ctx := t.Context()
	listening := make(chan struct{}, 1)
	a.subs.onListen = func() { listening <- struct{}{} }
	ch := a.Changes(ctx)
	for i := range 4 {
		if err := b.Issue(ctx, issuance(testCert(int64(1+i), fmt.Sprintf("dev-%d", i)), store.Token{})); err != nil {
			t.Fatal(err)
		}
	}
	revoke := func(n int64) {
		t.Helper()
		if _, err := b.Revoke(ctx, store.RevokeRequest{Serial: big.NewInt(n), At: t0, Reason: 1}); err != nil {
			t.Fatal(err)
		}
	}
	wait := func(what string) {
		t.Helper()
		select {
		case _, ok := <-ch:
			if !ok {
				t.Fatalf("%s: the Changes channel closed", what)
			}
		case <-time.After(signalWait):
			t.Fatalf("%s: no signal in %v", what, signalWait)
		}
	}

	waitListening := func() {
		t.Helper()
		select {
		case <-listening:
		case <-time.After(signalWait):
			t.Fatalf("the listener did not listen in %v", signalWait)
		}
	}
	waitListening()
	revoke(1)
	wait("a revocation on another replica")

	for round := range 2 {
		if n := pgtest.Terminate(t, dsn, appNameListen); n != 1 {
			t.Fatalf("round %d: pg_terminate_backend ended %d listeners, want 1", round, n)
		}
		wait("the listener's connection lost") // the readers must poll
		waitListening()
		drain(ch)
		revoke(int64(2 + round))
		wait(fmt.Sprintf("round %d: a revocation after the listener reconnected", round))
	}
}

// signalWait bounds how long a test waits for a signal that must come: a
// hang guard, not a measure (a notification arrives in milliseconds).
const signalWait = 30 * time.Second

// drain empties ch of a pending value.
func drain(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

// TestReplicasCRLLease: three replicas each try, many times at once, to
// take the CRL lease and record the next CRL, as their CRL loops would
// when their clocks reach the same moment: at each moment one replica
// signs, and the numbers recorded strictly increase whoever recorded them.
func TestReplicasCRLLease(t *testing.T) {
	const nStores, rounds = 3, 20
	stores := replicas(t, nStores)
	ctx := t.Context()
	type put struct {
		round  int
		holder string
		number uint64
	}
	var mu sync.Mutex
	var puts []put
	for round := range rounds {
		// The lease of the round before has run out at now.
		now := t0.Add(time.Duration(round) * time.Minute)
		errs := raceReplicas(stores, 1, func(s *Store, i int) error {
			holder := fmt.Sprint("replica-", i)
			got, err := s.LeaseCRL(ctx, holder, now, now.Add(30*time.Second))
			if err != nil || !got {
				return err
			}
			var last uint64
			if c, err := s.LatestCRL(ctx, 0); err == nil {
				last = c.Number
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			c := store.CRL{Number: last + 1, ThisUpdate: now, NextUpdate: now.Add(time.Hour), DER: []byte("crl")}
			if err := s.PutCRL(ctx, holder, now, c); err != nil {
				return err
			}
			mu.Lock()
			puts = append(puts, put{round, holder, c.Number})
			mu.Unlock()
			// Another replica, not holding the lease, is refused.
			other := fmt.Sprint("replica-", (i+1)%nStores)
			c.Number++
			if err := s.PutCRL(ctx, other, now, c); !errors.Is(err, store.ErrLeaseLost) {
				return fmt.Errorf("PutCRL by %s without the lease error = %v, want ErrLeaseLost", other, err)
			}
			return nil
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d, replica %d: %v", round, i, err)
			}
		}
	}
	if len(puts) != rounds {
		t.Fatalf("%d CRLs recorded in %d rounds, want one a round: %v", len(puts), rounds, puts)
	}
	for i, p := range puts {
		if p.round != i || p.number != uint64(i+1) {
			t.Errorf("CRL %d recorded = %+v, want round %d, number %d", i, p, i, i+1)
		}
	}
	c, err := stores[2].LatestCRL(ctx, 0)
	if err != nil || c.Number != rounds {
		t.Errorf("LatestCRL = %d, %v, want %d, nil", c.Number, err, rounds)
	}
}

// TestSpendRacedAfterCheck: a replica's Issue that read the token with a
// use left, and then finds the last use spent by another transaction
// when its own spend runs (with its COMMIT), fails with ErrTokenUsedUp
// and writes nothing.
func TestSpendRacedAfterCheck(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := open(t, dsn)
	ctx := t.Context()
	tok := testToken("tok-1", 1)
	if err := s.CreateToken(ctx, tok, store.AuditEvent{Time: t0, Action: "token.create", Actor: "admin"}); err != nil {
		t.Fatal(err)
	}
	// Another replica's transaction spends the last use and holds the
	// row until we let it commit.
	other, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(context.WithoutCancel(ctx))
	otherTx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer otherTx.Rollback(context.WithoutCancel(ctx))
	if _, err := otherTx.Exec(ctx, "UPDATE tokens SET spent = uses WHERE hash = $1", tok.Hash[:]); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Issue(ctx, issuance(testCert(1, "dev-1"), tok)) }()
	// Wait until Issue is blocked on the token's row: it read the token
	// (a use left, as committed) and queued its spend.
	for {
		var waiting bool
		err := other.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = $1 AND wait_event_type = 'Lock')`, appName).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Issue returned %v before it waited for the token's row", err)
		default:
		}
	}
	if err := otherTx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, store.ErrTokenUsedUp) {
		t.Fatalf("Issue after the last use was spent under it error = %v, want ErrTokenUsedUp", err)
	}
	if _, err := s.GetDevice(ctx, "dev-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetDevice after the refused Issue error = %v, want ErrNotFound", err)
	}
}

// TestReplicasAdmins: replicas upgrading the old admin token at once (each
// creating the owner "admin" with the same hash) make one owner and one
// audit row; two owners disabling each other at once leave one of them.
func TestReplicasAdmins(t *testing.T) {
	const nStores, perStore = 3, 4
	stores := replicas(t, nStores)
	ctx := t.Context()
	owner := store.Admin{Name: "admin", Role: store.RoleOwner, TokenHash: sha256.Sum256([]byte("old admin token")), CreatedAt: t0}
	errs := raceReplicas(stores, perStore, func(s *Store, _ int) error {
		return s.CreateAdmin(ctx, owner, store.AuditEvent{Time: t0, Action: "admin.create", Actor: "admin:admin"})
	})
	created := 0
	for i, err := range errs {
		switch {
		case err == nil:
			created++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("CreateAdmin %d error = %v, want nil or ErrConflict", i, err)
		}
	}
	if created != 1 {
		t.Errorf("CreateAdmin of the same owner from %d replicas: %d succeeded, want 1", nStores*perStore, created)
	}
	second := store.Admin{Name: "second", Role: store.RoleOwner, TokenHash: sha256.Sum256([]byte("second")), CreatedAt: t0}
	if err := stores[0].CreateAdmin(ctx, second, store.AuditEvent{Time: t0, Action: "admin.create", Actor: "admin:admin"}); err != nil {
		t.Fatal(err)
	}
	errs = raceReplicas(stores[:2], 1, func(s *Store, i int) error {
		_, err := s.DisableAdmin(ctx, []string{"admin", "second"}[i], t0, store.AuditEvent{Time: t0, Action: "admin.disable", Actor: "admin:admin"})
		return err
	})
	disabled, last := 0, 0
	for i, err := range errs {
		switch {
		case err == nil:
			disabled++
		case errors.Is(err, store.ErrLastOwner):
			last++
		default:
			t.Errorf("DisableAdmin %d error = %v, want nil or ErrLastOwner", i, err)
		}
	}
	if disabled != 1 || last != 1 {
		t.Errorf("two owners disabling each other: %d disabled, %d ErrLastOwner, want 1, 1", disabled, last)
	}
	audit, err := stores[2].ListAudit(ctx, 0, store.MaxPageLimit)
	if err != nil || len(audit) != 3 {
		t.Errorf("ListAudit = %d events, %v, want 3, nil", len(audit), err)
	}
}
