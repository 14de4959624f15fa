package web

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/fleetca/fleetca/store"
)

// consolePost posts a form to the HTTPS handler from addr with cookies.
func consolePost(h http.Handler, addr, path string, form url.Values, cookies []*http.Cookie) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", "https://ca.test"+path, strings.NewReader(form.Encode()))
	req.RemoteAddr = addr
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

var consoleCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// TestConsoleLoginSharesTheAdminLimiter: wrong tokens posted to the
// console's login count against the same per-address budget as the admin
// API's, are audited as admin.auth_failed, and once over it both refuse
// with 429, the console a right token too.
func TestConsoleLoginSharesTheAdminLimiter(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPSHandler()
	const addr = "198.51.100.9:40000"
	get := httptest.NewRecorder()
	h.ServeHTTP(get, httptest.NewRequest("GET", "https://ca.test/ui/login", nil))
	if get.Code != http.StatusOK || !strings.HasPrefix(get.Header().Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("GET /ui/login: %d, CSP %q", get.Code, get.Header().Get("Content-Security-Policy"))
	}
	m := consoleCSRF.FindStringSubmatch(get.Body.String())
	if m == nil {
		t.Fatal("no CSRF token on the login page")
	}
	cookies := get.Result().Cookies()
	for i := range 10 { // Config.AuthFailureLimit's default
		if rec := consolePost(h, addr, "/ui/login", url.Values{"csrf": {m[1]}, "token": {"fca_admin_wrong"}}, cookies); rec.Code != http.StatusUnauthorized {
			t.Fatalf("wrong login %d: %d, want 401", i, rec.Code)
		}
	}
	if rows := f.authFailedRows(t)["remote:198.51.100.9"]; len(rows) != 1 {
		t.Errorf("admin.auth_failed rows for the address: %d, want 1 (the first failure at once)", len(rows))
	}
	if rec := doFrom(h, addr, f.admin); rec.Code != http.StatusTooManyRequests {
		t.Errorf("admin API after 10 failed console logins: %d, want 429", rec.Code)
	}
	rec := consolePost(h, addr, "/ui/login", url.Values{"csrf": {m[1]}, "token": {f.admin}}, cookies)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Errorf("console login with the right token over the limit: %d, Retry-After %q, want 429 with one", rec.Code, rec.Header().Get("Retry-After"))
	}
	if rec := consolePost(h, "198.51.100.10:1", "/ui/login", url.Values{"csrf": {m[1]}, "token": {f.admin}}, cookies); rec.Code != http.StatusSeeOther {
		t.Errorf("console login from another address: %d, want 303", rec.Code)
	}
}

// TestConsoleRevokeIsAuditedAsTheAdmin: a revocation through the console
// is the admin's in the audit log, and the device is revoked.
func TestConsoleRevokeIsAuditedAsTheAdmin(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPSHandler()
	block, _ := pem.Decode([]byte(csrPEM(t, "cam-9")))
	if _, err := f.svc.Enroll(t.Context(), f.token(t, "cam-9"), block.Bytes); err != nil {
		t.Fatal(err)
	}
	get := httptest.NewRecorder()
	h.ServeHTTP(get, httptest.NewRequest("GET", "https://ca.test/ui/login", nil))
	m := consoleCSRF.FindStringSubmatch(get.Body.String())
	login := consolePost(h, "192.0.2.1:1", "/ui/login", url.Values{"csrf": {m[1]}, "token": {f.admin}}, get.Result().Cookies())
	if login.Code != http.StatusSeeOther {
		t.Fatalf("login: %d, want 303", login.Code)
	}
	cookies := login.Result().Cookies()
	page := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "https://ca.test/ui/devices/cam-9/revoke?reason=keyCompromise", nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	h.ServeHTTP(page, req)
	m = consoleCSRF.FindStringSubmatch(page.Body.String())
	if page.Code != http.StatusOK || m == nil {
		t.Fatalf("confirmation page: %d\n%s", page.Code, page.Body)
	}
	if rec := consolePost(h, "192.0.2.1:1", "/ui/devices/cam-9/revoke", url.Values{"csrf": {m[1]}, "reason": {"keyCompromise"}}, cookies); rec.Code != http.StatusSeeOther {
		t.Fatalf("revoke: %d, want 303\n%s", rec.Code, rec.Body)
	}
	evs, err := f.store.ListAudit(t.Context(), 0, store.MaxPageLimit)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, ev := range evs {
		if ev.Action == "device.revoke" {
			found = true
			if ev.Actor != "admin:admin" || ev.DeviceID != "cam-9" {
				t.Errorf("device.revoke row: actor %q, device %q, want admin:admin and cam-9", ev.Actor, ev.DeviceID)
			}
		}
	}
	if !found {
		t.Errorf("no device.revoke audit row in %+v", evs)
	}
	if d, err := f.store.GetDevice(t.Context(), "cam-9"); err != nil || d.Status != store.DeviceRevoked {
		t.Errorf("cam-9 after the console's revocation: %+v, %v, want revoked", d, err)
	}
}
