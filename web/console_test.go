package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
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
