package main

// End-to-end test of the admin console (issue 15) in a real browser:
// Debian's chromium, driven headless by chromedp, against a real serve.
// Log in with the owner's token, see the fleet's counts on the overview,
// find an enrolled device by ID prefix and by serial, revoke it with a
// reason through the confirmation step, and then openssl ocsp says
// revoked and the audit log filtered by the device lists its enrollment
// and revocation; no page logs a console error or a CSP violation.
// With FLEETCA_UI_SHOTS set to a directory, a full-page screenshot of each
// page is saved there.

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/fleetca/fleetca/internal/testenv"
)

func TestConsoleInBrowser(t *testing.T) {
	t.Parallel()
	chromium := testenv.Need(t, "chromium")
	f := newFixture(t)
	serial := f.fleetcaEnroll(f.plainToken("--device-id", "lost-cam-7"), "lost-cam-7")
	f.fleetcaEnroll(f.plainToken("--device-id", "lost-cam-8"), "lost-cam-8")
	f.fleetcaEnroll(f.plainToken("--device-id", "door-1"), "door-1")
	f.wantOCSP(f.ocsp("lost-cam-7.crt"), "good", "")
	owner := strings.TrimSpace(readFile(t, filepath.Join(f.dataDir, "admin-token")))

	b := newUIBrowser(t, f, chromium, 900, 2*time.Minute)
	ctx, shot, step := b.ctx, b.shot, b.step
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }

	base := f.srv.httpsURL + "/ui/"
	step("open the login page", chromedp.Navigate(base), chromedp.WaitVisible(css("[data-test-login-token]")))
	shot("login")
	step("log in", chromedp.SendKeys(css("[data-test-login-token]"), owner), chromedp.Click(css("[data-test-login-submit]")),
		chromedp.WaitVisible(css("[data-test-root-fingerprint]")))
	fp, err := chromedp.Run(ctx, chromedp.Text(css("[data-test-root-fingerprint]")))
	if err != nil || !strings.EqualFold(strings.ReplaceAll(fp, ":", ""), strings.ReplaceAll(f.srv.fingerprint, ":", "")) {
		t.Errorf("overview root fingerprint %q (%v), want %s", fp, err, f.srv.fingerprint)
	}
	for stat, want := range map[string]string{"active": "3", "revoked": "0"} {
		n, err := chromedp.Run(ctx, chromedp.Text(css(`[data-test-stat="`+stat+`"] .n`)))
		if err != nil || n != want {
			t.Errorf("overview: %s devices %q (%v), want %s", stat, n, err, want)
		}
	}
	shot("overview")

	step("search for lost-", chromedp.Click(css("[data-test-nav=devices]")), chromedp.WaitVisible(css("[data-test-search-input]")),
		chromedp.SendKeys(css("[data-test-search-input]"), "lost-"), chromedp.Click(css("[data-test-search-submit]")),
		// The unfiltered list shows the device too: wait for the results,
		// which alone have a Clear link.
		chromedp.WaitVisible(css("[data-test-search-clear]")), chromedp.WaitVisible(css(`[data-test-device-row="lost-cam-7"]`)))
	rows, err := chromedp.Run(ctx, chromedp.OuterHTML(css("[data-test-devices]")))
	if err != nil || !strings.Contains(rows, "lost-cam-8") || strings.Contains(rows, "door-1") {
		t.Errorf("search lost-: table %q (%v), want lost-cam-7 and lost-cam-8 and not door-1", rows, err)
	}
	shot("devices")

	step("open lost-cam-7", chromedp.Click(css(`[data-test-device-link="lost-cam-7"]`)),
		chromedp.WaitVisible(css(`[data-test-cert-row="`+serial+`"]`)))
	shot("device")
	// The serial as openssl prints it: upper-case pairs with colons.
	colonSerial := serial
	if len(colonSerial)%2 == 1 {
		colonSerial = "0" + colonSerial
	}
	var pairs []string
	for i := 0; i < len(colonSerial); i += 2 {
		pairs = append(pairs, strings.ToUpper(colonSerial[i:i+2]))
	}
	step("search by serial", chromedp.Click(css("[data-test-nav=devices]")), chromedp.WaitVisible(css("[data-test-search-input]")),
		chromedp.SetValue(css("[data-test-search-input]"), strings.Join(pairs, ":")), chromedp.Click(css("[data-test-search-submit]")),
		chromedp.WaitVisible(css(`[data-test-revoke-device="lost-cam-7"]`)), chromedp.WaitVisible(css(`[data-test-cert-row="`+serial+`"]`)))
	step("revoke it: keyCompromise", chromedp.SetValue(css(`[data-test-revoke-reason="device"]`), "keyCompromise"),
		chromedp.Click(css(`[data-test-revoke-device="lost-cam-7"]`)), chromedp.WaitVisible(css("[data-test-confirm-revoke]")))
	shot("confirm")
	step("confirm", chromedp.Click(css("[data-test-confirm-revoke]")), chromedp.WaitVisible(css("[data-test-flash]")))
	status, err := chromedp.Run(ctx, chromedp.Text(css(`[data-test-cert-status="`+serial+`"]`)))
	if err != nil || status != "revoked (keyCompromise)" {
		t.Errorf("certificate status after the revocation: %q (%v), want revoked (keyCompromise)", status, err)
	}
	shot("device-revoked")
	f.wantOCSP(f.ocsp("lost-cam-7.crt"), "revoked", "keyCompromise")
	f.wantOCSP(f.ocsp("lost-cam-8.crt"), "good", "")

	step("audit log of lost-cam-7", chromedp.Click(css("[data-test-nav=audit]")), chromedp.WaitVisible(css("[data-test-audit-device]")),
		chromedp.SetValue(css("[data-test-audit-device]"), "lost-cam-7"), chromedp.Click(css("[data-test-audit-submit]")),
		chromedp.WaitVisible(css("[data-test-audit-clear]")), chromedp.WaitVisible(css("[data-test-audit]")))
	audit, err := chromedp.Run(ctx, chromedp.OuterHTML(css("[data-test-audit]")))
	if err != nil || !strings.Contains(audit, ">certificate.issue<") || !strings.Contains(audit, ">device.revoke<") || strings.Contains(audit, "lost-cam-8") {
		t.Errorf("audit log filtered by lost-cam-7: %q (%v), want its enrollment and revocation only", audit, err)
	}
	shot("audit")
	step("overview after the revocation", chromedp.Click(css("[data-test-nav=overview]")), chromedp.WaitVisible(css("[data-test-enrollment-chart]")))
	for stat, want := range map[string]string{"active": "2", "revoked": "1", "revoked-24h": "1"} {
		n, err := chromedp.Run(ctx, chromedp.Text(css(`[data-test-stat="`+stat+`"] .n`)))
		if err != nil || n != want {
			t.Errorf("overview after the revocation: %s %q (%v), want %s", stat, n, err, want)
		}
	}
	shot("overview-after")
	step("active devices", chromedp.Click(css("[data-test-nav=devices]")), chromedp.WaitVisible(css("[data-test-status-filter]")),
		chromedp.SetValue(css("[data-test-status-filter]"), "active"), chromedp.Click(css("[data-test-search-submit]")),
		chromedp.WaitVisible(css("[data-test-search-clear]")), chromedp.WaitVisible(css(`[data-test-device-row="door-1"]`)))
	if rows, err := chromedp.Run(ctx, chromedp.OuterHTML(css("[data-test-devices]"))); err != nil || strings.Contains(rows, "lost-cam-7") {
		t.Errorf("active devices: %q (%v), want no lost-cam-7", rows, err)
	}
	shot("devices-active")

	step("log out", chromedp.Click(css("[data-test-logout]")), chromedp.WaitVisible(css("[data-test-login-token]")))

	for _, m := range b.consoleMessages() {
		t.Errorf("browser console: %s", m)
	}
	if strings.Contains(f.srv.log.String(), owner) {
		t.Error("the server log holds the admin token")
	}
}
