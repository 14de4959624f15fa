package pgstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/fleetca/fleetca/internal/pgtest"
	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/storetest"
)

// checkTree checks that s's audit log is one tree of wantSize rows:
// Seq 1..n, every row's Root the tree hash after it, AuditTree its size
// and root, and AuditHashes every stored hash, all as storetest
// recomputes them.
func checkTree(t *testing.T, s *Store, wantSize int) {
	t.Helper()
	if es := storetest.CheckAuditTree(t, s, "pgstore"); len(es) != wantSize {
		t.Fatalf("audit log has %d events, want %d", len(es), wantSize)
	}
}

// TestReplicasAuditTree: three replicas appending at once, by every kind
// of write (one event, several in one transaction, an issuance spending
// a shared token, a revocation with its log entry), leave one tree: Seq
// values without gaps, each row's root the tree's after it.
func TestReplicasAuditTree(t *testing.T) {
	stores := replicas(t, 3)
	ctx := t.Context()
	tok := testToken("tok-1", 1000)
	if err := stores[0].CreateToken(ctx, tok, store.AuditEvent{Time: t0, Action: "token.create", Actor: "admin"}); err != nil {
		t.Fatal(err)
	}
	const per = 12
	errs := raceReplicas(stores, per, func(s *Store, i int) error {
		id := "dev-" + strconv.Itoa(i)
		switch i % 4 {
		case 0:
			return s.AppendAudit(ctx, store.AuditEvent{Time: t0.Add(time.Duration(i) * time.Nanosecond), Action: "admin.login", Actor: id})
		case 1:
			ts := []store.Token{testToken("t"+id+"a", 1), testToken("t"+id+"b", 1)}
			as := []store.AuditEvent{{Time: t0, Action: "token.create", Detail: ts[0].ID}, {Time: t0, Action: "token.create", Detail: ts[1].ID}}
			return s.CreateTokens(ctx, ts, as)
		default:
			if err := s.Issue(ctx, issuance(testCert(int64(i+1), id), tok)); err != nil {
				return err
			}
			if i%4 == 3 {
				_, err := s.Revoke(ctx, store.RevokeRequest{Serial: testCert(int64(i+1), id).Serial, At: t0, Reason: 1,
					Audit: store.AuditEvent{Time: t0, Action: "certificate.revoke", DeviceID: id}})
				return err
			}
			return nil
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("call %d error = %v", i, err)
		}
	}
	n := len(errs)
	// 1 token; per 4 calls: 1 + 2 + 1 + 2 events.
	checkTree(t, stores[1], 1+n/4*6)
}

// TestAuditTreeUpgrade: a database at the schema before the tree, with
// audit rows, gets its tree on migrate (each row's root, the stored
// hashes), and appends continue it.
func TestAuditTreeUpgrade(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.NewEmptyDatabase(t)
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	const before = auditTreeVersion - 1 // the last version without the tree
	if _, err := schemaVersion(ctx, conn); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[:before] {
		if _, err := conn.Exec(ctx, m.sql); err != nil {
			t.Fatalf("migration %s: %v", m.name, err)
		}
	}
	const rows = 10050 // more than one chunk of buildAuditTree
	for _, st := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO audit (seq, time, action, actor, detail)
			SELECT i, $1::timestamptz + i * interval '1.000001 second', 'admin.login', 'admin:a', 'row ' || i
			FROM generate_series(1, $2::bigint) i`, []any{t0, rows}},
		{"UPDATE log_heads SET audit_seq = $1", []any{rows}},
		{"UPDATE schema_version SET version = $1", []any{before}},
	} {
		if _, err := conn.Exec(ctx, st.sql, st.args...); err != nil {
			t.Fatalf("%s: %v", st.sql, err)
		}
	}
	if _, err := Open(ctx, Options{DSN: dsn}); !errors.Is(err, ErrSchemaOlder) {
		t.Fatalf("Open of the old schema error = %v, want ErrSchemaOlder", err)
	}
	from, to, err := Migrate(ctx, dsn, "")
	if err != nil || from != before || to != SchemaVersion {
		t.Fatalf("Migrate = %d, %d, %v, want %d, %d, nil", from, to, err, before, SchemaVersion)
	}
	s := open(t, dsn)
	checkTree(t, s, rows)
	if err := s.AppendAudit(ctx, store.AuditEvent{Time: t0, Action: "admin.login", Actor: "admin:b"}); err != nil {
		t.Fatal(err)
	}
	checkTree(t, s, rows+1)
}

// TestAuditTreeUpgradeGap: a log with a gap cannot be a tree: the
// migration fails, naming it, and leaves the schema where it was.
func TestAuditTreeUpgradeGap(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.NewDatabase(t)
	// Back to the schema before the tree, with a log that has a gap.
	exec(t, dsn, `DROP TABLE audit_hashes, audit_checkpoints, audit_checkpoint_head;
		ALTER TABLE audit DROP COLUMN root; ALTER TABLE log_heads DROP COLUMN audit_edge;
		INSERT INTO audit (seq, time, action, actor) VALUES (1, now(), 'a', 'b'), (3, now(), 'a', 'b');
		UPDATE log_heads SET audit_seq = 3`)
	exec(t, dsn, "UPDATE schema_version SET version = $1", auditTreeVersion-1)
	_, to, err := Migrate(ctx, dsn, "")
	if err == nil || to != auditTreeVersion-1 || !strings.Contains(err.Error(), "audit event 3 where 2 belongs") {
		t.Fatalf("Migrate of a log with a gap = to %d, %v, want to %d and an error naming event 3", to, err, auditTreeVersion-1)
	}
}

// TestReplicasPutCheckpoint: replicas racing to store checkpoints leave
// them in size order: of those racing with one size, one succeeds and
// the others get ErrStaleCheckpoint; a later size always goes in.
func TestReplicasPutCheckpoint(t *testing.T) {
	stores := replicas(t, 3)
	ctx := t.Context()
	for i := range 20 {
		if err := stores[0].AppendAudit(ctx, store.AuditEvent{Time: t0, Action: "a", Detail: strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	cp := func(size int64) store.Checkpoint {
		return store.Checkpoint{Size: size, Root: tlog.Hash{byte(size)}, Time: t0, Note: fmt.Appendf(nil, "note %d\n", size)}
	}
	for _, size := range []int64{5, 6, 20} {
		errs := raceReplicas(stores, 2, func(s *Store, _ int) error { return s.PutCheckpoint(ctx, cp(size)) })
		ok := 0
		for i, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, store.ErrStaleCheckpoint):
				t.Errorf("PutCheckpoint(%d) call %d error = %v, want nil or ErrStaleCheckpoint", size, i, err)
			}
		}
		if ok != 1 {
			t.Errorf("PutCheckpoint(%d) from %d calls at once: %d succeeded, want 1", size, len(errs), ok)
		}
	}
	// Different sizes at once: whatever order they commit in, the stored
	// sizes increase and the last is the largest that went in.
	errs := raceReplicas(stores, 3, func(s *Store, i int) error { return s.PutCheckpoint(ctx, cp(int64(10+i))) })
	for i, err := range errs {
		if err != nil && !errors.Is(err, store.ErrStaleCheckpoint) {
			t.Errorf("PutCheckpoint(%d) error = %v, want nil or ErrStaleCheckpoint", 10+i, err)
		}
	}
	got, err := stores[2].ListCheckpoints(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Size <= got[i-1].Size {
			t.Errorf("ListCheckpoints sizes %d then %d, want increasing", got[i-1].Size, got[i].Size)
		}
	}
	if len(got) == 0 || got[len(got)-1].Size != 20 {
		t.Fatalf("ListCheckpoints = %d checkpoints, want the last of size 20", len(got))
	}
	if diff := cmp.Diff(cp(20), got[len(got)-1]); diff != "" {
		t.Errorf("checkpoint of size 20 (-want +got):\n%s", diff)
	}
	if err := stores[0].PutCheckpoint(ctx, cp(21)); err == nil || errors.Is(err, store.ErrStaleCheckpoint) {
		t.Errorf("PutCheckpoint past the tree error = %v, want a non-stale error", err)
	}
	latest, err := stores[1].LatestCheckpoint(ctx)
	if err != nil || latest.Size != 20 {
		t.Errorf("LatestCheckpoint = size %d, %v, want 20, nil", latest.Size, err)
	}
}

// TestAppendLogsHashes: the server's hashing (fleetca_append_logs) gives
// every row's root and every stored hash that tlog gives, for appends of
// one event and of several in a transaction, crossing subtree sizes, and
// for leaves whose JSON escapes (quotes, HTML characters, control
// characters, non-ASCII text) and times that are not UTC or have
// nanoseconds; each row reads back as its leaf has it.
func TestAppendLogsHashes(t *testing.T) {
	ctx := t.Context()
	s := open(t, pgtest.NewDatabase(t))
	paris := time.FixedZone("CET", 3600)
	details := []string{"", `"quoted" \ back`, "<a href='x'>&amp;</a>", "tab\tnl\n bell\x07 del\x7f", "é 中文 🙂", "\u2028\u2029"}
	var want []store.AuditEvent
	sizes := []int{1, 3, 2, 5, 1, 8, 13, 1, 1, 4, 16, 1, 2, 31, 7}
	for b, n := range sizes {
		events := make([]store.AuditEvent, n)
		for i := range events {
			k := len(want) + i
			at := t0.Add(time.Duration(k)*time.Second + time.Duration(k)*1234*time.Nanosecond).In(paris)
			if k%11 == 5 {
				at = time.Time{}
			}
			events[i] = store.AuditEvent{
				Time: at, Action: "test.append", Actor: fmt.Sprintf("batch:%d", b),
				DeviceID: "dev-" + strconv.Itoa(k), Serial: strconv.FormatInt(int64(k), 16),
				TokenID: strings.Repeat("t", k%3), Detail: details[k%len(details)],
			}
		}
		if err := s.inTx(ctx, func(tx *txn) error {
			appendLogs(tx, events, nil, nil)
			return nil
		}); err != nil {
			t.Fatalf("append of batch %d (%d events) error = %v, want nil", b, n, err)
		}
		want = append(want, events...)
	}
	n := int64(len(want))
	got := storetest.CheckAuditTree(t, s, "pgstore", [2]int64{0, n}, [2]int64{n / 2, n}, [2]int64{n - 1, n}, [2]int64{5, 8}, [2]int64{33, 64})
	for i := range want {
		w := want[i]
		w.Seq = uint64(i + 1)
		if !w.Time.IsZero() {
			w.Time = w.Time.UTC().Truncate(store.AuditTimePrecision)
		}
		if !bytes.Equal(got[i].LeafData(), w.LeafData()) {
			t.Errorf("audit event %d leaf = %s, want %s", i+1, got[i].LeafData(), w.LeafData())
		}
	}
}
