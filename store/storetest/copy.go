package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/fleetca/fleetca/store"
)

// RunCopy runs the suite of store.Dumper and store.Loader (fleetca db
// copy): newSource's stores must be Dumpers, newTarget's Loaders; each
// call returns a new, empty store, as for Run.
func RunCopy(t *testing.T, newSource, newTarget func(t *testing.T) store.Store) {
	t.Run("ok/everything-copied", func(t *testing.T) { testCopy(t, newSource, newTarget) })
	t.Run("fail/target-not-empty", func(t *testing.T) { testCopyNotEmpty(t, newSource, newTarget) })
}

// setupCopy gives f's store a record of every kind a dump holds, and
// returns the keys it used.
func setupCopy(f fixture) []store.KeyHash {
	f.t.Helper()
	setupRenew(f) // dev-1 1, dev-n 100, dev-x 200 (revoked, key blocked), dev-p 300
	tok := f.createToken(newToken("tok-a", 3))
	f.issue(withToken(newIssuance(newCert(serial(400), "dev-t", "kt")), tok))
	revoked := f.createToken(newToken("tok-r", 1))
	if _, err := f.s.RevokeToken(f.ctx, revoked.ID, T0, event("token.revoke", revoked.ID)); err != nil {
		f.t.Fatal(err)
	}
	f.renew(withNonce(newRenewal(serial(1), bigSerial, "dev-1", "k2", renewAt), "n1"))
	if err := f.s.CreateManufacturer(f.ctx, newManufacturer("acme"), event("manufacturer.add", "acme")); err != nil {
		f.t.Fatal(err)
	}
	f.issue(withMfr(newIssuance(newCert(serial(500), "dev-m", "km")), mfrCert("m")))
	f.createAdmins(newAdmin("admin", store.RoleOwner), newAdmin("bob", store.RoleViewer))
	if _, err := f.s.DisableAdmin(f.ctx, "bob", renewAt, event("admin.disable", "bob")); err != nil {
		f.t.Fatal(err)
	}
	f.revoke(revokeDevice("dev-t", renewAt, 1, false))
	if err := f.s.RenewNow(f.ctx, "", renewAt, event("fleet.renew_now", "")); err != nil {
		f.t.Fatal(err)
	}
	if err := f.s.RenewNow(f.ctx, "dev-p", renewAt, event("device.renew_now", "dev-p")); err != nil {
		f.t.Fatal(err)
	}
	if err := f.s.AppendAudit(f.ctx, event("admin.auth_failed", "")); err != nil {
		f.t.Fatal(err)
	}
	for range 3 {
		if _, err := f.s.NextCounter(f.ctx, "crl"); err != nil {
			f.t.Fatal(err)
		}
	}
	f.putMeta("admin_token_sha256", []byte{1, 2, 3})
	f.leaseCRL("replica-a", T0, T0.Add(time.Hour), true)
	f.putCRL("replica-a", T0, newCRL(3))
	es := f.audit()
	for _, n := range []int64{3, int64(len(es))} {
		if err := f.s.PutCheckpoint(f.ctx, newCheckpoint(n, es[n-1].Root)); err != nil {
			f.t.Fatal(err)
		}
	}
	return append(renewKeys(), keyHash("kt"), keyHash("km"))
}

func testCopy(t *testing.T, newSource, newTarget func(t *testing.T) store.Store) {
	src := newFixture(t, newSource)
	dst := fixture{t: t, s: newTarget(t), ctx: src.ctx}
	keys := setupCopy(src)

	dumper, ok := src.s.(store.Dumper)
	if !ok {
		t.Fatalf("source %T is not a store.Dumper", src.s)
	}
	loader, ok := dst.s.(store.Loader)
	if !ok {
		t.Fatalf("target %T is not a store.Loader", dst.s)
	}
	var records []store.Record
	if err := dumper.Dump(src.ctx, func(r store.Record) error {
		records = append(records, r)
		return nil
	}); err != nil {
		t.Fatalf("Dump error = %v, want nil", err)
	}
	i := 0
	err := loader.Load(dst.ctx, func() (store.Record, bool, error) {
		if i == len(records) {
			return store.Record{}, false, nil
		}
		i++
		return records[i-1], true, nil
	})
	if err != nil {
		t.Fatalf("Load error = %v, want nil", err)
	}

	// Everything the source shows, the target shows.
	if diff := cmp.Diff(src.snapshot(keys...), dst.snapshot(keys...), cmpOpts); diff != "" {
		t.Errorf("target differs from source (-source +target):\n%s", diff)
	}
	// The console's indexes and counters, too.
	if diff := cmp.Diff(consoleViews(src, src.s), consoleViews(dst, dst.s)); diff != "" {
		t.Errorf("target's Stats, QueryDevices, QueryAudit differ from the source's (-source +target):\n%s", diff)
	}
	srcCounts, err := dumper.Counts(src.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if td, ok := dst.s.(store.Dumper); ok {
		dstCounts, err := td.Counts(dst.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(srcCounts, dstCounts); diff != "" {
			t.Errorf("Counts differ (-source +target):\n%s", diff)
		}
	}
	for _, kind := range []string{"device", "certificate", "token", "revocation", "audit", "checkpoint", "manufacturer", "admin",
		"manufacturer_use", "blocked_key", "nonce", "counter", "meta", "fleet_renew_now", "crl"} {
		if srcCounts[kind] == 0 {
			t.Errorf("the source has no %s record: the suite copies none", kind)
		}
	}
	for _, id := range []string{"dev-p", "dev-t", "dev-m"} {
		if diff := cmp.Diff(src.device(id), dst.device(id)); diff != "" {
			t.Errorf("device %s differs (-source +target):\n%s", id, diff)
		}
	}
	ms, err := dst.s.ListManufacturers(dst.ctx)
	if err != nil || len(ms) != 1 || ms[0].Name != "acme" {
		t.Errorf("target ListManufacturers = %v, %v, want acme", ms, err)
	}
	if diff := cmp.Diff(src.admins(), dst.admins()); diff != "" {
		t.Errorf("admins differ (-source +target):\n%s", diff)
	}
	if v, err := dst.s.GetMeta(dst.ctx, "admin_token_sha256"); err != nil || string(v) != "\x01\x02\x03" {
		t.Errorf("target GetMeta = %x, %v, want 010203", v, err)
	}
	want := newCRL(3)
	dst.checkLatestCRL(0, &want)

	// The audit tree is the same: rows, roots, stored hashes and
	// checkpoints.
	srcAudit := src.checkTree("the source", proofPairs(int64(len(src.audit())))...)
	if diff := cmp.Diff(srcAudit, dst.checkTree("the copy", proofPairs(int64(len(srcAudit)))...)); diff != "" {
		t.Errorf("audit rows differ (-source +target):\n%s", diff)
	}
	n := int64(len(srcAudit))
	all := make([]int64, tlog.StoredHashCount(n))
	for i := range all {
		all[i] = int64(i)
	}
	srcHashes, err := src.s.AuditHashes(src.ctx, all)
	if err != nil {
		t.Fatal(err)
	}
	if dstHashes, err := dst.s.AuditHashes(dst.ctx, all); err != nil || !cmp.Equal(srcHashes, dstHashes) {
		t.Errorf("target AuditHashes = %v, %v, want the source's %v", dstHashes, err, srcHashes)
	}
	srcCps, err := src.s.ListCheckpoints(src.ctx, 0, 0)
	if err != nil || len(srcCps) != 2 {
		t.Fatalf("source ListCheckpoints = %v, %v, want 2 checkpoints", srcCps, err)
	}
	dstCps, err := dst.s.ListCheckpoints(dst.ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(srcCps, dstCps); diff != "" {
		t.Errorf("checkpoints differ (-source +target):\n%s", diff)
	}

	// The target goes on where the source stopped.
	if n, err := dst.s.NextCounter(dst.ctx, "crl"); n != 4 || err != nil {
		t.Errorf("target NextCounter(crl) = %d, %v, want 4, nil", n, err)
	}
	lastAudit := src.audit()[len(src.audit())-1].Seq
	if err := dst.s.AppendAudit(dst.ctx, event("admin.auth_failed", "after copy")); err != nil {
		t.Fatal(err)
	}
	if es := dst.audit(); es[len(es)-1].Seq != lastAudit+1 {
		t.Errorf("target's next audit Seq = %d, want %d", es[len(es)-1].Seq, lastAudit+1)
	}
	dst.checkTree("the copy after an append", [2]int64{0, int64(lastAudit) + 1}, [2]int64{int64(lastAudit), int64(lastAudit) + 1})
	checkErr(t, "target PutCheckpoint of the source's latest size", dst.s.PutCheckpoint(dst.ctx, srcCps[1]), store.ErrStaleCheckpoint)
	lastRev := src.revocations()[len(src.revocations())-1].Seq
	if es := dst.revoke(revokeSerial(serial(300), renewAt, 1, false)); len(es) != 1 || es[0].Seq != lastRev+1 {
		t.Errorf("target's next revocation = %+v, want one with Seq %d", es, lastRev+1)
	}
	err = dst.s.Issue(dst.ctx, withMfr(newIssuance(newCert(serial(600), "dev-m2", "km2")), mfrCert("m")))
	checkErr(t, "target Issue with a used manufacturer certificate", err, store.ErrManufacturerCertUsed)
	err = dst.s.Issue(dst.ctx, newIssuance(newCert(serial(601), "dev-y", "kx")))
	checkErr(t, "target Issue of a blocked key", err, store.ErrKeyBlocked)
	err = dst.s.Issue(dst.ctx, newIssuance(newCert(serial(602), "dev-z", "kt")))
	checkErr(t, "target Issue of a key of another device", err, store.ErrKeyInUse)
	_, err = dst.s.Renew(dst.ctx, withNonce(newRenewal(bigSerial, serial(700), "dev-1", "k3", renewAt.Add(time.Second)), "n1"))
	checkErr(t, "target Renew with a spent nonce", err, store.ErrNonceSpent)
	dst.issue(withToken(newIssuance(newCert(serial(603), "dev-t2", "kt2")), newToken("tok-a", 3)))
	if got := dst.token(newToken("tok-a", 3).Hash).Spent; got != 2 {
		t.Errorf("target token tok-a Spent = %d, want 2", got)
	}
	if _, err := dst.s.LeaseCRL(dst.ctx, "replica-b", T0, T0.Add(time.Minute)); err != nil {
		t.Errorf("target LeaseCRL error = %v", err)
	}
	checkErr(t, "target PutCRL(3) after the copy of CRL 3", dst.s.PutCRL(dst.ctx, "replica-b", T0, newCRL(3)), store.ErrCRLNotNewer)
}

func testCopyNotEmpty(t *testing.T, newSource, newTarget func(t *testing.T) store.Store) {
	src := newFixture(t, newSource)
	setupRenew(src)
	dst := fixture{t: t, s: newTarget(t), ctx: src.ctx}
	dst.putMeta("m", []byte("1"))
	before := dst.snapshot()
	loader, ok := dst.s.(store.Loader)
	if !ok {
		t.Fatalf("target %T is not a store.Loader", dst.s)
	}
	var records []store.Record
	if err := src.s.(store.Dumper).Dump(src.ctx, func(r store.Record) error {
		records = append(records, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	i := 0
	err := loader.Load(dst.ctx, func() (store.Record, bool, error) {
		if i == len(records) {
			return store.Record{}, false, nil
		}
		i++
		return records[i-1], true, nil
	})
	checkErr(t, "Load into a store with a meta record", err, store.ErrNotEmpty)
	dst.checkUnchanged("a refused Load", before)

	// An error from next leaves the target empty.
	empty := fixture{t: t, s: newTarget(t), ctx: src.ctx}
	boom := errors.New("source read failed")
	i = 0
	err = empty.s.(store.Loader).Load(empty.ctx, func() (store.Record, bool, error) {
		if i == len(records)/2 {
			return store.Record{}, false, boom
		}
		i++
		return records[i-1], true, nil
	})
	if !errors.Is(err, boom) {
		t.Errorf("Load with a failing source error = %v, want %v", err, boom)
	}
	if ds, err := empty.s.ListDevices(context.Background(), store.Page{}); err != nil || len(ds) != 0 {
		t.Errorf("after a failed Load, ListDevices = %d devices, %v, want none", len(ds), err)
	}
}
