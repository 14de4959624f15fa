// Package ui is fleetca's admin console, served by web at /ui/ on the
// HTTPS listener: server-rendered html/template pages from an embed.FS,
// plain forms with POST-redirect-GET, one embedded stylesheet, no
// JavaScript and nothing from another origin. Every control carries a
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
// root's SHA-256 fingerprint with a copy button (data-copy, enhanced by
// the console's script when there is one; the text stays selectable).
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
// /ui/devices/{id}/revoke), then POST to the same path; and its audit
// trail, its 20 newest events (store.QueryAudit by DeviceID, an index).
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
//     operator to revoke; the read pages show no control a viewer may not
//     use. A viewer sees no revoke control and is refused
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
