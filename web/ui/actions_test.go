package ui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/enroll"
	"github.com/fleetca/fleetca/internal/adminctx"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

func (f *fakeRevoker) ResetDevice(ctx context.Context, id string) (store.Device, error) {
	if id != "dev-2" {
		return store.Device{}, fault.New(fault.Conflict, fmt.Sprintf("device %q is not revoked", id), "")
	}
	f.reset = append(f.reset, adminctx.Actor(ctx)+" "+id)
	return store.Device{ID: id, Status: store.DeviceActive}, nil
}

// fakeEnroll keeps tokens and admins in memory, refusing what enroll
// refuses in these tests; calls records "ACTOR ACTION TARGET".
type fakeEnroll struct {
	admins fakeAdmins
	tokens []store.Token
	calls  []string
	n      int
}

func (f *fakeEnroll) secret(prefix string) enroll.Secret {
	f.n++
	return enroll.Secret(fmt.Sprintf("%s-secret-%04d", prefix, f.n))
}

func (f *fakeEnroll) CreateToken(ctx context.Context, req enroll.TokenRequest) (enroll.Secret, store.Token, error) {
	if req.DeviceID == "bad id" {
		return "", store.Token{}, fault.WithField(fault.New(fault.Malformed, `the device ID "bad id" is not valid`, "give letters and digits"), "device_id")
	}
	s := f.secret("fct")
	uses := max(req.Uses, 1)
	t := store.Token{ID: fmt.Sprintf("%016x", f.n), DeviceID: req.DeviceID, DevicePattern: req.DevicePattern, Uses: uses, CreatedAt: t0, ExpiresAt: t0.Add(24 * time.Hour)}
	f.tokens = append(f.tokens, t)
	f.calls = append(f.calls, adminctx.Actor(ctx)+" token.create "+t.ID+" "+req.Format)
	return s, t, nil
}

func (f *fakeEnroll) ListTokens(_ context.Context, p store.Page) ([]store.Token, error) {
	var out []store.Token
	for _, t := range f.tokens {
		if t.ID > p.After && len(out) < p.Limit {
			out = append(out, t)
		}
	}
	return out, nil
}

func (f *fakeEnroll) RevokeToken(ctx context.Context, id string) (store.Token, error) {
	for i, t := range f.tokens {
		if t.ID == id {
			f.tokens[i].RevokedAt = t0
			f.calls = append(f.calls, adminctx.Actor(ctx)+" token.revoke "+id)
			return f.tokens[i], nil
		}
	}
	return store.Token{}, fault.New(fault.NotFound, "no token has ID "+id, "")
}

func (f *fakeEnroll) CreateAdmin(ctx context.Context, name, role string) (enroll.Secret, store.Admin, error) {
	if err := enroll.ParseAdminName(name); err != nil {
		return "", store.Admin{}, err
	}
	r, err := enroll.ParseRole(role)
	if err != nil {
		return "", store.Admin{}, err
	}
	s := f.secret("fca")
	a := store.Admin{Name: name, Role: r, CreatedAt: t0}
	f.admins[string(s)] = a
	f.calls = append(f.calls, adminctx.Actor(ctx)+" admin.create "+name)
	return s, a, nil
}

func (f *fakeEnroll) ListAdmins(context.Context) ([]store.Admin, error) {
	var out []store.Admin
	for _, a := range f.admins {
		out = append(out, a)
	}
	return out, nil
}

// find returns the token of the admin named name.
func (f *fakeEnroll) find(name string) (string, bool) {
	for tok, a := range f.admins {
		if a.Name == name {
			return tok, true
		}
	}
	return "", false
}

func (f *fakeEnroll) DisableAdmin(ctx context.Context, name string) (store.Admin, error) {
	tok, ok := f.find(name)
	if !ok {
		return store.Admin{}, fault.New(fault.NotFound, "no admin is named "+name, "")
	}
	owners := 0
	for _, a := range f.admins {
		if a.Role == store.RoleOwner {
			owners++
		}
	}
	a := f.admins[tok]
	if a.Role == store.RoleOwner && owners == 1 {
		return store.Admin{}, fault.New(fault.Conflict, name+" is the last active owner; disabling it would leave no one to manage admins", "create another admin with role owner first, then disable this one")
	}
	delete(f.admins, tok) // its token is refused from now on
	f.calls = append(f.calls, adminctx.Actor(ctx)+" admin.disable "+name)
	return a, nil
}

func (f *fakeEnroll) RotateAdmin(ctx context.Context, name string) (enroll.Secret, store.Admin, error) {
	tok, ok := f.find(name)
	if !ok {
		return "", store.Admin{}, fault.New(fault.NotFound, "no admin is named "+name, "")
	}
	a := f.admins[tok]
	delete(f.admins, tok)
	s := f.secret("fca")
	f.admins[string(s)] = a
	f.calls = append(f.calls, adminctx.Actor(ctx)+" admin.rotate "+name)
	return s, a, nil
}

func (f *fakeEnroll) RenewNow(ctx context.Context, id api.DeviceID) (time.Time, error) {
	f.calls = append(f.calls, adminctx.Actor(ctx)+" device.renew_now "+string(id))
	return t0, nil
}

func TestParseTokenForm(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		name  string
		form  url.Values
		want  enroll.TokenRequest
		field string // the refused field; "" for none
	}{
		{"device", url.Values{"device_id": {" dev-1 "}}, enroll.TokenRequest{DeviceID: "dev-1"}, ""},
		{"pattern", url.Values{"device_pattern": {"line3-*"}, "uses": {"500"}, "ttl": {"24h"}}, enroll.TokenRequest{DevicePattern: "line3-*", Uses: 500, TTL: &day}, ""},
		{"any device", url.Values{"device_pattern": {"*"}, "any_device": {"on"}}, enroll.TokenRequest{DevicePattern: "*", AnyDevice: true}, ""},
		{"step", url.Values{"device_id": {"dev-9"}, "format": {"step"}}, enroll.TokenRequest{DeviceID: "dev-9", Format: enroll.StepTokenFormat}, ""},
		{"native", url.Values{"device_id": {"dev-9"}, "format": {"native"}}, enroll.TokenRequest{DeviceID: "dev-9"}, ""},
		{"neither", url.Values{"ttl": {"1h"}}, enroll.TokenRequest{}, "device_id"},
		{"both", url.Values{"device_id": {"a"}, "device_pattern": {"a*"}}, enroll.TokenRequest{}, "device_id"},
		{"bad ttl", url.Values{"device_id": {"a"}, "ttl": {"tomorrow"}}, enroll.TokenRequest{}, "ttl"},
		{"zero uses", url.Values{"device_pattern": {"a*"}, "uses": {"0"}}, enroll.TokenRequest{}, "uses"},
		{"words for uses", url.Values{"device_pattern": {"a*"}, "uses": {"many"}}, enroll.TokenRequest{}, "uses"},
		{"unknown format", url.Values{"device_id": {"a"}, "format": {"jwt"}}, enroll.TokenRequest{}, "format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, got, err := parseTokenForm(tc.form.Get)
			if tc.field != "" {
				var fe *fault.Error
				if !errors.As(err, &fe) || fe.Kind != fault.Malformed || fe.Field != tc.field {
					t.Fatalf("error %v, want Malformed on field %s", err, tc.field)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.DeviceID != tc.want.DeviceID || got.DevicePattern != tc.want.DevicePattern || got.AnyDevice != tc.want.AnyDevice ||
				got.Uses != tc.want.Uses || got.Format != tc.want.Format || (got.TTL == nil) != (tc.want.TTL == nil) || (got.TTL != nil && *got.TTL != *tc.want.TTL) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func FuzzTokenForm(f *testing.F) {
	f.Add("dev-1", "", "24h", "1", "native", "")
	f.Add("", "line3-*", "8h", "5000", "step", "on")
	f.Add("a", "b", "-1s", "-3", "x", "off")
	f.Fuzz(func(t *testing.T, id, pattern, ttl, uses, format, any string) {
		form := url.Values{"device_id": {id}, "device_pattern": {pattern}, "ttl": {ttl}, "uses": {uses}, "format": {format}, "any_device": {any}}
		_, req, err := parseTokenForm(form.Get)
		if err != nil {
			if _, ok := fault.KindOf(err); !ok {
				t.Fatalf("error %v is not a fault", err)
			}
			return
		}
		if (req.DeviceID == "") == (req.DevicePattern == "") {
			t.Fatalf("accepted %+v: want exactly one of device ID and pattern", req)
		}
		if req.Uses < 0 || (req.Format != "" && req.Format != enroll.StepTokenFormat) {
			t.Fatalf("accepted %+v", req)
		}
	})
}

func TestMintTokenShownOnce(t *testing.T) {
	r := newRig(t)
	op, csrf := r.login("operator-token")
	page := op.do("GET", "/ui/tokens", nil)
	if page.code != http.StatusOK || !strings.Contains(page.body, "data-test-mint-submit") {
		t.Fatalf("tokens page for an operator: %d, no mint form\n%s", page.code, page.body)
	}
	a := op.do("POST", "/ui/tokens", url.Values{"csrf": {csrf}, "device_id": {"dev-7"}, "ttl": {"2h"}})
	if a.code != http.StatusCreated || a.hdr.Get("Location") != "" {
		t.Fatalf("mint: %d (Location %q), want 201 answered directly", a.code, a.hdr.Get("Location"))
	}
	if cc := a.hdr.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("mint: Cache-Control %q, want no-store", cc)
	}
	const secret = "fct-secret-0001"
	for _, want := range []string{
		`data-test-secret>` + secret + `<`,
		"fleetca enroll --ca https://ca.test \\\n    --fingerprint ",
		"--token &#39;" + secret + "&#39;",
		"openssl req -new -newkey ec",
		"curl -sS --cacert root.pem -H &#39;Authorization: Bearer " + secret + "&#39;",
		"https://ca.test/v1/enroll &gt; dev-7.json",
		`data-copy="secret-value"`,
	} {
		if !strings.Contains(a.body, want) {
			t.Errorf("minted page lacks %q:\n%s", want, a.body)
		}
	}
	if len(r.en.calls) != 1 || r.en.calls[0] != "admin:otto token.create 0000000000000001 " {
		t.Errorf("calls %q, want otto's token.create", r.en.calls)
	}
	list := op.do("GET", "/ui/tokens", nil)
	if strings.Contains(list.body, secret) || !strings.Contains(list.body, `<tr id="token-0000000000000001" data-test-token-row="0000000000000001">`) {
		t.Errorf("the list shows the token or lacks its row:\n%s", list.body)
	}

	step := op.do("POST", "/ui/tokens", url.Values{"csrf": {csrf}, "device_id": {"dev-9"}, "format": {"step"}})
	if !strings.Contains(step.body, "step ca certificate dev-9 dev-9.crt dev-9.key --token &#39;fct-secret-0002&#39;") || strings.Contains(step.body, "fleetca enroll") {
		t.Errorf("a step token's page: want the step command alone\n%s", step.body)
	}
	pat := op.do("POST", "/ui/tokens", url.Values{"csrf": {csrf}, "device_pattern": {"line3-*"}, "uses": {"50"}})
	if !strings.Contains(pat.body, "--device-id DEVICE-ID") || !strings.Contains(pat.body, "up to 50 new devices whose IDs match line3-*") {
		t.Errorf("a pattern token's page: want --device-id and its pattern\n%s", pat.body)
	}
}

func TestMintTokenRefusals(t *testing.T) {
	r := newRig(t)
	op, csrf := r.login("operator-token")
	for _, tc := range []struct {
		name string
		form url.Values
		code int
		want string
	}{
		{"no CSRF token", url.Values{"device_id": {"dev-1"}}, http.StatusForbidden, "CSRF"},
		{"neither ID nor pattern", url.Values{"csrf": {csrf}}, http.StatusBadRequest, "names neither a device ID nor a device pattern"},
		{"bad TTL", url.Values{"csrf": {csrf}, "device_id": {"dev-1"}, "ttl": {"soon"}}, http.StatusBadRequest, "the TTL &#34;soon&#34; is not a duration"},
		{"enroll's refusal", url.Values{"csrf": {csrf}, "device_id": {"bad id"}, "ttl": {"1h"}}, http.StatusBadRequest, "is not valid"},
	} {
		a := op.do("POST", "/ui/tokens", tc.form)
		if a.code != tc.code || !strings.Contains(a.body, tc.want) {
			t.Errorf("%s: %d, want %d with %q\n%s", tc.name, a.code, tc.code, tc.want, a.body)
		}
	}
	// A refused form keeps what was typed.
	if a := op.do("POST", "/ui/tokens", url.Values{"csrf": {csrf}, "device_id": {"bad id"}, "ttl": {"1h"}}); !strings.Contains(a.body, `value="1h"`) {
		t.Errorf("the refused form lost its TTL")
	}
	if len(r.en.tokens) != 0 {
		t.Errorf("minted %v", r.en.tokens)
	}

	viewer, vcsrf := r.login("viewer-token")
	list := viewer.do("GET", "/ui/tokens", nil)
	if list.code != http.StatusOK || strings.Contains(list.body, "data-test-mint") || strings.Contains(list.body, "data-test-revoke-token") {
		t.Errorf("a viewer's tokens page: %d, or it has mint or revoke controls", list.code)
	}
	if a := viewer.do("POST", "/ui/tokens", url.Values{"csrf": {vcsrf}, "device_id": {"dev-1"}}); a.code != http.StatusForbidden {
		t.Errorf("a viewer's mint: %d, want 403", a.code)
	}
}

func TestRevokeToken(t *testing.T) {
	r := newRig(t)
	op, csrf := r.login("operator-token")
	op.do("POST", "/ui/tokens", url.Values{"csrf": {csrf}, "device_id": {"dev-7"}})
	const id = "0000000000000001"
	if list := op.do("GET", "/ui/tokens", nil); !strings.Contains(list.body, `data-test-revoke-token="`+id+`"`) {
		t.Fatalf("no revoke link for %s:\n%s", id, list.body)
	}
	confirm := op.do("GET", "/ui/tokens/"+id+"/revoke", nil)
	if confirm.code != http.StatusOK || !strings.Contains(confirm.body, `data-test-confirm="revoke-token"`) || r.en.tokens[0].RevokedAt != (time.Time{}) {
		t.Fatalf("confirmation: %d, or it revoked\n%s", confirm.code, confirm.body)
	}
	viewer, vcsrf := r.login("viewer-token")
	if a := viewer.do("POST", "/ui/tokens/"+id+"/revoke", url.Values{"csrf": {vcsrf}}); a.code != http.StatusForbidden {
		t.Errorf("a viewer's token revocation: %d, want 403", a.code)
	}
	if a := op.do("POST", "/ui/tokens/"+id+"/revoke", nil); a.code != http.StatusForbidden {
		t.Errorf("without CSRF: %d, want 403", a.code)
	}
	if a := op.do("POST", "/ui/tokens/NOT-HEX/revoke", url.Values{"csrf": {csrf}}); a.code != http.StatusBadRequest {
		t.Errorf("a bad token ID: %d, want 400", a.code)
	}
	a := op.do("POST", "/ui/tokens/"+id+"/revoke", url.Values{"csrf": {csrf}})
	if a.code != http.StatusSeeOther || a.hdr.Get("Location") != "/ui/tokens?done=revoked" {
		t.Fatalf("revoke: %d to %q", a.code, a.hdr.Get("Location"))
	}
	list := op.do("GET", a.hdr.Get("Location"), nil)
	if !strings.Contains(list.body, "data-test-flash") || !strings.Contains(list.body, `data-test-token-state="`+id+`">revoked`) {
		t.Errorf("after the revocation:\n%s", list.body)
	}
	if got := r.en.calls[len(r.en.calls)-1]; got != "admin:otto token.revoke "+id {
		t.Errorf("last call %q, want otto's revocation", got)
	}
}

func TestAdminsPage(t *testing.T) {
	r := newRig(t)
	for _, tok := range []string{"viewer-token", "operator-token"} {
		b, csrf := r.login(tok)
		if page := b.do("GET", "/ui/", nil); strings.Contains(page.body, `data-test-nav="admins"`) {
			t.Errorf("%s: the nav offers the admins page", tok)
		}
		if a := b.do("GET", "/ui/admins", nil); a.code != http.StatusForbidden {
			t.Errorf("%s: GET /ui/admins %d, want 403", tok, a.code)
		}
		if a := b.do("POST", "/ui/admins", url.Values{"csrf": {csrf}, "name": {"eve"}, "role": {"owner"}}); a.code != http.StatusForbidden {
			t.Errorf("%s: create admin %d, want 403", tok, a.code)
		}
		if a := b.do("POST", "/ui/admins/olga/disable", url.Values{"csrf": {csrf}}); a.code != http.StatusForbidden {
			t.Errorf("%s: disable %d, want 403", tok, a.code)
		}
	}
	owner, csrf := r.login("owner-token")
	if page := owner.do("GET", "/ui/admins", nil); page.code != http.StatusOK || !strings.Contains(page.body, `<tr id="admin-vera" data-test-admin-row="vera">`) {
		t.Fatalf("admins page: %d\n%s", page.code, page.body)
	}
	for _, tc := range []struct {
		name string
		form url.Values
		code int
		want string
	}{
		{"no CSRF", url.Values{"name": {"alice"}, "role": {"viewer"}}, http.StatusForbidden, "CSRF"},
		{"bad name", url.Values{"csrf": {csrf}, "name": {"Alice!"}, "role": {"viewer"}}, http.StatusBadRequest, "is not valid"},
		{"bad role", url.Values{"csrf": {csrf}, "name": {"alice"}, "role": {"god"}}, http.StatusBadRequest, "the role &#34;god&#34; is not known"},
	} {
		if a := owner.do("POST", "/ui/admins", tc.form); a.code != tc.code || !strings.Contains(a.body, tc.want) {
			t.Errorf("%s: %d, want %d with %q\n%s", tc.name, a.code, tc.code, tc.want, a.body)
		}
	}
	a := owner.do("POST", "/ui/admins", url.Values{"csrf": {csrf}, "name": {"alice"}, "role": {"operator"}})
	if a.code != http.StatusCreated || a.hdr.Get("Cache-Control") != "no-store" || !strings.Contains(a.body, "data-test-secret>fca-secret-0001<") {
		t.Fatalf("create: %d\n%s", a.code, a.body)
	}
	if list := owner.do("GET", "/ui/admins", nil); strings.Contains(list.body, "fca-secret-0001") || !strings.Contains(list.body, `data-test-admin-row="alice"`) {
		t.Errorf("the list shows alice's token or lacks her row")
	}
	alice, _ := r.login("fca-secret-0001")
	if page := alice.do("GET", "/ui/tokens", nil); page.code != http.StatusOK || !strings.Contains(page.body, "data-test-mint-submit") {
		t.Errorf("alice, an operator, cannot mint: %d", page.code)
	}

	// The last active owner cannot disable itself.
	confirm := owner.do("GET", "/ui/admins/olga/disable", nil)
	if !strings.Contains(confirm.body, "This is you") {
		t.Errorf("the confirmation does not say it is you:\n%s", confirm.body)
	}
	last := owner.do("POST", "/ui/admins/olga/disable", url.Values{"csrf": {csrf}})
	if last.code != http.StatusConflict || !strings.Contains(last.body, "olga is the last active owner") || !strings.Contains(last.body, "data-test-error") {
		t.Errorf("disable the last owner: %d\n%s", last.code, last.body)
	}

	// Rotating alice's token ends her session and shows the new one once.
	rot := owner.do("POST", "/ui/admins/alice/rotate", url.Values{"csrf": {csrf}})
	if rot.code != http.StatusOK || !strings.Contains(rot.body, "data-test-secret>fca-secret-0002<") {
		t.Fatalf("rotate: %d\n%s", rot.code, rot.body)
	}
	if a := alice.do("GET", "/ui/tokens", nil); a.code != http.StatusSeeOther || a.hdr.Get("Location") != "/ui/login" {
		t.Errorf("alice after her rotation: %d to %q, want 303 to login", a.code, a.hdr.Get("Location"))
	}
	dis := owner.do("POST", "/ui/admins/vera/disable", url.Values{"csrf": {csrf}})
	if dis.code != http.StatusSeeOther || dis.hdr.Get("Location") != "/ui/admins?done=disabled&name=vera" {
		t.Errorf("disable vera: %d to %q", dis.code, dis.hdr.Get("Location"))
	}
	if a := owner.do("POST", "/ui/admins/vera/promote", url.Values{"csrf": {csrf}}); a.code != http.StatusNotFound {
		t.Errorf("an unknown operation: %d, want 404", a.code)
	}
	want := []string{"admin:olga admin.create alice", "admin:olga admin.rotate alice", "admin:olga admin.disable vera"}
	if fmt.Sprint(r.en.calls) != fmt.Sprint(want) {
		t.Errorf("calls %q, want %q", r.en.calls, want)
	}

	// Rotating one's own token ends one's session at the next request.
	self := owner.do("POST", "/ui/admins/olga/rotate", url.Values{"csrf": {csrf}})
	if self.code != http.StatusOK || !strings.Contains(self.body, "data-test-secret>fca-secret-0003<") {
		t.Fatalf("rotate oneself: %d\n%s", self.code, self.body)
	}
	if a := owner.do("GET", "/ui/admins", nil); a.code != http.StatusSeeOther || a.hdr.Get("Location") != "/ui/login" {
		t.Errorf("after rotating oneself: %d to %q, want 303 to login", a.code, a.hdr.Get("Location"))
	}
	r.login("fca-secret-0003")
}

func TestResetAndRenewNow(t *testing.T) {
	r := newRig(t)
	op, csrf := r.login("operator-token")
	if page := op.do("GET", "/ui/devices/dev-1", nil); !strings.Contains(page.body, `data-test-renew-now="dev-1"`) || strings.Contains(page.body, "data-test-reset") {
		t.Errorf("an active device's page: want renew-now and no reset\n%s", page.body)
	}
	if page := op.do("GET", "/ui/devices/dev-2", nil); !strings.Contains(page.body, `data-test-reset="dev-2"`) || strings.Contains(page.body, "data-test-renew-now") {
		t.Errorf("a revoked device's page: want reset and no renew-now\n%s", page.body)
	}
	if a := op.do("GET", "/ui/devices/dev-2/reset", nil); a.code != http.StatusOK || !strings.Contains(a.body, `data-test-confirm="reset"`) || len(r.rev.reset) != 0 {
		t.Errorf("reset confirmation: %d, or it reset", a.code)
	}
	if a := op.do("POST", "/ui/devices/dev-2/reset", nil); a.code != http.StatusForbidden {
		t.Errorf("reset without CSRF: %d, want 403", a.code)
	}
	if a := op.do("POST", "/ui/devices/dev-1/reset", url.Values{"csrf": {csrf}}); a.code != http.StatusConflict || !strings.Contains(a.body, "is not revoked") {
		t.Errorf("reset of an active device: %d, want 409\n%s", a.code, a.body)
	}
	a := op.do("POST", "/ui/devices/dev-2/reset", url.Values{"csrf": {csrf}})
	if a.code != http.StatusSeeOther || a.hdr.Get("Location") != "/ui/devices/dev-2?done=reset" {
		t.Fatalf("reset: %d to %q", a.code, a.hdr.Get("Location"))
	}
	if page := op.do("GET", a.hdr.Get("Location"), nil); !strings.Contains(page.body, "Reset: the device may enroll again") {
		t.Errorf("no flash after the reset")
	}
	a = op.do("POST", "/ui/devices/dev-1/renew-now", url.Values{"csrf": {csrf}})
	if a.code != http.StatusSeeOther || a.hdr.Get("Location") != "/ui/devices/dev-1?done=renew-now" {
		t.Fatalf("renew-now: %d to %q", a.code, a.hdr.Get("Location"))
	}
	if page := op.do("GET", a.hdr.Get("Location"), nil); !strings.Contains(page.body, "data-test-flash") {
		t.Errorf("no flash after renew-now")
	}
	if a := op.do("POST", "/ui/devices/bad%20id/renew-now", url.Values{"csrf": {csrf}}); a.code != http.StatusBadRequest {
		t.Errorf("renew-now of a bad ID: %d, want 400", a.code)
	}

	viewer, vcsrf := r.login("viewer-token")
	for _, p := range []string{"/ui/devices/dev-1", "/ui/devices/dev-2"} {
		if page := viewer.do("GET", p, nil); strings.Contains(page.body, "data-test-reset") || strings.Contains(page.body, "data-test-renew-now") {
			t.Errorf("a viewer's %s has reset or renew-now", p)
		}
	}
	for _, p := range []string{"/ui/devices/dev-2/reset", "/ui/devices/dev-1/renew-now"} {
		if a := viewer.do("POST", p, url.Values{"csrf": {vcsrf}}); a.code != http.StatusForbidden {
			t.Errorf("a viewer's POST %s: %d, want 403", p, a.code)
		}
	}
	if fmt.Sprint(r.rev.reset) != "[admin:otto dev-2]" || fmt.Sprint(r.en.calls) != "[admin:otto device.renew_now dev-1]" {
		t.Errorf("resets %q, calls %q: want otto's alone", r.rev.reset, r.en.calls)
	}
}

func TestConsoleScript(t *testing.T) {
	r := newRig(t)
	b, _ := r.login("viewer-token")
	page := b.do("GET", "/ui/", nil)
	if !strings.Contains(page.body, `<script src="/ui/static/console.js" defer></script>`) {
		t.Errorf("the layout does not load console.js")
	}
	owner, csrf := r.login("owner-token")
	for name, a := range map[string]answer{
		"tokens":  owner.do("GET", "/ui/tokens", nil),
		"admins":  owner.do("GET", "/ui/admins", nil),
		"ask":     owner.do("GET", "/ui/admins/vera/rotate", nil),
		"secret":  owner.do("POST", "/ui/tokens", url.Values{"csrf": {csrf}, "device_id": {"dev-3"}}),
		"refused": owner.do("POST", "/ui/tokens", url.Values{"csrf": {csrf}}),
	} {
		if inlineCode(a.body) {
			t.Errorf("the %s page has inline script, handler or style", name)
		}
	}
	js := b.do("GET", "/ui/static/console.js", nil)
	if js.code != http.StatusOK || !strings.Contains(js.body, "navigator.clipboard") || !strings.Contains(js.hdr.Get("Content-Type"), "javascript") {
		t.Errorf("console.js: %d %q", js.code, js.hdr.Get("Content-Type"))
	}
}
