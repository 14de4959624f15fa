// Package ui is fleetca's admin console, served by web at /ui/ on the
// HTTPS listener: server-rendered html/template pages from an embed.FS,
// plain forms with POST-redirect-GET, one embedded stylesheet, no
// JavaScript and nothing from another origin. Every control carries a
// data-test-* attribute for the browser test (cmd/fleetca/ui_e2e_test.go).
//
// # Pages
//
// Overview (/ui/: the device CRL's number, this and next update, the root's
// SHA-256 fingerprint), Devices (/ui/devices?q=PREFIX&after=CURSOR: device
// IDs starting with a prefix, 50 a page, on store.Page's cursor, with their
// status), Device (/ui/devices/{id}: its certificates newest first with
// serial, key fingerprint, validity, status and parent, the lineage) and
// the revocation of the device or of one certificate: a reason from
// revocation.ReasonNames, a confirmation page (GET
// /ui/devices/{id}/revoke), then POST to the same path.
//
// # Security
//
//   - Login (POST /ui/login) exchanges an admin token, checked by
//     enroll.Service.CheckAdmin, for a session: a random 256-bit ID in a
//     cookie that is HttpOnly, Secure and SameSite=Strict, kept in memory
//     only (a restart logs everyone out) and ended by logout or by
//     IdleTimeout (30 min) without a request. The session keeps the token,
//     never written anywhere, and checks it again on every request, so a
//     disabled or rotated admin's sessions end at once.
//   - Every POST needs the session's CSRF token in the form (403 without
//     it); the login form, before there is a session, a double-submit token
//     in a short-lived cookie.
//   - Failed logins count in web's auth-failure limiter (Guard), the admin
//     API's, per address: past the limit, 429 with Retry-After, unchecked.
//   - Every answer has Content-Security-Policy default-src 'self' (no
//     inline script or style), nosniff, no-referrer, frame denial and, but
//     for the stylesheet, Cache-Control no-store.
//   - Every page needs a role (enroll.RequireRole): viewer to read,
//     operator to revoke. A viewer sees no revoke control and is refused
//     403 if it asks for the confirmation or posts the revocation anyway.
//     Revocations go through revocation.Service with the admin in the
//     context (adminctx), so their audit rows name the admin.
//   - No token in a URL: the token travels in a POST body only, and web's
//     request log records route patterns.
//
// # What it must not do
//
// No business rules (those are enroll's and revocation's) and no store
// writes but through them; it does not import web.
package ui
