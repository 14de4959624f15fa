// Package ui is fleetca's admin console, served by web at /ui/ on the
// HTTPS listener: server-rendered html/template pages from an embed.FS,
// plain forms with POST-redirect-GET, one embedded stylesheet, one small
// script of its own (console.js: copy buttons, which stay hidden without
// it) and nothing from another origin; every action works without
// JavaScript. Every control carries a
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
// /ui/devices/{id}/revoke), then POST to the same path. On the device page
// an operator also resets a revoked device (GET /ui/devices/{id}/reset
// confirms, POST resets; revocation.Service.ResetDevice) and asks an active
// one to renew now (POST /ui/devices/{id}/renew-now; enroll's RenewNow).
//
// Tokens (/ui/tokens?after=CURSOR: every token, 50 a page, by ID, with its
// device or pattern, uses spent, expiry and state): an operator mints a
// device or pattern token (TTL, uses, format fleetca or step) with POST
// /ui/tokens, whose answer is the token's only showing: answered directly
// (201, no redirect, so the token is never in a URL), Cache-Control
// no-store, never logged, with copy buttons and the commands to paste
// (fleetca enroll with the CA's URL as the browser reached it and the
// root's fingerprint; openssl req and curl; or step ca certificate for a
// step token). Revoking a token has a confirmation page
// (/ui/tokens/{id}/revoke).
//
// Admins (/ui/admins, owners only; no nav entry for the others): create
// (name, role; the token shown once as above), disable and rotate
// (/ui/admins/{name}/disable|rotate, each confirmed; a rotation shows the
// new token once). enroll refuses to disable the last active owner; the
// page shows its message (409). Disabling or rotating an admin ends its
// sessions at their next request, one's own included.
//
// A form the service refuses (a bad TTL, device ID, name or role) comes
// back with its values and the refusal's detail and hint, 400 (409 for a
// conflict).
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
//     operator to revoke, reset, renew-now and mint or revoke tokens,
//     owner for the admins page. A viewer sees no revoke control and is refused
//     403 if it asks for the confirmation or posts the revocation anyway.
//     Every action goes through the enroll or revocation method the
//     admin API calls, with the admin in the context (adminctx), so its
//     audit row is the API's and names the admin.
//   - No token in a URL: an admin token travels in a POST body only, a
//     new token in a POST's answer only, and web's request log records
//     route patterns.
//
// # What it must not do
//
// No business rules (those are enroll's and revocation's) and no store
// writes but through them; it does not import web.
package ui
