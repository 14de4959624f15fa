package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/fleetca/fleetca/store"
)

// MemTree is an audit tree's stored hashes, in memory: a test's own
// computation, from the events' LeafData alone, of what a store keeps.
type MemTree []tlog.Hash

// ReadHashes implements tlog.HashReader.
func (m MemTree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(m)) {
			return nil, fmt.Errorf("stored hash %d of %d", x, len(m))
		}
		out[i] = m[x]
	}
	return out, nil
}

// TreeOf returns the stored hashes of the tree whose leaves are the
// events' LeafData in order, and the tree hash after each event: what a
// store's AuditHashes and each row's Root must be.
func TreeOf(es []store.AuditEvent) (MemTree, []tlog.Hash, error) {
	var m MemTree
	roots := make([]tlog.Hash, len(es))
	for i, e := range es {
		hs, err := tlog.StoredHashes(int64(i), e.LeafData(), m)
		if err != nil {
			return nil, nil, err
		}
		m = append(m, hs...)
		if roots[i], err = tlog.TreeHash(int64(i+1), m); err != nil {
			return nil, nil, err
		}
	}
	return m, roots, nil
}

// rooted returns a copy of es, a whole audit log from Seq 1, with each
// event's Root set to the tree hash after it.
func rooted(es []store.AuditEvent) []store.AuditEvent {
	_, roots, err := TreeOf(es)
	if err != nil {
		panic(err) // an in-memory tree reads only what it wrote
	}
	out := make([]store.AuditEvent, len(es))
	for i, e := range es {
		e.Root = roots[i]
		out[i] = e
	}
	return out
}

// storeHashes is a tlog.HashReader over s's AuditHashes.
func storeHashes(ctx context.Context, s store.Store) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		return s.AuditHashes(ctx, indexes)
	})
}

// setupAuditHistory writes every kind of write that appends audit rows:
// setupCopy's (issue with a token and with a manufacturer certificate,
// renew, revoke by device, token create/revoke, admin create/disable,
// manufacturer create, renew-now, AppendAudit), then a CreateTokens batch,
// a revoke by serial, a device reset, an admin rotation and a
// manufacturer deletion.
func setupAuditHistory(f fixture) {
	f.t.Helper()
	setupCopy(f)
	ts := []store.Token{newToken("tok-b1", 1), newToken("tok-b2", 1)}
	if err := f.s.CreateTokens(f.ctx, ts, []store.AuditEvent{event("token.create", "tok-b1"), event("token.create", "tok-b2")}); err != nil {
		f.t.Fatal(err)
	}
	f.revoke(revokeSerial(serial(300), renewAt, 1, false))
	f.resetDevice("dev-t", renewAt.Add(time.Hour))
	if _, err := f.s.RotateAdmin(f.ctx, "admin", adminHash("rotated"), renewAt, event("admin.rotate", "admin")); err != nil {
		f.t.Fatal(err)
	}
	if err := f.s.DeleteManufacturer(f.ctx, "acme", event("manufacturer.delete", "acme")); err != nil {
		f.t.Fatal(err)
	}
}

// checkTree is CheckAuditTree of the fixture's store.
func (f fixture) checkTree(what string, pairs ...[2]int64) []store.AuditEvent {
	f.t.Helper()
	return CheckAuditTree(f.t, f.s, what, pairs...)
}

// CheckAuditTree checks that s's audit log is one Merkle tree of its
// rows: Seq 1..n, each Root the tree hash recomputed from the rows'
// LeafData, AuditTree (n, root of n), every stored hash, nothing past
// them, and inclusion and consistency proofs built from AuditHashes for
// the given (leaf or older size, size) pairs (0 < pair[1] <= n). Its
// messages begin with what. It returns the rows.
func CheckAuditTree(t *testing.T, s store.Store, what string, pairs ...[2]int64) []store.AuditEvent {
	t.Helper()
	ctx := t.Context()
	var es []store.AuditEvent
	for {
		page, err := s.ListAudit(ctx, uint64(len(es)), store.MaxPageLimit)
		if err != nil {
			t.Fatalf("%s: ListAudit error = %v, want nil", what, err)
		}
		if len(page) == 0 {
			break
		}
		es = append(es, page...)
	}
	n := int64(len(es))
	for i, e := range es {
		if e.Seq != uint64(i+1) {
			t.Fatalf("%s: audit event %d has Seq %d, want %d", what, i, e.Seq, i+1)
		}
	}
	mem, roots, err := TreeOf(es)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range es {
		if e.Root != roots[i] {
			t.Errorf("%s: audit event %d Root = %v, want %v (the tree hash of its rows)", what, e.Seq, e.Root, roots[i])
		}
	}
	wantRoot, _ := tlog.TreeHash(0, mem)
	if n > 0 {
		wantRoot = roots[n-1]
	}
	if size, root, err := s.AuditTree(ctx); size != n || root != wantRoot || err != nil {
		t.Errorf("%s: AuditTree = %d, %v, %v, want %d, %v, nil", what, size, root, err, n, wantRoot)
	}
	all := make([]int64, len(mem))
	for i := range all {
		all[i] = int64(i)
	}
	got, err := s.AuditHashes(ctx, all)
	if err != nil {
		t.Fatalf("%s: AuditHashes(0..%d) error = %v, want nil", what, len(mem)-1, err)
	}
	for i := range mem {
		if got[i] != mem[i] {
			t.Errorf("%s: AuditHashes stored hash %d = %v, want %v", what, i, got[i], mem[i])
		}
	}
	past := tlog.StoredHashCount(n)
	for _, idx := range [][]int64{{past}, {0, past}, {past + 1000}, {-1}} {
		_, err := s.AuditHashes(ctx, idx)
		checkErr(t, fmt.Sprintf("%s: AuditHashes(%v) of a tree of %d", what, idx, n), err, store.ErrNotFound)
	}
	r := storeHashes(ctx, s)
	for _, p := range pairs {
		i, size := p[0], p[1]
		rp, err := tlog.ProveRecord(size, i, r)
		if err != nil {
			t.Errorf("%s: ProveRecord(%d, %d) error = %v, want nil", what, size, i, err)
		} else if err := tlog.CheckRecord(rp, size, roots[size-1], i, tlog.RecordHash(es[i].LeafData())); err != nil {
			t.Errorf("%s: CheckRecord(%d in %d) error = %v, want nil", what, i, size, err)
		}
		if i == 0 {
			continue // no tree of size 0 to prove consistent
		}
		tp, err := tlog.ProveTree(size, i, r)
		if err != nil {
			t.Errorf("%s: ProveTree(%d, %d) error = %v, want nil", what, size, i, err)
		} else if err := tlog.CheckTree(tp, size, roots[size-1], i, roots[i-1]); err != nil {
			t.Errorf("%s: CheckTree(%d in %d) error = %v, want nil", what, i, size, err)
		}
	}
	return es
}

// proofPairs returns (leaf, size) pairs for a tree of n leaves: edges,
// powers of two and odd sizes.
func proofPairs(n int64) [][2]int64 {
	var ps [][2]int64
	for _, p := range [][2]int64{{0, 1}, {0, n}, {n - 1, n}, {1, 2}, {2, 3}, {3, 4}, {4, 7}, {5, 8}, {7, 13}, {n / 2, n}, {1, n}, {n - 2, n - 1}} {
		if 0 <= p[0] && p[0] < p[1] && p[1] <= n {
			ps = append(ps, p)
		}
	}
	return ps
}

// newCheckpoint returns a checkpoint of size n with a fake note (the store
// checks neither signature nor root).
func newCheckpoint(n int64, root tlog.Hash) store.Checkpoint {
	return store.Checkpoint{
		Size: n,
		Root: root,
		Time: T0.Add(time.Duration(n) * time.Minute),
		Note: fmt.Appendf(nil, "example.org/fleetca-audit\n%d\n%s\n\n— example.org/fleetca-audit fakesig\n", n, root),
	}
}

func testAuditTree(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("ok/empty", func(t *testing.T) {
		f := newFixture(t, newStore)
		f.checkTree("an empty store")
		_, err := f.s.LatestCheckpoint(f.ctx)
		checkErr(t, "LatestCheckpoint of an empty store", err, store.ErrNotFound)
		if cs, err := f.s.ListCheckpoints(f.ctx, 0, 0); len(cs) != 0 || err != nil {
			t.Errorf("ListCheckpoints of an empty store = %v, %v, want none, nil", cs, err)
		}
	})

	t.Run("ok/every-write", func(t *testing.T) {
		f := newFixture(t, newStore)
		setupAuditHistory(f)
		es := f.checkTree("after every kind of write", proofPairs(int64(len(f.audit())))...)
		actions := map[string]bool{}
		for _, e := range es {
			actions[e.Action] = true
		}
		for _, a := range []string{"certificate.issue", "certificate.renew", "token.create", "token.revoke", "admin.disable",
			"admin.rotate", "manufacturer.add", "manufacturer.delete", "device.reset", "admin.auth_failed"} {
			if !actions[a] {
				t.Errorf("the history has no %q event: the suite does not check its write path", a)
			}
		}
	})

	t.Run("ok/proofs-at-every-size", func(t *testing.T) {
		f := newFixture(t, newStore)
		for i := range 40 {
			if err := f.s.AppendAudit(f.ctx, event("admin.auth_failed", fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
		var pairs [][2]int64
		for n := int64(1); n <= 40; n++ {
			for i := int64(0); i < n; i += 3 {
				pairs = append(pairs, [2]int64{i, n})
			}
			pairs = append(pairs, [2]int64{n - 1, n})
		}
		f.checkTree("40 events", pairs...)
	})

	t.Run("ok/time-truncated", func(t *testing.T) {
		f := newFixture(t, newStore)
		at := time.Date(2026, time.March, 1, 13, 0, 0, 123456789, time.FixedZone("CET", 3600))
		e := event("admin.auth_failed", "nanoseconds")
		e.Time = at
		if err := f.s.AppendAudit(f.ctx, e); err != nil {
			t.Fatal(err)
		}
		es := f.checkTree("an event with nanoseconds")
		want := at.UTC().Truncate(store.AuditTimePrecision)
		if got := es[0].Time; !got.Equal(want) || got.Nanosecond() != want.Nanosecond() {
			t.Errorf("audit Time = %v, want %v", got, want)
		}
	})

	t.Run("ok/concurrent-appenders", func(t *testing.T) {
		f := newFixture(t, newStore)
		tok := f.createToken(newToken("tok-c", 1000))
		const n = 48
		errs := race(n, func(i int) error {
			switch i % 3 {
			case 0:
				return f.s.AppendAudit(f.ctx, event("admin.auth_failed", fmt.Sprint(i)))
			case 1:
				return f.s.Issue(f.ctx, withToken(newIssuance(newCert(serial(int64(1000+i)), fmt.Sprint("dev-c", i), fmt.Sprint("kc", i))), tok))
			default:
				return f.s.CreateTokens(f.ctx, []store.Token{newToken(fmt.Sprint("tok-c", i), 1), newToken(fmt.Sprint("tok-d", i), 1)},
					[]store.AuditEvent{event("token.create", fmt.Sprint(i)), event("token.create", fmt.Sprint(i, "b"))})
			}
		})
		if c := tally(t, errs); c[nil] != n {
			t.Errorf("%d of %d concurrent writes succeeded, want all", c[nil], n)
		}
		es := f.checkTree("after concurrent appenders", proofPairs(1+n+n/3)...)
		if len(es) != 1+n+n/3 {
			t.Errorf("audit has %d events, want %d", len(es), 1+n+n/3)
		}
	})

	t.Run("fail/refused-write-appends-nothing", func(t *testing.T) {
		f := newFixture(t, newStore)
		f.issue(newIssuance(newCert(serial(1), "dev-1", "k1")))
		size, root, err := f.s.AuditTree(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		is := newIssuance(newCert(serial(2), "dev-1", "k2"))
		is.RequireNewDevice = true
		checkErr(t, "Issue to an existing device with RequireNewDevice", f.s.Issue(f.ctx, is), store.ErrDeviceExists)
		checkErr(t, "CreateTokens with a duplicate", f.s.CreateTokens(f.ctx, []store.Token{newToken("t", 1), newToken("t", 1)},
			[]store.AuditEvent{event("token.create", "t"), event("token.create", "t")}), store.ErrConflict)
		if s2, r2, err := f.s.AuditTree(f.ctx); s2 != size || r2 != root || err != nil {
			t.Errorf("AuditTree after refused writes = %d, %v, %v, want %d, %v, nil", s2, r2, err, size, root)
		}
		f.checkTree("after refused writes")
		f.issue(newIssuance(newCert(serial(3), "dev-3", "k3")))
		f.checkTree("after a write that follows refused ones", [2]int64{0, 2}, [2]int64{1, 2})
	})

	t.Run("ok/checkpoints", func(t *testing.T) {
		f := newFixture(t, newStore)
		for i := range 5 {
			if err := f.s.AppendAudit(f.ctx, event("admin.auth_failed", fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
		es := f.audit()
		cp := func(n int64) store.Checkpoint { return newCheckpoint(n, es[n-1].Root) }

		if err := f.s.PutCheckpoint(f.ctx, newCheckpoint(6, es[4].Root)); err == nil || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			t.Errorf("PutCheckpoint(size 6) of a tree of 5 error = %v, want an error wrapping neither ErrConflict nor ErrNotFound", err)
		}
		if err := f.s.PutCheckpoint(f.ctx, newCheckpoint(0, es[0].Root)); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("PutCheckpoint(size 0) error = %v, want an error", err)
		}
		if err := f.s.PutCheckpoint(f.ctx, cp(2)); err != nil {
			t.Fatalf("PutCheckpoint(2) error = %v, want nil", err)
		}
		checkErr(t, "PutCheckpoint(2) again", f.s.PutCheckpoint(f.ctx, cp(2)), store.ErrStaleCheckpoint)
		checkErr(t, "PutCheckpoint(1) after 2", f.s.PutCheckpoint(f.ctx, cp(1)), store.ErrStaleCheckpoint)
		if err := f.s.PutCheckpoint(f.ctx, cp(3)); err != nil {
			t.Fatalf("PutCheckpoint(3) error = %v, want nil", err)
		}
		if err := f.s.PutCheckpoint(f.ctx, cp(5)); err != nil {
			t.Fatalf("PutCheckpoint(5) error = %v, want nil", err)
		}
		if !errors.Is(store.ErrStaleCheckpoint, store.ErrConflict) {
			t.Errorf("ErrStaleCheckpoint does not wrap ErrConflict")
		}
		if got, err := f.s.LatestCheckpoint(f.ctx); err != nil || !cmp.Equal(got, cp(5)) {
			t.Errorf("LatestCheckpoint = %+v, %v, want %+v, nil", got, err, cp(5))
		}
		all := []store.Checkpoint{cp(2), cp(3), cp(5)}
		for _, tc := range []struct {
			after int64
			limit int
			want  []store.Checkpoint
		}{
			{0, 0, all},
			{-1, 0, all},
			{0, 2, all[:2]},
			{1, 0, all},
			{2, 0, all[1:]},
			{3, 1, all[2:]},
			{4, 0, all[2:]},
			{5, 0, nil},
			{1 << 62, 0, nil},
		} {
			got, err := f.s.ListCheckpoints(f.ctx, tc.after, tc.limit)
			if err != nil {
				t.Errorf("ListCheckpoints(%d, %d) error = %v, want nil", tc.after, tc.limit, err)
				continue
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ListCheckpoints(%d, %d) (-want +got):\n%s", tc.after, tc.limit, diff)
			}
		}
	})

	t.Run("ok/checkpoint-page-limit", func(t *testing.T) {
		f := newFixture(t, newStore)
		const n = store.MaxPageLimit + 1
		for i := range n {
			if err := f.s.AppendAudit(f.ctx, event("admin.auth_failed", fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
		_, root, err := f.s.AuditTree(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := int64(1); i <= n; i++ {
			if err := f.s.PutCheckpoint(f.ctx, newCheckpoint(i, root)); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			limit, want int
		}{{0, store.DefaultPageLimit}, {-1, store.DefaultPageLimit}, {n, store.MaxPageLimit}} {
			if got, err := f.s.ListCheckpoints(f.ctx, 0, tc.limit); len(got) != tc.want || err != nil {
				t.Errorf("ListCheckpoints(0, %d) = %d checkpoints, %v, want %d, nil", tc.limit, len(got), err, tc.want)
			}
		}
	})
}
