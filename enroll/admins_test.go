package enroll

import (
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/fleetca/fleetca/internal/adminctx"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// TestUpgradeAdminToken: the admin token of a CA from before named admins
// (only its hash in the meta) becomes the owner "admin" once; a second
// upgrade, or one after a rotation, changes nothing.
func TestUpgradeAdminToken(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := t.Context()
	if made, err := f.svc.UpgradeAdminToken(ctx); made || err != nil {
		t.Fatalf("UpgradeAdminToken of an uninitialised CA = %v, %v, want false, nil", made, err)
	}
	old, _ := newSecret(AdminTokenPrefix)
	h := sha256.Sum256([]byte(old))
	if err := f.store.PutMeta(ctx, adminHashKey, h[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.CheckAdmin(ctx, string(old)); kindOf(err) != fault.Unauthorized {
		t.Fatalf("CheckAdmin before the upgrade: kind = %v, want Unauthorized", kindOf(err))
	}
	if made, err := f.svc.UpgradeAdminToken(ctx); !made || err != nil {
		t.Fatalf("UpgradeAdminToken = %v, %v, want true, nil", made, err)
	}
	a, err := f.svc.CheckAdmin(ctx, string(old))
	if err != nil || a.Name != FirstAdmin || a.Role != store.RoleOwner {
		t.Fatalf("CheckAdmin after the upgrade = %+v, %v, want the owner admin", a, err)
	}
	if made, err := f.svc.UpgradeAdminToken(ctx); made || err != nil {
		t.Errorf("second UpgradeAdminToken = %v, %v, want false, nil", made, err)
	}
	if _, _, err := f.svc.RotateAdmin(ctx, FirstAdmin); err != nil {
		t.Fatal(err)
	}
	if made, err := f.svc.UpgradeAdminToken(ctx); made || err != nil {
		t.Errorf("UpgradeAdminToken after a rotation = %v, %v, want false, nil", made, err)
	}
	if _, err := f.svc.CheckAdmin(ctx, string(old)); kindOf(err) != fault.Unauthorized {
		t.Errorf("the old token after rotation: kind = %v, want Unauthorized", kindOf(err))
	}
	as, err := f.svc.ListAdmins(ctx)
	if err != nil || len(as) != 1 {
		t.Errorf("ListAdmins = %v, %v, want the one owner", as, err)
	}
}

// TestCheckAdminDisabled: a disabled admin's token is refused as a wrong
// one is (Unauthorized, the same detail).
func TestCheckAdminDisabled(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := t.Context()
	if _, err := f.svc.MintAdminToken(ctx); err != nil {
		t.Fatal(err)
	}
	tok, _, err := f.svc.CreateAdmin(ctx, "bob", "viewer")
	if err != nil {
		t.Fatal(err)
	}
	if a, err := f.svc.CheckAdmin(ctx, string(tok)); err != nil || a.Name != "bob" {
		t.Fatalf("CheckAdmin(bob) = %+v, %v", a, err)
	}
	if _, err := f.svc.DisableAdmin(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	other, _ := newSecret(AdminTokenPrefix)
	_, wrong := f.svc.CheckAdmin(ctx, string(other))
	_, disabled := f.svc.CheckAdmin(ctx, string(tok))
	if kindOf(disabled) != fault.Unauthorized || disabled.Error() != wrong.Error() {
		t.Errorf("disabled admin's token = %v, want as a wrong token's: %v", disabled, wrong)
	}
}

func TestAdminNamesAndRoles(t *testing.T) {
	for _, tc := range []struct {
		name, role string
		field      string // "" if accepted
	}{
		{"alice", "viewer", ""},
		{"0.ops_team-1", "owner", ""},
		{strings.Repeat("a", 64), "operator", ""},
		{strings.Repeat("a", 65), "viewer", "name"},
		{"", "viewer", "name"},
		{"Alice", "viewer", "name"},
		{"-alice", "viewer", "name"},
		{"al ice", "viewer", "name"},
		{"alice", "", "role"},
		{"alice", "Owner", "role"},
		{"alice", "admin", "role"},
	} {
		f := newFixture(t, Config{})
		_, _, err := f.svc.CreateAdmin(t.Context(), tc.name, tc.role)
		if tc.field == "" {
			if err != nil {
				t.Errorf("CreateAdmin(%q, %q) = %v, want nil", tc.name, tc.role, err)
			}
			continue
		}
		fe, ok := err.(*fault.Error)
		if !ok || fe.Kind != fault.Malformed || fe.Field != tc.field {
			t.Errorf("CreateAdmin(%q, %q) = %v, want Malformed in field %s", tc.name, tc.role, err, tc.field)
		}
	}
}

func TestRequireRole(t *testing.T) {
	for _, tc := range []struct {
		have, need store.Role
		detail     string // "" if admitted
	}{
		{store.RoleViewer, store.RoleViewer, ""},
		{store.RoleOwner, store.RoleOperator, ""},
		{store.RoleViewer, store.RoleOperator, "this needs the operator role; alice is a viewer"},
		{store.RoleOperator, store.RoleOwner, "this needs the owner role; alice is an operator"},
		{"", store.RoleViewer, "this needs the viewer role; alice is a "},
	} {
		err := RequireRole(store.Admin{Name: "alice", Role: tc.have}, tc.need)
		if tc.detail == "" {
			if err != nil {
				t.Errorf("RequireRole(%s, %s) = %v, want nil", tc.have, tc.need, err)
			}
			continue
		}
		fe, ok := err.(*fault.Error)
		if !ok || fe.Kind != fault.Forbidden || fe.Detail != tc.detail || !strings.Contains(fe.Hint, string(tc.need)) {
			t.Errorf("RequireRole(%s, %s) = %#v, want Forbidden %q", tc.have, tc.need, err, tc.detail)
		}
	}
}

// TestAuditActor: what an admin does is audited as admin:<name>.
func TestAuditActor(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := adminctx.With(t.Context(), store.Admin{Name: "carol", Role: store.RoleOperator})
	if _, _, err := f.svc.CreateToken(ctx, TokenRequest{DeviceID: "dev-1"}); err != nil {
		t.Fatal(err)
	}
	evs, err := f.store.ListAudit(t.Context(), 0, 10)
	if err != nil || len(evs) != 1 || evs[0].Actor != "admin:carol" {
		t.Errorf("audit = %+v, %v, want one row by admin:carol", evs, err)
	}
}

// FuzzParseAdminName: an accepted name is what the rule says, and so is a
// printed refusal (never the whole of a long name).
func FuzzParseAdminName(f *testing.F) {
	for _, s := range []string{"alice", "0.ops_team-1", "", "Alice", "-a", strings.Repeat("a", 65), "a\x00b", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := ParseAdminName(name)
		ok := len(name) >= 1 && len(name) <= 64
		for i, c := range []byte(name) {
			lowerOrDigit := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
			if !lowerOrDigit && (i == 0 || c != '.' && c != '_' && c != '-') {
				ok = false
			}
		}
		if (err == nil) != ok {
			t.Fatalf("ParseAdminName(%q) = %v, want accepted %v", name, err, ok)
		}
		if err != nil && len(err.Error()) > 1000 {
			t.Fatalf("ParseAdminName(%d bytes) error is %d bytes long", len(name), len(err.Error()))
		}
	})
}
