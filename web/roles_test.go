package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/store"
)

// adminTokens makes one admin of each role on f and returns their tokens
// by role; the owner is f's own admin.
func adminTokens(t *testing.T, f *fixture) map[store.Role]string {
	t.Helper()
	toks := map[store.Role]string{store.RoleOwner: f.admin}
	for _, r := range []store.Role{store.RoleViewer, store.RoleOperator} {
		s, _, err := f.svc.CreateAdmin(t.Context(), "an-"+string(r), string(r))
		if err != nil {
			t.Fatal(err)
		}
		toks[r] = string(s)
	}
	return toks
}

// TestAdminRouteRoles: every admin API route has a least role in
// adminRoutes, and every role is admitted to or refused each route as the
// table says, the refusal a 403 naming the role missing.
func TestAdminRouteRoles(t *testing.T) {
	f := newFixture(t)
	toks := adminTokens(t, f)
	params := strings.NewReplacer(":id", "dev-none", ":serial", "1f", ":name", "nobody")
	routes := 0
	for _, r := range f.srv.https.Routes() {
		if !strings.HasPrefix(r.Path, api.AdminPrefix) || r.Method == "echo_route_not_found" {
			continue
		}
		routes++
		min, ok := roleOf(r.Method, r.Path)
		if !ok {
			t.Errorf("admin route %s %s has no role in adminRoutes", r.Method, r.Path)
			continue
		}
		for _, role := range []store.Role{store.RoleViewer, store.RoleOperator, store.RoleOwner} {
			t.Run(fmt.Sprintf("%s %s as %s", r.Method, r.Path, role), func(t *testing.T) {
				// No body: an admitted request is refused by its handler
				// (400, 404), so the table is tested without changing
				// anything.
				rec := do(f.srv.HTTPSHandler(), r.Method, params.Replace(r.Path), toks[role], "", "")
				if role.Rank() >= min.Rank() {
					if rec.Code == http.StatusForbidden || rec.Code == http.StatusUnauthorized {
						t.Errorf("status = %d, want the %s admitted (route needs %s): %s", rec.Code, role, min, rec.Body)
					}
					return
				}
				if rec.Code != http.StatusForbidden {
					t.Fatalf("status = %d, want 403 (route needs %s): %s", rec.Code, min, rec.Body)
				}
				p := problemOf(t, rec)
				want := fmt.Sprintf("this needs the %s role; an-%s is a", min, role)
				if !strings.HasPrefix(p.Detail, want) || !strings.Contains(p.Hint, string(min)) {
					t.Errorf("problem = %q (hint %q), want detail starting %q and a hint naming %s", p.Detail, p.Hint, want, min)
				}
			})
		}
	}
	if routes != len(adminRoutes) {
		t.Errorf("routed admin routes = %d, adminRoutes has %d", routes, len(adminRoutes))
	}
}

// TestUnknownAdminRoute: a path or method no admin route takes is 404 for
// every role, as it was before roles (not 500 for want of a role).
func TestUnknownAdminRoute(t *testing.T) {
	f := newFixture(t)
	for role, tok := range adminTokens(t, f) {
		for _, req := range [][2]string{{"GET", "/v1/admin/nope"}, {"DELETE", "/v1/admin/tokens"}, {"GET", "/v1/admin"}, {"GET", "/v1/admin/"}} {
			rec := do(f.srv.HTTPSHandler(), req[0], req[1], tok, "", "")
			if rec.Code != http.StatusNotFound {
				t.Errorf("%s %s as %s = %d, want 404: %s", req[0], req[1], role, rec.Code, rec.Body)
			}
		}
	}
}

// TestRoleOf: a path that is not an admin route, or a method not in the
// table, has no role (requireRole refuses it).
func TestRoleOf(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		want         store.Role
		ok           bool
	}{
		{"GET", "/v1/admin/devices", store.RoleViewer, true},
		{"POST", "/v1/admin/devices/:id/revoke", store.RoleOperator, true},
		{"POST", "/v1/admin/admins", store.RoleOwner, true},
		{"DELETE", "/v1/admin/devices", "", false},
		{"GET", "/v1/admin/unknown", "", false},
		{"GET", "/devices", "", false},
	} {
		got, ok := roleOf(tc.method, tc.path)
		if got != tc.want || ok != tc.ok {
			t.Errorf("roleOf(%s %s) = %q, %v, want %q, %v", tc.method, tc.path, got, ok, tc.want, tc.ok)
		}
	}
}

// TestAdmins: an owner creates, lists, rotates and disables admins over
// the admin API; a disabled admin's token and a rotated-out token are 401;
// the last owner cannot be disabled (409); audit rows name the admin.
func TestAdmins(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPSHandler()
	rec := do(h, "POST", "/v1/admin/admins", f.admin, "application/json", `{"name":"alice","role":"operator"}`)
	if rec.Code != http.StatusCreated || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("create = %d %s", rec.Code, rec.Body)
	}
	var alice api.Admin
	if err := json.Unmarshal(rec.Body.Bytes(), &alice); err != nil || alice.Token == "" || alice.Role != "operator" || alice.Name != "alice" {
		t.Fatalf("create answer = %+v, %v", alice, err)
	}
	for _, tc := range []struct{ body, want string }{
		{`{"name":"alice","role":"viewer"}`, "409"},
		{`{"name":"Alice","role":"viewer"}`, "400"},
		{`{"name":"bob","role":"boss"}`, "400"},
	} {
		if rec := do(h, "POST", "/v1/admin/admins", f.admin, "application/json", tc.body); fmt.Sprint(rec.Code) != tc.want {
			t.Errorf("create %s = %d, want %s: %s", tc.body, rec.Code, tc.want, rec.Body)
		}
	}
	// alice (operator) mints a token: the audit row names her.
	if rec := do(h, "POST", "/v1/admin/tokens", alice.Token, "application/json", `{"device_id":"dev-1"}`); rec.Code != http.StatusCreated {
		t.Fatalf("token by alice = %d %s", rec.Code, rec.Body)
	}
	evs, err := f.store.ListAudit(t.Context(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	actors := map[string]string{}
	for _, ev := range evs {
		actors[ev.Action] = ev.Actor
	}
	if actors["token.create"] != "admin:alice" || actors["admin.create"] != "admin:admin" {
		t.Errorf("actors by action = %v, want token.create by admin:alice, admin.create by admin:admin", actors)
	}
	// Rotate: the old token is refused, the new one works.
	rec = do(h, "POST", "/v1/admin/admins/alice/rotate", f.admin, "", "")
	var rotated api.Admin
	if err := json.Unmarshal(rec.Body.Bytes(), &rotated); rec.Code != http.StatusOK || err != nil || rotated.Token == "" || rotated.RotatedAt == "" {
		t.Fatalf("rotate = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "GET", "/v1/admin/devices", alice.Token, "", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("old token after rotate = %d, want 401", rec.Code)
	}
	if rec := do(h, "GET", "/v1/admin/devices", rotated.Token, "", ""); rec.Code != http.StatusOK {
		t.Errorf("new token after rotate = %d, want 200: %s", rec.Code, rec.Body)
	}
	// Disable: the token is refused like a wrong one.
	if rec := do(h, "POST", "/v1/admin/admins/alice/disable", f.admin, "", ""); rec.Code != http.StatusOK {
		t.Fatalf("disable = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "GET", "/v1/admin/devices", rotated.Token, "", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("disabled admin's token = %d, want 401", rec.Code)
	}
	for _, tc := range []struct{ path, want string }{
		{"/v1/admin/admins/alice/disable", "409"},
		{"/v1/admin/admins/alice/rotate", "409"},
		{"/v1/admin/admins/nobody/disable", "404"},
		{"/v1/admin/admins/Bad%20Name/rotate", "400"},
	} {
		if rec := do(h, "POST", tc.path, f.admin, "", ""); fmt.Sprint(rec.Code) != tc.want {
			t.Errorf("POST %s = %d, want %s: %s", tc.path, rec.Code, tc.want, rec.Body)
		}
	}
	// The last active owner stays.
	rec = do(h, "POST", "/v1/admin/admins/admin/disable", f.admin, "", "")
	if rec.Code != http.StatusConflict {
		t.Fatalf("disable the last owner = %d, want 409: %s", rec.Code, rec.Body)
	}
	if p := problemOf(t, rec); !strings.Contains(p.Detail, "last active owner") || p.Hint == "" {
		t.Errorf("last owner problem = %+v", p)
	}
	rec = do(h, "GET", "/v1/admin/admins", f.admin, "", "")
	var list api.AdminList
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || len(list.Admins) != 2 ||
		list.Admins[0].Name != "admin" || list.Admins[1].Name != "alice" || list.Admins[1].DisabledAt == "" {
		t.Errorf("list = %d %s", rec.Code, rec.Body)
	}
}
