package main

// End-to-end test of named admins with roles (issue 15): `fleetca admin
// create|list|disable|rotate`, the roles as the CLI meets them, and the
// audit rows naming the admin.

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/fleetca/fleetca/api"
)

func TestAdminsEndToEnd(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	D := f.dataDir

	// The owner (init's token, DIR/admin-token) creates a viewer and an
	// operator; each token is printed alone on stdout.
	create := func(name, role string) string {
		r := f.mustFleetca("admin", "create", "--dir", D, "--name", name, "--role", role)
		tok, rest, _ := strings.Cut(r.stdout, "\n")
		if tok == "" || rest != "" || !strings.Contains(r.stderr, "admin "+name+" created, role "+role) {
			t.Fatalf("fleetca admin create %s: stdout %q, stderr %q, want the token alone on stdout and the details on stderr", name, r.stdout, r.stderr)
		}
		file := filepath.Join(f.work, name+".token")
		writeFile(t, file, tok+"\n")
		return file
	}
	viewer, operator := create("vera", "viewer"), create("otto", "operator")
	if r := f.fleetca("admin", "create", "--dir", D, "--name", "vera", "--role", "owner"); r.code != 1 || !oneLineError.MatchString(r.stderr) ||
		!strings.Contains(r.stderr, `"vera" exists`) {
		t.Errorf("fleetca admin create of vera again: exit %d, stderr %q, want 1 and one line saying it exists", r.code, r.stderr)
	}
	if r := f.fleetca("admin", "create", "--dir", D, "--name", "Vera", "--role", "viewer"); r.code != 1 || !strings.Contains(r.stderr, "use --name") {
		t.Errorf("fleetca admin create --name Vera: exit %d, stderr %q, want 1 naming --name", r.code, r.stderr)
	}

	tok := f.plainToken("--device-id", "dev-1")
	serial := f.fleetcaEnroll(tok, "dev-1")

	// The viewer reads, and is refused a revocation, with the role named.
	if r := f.mustFleetca("devices", "list", "--dir", D, "--admin-token-file", viewer); !strings.Contains(r.stdout, "dev-1") {
		t.Errorf("fleetca devices list as the viewer: stdout %q, want dev-1", r.stdout)
	}
	r := f.fleetca("revoke", "--dir", D, "--admin-token-file", viewer, "--serial", serial)
	if r.code != 1 || !oneLineError.MatchString(r.stderr) || !strings.Contains(r.stderr, "this needs the operator role; vera is a viewer") {
		t.Errorf("fleetca revoke as the viewer: exit %d, stderr %q, want 1 and \"this needs the operator role; vera is a viewer\"", r.code, r.stderr)
	}
	if r := f.fleetca("admin", "list", "--dir", D, "--admin-token-file", operator); r.code != 1 || !strings.Contains(r.stderr, "this needs the owner role; otto is an operator") {
		t.Errorf("fleetca admin list as the operator: exit %d, stderr %q, want 1 naming the owner role", r.code, r.stderr)
	}

	// The operator revokes; the audit rows name who did what.
	f.mustFleetca("revoke", "--dir", D, "--admin-token-file", operator, "--serial", serial)
	var audit struct {
		Events []struct{ Action, Actor, Serial string } `json:"events"`
	}
	f.adminGET("/v1/admin/audit?limit=1000", &audit)
	actors := map[string]string{}
	for _, e := range audit.Events {
		actors[e.Action] = e.Actor
	}
	for action, want := range map[string]string{"certificate.revoke": "admin:otto", "token.create": "admin:admin", "admin.create": "admin:admin"} {
		if actors[action] != want {
			t.Errorf("audit %s by %q, want %q (all: %v)", action, actors[action], want, actors)
		}
	}

	// admin list shows the three, as a table and as JSON.
	r = f.mustFleetca("admin", "list", "--dir", D)
	for _, want := range []string{"NAME", "admin", "owner", "otto", "operator", "vera", "viewer", "active"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("fleetca admin list stdout = %q, want %q in it", r.stdout, want)
		}
	}

	// Disabled: the viewer's token is refused as a wrong one (401).
	if r := f.mustFleetca("admin", "disable", "--dir", D, "vera"); r.stdout != "admin vera disabled\n" {
		t.Errorf("fleetca admin disable stdout = %q", r.stdout)
	}
	if r := f.fleetca("devices", "list", "--dir", D, "--admin-token-file", viewer); r.code != 1 || !strings.Contains(r.stderr, "not this CA's") {
		t.Errorf("fleetca devices list as the disabled viewer: exit %d, stderr %q, want 1 and the token refused", r.code, r.stderr)
	}
	if r := f.fleetca("admin", "disable", "--dir", D, "admin"); r.code != 1 || !strings.Contains(r.stderr, "last active owner") {
		t.Errorf("fleetca admin disable of the last owner: exit %d, stderr %q, want 1 and \"last active owner\"", r.code, r.stderr)
	}

	// Rotated: the old token is refused, the new one works.
	r = f.mustFleetca("admin", "rotate", "--dir", D, "otto")
	newTok, rest, _ := strings.Cut(r.stdout, "\n")
	if newTok == "" || rest != "" {
		t.Fatalf("fleetca admin rotate stdout = %q, want the new token alone", r.stdout)
	}
	if r := f.fleetca("devices", "list", "--dir", D, "--admin-token-file", operator); r.code != 1 || !strings.Contains(r.stderr, "not this CA's") {
		t.Errorf("fleetca devices list with the rotated-out token: exit %d, stderr %q, want 1", r.code, r.stderr)
	}
	writeFile(t, operator, newTok+"\n")
	f.mustFleetca("devices", "list", "--dir", D, "--admin-token-file", operator)

	r = f.mustFleetca("admin", "list", "--dir", D, "--json")
	var list []api.Admin
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 3 || list[2].Name != "vera" || list[2].DisabledAt == "" ||
		list[1].Name != "otto" || list[1].RotatedAt == "" {
		t.Errorf("fleetca admin list --json = %q (%v), want admin, otto (rotated), vera (disabled)", r.stdout, err)
	}
}

// TestAdminTokenUpgrade: a CA initialised before admins had names (its
// database has no admins, only the admin token's hash) is upgraded by
// serve: the token in DIR/admin-token is the owner admin's, once.
func TestAdminTokenUpgrade(t *testing.T) {
	t.Parallel()
	f := initFixture(t)
	// Make the database as an earlier fleetca left it: no admin buckets.
	db, err := bbolt.Open(filepath.Join(f.dataDir, "fleetca.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range []string{"admins", "admin_hashes"} {
			if err := tx.DeleteBucket([]byte(b)); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	for range 2 { // the second start finds the owner and changes nothing
		f.start()
		r := f.mustFleetca("admin", "list", "--dir", f.dataDir, "--json")
		var list []api.Admin
		if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || list[0].Name != "admin" || list[0].Role != "owner" {
			t.Fatalf("fleetca admin list after the upgrade = %q (%v), want the owner admin alone", r.stdout, err)
		}
		f.srv.stop(t)
	}
	f.start()
	var audit struct {
		Events []struct{ Action, Actor, Detail string } `json:"events"`
	}
	f.adminGET("/v1/admin/audit?limit=1000", &audit)
	upgrades := 0
	for _, e := range audit.Events {
		if e.Action == "admin.create" && strings.Contains(e.Detail, "upgraded") {
			upgrades++
		}
	}
	if upgrades != 1 {
		t.Errorf("upgrade audit rows = %d, want 1 (events %+v)", upgrades, audit.Events)
	}
}
