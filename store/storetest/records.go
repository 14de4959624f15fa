package storetest

import (
	"errors"
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetca/fleetca/store"
)

func testToken(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("ok/create-get", func(t *testing.T) {
		f := newFixture(t, newStore)
		want := newToken("tok-1", 3)
		want.DevicePattern, want.DeviceID = "", "dev-1"
		ev := event("token.create", "tok-1")
		if err := f.s.CreateToken(f.ctx, want, ev); err != nil {
			t.Fatalf("CreateToken error = %v, want nil", err)
		}
		if diff := cmp.Diff(want, f.token(want.Hash)); diff != "" {
			t.Errorf("GetToken (-want +got):\n%s", diff)
		}
		ev.Seq = 1
		if diff := cmp.Diff(rooted([]store.AuditEvent{ev}), f.audit()); diff != "" {
			t.Errorf("audit after CreateToken (-want +got):\n%s", diff)
		}
	})

	t.Run("fail/get-unknown", func(t *testing.T) {
		f := newFixture(t, newStore)
		f.createToken(newToken("tok-1", 1))
		_, err := f.s.GetToken(f.ctx, newToken("tok-2", 1).Hash)
		checkErr(t, "GetToken(unknown)", err, store.ErrNotFound)
	})

	for _, tc := range []struct {
		name string
		dup  func(store.Token) store.Token
	}{
		{"fail/duplicate-hash", func(tok store.Token) store.Token { tok.ID = "tok-other"; return tok }},
		{"fail/duplicate-id", func(tok store.Token) store.Token { tok.Hash = newToken("other", 1).Hash; return tok }},
		{"fail/duplicate", func(tok store.Token) store.Token { return tok }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, newStore)
			tok := f.createToken(newToken("tok-1", 1))
			before := f.snapshot()
			err := f.s.CreateToken(f.ctx, tc.dup(tok), event("token.create", "dup"))
			checkErr(t, "CreateToken(duplicate)", err, store.ErrConflict)
			f.checkUnchanged("a refused CreateToken", before)
		})
	}

	t.Run("ok/create-many", func(t *testing.T) {
		f := newFixture(t, newStore)
		var ts []store.Token
		var evs []store.AuditEvent
		for _, id := range []string{"tok-1", "tok-2", "tok-3"} {
			ts = append(ts, newToken(id, 1))
			evs = append(evs, event("token.create", id))
		}
		if err := f.s.CreateTokens(f.ctx, ts, evs); err != nil {
			t.Fatalf("CreateTokens error = %v, want nil", err)
		}
		for _, want := range ts {
			if diff := cmp.Diff(want, f.token(want.Hash)); diff != "" {
				t.Errorf("GetToken(%s) (-want +got):\n%s", want.ID, diff)
			}
		}
		for i := range evs {
			evs[i].Seq = uint64(i + 1)
		}
		if diff := cmp.Diff(rooted(evs), f.audit()); diff != "" {
			t.Errorf("audit after CreateTokens (-want +got):\n%s", diff)
		}
	})

	for _, tc := range []struct {
		name  string
		batch func(existing store.Token) []store.Token
	}{
		{"fail/create-many-existing-hash", func(tok store.Token) []store.Token {
			tok.ID = "tok-other"
			return []store.Token{newToken("tok-2", 1), tok}
		}},
		{"fail/create-many-existing-id", func(tok store.Token) []store.Token {
			tok.Hash = newToken("other", 1).Hash
			return []store.Token{newToken("tok-2", 1), tok}
		}},
		{"fail/create-many-repeated-hash", func(store.Token) []store.Token {
			a, b := newToken("tok-2", 1), newToken("tok-3", 1)
			b.Hash = a.Hash
			return []store.Token{a, b}
		}},
		{"fail/create-many-repeated-id", func(store.Token) []store.Token {
			a, b := newToken("tok-2", 1), newToken("tok-3", 1)
			b.ID = a.ID
			return []store.Token{a, b}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, newStore)
			tok := f.createToken(newToken("tok-1", 1))
			before := f.snapshot()
			ts := tc.batch(tok)
			evs := make([]store.AuditEvent, len(ts))
			for i, t := range ts {
				evs[i] = event("token.create", t.ID)
			}
			err := f.s.CreateTokens(f.ctx, ts, evs)
			checkErr(t, "CreateTokens(conflict)", err, store.ErrConflict)
			f.checkUnchanged("a refused CreateTokens", before)
			if _, err := f.s.GetToken(f.ctx, newToken("tok-2", 1).Hash); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("GetToken(tok-2) after a refused CreateTokens error = %v, want ErrNotFound", err)
			}
		})
	}

	t.Run("ok/list-pages-by-id", func(t *testing.T) {
		f := newFixture(t, newStore)
		for _, id := range []string{"t3", "t1", "t5", "t2", "t4"} {
			f.createToken(newToken(id, 1))
		}
		checkPages(t, "ListTokens", []string{"t1", "t2", "t3", "t4", "t5"}, []pageCase{
			{store.Page{}, []string{"t1", "t2", "t3", "t4", "t5"}},
			{store.Page{Limit: 2}, []string{"t1", "t2"}},
			{store.Page{After: "t2", Limit: 2}, []string{"t3", "t4"}},
			{store.Page{After: "t4", Limit: 2}, []string{"t5"}},
			{store.Page{After: "t5", Limit: 2}, []string{}},
			{store.Page{After: "t2a"}, []string{"t3", "t4", "t5"}},
			{store.Page{After: "a"}, []string{"t1", "t2", "t3", "t4", "t5"}},
		}, func(p store.Page) ([]string, error) {
			ts, err := f.s.ListTokens(f.ctx, p)
			return ids(ts, func(t store.Token) string { return t.ID }), err
		})
	})

	t.Run("ok/revoke", func(t *testing.T) {
		f := newFixture(t, newStore)
		tok := f.createToken(newToken("tok-1", 1))
		at := T0.Add(time.Hour)
		ev := event("token.revoke", "tok-1")
		got, err := f.s.RevokeToken(f.ctx, "tok-1", at, ev)
		if err != nil {
			t.Fatalf("RevokeToken error = %v, want nil", err)
		}
		want := tok
		want.RevokedAt = at
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("RevokeToken (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(want, f.token(tok.Hash)); diff != "" {
			t.Errorf("GetToken after RevokeToken (-want +got):\n%s", diff)
		}
		created := event("token.create", tok.ID)
		created.Seq, ev.Seq = 1, 2
		if diff := cmp.Diff(rooted([]store.AuditEvent{created, ev}), f.audit()); diff != "" {
			t.Errorf("audit after RevokeToken (-want +got):\n%s", diff)
		}
	})

	t.Run("fail/revoke-unknown", func(t *testing.T) {
		f := newFixture(t, newStore)
		f.createToken(newToken("tok-1", 1))
		before := f.snapshot()
		_, err := f.s.RevokeToken(f.ctx, "tok-2", T0, event("token.revoke", "tok-2"))
		checkErr(t, "RevokeToken(unknown)", err, store.ErrNotFound)
		f.checkUnchanged("a refused RevokeToken", before)
	})

	t.Run("fail/revoke-revoked", func(t *testing.T) {
		f := newFixture(t, newStore)
		tok := f.createToken(newToken("tok-1", 1))
		first, err := f.s.RevokeToken(f.ctx, tok.ID, T0.Add(time.Hour), event("token.revoke", "first"))
		if err != nil {
			t.Fatalf("RevokeToken error = %v, want nil", err)
		}
		before := f.snapshot()
		got, err := f.s.RevokeToken(f.ctx, tok.ID, T0.Add(2*time.Hour), event("token.revoke", "second"))
		checkErr(t, "RevokeToken(revoked)", err, store.ErrTokenRevoked)
		if diff := cmp.Diff(first, got); diff != "" {
			t.Errorf("RevokeToken(revoked) token (-want +got):\n%s", diff)
		}
		f.checkUnchanged("a refused RevokeToken", before)
	})
}

func testDevice(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("fail/get-unknown", func(t *testing.T) {
		f := newFixture(t, newStore)
		f.issue(newIssuance(newCert(serial(1), "dev-1", "k1")))
		_, err := f.s.GetDevice(f.ctx, "dev-2")
		checkErr(t, "GetDevice(unknown)", err, store.ErrNotFound)
	})

	t.Run("ok/list-empty", func(t *testing.T) {
		f := newFixture(t, newStore)
		ds, err := f.s.ListDevices(f.ctx, store.Page{})
		if len(ds) != 0 || err != nil {
			t.Errorf("ListDevices of an empty store = %v, %v, want none, nil", ds, err)
		}
	})

	t.Run("ok/list-pages-by-id", func(t *testing.T) {
		f := newFixture(t, newStore)
		for i, id := range []string{"d-3", "d-1", "d-7", "d-2", "d-6", "d-5", "d-4"} {
			f.issue(newIssuance(newCert(serial(int64(i+1)), id, id)))
		}
		all := []string{"d-1", "d-2", "d-3", "d-4", "d-5", "d-6", "d-7"}
		checkPages(t, "ListDevices", all, []pageCase{
			{store.Page{}, all},
			{store.Page{Limit: -1}, all},
			{store.Page{Limit: 3}, []string{"d-1", "d-2", "d-3"}},
			{store.Page{After: "d-3", Limit: 3}, []string{"d-4", "d-5", "d-6"}},
			{store.Page{After: "d-6", Limit: 3}, []string{"d-7"}},
			{store.Page{After: "d-7", Limit: 3}, []string{}},
			{store.Page{After: "d-35", Limit: 2}, []string{"d-4", "d-5"}},
		}, func(p store.Page) ([]string, error) {
			ds, err := f.s.ListDevices(f.ctx, p)
			return ids(ds, func(d store.Device) string { return d.ID }), err
		})
	})
}

func testCertificate(t *testing.T, newStore func(t *testing.T) store.Store) {
	// Serials of differing lengths, so that byte order of a naive encoding
	// would differ from numeric order.
	huge := new(big.Int).Lsh(big.NewInt(1), 64)
	issued := []struct {
		serial *big.Int
		device string
	}{
		{bigSerial, "dev-a"}, {serial(256), "dev-b"}, {serial(1), "dev-a"}, {serial(255), "dev-b"},
		{huge, "dev-a"}, {serial(65535), "dev-b"}, {serial(2), "dev-a"},
	}
	// In serial order.
	all := []string{"1", "2", "ff", "100", "ffff", "10000000000000000", bigSerial.Text(16)}
	devA := []string{"1", "2", "10000000000000000", bigSerial.Text(16)}
	setup := func(f fixture) {
		for i, c := range issued {
			f.issue(newIssuance(newCert(c.serial, c.device, string(rune('a'+i)))))
		}
	}

	t.Run("fail/get-unknown", func(t *testing.T) {
		f := newFixture(t, newStore)
		setup(f)
		for _, n := range []*big.Int{serial(3), new(big.Int).Add(bigSerial, big.NewInt(1)), serial(0), serial(-1)} {
			_, err := f.s.GetCertificate(f.ctx, n)
			checkErr(t, "GetCertificate("+n.String()+")", err, store.ErrNotFound)
		}
	})

	t.Run("ok/list-pages-by-serial", func(t *testing.T) {
		f := newFixture(t, newStore)
		setup(f)
		checkPages(t, `ListCertificates("")`, all, []pageCase{
			{store.Page{}, all},
			{store.Page{Limit: 3}, all[:3]},
			{store.Page{After: "ff", Limit: 3}, all[3:6]},
			{store.Page{After: "10000000000000000", Limit: 3}, all[6:]},
			{store.Page{After: bigSerial.Text(16)}, []string{}},
			{store.Page{After: "3"}, all[2:]},
			{store.Page{After: "0"}, all},
		}, func(p store.Page) ([]string, error) {
			cs, err := f.s.ListCertificates(f.ctx, "", p)
			return ids(cs, hexSerial), err
		})
	})

	t.Run("ok/list-by-device", func(t *testing.T) {
		f := newFixture(t, newStore)
		setup(f)
		f.issue(newIssuance(newCert(serial(3), "dev-a.x", "x"))) // a device ID that extends dev-a's
		checkPages(t, `ListCertificates("dev-a")`, devA, []pageCase{
			{store.Page{}, devA},
			{store.Page{Limit: 2}, devA[:2]},
			{store.Page{After: "2", Limit: 2}, devA[2:]},
			{store.Page{After: "3"}, devA[2:]},
			{store.Page{After: bigSerial.Text(16)}, []string{}},
		}, func(p store.Page) ([]string, error) {
			cs, err := f.s.ListCertificates(f.ctx, "dev-a", p)
			for _, c := range cs {
				if c.DeviceID != "dev-a" {
					t.Errorf("ListCertificates(dev-a) returned %x of %q", c.Serial, c.DeviceID)
				}
			}
			return ids(cs, hexSerial), err
		})
		cs, err := f.s.ListCertificates(f.ctx, "dev-unknown", store.Page{})
		if len(cs) != 0 || err != nil {
			t.Errorf("ListCertificates(dev-unknown) = %d certificates, %v, want none, nil", len(cs), err)
		}
	})

	t.Run("ok/list-returns-records", func(t *testing.T) {
		f := newFixture(t, newStore)
		want := newCert(bigSerial, "dev-1", "k1")
		want.RevokedAt, want.Reason = T0.Add(time.Hour), 4
		f.issue(newIssuance(want))
		for _, device := range []string{"", "dev-1"} {
			if diff := cmp.Diff([]store.Certificate{want}, f.certs(device), cmpOpts); diff != "" {
				t.Errorf("ListCertificates(%q) (-want +got):\n%s", device, diff)
			}
		}
	})

	t.Run("fail/key-owner-unknown", func(t *testing.T) {
		f := newFixture(t, newStore)
		setup(f)
		_, err := f.s.KeyOwner(f.ctx, keyHash("unknown"))
		checkErr(t, "KeyOwner(unknown)", err, store.ErrNotFound)
	})
}

func hexSerial(c store.Certificate) string { return c.Serial.Text(16) }

// ids maps records to their keys.
func ids[T any](rs []T, key func(T) string) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, key(r))
	}
	return out
}

type pageCase struct {
	page store.Page
	want []string
}

// checkPages checks list against each case, and that walking all with
// pages of 1, 2 and 3 visits all in order.
func checkPages(t *testing.T, what string, all []string, cases []pageCase, list func(store.Page) ([]string, error)) {
	t.Helper()
	for _, tc := range cases {
		got, err := list(tc.page)
		if err != nil {
			t.Errorf("%s(%+v) error = %v, want nil", what, tc.page, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s(%+v) (-want +got):\n%s", what, tc.page, diff)
		}
	}
	for _, limit := range []int{1, 2, 3} {
		var walked []string
		p := store.Page{Limit: limit}
		for range len(all) + 2 {
			got, err := list(p)
			if err != nil {
				t.Fatalf("%s(%+v) error = %v, want nil", what, p, err)
			}
			if len(got) > limit {
				t.Errorf("%s(%+v) returned %d, want at most %d", what, p, len(got), limit)
			}
			if len(got) == 0 {
				break
			}
			walked = append(walked, got...)
			p.After = got[len(got)-1]
		}
		if !slices.Equal(walked, all) {
			t.Errorf("%s walked with limit %d = %v, want %v", what, limit, walked, all)
		}
	}
}
