// Package web is fleetca's HTTP layer, built on echo v4. It decodes
// requests, calls enroll, revocation and ca, and encodes the answers; it
// holds no business rules.
//
// # Basics
//
// A Server (New, from a Config and Deps: the Enroller, Revoker, Authority
// and Records it calls, each a small interface) has two handlers. The
// HTTPS handler carries enrollment (POST /v1/enroll), renewal (POST
// /v1/renew: the TLS peer chain, or a bearer renewal token, and an empty
// body or a CSR, passed to enroll.Service.Renew; 201 for a new
// certificate, 200 for a retry), the renewal window of any certificate
// (GET /v1/renewal-info/{serial}, public, with Retry-After, after ACME
// ARI) and the admin API under /v1/admin/ (bearer admin token, a named
// admin's: requireAdmin; each route's least role in adminRoutes,
// web/roles.go, checked by requireRole: 403 naming the role missing;
// owners manage admins under /v1/admin/admins). The admin
// API also issues TLS server certificates for verifiers such as fleetca
// proxy (POST /v1/admin/certificates/server) and asks a device or the
// whole fleet to renew now (POST /v1/admin/devices/{id}/renew-now,
// /v1/admin/devices/renew-now). The HTTPS handler serves the
// revocation feed (GET /v1/revocations, a long-poll that Drain ends when
// shutdown begins). The plain-HTTP handler carries what a verifier must
// fetch before it can trust anything: /roots.pem, /chain.pem,
// /intermediate.crt (the caIssuers target of device certificates), the
// CRLs and OCSP, and, given Deps.Audit, the audit log's public face:
// the latest signed checkpoint (GET /v1/audit/checkpoint, with an ETag),
// the audit key (/v1/audit/key) and consistency proofs
// (/v1/audit/proof?from=&to=), hashes and sizes only; viewers read the
// tree itself under /v1/admin/audit (rows, /tree, /hashes, /checkpoints)
// for fleetca audit verify and export --ca. Both serve /healthz. Neither serves /metrics: serve puts
// it on a listener of its own (server.metrics_addr, loopback by default),
// as the proxy does. ServerCert keeps the HTTPS
// listener's own certificate, in memory, renewed at two thirds of its life;
// its TLSConfig asks for a client certificate without requiring one
// (ServerCertConfig.ClientCAs: the fleet's intermediate), so that
// devices renew over mutual TLS while enrollment needs none. Once
// SetManufacturerCAs gives manufacturer CAs (serve wires it to
// enroll.Deps.ManufacturerCAs, so it follows every add and remove: at once
// through this replica, within enroll.ManufacturerRefresh, 10s, through
// another replica sharing the store), each
// handshake (GetConfigForClient) also accepts a certificate chaining to one
// of them, with any extended key usage: POST /v1/enroll without an
// Authorization header, and EST simpleenroll without one, then enroll with
// the client's certificate (enroll.Service.EnrollWithManufacturer, which
// checks it again). The
// admin API manages manufacturers under /v1/admin/manufacturers
// (manufacturer.go).
//
// The HTTPS handler also serves the step CLI's routes (step.go), at the
// root and again under /1.0/ as step-ca does: GET /health, /version
// (Deps.Version), /roots (201, as step-ca answers), /root/{sha256 hex}
// (404 when no root has that fingerprint), POST /renew (mutual TLS with an
// empty body, or a bearer renewal token: step's x5cInsecure token, which
// enroll accepts with aud .../renew or .../1.0/renew) and POST /rekey
// ({"csr": PEM} over mutual TLS), both on enroll.Service.Renew and both
// 201, a retry included (step takes nothing else as success). POST /sign
// (stepsign.go) redeems a step token minted by fleetca for a CSR on
// enroll.Service.EnrollStep, 201; with no token (ott empty), the TLS
// client's certificate is taken for a manufacturer certificate, as on
// /v1/enroll. POST /revoke revokes the mutual-TLS client certificate
// itself (the body's decimal serial must be its own) through the
// revocation service, audited with actor device:<id>, or, with an ott, the
// certificate a step revocation token names (enroll.Service.
// ParseStepRevokeToken; its sub must be the body's serial), the token
// spent in the revocation's transaction and the actor token:<id>; 200
// {"status":"ok"}.
//
// And EST (est.go; RFC 7030 with RFC 8951's clarifications) under
// /.well-known/est/ and /.well-known/est/<Config.ESTLabel>/ (another label
// is 404): GET cacerts (the intermediate and the roots, certs-only PKCS #7),
// GET csrattrs (commonName, the accepted key types, ECDSA with SHA-256),
// POST simpleenroll (HTTP Basic: user = the device ID, which must be the
// CSR's CN, password = an enrollment token, spent by enroll.Service.Enroll
// as on /v1/enroll), POST simplereenroll (the TLS client certificate
// renewed by enroll.Service.Renew; the CSR's subject, and its SANs if it
// has any, must be the certificate's; the same key renews, a new key
// rekeys) and POST serverkeygen (501). Bodies are base64 DER whatever
// Content-Transfer-Encoding says, whitespace ignored (DecodeESTBody);
// answers are base64 with Content-Transfer-Encoding: base64 and a
// Content-Length, which Bouncy Castle's client needs. simpleenroll without
// an Authorization header gets 401, WWW-Authenticate: Basic
// realm="fleetca" and an empty body, the challenge Bouncy Castle waits for
// before it sends credentials: nothing is checked, spent or audited. Any
// other EST error is problem JSON, a 401 with the Basic challenge; but
// simplereenroll, which takes no password, answers a client certificate it
// cannot renew (expired, whatever ca.renew_after_expiry says, for EST has
// no renewal-token form; another CA's) 403, with no challenge.
//
// The HTTPS handler also serves the admin console under /ui/ (package
// web/ui, console.go), whose failed logins count in the same limiter as the
// admin API's (see "Client addresses and failed admin logins").
//
// POST /v1/admin/tokens/batch mints one one-use token per device ID (at
// most api.MaxTokenBatch) in one store transaction: the bulk path of
// fleetca token create --device-ids-file.
//
// The request and answer bodies are package api's types, the definitions
// package client decodes with.
//
// # Errors
//
// Every error leaves through one function, problem.go's handleError, set as
// echo's HTTPErrorHandler: a *fault.Error becomes RFC 9457 problem JSON
// with the extension members hint and, when the fault names the request
// field it is about (fault.Error.Field), pointer ("#/ttl"); echo's own
// errors (404, 405, 413) and the store's ErrNotFound/ErrConflict are mapped
// too; a fault with a RetryAfter (fault.RateLimited, 429) also sets the
// Retry-After header; anything else is a 500 carrying only a request_id,
// its text logged, never sent. On the step routes the same problem is sent
// in step's shape instead, application/json {"status": N, "message":
// "<detail> (<hint>)"}, since the step CLI prints message. A body that does not decode is described in
// JSON's terms (the unknown or mistyped member, the byte of a syntax
// error), not in the decoder's, whose text names Go types.
//
// # Client addresses and failed admin logins
//
// The client's address, wherever one is recorded (the request log's
// remote_ip, audit rows, the failure limit), is c.RealIP() through
// clientIPExtractor: the connection's peer, unless the peer is one of
// Config.TrustedProxies; then the right-most address of X-Forwarded-For
// that is not a trusted proxy. X-Real-IP is never read. A failed admin
// authentication is counted per address, an IPv6 one per /64 (limitKey;
// one host may hold a whole /64), by authLimiter: past
// Config.AuthFailureLimit within Config.AuthFailureWindow the address's
// admin requests are answered 429 (fault.RateLimited, Retry-After) without
// their token being checked, a right one included, until the window ends.
// The audit log gets at most one admin.auth_failed row per address per
// window: the first failure at once, the rest as a count (failed, and
// refused unchecked) when the window has passed, on the next request or
// at shutdown (Server.FlushAuthFailures). Enrollment-token failures are
// not limited: they write nothing durable, a token is 256 random bits,
// and a factory line behind one NAT address must not lock itself out on
// a few spent tokens.
//
// # Transport-level refusals: the exception to problem JSON
//
// Some requests are refused by Go's net/http server (and crypto/tls)
// before echo, and so before handleError, ever sees them: net/http
// parses the request line and headers itself and answers a parse failure
// directly on the connection, with a fixed plain-text body, then closes
// it. No handler, middleware or error hook of ours runs, so these cannot
// be problem JSON, and they carry no request_id and make no request-log
// line (net/http's error log, at Debug or Warn, is all). They are, as
// serve's listeners answer them (pinned by cmd/fleetca's
// TestTransportRefusalsArePlainText):
//
//   - 431 Request Header Fields Too Large, text/plain: the request line
//     and headers exceed http.Server.MaxHeaderBytes (serve: 64 KiB, plus
//     net/http's 4 KiB slack).
//   - 400 Bad Request, text/plain: a malformed request line (a NUL or other
//     control character in it, a missing method, URI or version), a
//     malformed header line or field name, an HTTP/1.1 request without
//     Host, or conflicting Content-Length headers.
//   - 505 HTTP Version Not Supported, text/plain: a request line whose
//     version is not HTTP/1.x (HTTP/2 is negotiated by TLS ALPN instead).
//   - 501 Not Implemented, text/plain: a Transfer-Encoding other than
//     chunked.
//   - 417 Expectation Failed, no body: an Expect header other than
//     100-continue.
//   - 400 Bad Request with the body "Client sent an HTTP request to an
//     HTTPS server.", no Content-Type: plain HTTP sent to the HTTPS
//     listener.
//   - No HTTP answer at all: a failed TLS handshake (a TLS alert, such as
//     protocol_version or handshake_failure, then the connection closes),
//     a request whose headers do not arrive within ReadHeaderTimeout, or
//     an idle keep-alive connection past IdleTimeout (closed).
//
// Everything after the headers parse, including a body over
// Config.MaxBodyBytes (413), a body whose chunked framing breaks while a
// handler reads it (400), an unknown route (404) or a wrong method (405),
// is problem JSON. The metrics listener (serve's metrics_addr) is not
// this package's and not part of the API: it serves Prometheus' text
// format, and its own refusals (404 for any path but /metrics) are
// net/http's plain text.
//
// # Invariants
//
//   - Input is parsed at this edge, once: device IDs in paths and queries
//     with api.ParseDeviceID (a malformed one is 400, never a store
//     lookup), durations, serials, CSR bodies. Token requests are passed
//     to enroll, which parses them.
//   - web says things in HTTP's terms: it adds the pointer, and never
//     rewrites a domain error's detail or hint.
//   - Request bodies are read through a limit (Config.MaxBodyBytes) and
//     never buffered past it.
//   - Tokens and keys are never logged: the request log records route
//     patterns, not raw URIs, and a device ID only once it has parsed.
//   - Every request is counted (fleetca_web_requests_total, by listener,
//     route pattern, method and status) and has one request log line, at
//     Info, except a signed OCSP answer (good, revoked, unknown), whose
//     line is at Debug: a verifier asks once per handshake or refresh, and
//     the line cost a third of the responder's CPU per cached answer
//     (issue 19). malformedRequest and unauthorized answers and HTTP
//     errors on /ocsp are logged at Info.
//
// # What it must not do
//
// No policy: who may enroll, what a CSR may name, what a CRL says are
// enroll's, revocation's and ca's. No HTTP status outside problem.go's
// table, and no store write except through those packages.
package web
