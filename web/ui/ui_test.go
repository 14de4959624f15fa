package ui

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/revocation"
	"github.com/fleetca/fleetca/store"
)

var t0 = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

// fakeSerial is the serial of dev-2's certificate that GetCertificate knows.
var fakeSerial, _ = new(big.Int).SetString("7f3a9c0e1d2b4a5968778695a4b3c2d1", 16)

type fakeAdmins map[string]store.Admin

func (f fakeAdmins) CheckAdmin(_ context.Context, tok string) (store.Admin, error) {
	if a, ok := f[tok]; ok {
		return a, nil
	}
	return store.Admin{}, fault.New(fault.Unauthorized, "the admin token is not this CA's", "")
}

// fakeRecords serves devices (in ID order), one certificate each and
// audit events, and remembers the last queries.
type fakeRecords struct {
	devices    []store.Device
	audit      []store.AuditEvent
	stats      store.Stats
	lastDevice store.DeviceQuery
	lastAudit  store.AuditQuery
	// auditNext, when set, is the cursor QueryAudit returns (a scan that
	// stopped early).
	auditNext uint64
}

func (f *fakeRecords) GetCertificate(_ context.Context, serial *big.Int) (store.Certificate, error) {
	if serial.Cmp(fakeSerial) == 0 {
		return store.Certificate{Serial: serial, DeviceID: "dev-2"}, nil
	}
	return store.Certificate{}, store.ErrNotFound
}

// QueryDevices serves SortID and SortIDDesc with a prefix and a status,
// cursor the last ID; other orders list in ID order, as the store
// documents their filters.
func (f *fakeRecords) QueryDevices(_ context.Context, q store.DeviceQuery) ([]store.Device, string, error) {
	f.lastDevice = q
	if q.Prefix != "" && q.Sort != "" && q.Sort != store.SortID && q.Sort != store.SortIDDesc {
		return nil, "", fmt.Errorf("query: %w", store.ErrBadQuery)
	}
	list := slices.Clone(f.devices)
	if q.Sort == store.SortIDDesc {
		slices.Reverse(list)
	}
	var out []store.Device
	for _, d := range list {
		if q.After != "" && (q.Sort == store.SortIDDesc && d.ID >= q.After || q.Sort != store.SortIDDesc && d.ID <= q.After) {
			continue
		}
		if !strings.HasPrefix(d.ID, q.Prefix) || q.Status != "" && d.Status != q.Status {
			continue
		}
		if !q.RenewByBefore.IsZero() && (d.RenewBy.IsZero() || d.RenewBy.After(q.RenewByBefore)) {
			continue
		}
		if len(out) == q.Limit {
			return out, out[len(out)-1].ID, nil
		}
		out = append(out, d)
	}
	return out, "", nil
}

func (f *fakeRecords) Stats(context.Context, time.Time) (store.Stats, error) { return f.stats, nil }

func (f *fakeRecords) QueryAudit(_ context.Context, q store.AuditQuery) ([]store.AuditEvent, uint64, error) {
	f.lastAudit = q
	var out []store.AuditEvent
	for i := len(f.audit) - 1; i >= 0; i-- {
		e := f.audit[i]
		if q.BeforeSeq != 0 && e.Seq >= q.BeforeSeq || q.DeviceID != "" && e.DeviceID != q.DeviceID || q.Actor != "" && e.Actor != q.Actor || q.Action != "" && e.Action != q.Action {
			continue
		}
		if len(out) == q.Limit {
			return out, out[len(out)-1].Seq, nil
		}
		out = append(out, e)
	}
	return out, f.auditNext, nil
}

func (f *fakeRecords) GetDevice(_ context.Context, id string) (store.Device, error) {
	for _, d := range f.devices {
		if d.ID == id {
			return d, nil
		}
	}
	return store.Device{}, store.ErrNotFound
}

func (f *fakeRecords) ListDevices(_ context.Context, p store.Page) ([]store.Device, error) {
	var out []store.Device
	for _, d := range f.devices {
		if d.ID > p.After && len(out) < p.Limit {
			out = append(out, d)
		}
	}
	return out, nil
}

func (f *fakeRecords) ListCertificates(_ context.Context, id string, _ store.Page) ([]store.Certificate, error) {
	return []store.Certificate{{Serial: big.NewInt(0xabc), DeviceID: id, NotBefore: t0, NotAfter: t0.Add(time.Hour)}}, nil
}

type fakeRevoker struct {
	revoked []revocation.RevokeRequest
	reset   []string
}

func (f *fakeRevoker) Revoke(_ context.Context, req revocation.RevokeRequest) ([]store.Revocation, error) {
	f.revoked = append(f.revoked, req)
	return nil, nil
}

func (f *fakeRevoker) CRL() *revocation.Published {
	return &revocation.Published{Number: big.NewInt(7), ThisUpdate: t0, NextUpdate: t0.Add(time.Hour)}
}

// fakeGuard refuses after limit failures.
type fakeGuard struct{ failures, limit int }

func (g *fakeGuard) Refuse(*http.Request) (time.Duration, error) {
	if g.failures >= g.limit {
		return time.Minute, nil
	}
	return 0, nil
}

func (g *fakeGuard) Fail(*http.Request, string) error { g.failures++; return nil }

type rig struct {
	t    testing.TB
	h    *Handler
	recs *fakeRecords
	rev  *fakeRevoker
	// rootSHA is the root's SHA-256 fingerprint, hex.
	rootSHA string
	g       *fakeGuard
	en      *fakeEnroll
}

func newRig(t *testing.T) *rig {
	recs := &fakeRecords{devices: []store.Device{
		{ID: "cam-1", Status: store.DeviceActive, NotAfter: t0.Add(90 * 24 * time.Hour), RenewBy: t0.Add(60 * 24 * time.Hour)},
		{ID: "dev-1", Status: store.DeviceActive, NotAfter: t0.Add(24 * time.Hour), RenewBy: t0.Add(-time.Hour)},
		{ID: "dev-2", Status: store.DeviceRevoked},
	}}
	r := newRigWith(t, recs, t0)
	r.recs = recs
	return r
}

// newRigWith builds the console over recs, with the clock at now.
func newRigWith(t testing.TB, recs Records, now time.Time) *rig {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "root"}, NotBefore: t0, NotAfter: t0.Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(der)
	sum := sha256.Sum256(der)
	inter := &x509.Certificate{NotAfter: t0.AddDate(1, 0, 0)}
	responder := &x509.Certificate{NotAfter: t0.Add(24 * time.Hour)}
	r := &rig{t: t, rev: &fakeRevoker{}, g: &fakeGuard{limit: 3}, rootSHA: hex.EncodeToString(sum[:])}
	admins := fakeAdmins{"viewer-token": {Name: "vera", Role: store.RoleViewer}, "operator-token": {Name: "otto", Role: store.RoleOperator},
		"owner-token": {Name: "olga", Role: store.RoleOwner}}
	r.en = &fakeEnroll{admins: admins}
	h, err := New(Deps{
		Admins: admins, Enroll: r.en,
		Records: recs, Revocation: r.rev, Guard: r.g, Root: func() *x509.Certificate { return root },
		Intermediate: func() *x509.Certificate { return inter }, Responder: func() *x509.Certificate { return responder }, Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	r.h = h
	return r
}

// browser is a client with a cookie jar.
type browser struct {
	r       *rig
	cookies map[string]string
}

type answer struct {
	code int
	hdr  http.Header
	body string
}

func (b *browser) do(method, path string, form url.Values) answer {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, "https://ca.test"+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range b.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	w := httptest.NewRecorder()
	b.r.h.ServeHTTP(w, req)
	res := w.Result()
	for _, c := range res.Cookies() {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
			continue
		}
		if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode {
			b.r.t.Errorf("%s %s: cookie %s is not HttpOnly, Secure, SameSite=Strict", method, path, c.Name)
		}
		b.cookies[c.Name] = c.Value
	}
	if got := res.Header.Get("Content-Security-Policy"); !strings.HasPrefix(got, "default-src 'self'") {
		b.r.t.Errorf("%s %s: Content-Security-Policy %q, want default-src 'self'", method, path, got)
	}
	return answer{res.StatusCode, res.Header, w.Body.String()}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t testing.TB, body string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf field in\n%s", body)
	}
	return m[1]
}

// login logs in with token and returns the browser and the session's CSRF token.
func (r *rig) login(token string) (*browser, string) {
	r.t.Helper()
	b := &browser{r: r, cookies: map[string]string{}}
	form := b.do("GET", "/ui/login", nil)
	a := b.do("POST", "/ui/login", url.Values{"csrf": {csrfOf(r.t, form.body)}, "token": {token}})
	if a.code != http.StatusSeeOther || b.cookies[sessionCookie] == "" {
		r.t.Fatalf("login: %d, cookies %v, want 303 and a session", a.code, b.cookies)
	}
	page := b.do("GET", "/ui/", nil)
	if page.code != http.StatusOK {
		r.t.Fatalf("GET /ui/: %d", page.code)
	}
	return b, csrfOf(r.t, page.body)
}

func TestPagesNeedASessionAndSendCSP(t *testing.T) {
	r := newRig(t)
	anon := &browser{r: r, cookies: map[string]string{}}
	for _, p := range []string{"/ui/", "/ui/devices", "/ui/devices/dev-1", "/ui/devices/dev-1/revoke?reason=keyCompromise"} {
		if a := anon.do("GET", p, nil); a.code != http.StatusSeeOther || a.hdr.Get("Location") != "/ui/login" {
			t.Errorf("GET %s without a session: %d to %q, want 303 to /ui/login", p, a.code, a.hdr.Get("Location"))
		}
	}
	if a := anon.do("GET", "/ui/static/style.css", nil); a.code != http.StatusOK || !strings.Contains(a.body, "body") {
		t.Errorf("GET style.css: %d", a.code)
	}
	b, _ := r.login("viewer-token")
	for _, p := range []string{"/ui/", "/ui/devices", "/ui/devices?q=dev", "/ui/devices/dev-1", "/ui/login"} {
		a := b.do("GET", p, nil)
		if a.code != http.StatusOK && !(p == "/ui/login" && a.code == http.StatusSeeOther) {
			t.Errorf("GET %s as a viewer: %d", p, a.code)
		}
		if inlineCode(a.body) {
			t.Errorf("GET %s: inline script, handler or style", p)
		}
	}
}

// scriptRE is a script element with what is between its tags.
var scriptRE = regexp.MustCompile(`(?s)<script([^>]*)>(.*?)</script>`)

// handlerRE is an inline event handler attribute.
var handlerRE = regexp.MustCompile(`(?i)\son[a-z]+\s*=`)

// inlineCode reports whether an HTML page holds inline style, an inline
// event handler, or a script that is not an empty element loading one of
// the console's own files.
func inlineCode(body string) bool {
	if strings.Contains(body, "style=") || strings.Contains(body, "<style") || handlerRE.MatchString(body) {
		return true
	}
	if strings.Count(body, "<script") != len(scriptRE.FindAllString(body, -1)) {
		return true
	}
	for _, m := range scriptRE.FindAllStringSubmatch(body, -1) {
		if m[2] != "" || !strings.Contains(m[1], ` src="/ui/static/`) {
			return true
		}
	}
	return false
}

func TestInlineCode(t *testing.T) {
	for _, tc := range []struct {
		html string
		want bool
	}{
		{`<script src="/ui/static/console.js" defer></script><p>x</p>`, false},
		{`<script>alert(1)</script>`, true},
		{`<script src="/ui/static/console.js">alert(1)</script>`, true},
		{`<script src="https://cdn.example/x.js"></script>`, true},
		{`<button onclick="x()">`, true},
		{`<p style="color:red">`, true},
		{`<style>p{}</style>`, true},
	} {
		if got := inlineCode(tc.html); got != tc.want {
			t.Errorf("inlineCode(%q) = %v, want %v", tc.html, got, tc.want)
		}
	}
}

func TestLogin(t *testing.T) {
	r := newRig(t)
	b := &browser{r: r, cookies: map[string]string{}}
	form := b.do("GET", "/ui/login", nil)
	csrf := csrfOf(t, form.body)
	if a := b.do("POST", "/ui/login", url.Values{"token": {"operator-token"}}); a.code != http.StatusForbidden {
		t.Errorf("login without its CSRF token: %d, want 403", a.code)
	}
	if r.g.failures != 0 {
		t.Errorf("a refused form counted %d login failures", r.g.failures)
	}
	for i := range 3 {
		a := b.do("POST", "/ui/login", url.Values{"csrf": {csrf}, "token": {"wrong"}})
		if a.code != http.StatusUnauthorized {
			t.Errorf("login %d with a wrong token: %d, want 401", i, a.code)
		}
		csrf = csrfOf(t, a.body)
		if strings.Contains(a.body, "wrong") {
			t.Errorf("the login page echoes the token")
		}
	}
	a := b.do("POST", "/ui/login", url.Values{"csrf": {csrf}, "token": {"operator-token"}})
	if a.code != http.StatusTooManyRequests || a.hdr.Get("Retry-After") == "" {
		t.Errorf("login after 3 failures, a right token: %d, Retry-After %q, want 429 with Retry-After", a.code, a.hdr.Get("Retry-After"))
	}
	if b.cookies[sessionCookie] != "" {
		t.Errorf("a rate-limited login got a session")
	}
}

func TestLogout(t *testing.T) {
	r := newRig(t)
	b, csrf := r.login("viewer-token")
	id := b.cookies[sessionCookie]
	if a := b.do("POST", "/ui/logout", url.Values{}); a.code != http.StatusForbidden {
		t.Errorf("logout without its CSRF token: %d, want 403", a.code)
	}
	if a := b.do("POST", "/ui/logout", url.Values{"csrf": {csrf}}); a.code != http.StatusSeeOther {
		t.Errorf("logout: %d, want 303", a.code)
	}
	b.cookies[sessionCookie] = id // an old cookie replayed
	if a := b.do("GET", "/ui/", nil); a.code != http.StatusSeeOther {
		t.Errorf("GET /ui/ with a logged-out session: %d, want 303 to login", a.code)
	}
}

func TestIdleSessionEnds(t *testing.T) {
	r := newRig(t)
	now := t0
	r.h.now = func() time.Time { return now }
	b, _ := r.login("viewer-token")
	now = now.Add(IdleTimeout + time.Second)
	if a := b.do("GET", "/ui/", nil); a.code != http.StatusSeeOther {
		t.Errorf("GET /ui/ after the idle timeout: %d, want 303 to login", a.code)
	}
}

func TestRevoke(t *testing.T) {
	r := newRig(t)
	op, csrf := r.login("operator-token")
	page := op.do("GET", "/ui/devices/dev-1", nil)
	if !strings.Contains(page.body, `data-test-revoke-device="dev-1"`) || !strings.Contains(page.body, `data-test-revoke-cert="abc"`) {
		t.Errorf("device page for an operator has no revoke buttons:\n%s", page.body)
	}
	confirm := op.do("GET", "/ui/devices/dev-1/revoke?reason=keyCompromise", nil)
	if confirm.code != http.StatusOK || !strings.Contains(confirm.body, "data-test-confirm-revoke") {
		t.Fatalf("confirmation page: %d\n%s", confirm.code, confirm.body)
	}
	if len(r.rev.revoked) != 0 {
		t.Fatal("the confirmation page revoked")
	}
	for _, tc := range []struct {
		name string
		form url.Values
		want int
	}{
		{"no CSRF token", url.Values{"reason": {"keyCompromise"}}, http.StatusForbidden},
		{"another CSRF token", url.Values{"reason": {"keyCompromise"}, "csrf": {"x" + csrf}}, http.StatusForbidden},
		{"unknown reason", url.Values{"reason": {"bored"}, "csrf": {csrf}}, http.StatusBadRequest},
		{"device", url.Values{"reason": {"keyCompromise"}, "csrf": {csrfOf(t, confirm.body)}}, http.StatusSeeOther},
		{"certificate", url.Values{"reason": {"superseded"}, "serial": {"abc"}, "csrf": {csrf}}, http.StatusSeeOther},
	} {
		if a := op.do("POST", "/ui/devices/dev-1/revoke", tc.form); a.code != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, a.code, tc.want)
		}
	}
	if len(r.rev.revoked) != 2 || r.rev.revoked[0].DeviceID != "dev-1" || r.rev.revoked[1].Serial.Int64() != 0xabc {
		t.Errorf("revoked %+v, want dev-1 then serial abc", r.rev.revoked)
	}

	viewer, vcsrf := r.login("viewer-token")
	if page := viewer.do("GET", "/ui/devices/dev-1", nil); strings.Contains(page.body, "data-test-revoke") {
		t.Errorf("a viewer's device page has a revoke control")
	}
	if a := viewer.do("GET", "/ui/devices/dev-1/revoke?reason=keyCompromise", nil); a.code != http.StatusForbidden {
		t.Errorf("a viewer's confirmation page: %d, want 403", a.code)
	}
	if a := viewer.do("POST", "/ui/devices/dev-1/revoke", url.Values{"reason": {"keyCompromise"}, "csrf": {vcsrf}}); a.code != http.StatusForbidden {
		t.Errorf("a viewer's revoke: %d, want 403", a.code)
	}
	if len(r.rev.revoked) != 2 {
		t.Errorf("the viewer revoked")
	}
}

func TestDeviceSearch(t *testing.T) {
	r := newRig(t)
	b, _ := r.login("viewer-token")
	a := b.do("GET", "/ui/devices?q=dev", nil)
	if !strings.Contains(a.body, `data-test-device-row="dev-1"`) || !strings.Contains(a.body, `data-test-device-row="dev-2"`) || strings.Contains(a.body, "cam-1") {
		t.Errorf("search dev: want dev-1 and dev-2, not cam-1:\n%s", a.body)
	}
	if a := b.do("GET", "/ui/devices?q=%3Cx", nil); a.code != http.StatusBadRequest {
		t.Errorf("search <x: %d, want 400", a.code)
	}
	if a := b.do("GET", "/ui/devices/nope", nil); a.code != http.StatusNotFound {
		t.Errorf("unknown device: %d, want 404", a.code)
	}
}

// FuzzRevokeForm: the revocation form's fields, from a browser, never
// panic, and what is accepted is a valid device, reason and serial.
func FuzzRevokeForm(f *testing.F) {
	f.Add("dev-1", "", "keyCompromise")
	f.Add("dev-1", "abc", "superseded")
	f.Add("dev 1", "-1", "removeFromCRL")
	f.Add("x", "0", "")
	f.Fuzz(func(t *testing.T, id, serial, reason string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.SetPathValue("id", id)
		d, n, _, err := revokeForm(r, url.Values{"serial": {serial}, "reason": {reason}}.Get)
		if err != nil {
			return
		}
		if d.Device != id || (serial == "") != (n == nil) || (n != nil && n.Sign() <= 0) {
			t.Errorf("revokeForm(%q, %q, %q) = %+v, %v", id, serial, reason, d, n)
		}
		if _, err := revocation.ParseReason(reason); err != nil {
			t.Errorf("accepted reason %q: %v", reason, err)
		}
	})
}
