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
// Overview (/ui/): devices by status, certificates expiring within 7 and
// 30 days, expired and stopped renewing (store.Stats, kept as counters by
// the store, so the page costs the same for any fleet), each linking to
// the devices page filtered that way; revocations in the last 24 hours;
// enrollments per UTC day over 30 days as an SVG bar chart the server lays
// out (a <title> per bar); the device CRL's number, age and next update;
// the OCSP responder's, the intermediate's and the root's expiry; and the
// root's SHA-256 fingerprint with a copy button (console.js shows it;
// without script the text stays selectable).
//
// Devices (/ui/devices?q=&status=&sort=&after=): q is a device ID prefix,
// or a certificate serial (hex, with colons as openssl prints it, or
// without colons and at least 16 digits), which goes to its device's
// page at #cert-SERIAL. status is active, revoked or stopped (active
// devices past their renew-by date, listed most overdue first); sort is
// id, -id, renew_by or -created; after is store.DeviceQuery's cursor, 50
// a page. A combination store.QueryDevices does not serve (a prefix in
// any order but by ID, revoked devices by renew-by) is a 400 that says
// why.
//
// Device (/ui/devices/{id}): its certificates newest first with serial,
// key fingerprint, validity, status and parent, the lineage; the
// revocation of the device or of one certificate: a reason from
// revocation.ReasonNames, a confirmation page (GET
// /ui/devices/{id}/revoke), then POST to the same path. On the device page
// an operator also resets a revoked device (GET /ui/devices/{id}/reset
// confirms, POST resets; revocation.Service.ResetDevice) and asks an active
// one to renew now (POST /ui/devices/{id}/renew-now; enroll's RenewNow).
// The page ends with the device's audit trail, its 20 newest events
// (store.QueryAudit by DeviceID, an index).
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
// Audit (/ui/audit?actor=&action=&device=&from=&to=&before=): events
// newest first, 50 a page, filtered by actor, action, device and a UTC
// time range [from, to) (datetime-local values); before is the cursor
// (an event Seq). A filter no index answers may stop after
// store.AuditScanLimit events with fewer matches than a page: the page
// then says how many events it searched and links to continue. Each row
// links to what it names: the device, the certificate on its device's
// page, the token (/ui/tokens), the admin (/ui/admins).
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
