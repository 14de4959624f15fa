package storetest

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetca/fleetca/store"
)

// adminHash is the token hash of a fake admin token.
func adminHash(token string) store.TokenHash { return sha256.Sum256([]byte("admin token " + token)) }

func newAdmin(name string, role store.Role) store.Admin {
	return store.Admin{Name: name, Role: role, TokenHash: adminHash(name), CreatedAt: T0}
}

// createAdmins creates each admin of as, failing the test on an error.
func (f fixture) createAdmins(as ...store.Admin) {
	f.t.Helper()
	for _, a := range as {
		if err := f.s.CreateAdmin(f.ctx, a, event("admin.create", a.Name)); err != nil {
			f.t.Fatalf("CreateAdmin(%q) error = %v, want nil", a.Name, err)
		}
	}
}

// admins returns ListAdmins, failing the test on an error.
func (f fixture) admins() []store.Admin {
	f.t.Helper()
	as, err := f.s.ListAdmins(f.ctx)
	if err != nil {
		f.t.Fatalf("ListAdmins error = %v", err)
	}
	return as
}

func testAdmin(t *testing.T, newStore func(t *testing.T) store.Store) {
	later := T0.Add(time.Hour)
	t.Run("ok/create-get-list", func(t *testing.T) {
		f := newFixture(t, newStore)
		owner, bob := newAdmin("owner", store.RoleOwner), newAdmin("bob", store.RoleViewer)
		f.createAdmins(owner, bob)
		if diff := cmp.Diff([]store.Admin{bob, owner}, f.admins()); diff != "" {
			t.Errorf("ListAdmins (-want +got):\n%s", diff)
		}
		got, err := f.s.GetAdminByTokenHash(f.ctx, adminHash("bob"))
		if err != nil || got != bob {
			t.Errorf("GetAdminByTokenHash(bob) = %+v, %v, want %+v", got, err, bob)
		}
		_, err = f.s.GetAdminByTokenHash(f.ctx, adminHash("nobody"))
		checkErr(t, "GetAdminByTokenHash(unknown)", err, store.ErrNotFound)
		if n := len(f.audit()); n != 2 {
			t.Errorf("audit rows = %d, want 2", n)
		}
	})
	t.Run("ok/disable", func(t *testing.T) {
		f := newFixture(t, newStore)
		f.createAdmins(newAdmin("owner", store.RoleOwner), newAdmin("second", store.RoleOwner), newAdmin("bob", store.RoleOperator))
		for _, name := range []string{"bob", "second"} {
			a, err := f.s.DisableAdmin(f.ctx, name, later, event("admin.disable", name))
			if err != nil || !a.DisabledAt.Equal(later) || a.Name != name {
				t.Fatalf("DisableAdmin(%s) = %+v, %v, want it disabled at %v", name, a, err, later)
			}
		}
		got, err := f.s.GetAdminByTokenHash(f.ctx, adminHash("bob"))
		if err != nil || !got.DisabledAt.Equal(later) {
			t.Errorf("GetAdminByTokenHash(disabled bob) = %+v, %v, want it with DisabledAt %v", got, err, later)
		}
		if n := len(f.audit()); n != 5 {
			t.Errorf("audit rows = %d, want 5", n)
		}
	})
	t.Run("ok/rotate", func(t *testing.T) {
		f := newFixture(t, newStore)
		f.createAdmins(newAdmin("bob", store.RoleViewer))
		a, err := f.s.RotateAdmin(f.ctx, "bob", adminHash("bob 2"), later, event("admin.rotate", "bob"))
		if err != nil || a.TokenHash != adminHash("bob 2") || !a.RotatedAt.Equal(later) {
			t.Fatalf("RotateAdmin = %+v, %v, want the new hash, rotated at %v", a, err, later)
		}
		_, err = f.s.GetAdminByTokenHash(f.ctx, adminHash("bob"))
		checkErr(t, "GetAdminByTokenHash(old token)", err, store.ErrNotFound)
		if got, err := f.s.GetAdminByTokenHash(f.ctx, adminHash("bob 2")); err != nil || got != a {
			t.Errorf("GetAdminByTokenHash(new token) = %+v, %v, want %+v", got, err, a)
		}
		if n := len(f.audit()); n != 2 {
			t.Errorf("audit rows = %d, want 2", n)
		}
	})
	// Each refusal writes nothing: the admins and the audit log stay as
	// the setup left them.
	for _, tc := range []struct {
		name string
		do   func(f fixture) error
		want error
	}{
		{"create/duplicate-name", func(f fixture) error {
			a := newAdmin("bob", store.RoleOwner)
			a.TokenHash = adminHash("other")
			return f.s.CreateAdmin(f.ctx, a, event("admin.create", "bob"))
		}, store.ErrConflict},
		{"create/duplicate-token", func(f fixture) error {
			a := newAdmin("carol", store.RoleViewer)
			a.TokenHash = adminHash("bob")
			return f.s.CreateAdmin(f.ctx, a, event("admin.create", "carol"))
		}, store.ErrConflict},
		{"disable/unknown", func(f fixture) error {
			_, err := f.s.DisableAdmin(f.ctx, "nobody", later, event("admin.disable", "nobody"))
			return err
		}, store.ErrNotFound},
		{"disable/disabled", func(f fixture) error {
			_, err := f.s.DisableAdmin(f.ctx, "gone", later, event("admin.disable", "gone"))
			return err
		}, store.ErrAdminDisabled},
		{"disable/last-owner", func(f fixture) error {
			_, err := f.s.DisableAdmin(f.ctx, "owner", later, event("admin.disable", "owner"))
			return err
		}, store.ErrLastOwner},
		{"rotate/unknown", func(f fixture) error {
			_, err := f.s.RotateAdmin(f.ctx, "nobody", adminHash("new"), later, event("admin.rotate", "nobody"))
			return err
		}, store.ErrNotFound},
		{"rotate/disabled", func(f fixture) error {
			_, err := f.s.RotateAdmin(f.ctx, "gone", adminHash("new"), later, event("admin.rotate", "gone"))
			return err
		}, store.ErrAdminDisabled},
		{"rotate/token-of-another", func(f fixture) error {
			_, err := f.s.RotateAdmin(f.ctx, "bob", adminHash("owner"), later, event("admin.rotate", "bob"))
			return err
		}, store.ErrConflict},
	} {
		t.Run("fail/"+tc.name, func(t *testing.T) {
			f := newFixture(t, newStore)
			// owner is the one active owner (gone, an owner, is disabled).
			f.createAdmins(newAdmin("owner", store.RoleOwner), newAdmin("gone", store.RoleOwner), newAdmin("bob", store.RoleViewer))
			if _, err := f.s.DisableAdmin(f.ctx, "gone", T0, event("admin.disable", "gone")); err != nil {
				t.Fatal(err)
			}
			before, rows := f.admins(), len(f.audit())
			checkErr(t, tc.name, tc.do(f), tc.want)
			if diff := cmp.Diff(before, f.admins()); diff != "" {
				t.Errorf("admins changed by a refusal (-before +after):\n%s", diff)
			}
			if n := len(f.audit()); n != rows {
				t.Errorf("audit rows = %d, want %d", n, rows)
			}
		})
	}
}
