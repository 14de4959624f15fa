package main

// End-to-end test of the console's action pages (issue 15) in a real
// browser, as ui_e2e_test.go: the owner mints a device token in the tokens
// page, the device enrolls with the page's openssl and curl commands run
// as pasted, the copy button copies; the owner revokes, resets and asks a
// device to renew now; creates a viewer in the admins page, and the viewer
// sees no mint, revoke, reset or renew-now control and is refused a POST.

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/chromedp"

	"github.com/fleetca/fleetca/enroll"
	"github.com/fleetca/fleetca/internal/testenv"
)

func TestConsoleActionsInBrowser(t *testing.T) {
	t.Parallel()
	chromium := testenv.Need(t, "chromium")
	testenv.Need(t, "openssl")
	testenv.Need(t, "curl")
	f := newFixture(t)
	owner := strings.TrimSpace(readFile(t, filepath.Join(f.dataDir, "admin-token")))

	b := newUIBrowser(t, f, chromium, 768, 3*time.Minute)
	ctx, step, shot, text := b.ctx, b.step, b.shot, b.text
	// Let the page use the clipboard, as a user's click would.
	grant := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		for _, name := range []string{"clipboard-read", "clipboard-write"} {
			if _, err := cdp.Call(ctx, tg, browser.SetPermission, browser.SetPermissionParams{
				Permission: &browser.PermissionDescriptor{Name: name}, Setting: browser.PermissionSettingGranted}); err != nil {
				return err
			}
		}
		return nil
	})
	if err := chromedp.Do(ctx, grant); err != nil {
		t.Fatalf("grant the clipboard: %v", err)
	}

	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	base := f.srv.httpsURL + "/ui/"
	login := func(token string) {
		t.Helper()
		step("log in", chromedp.Navigate(base+"login"), chromedp.WaitVisible(css("[data-test-login-token]")),
			chromedp.SendKeys(css("[data-test-login-token]"), token), chromedp.Click(css("[data-test-login-submit]")),
			chromedp.WaitVisible(css("[data-test-logout]")))
	}

	login(owner)
	step("open the tokens page", chromedp.Click(css(`[data-test-nav="tokens"]`)), chromedp.WaitVisible(css("[data-test-mint-submit]")))
	shot("tokens-empty")
	step("mint a token for cam-1", chromedp.SendKeys(css("[data-test-mint-device-id]"), "cam-1"),
		chromedp.SendKeys(css("[data-test-mint-ttl]"), "2h"), chromedp.Click(css("[data-test-mint-submit]")),
		chromedp.WaitVisible(css("[data-test-secret]")))
	shot("token-minted")
	secret := text("[data-test-secret]")
	if !strings.HasPrefix(secret, enroll.EnrollTokenPrefix) {
		t.Errorf("the minted token %q is not a fleetca token", secret)
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil || strings.Contains(loc, secret) || !strings.HasSuffix(loc, "/ui/tokens") {
		t.Errorf("the minted page's URL %q (%v): want /ui/tokens, without the token", loc, err)
	}

	// The copy button copies the token and says so.
	step("copy the token", chromedp.WaitVisible(css(`[data-test-copy="secret"]`)), chromedp.Click(css(`[data-test-copy="secret"]`)))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector('[data-test-copy="secret"]').textContent === "Copied"`)); err != nil {
		t.Errorf("the copy button never said Copied: %v (it says %q)", err, text(`[data-test-copy="secret"]`))
	}
	clip, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAsValue, chromedp.EvalAwaitPromise))
	if err != nil || clip != secret {
		t.Errorf("the clipboard holds %q (%v), want the token", clip, err)
	}

	// Enroll with the page's openssl and curl commands, as pasted, in the
	// work directory, where root.pem is the CA's root.
	writeFile(t, filepath.Join(f.work, "root.pem"), readFile(t, f.root))
	cmds := text(`[data-test-command="cmd-curl"]`)
	if r := f.tool("sh", "-c", cmds); r.code != 0 {
		t.Fatalf("the page's commands:\n%s\nexit %d; stderr: %s", cmds, r.code, r.stderr)
	}
	var enrolled enrollment
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(f.work, "cam-1.json"))), &enrolled); err != nil || enrolled.DeviceID != "cam-1" || enrolled.Certificate == "" {
		t.Fatalf("cam-1.json: %+v (%v), want cam-1's certificate", enrolled, err)
	}
	if fc := text(`[data-test-command="cmd-fleetca"]`); !strings.Contains(fc, "fleetca enroll --ca "+f.srv.httpsURL+" ") ||
		!strings.Contains(fc, "--fingerprint "+strings.ToLower(strings.ReplaceAll(f.srv.fingerprint, ":", ""))+" ") {
		t.Errorf("the fleetca command %q does not name this CA and its fingerprint", fc)
	}

	step("back to the list", chromedp.Click(css("[data-test-secret-back]")), chromedp.WaitVisible(css("[data-test-tokens]")))
	if html, _ := chromedp.Run(ctx, chromedp.OuterHTML(css("html"))); strings.Contains(html, secret) {
		t.Error("the tokens list shows the token")
	}
	shot("tokens")

	// A second token, revoked through its confirmation.
	step("mint a pattern token", chromedp.SendKeys(css("[data-test-mint-pattern]"), "line3-*"), chromedp.SendKeys(css("[data-test-mint-uses]"), "50"),
		chromedp.Click(css("[data-test-mint-submit]")), chromedp.WaitVisible(css("[data-test-secret]")))
	patternID := strings.TrimPrefix(text("main h1"), "Token ")
	step("back to the list", chromedp.Click(css("[data-test-secret-back]")), chromedp.WaitVisible(css("[data-test-tokens]")))
	step("revoke it", chromedp.Click(css(`[data-test-revoke-token="`+patternID+`"]`)), chromedp.WaitVisible(css(`[data-test-confirm="revoke-token"]`)))
	shot("token-revoke-confirm")
	step("confirm", chromedp.Click(css(`[data-test-confirm="revoke-token"]`)), chromedp.WaitVisible(css("[data-test-flash]")))
	if got := text(`[data-test-token-state="` + patternID + `"]`); got != "revoked" {
		t.Errorf("the pattern token's state %q, want revoked", got)
	}
	shot("tokens-revoked")

	// Renew now, then revoke and reset, on the device page.
	step("open cam-1", chromedp.Navigate(base+"devices/cam-1"), chromedp.WaitVisible(css(`[data-test-renew-now="cam-1"]`)))
	step("renew now", chromedp.Click(css(`[data-test-renew-now="cam-1"]`)), chromedp.WaitVisible(css("[data-test-flash]")))
	shot("device-renew-now")
	ri := f.curl(f.srv.httpsURL + "/v1/renewal-info/" + strings.ToLower(enrolled.Serial))
	if ri.status != http.StatusOK {
		t.Errorf("renewal-info after renew-now: %d %s", ri.status, ri.body)
	}
	step("revoke cam-1", chromedp.Click(css(`[data-test-revoke-device="cam-1"]`)), chromedp.WaitVisible(css("[data-test-confirm-revoke]")),
		chromedp.Click(css("[data-test-confirm-revoke]")), chromedp.WaitVisible(css(`[data-test-reset="cam-1"]`)))
	step("reset cam-1", chromedp.Click(css(`[data-test-reset="cam-1"]`)), chromedp.WaitVisible(css(`[data-test-confirm="reset"]`)))
	shot("device-reset-confirm")
	step("confirm the reset", chromedp.Click(css(`[data-test-confirm="reset"]`)), chromedp.WaitVisible(css("[data-test-flash]")))
	if got := text(`[data-test-device-status="cam-1"]`); got != "active" {
		t.Errorf("cam-1 after the reset: %q, want active", got)
	}
	shot("device-reset")

	// A viewer, created in the admins page.
	step("open the admins page", chromedp.Click(css(`[data-test-nav="admins"]`)), chromedp.WaitVisible(css("[data-test-create-admin]")))
	step("create vera", chromedp.SendKeys(css("[data-test-admin-name]"), "vera"), chromedp.SetValue(css("[data-test-admin-role]"), "viewer"),
		chromedp.Click(css("[data-test-create-admin]")), chromedp.WaitVisible(css("[data-test-secret]")))
	shot("admin-created")
	vera := text("[data-test-secret]")
	step("back to the admins", chromedp.Click(css("[data-test-secret-back]")), chromedp.WaitVisible(css(`[data-test-admin-row="vera"]`)))
	shot("admins")
	step("disable the last owner?", chromedp.Click(css(`[data-test-disable-admin="admin"]`)), chromedp.WaitVisible(css(`[data-test-confirm="disable-admin"]`)),
		chromedp.Click(css(`[data-test-confirm="disable-admin"]`)), chromedp.WaitVisible(css("[data-test-error]")))
	if got := text("[data-test-error]"); !strings.Contains(got, "last active owner") {
		t.Errorf("disabling the last owner: %q, want the last-owner refusal", got)
	}
	shot("admins-last-owner")
	step("log out", chromedp.Click(css("[data-test-logout]")), chromedp.WaitVisible(css("[data-test-login-token]")))

	login(vera)
	for _, p := range []string{"tokens", "devices/cam-1"} {
		step("open "+p, chromedp.Navigate(base+p), chromedp.WaitVisible(css("main h1")))
		html, err := chromedp.Run(ctx, chromedp.OuterHTML(css("html")))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []string{"data-test-mint", "data-test-revoke", "data-test-reset", "data-test-renew-now", `data-test-nav="admins"`} {
			if strings.Contains(html, c) {
				t.Errorf("the viewer's %s has %s", p, c)
			}
		}
	}
	shot("viewer-device")
	// The viewer posts the renew-now form anyway, with its own session
	// and CSRF token: refused.
	status, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`(async () => {
		const csrf = document.querySelector('input[name="csrf"]').value;
		const r = await fetch('/ui/devices/cam-1/renew-now', {method: 'POST', body: new URLSearchParams({csrf: csrf})});
		return r.status;
	})()`, chromedp.EvalAsValue, chromedp.EvalAwaitPromise))
	if err != nil || status != http.StatusForbidden {
		t.Errorf("the viewer's renew-now: %v (%v), want 403", status, err)
	}
	step("the admins page", chromedp.Navigate(base+"admins"), chromedp.WaitVisible(css("[data-test-error]")))
	if got := text("[data-test-error]"); !strings.Contains(got, "owner role") {
		t.Errorf("the viewer's admins page: %q, want the missing owner role", got)
	}

	// Each action's audit row is the admin API's, naming the admin.
	var audit struct {
		Events []struct {
			Action   string `json:"action"`
			Actor    string `json:"actor"`
			DeviceID string `json:"device_id"`
		} `json:"events"`
	}
	f.adminGET("/v1/admin/audit?limit=1000", &audit)
	got := map[string]string{}
	for _, e := range audit.Events {
		got[e.Action+" "+e.DeviceID] = e.Actor
	}
	for _, a := range []string{"token.create ", "token.revoke ", "device.renew_now cam-1", "device.revoke cam-1", "device.reset cam-1", "admin.create "} {
		if got[a] != "admin:admin" {
			t.Errorf("audit row %q: actor %q, want admin:admin (rows %v)", a, got[a], got)
		}
	}

	// The browser logs each refusal the test asked for: the last owner's
	// disabling (409), the viewer's renew-now and admins page (403).
	expected := map[string]int{"status of 409": 1, "status of 403": 2}
	for _, m := range b.consoleMessages() {
		if n, ok := refusal(m, expected); ok && n > 0 {
			continue
		}
		t.Errorf("browser console: %s", m)
	}
	for _, s := range []string{owner, secret, vera} {
		if strings.Contains(f.srv.log.String(), s) {
			t.Error("the server log holds a token")
		}
	}
}

// refusal reports whether m is a "Failed to load resource" message of one
// of the expected statuses, and counts it off; n is what was left of it.
func refusal(m string, expected map[string]int) (int, bool) {
	if !strings.Contains(m, "Failed to load resource") {
		return 0, false
	}
	for k, n := range expected {
		if strings.Contains(m, k) {
			expected[k] = n - 1
			return n, true
		}
	}
	return 0, false
}
