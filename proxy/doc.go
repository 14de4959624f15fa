// Package proxy is fleetca's reference mTLS-terminating proxy: it lets
// through only devices that present a valid, unrevoked fleetca client
// certificate, and it closes the connections a device already has open
// when the device is revoked.
//
// # What it owns
//
// The listener and the TLS handshake, the verification of every client
// (chain, validity, EKU, the Checker's verdict), the registry of open
// connections by certificate serial, what the upstream learns of the
// client (the identity headers), HTTP mode (http.Server and
// httputil.ReverseProxy), TCP mode (the pipe, PROXY protocol v2),
// shutdown, the access log and the fleetca_proxy_* metrics. It does not
// decide revocation (the Checker does, and its refresh loop is the
// caller's to run), read flags or files (cmd/fleetca does), or hold
// anything of the CA's.
//
// Its HTTP/1.1 fast path is a component of its own, package
// proxy/internal/fastpath, which the Server calls for the connections it
// routes there; see "HTTP mode".
//
// # Basics
//
// New builds a Server from a Config (the upstream, timeouts and limits)
// and Deps (the fleet's roots, the proxy's own certificate, a Checker, a
// logger, a metrics registry, a clock). Serve runs it on a listener until
// its context ends. Reload swaps the roots and the certificate for new
// handshakes (SIGHUP). The caller runs the Checker's refresh loop.
//
// Every client handshake (TLS 1.2 or 1.3) must present a certificate; the
// Server's tls.Config VerifyConnection, which runs on full and resumed
// handshakes alike, then checks that it chains to Deps.Roots (through
// Deps.Intermediates and what the client sent), that the whole chain is
// valid now, that the leaf has the extended key usage clientAuth, and
// that the Checker does not refuse it (revoked, stale data, ...). Each
// refusal is logged at Info ("client refused") with its reason, the
// certificate's serial (lowercase hex) and, for a revoked one, the
// revocation reason and time, and counted in
// fleetca_proxy_handshakes_total{outcome,reason}.
//
// # HTTP mode
//
// With an http:// or https:// upstream the proxy is an
// httputil.ReverseProxy: HTTP/1.1 and HTTP/2 from clients, upgrades
// (WebSocket) passed through, X-Forwarded-For/-Host/-Proto set, and the
// client's identity sent to the upstream in X-Device-Id (the certificate's
// CN, fleetca's device ID), X-Client-Cert-Serial (lowercase hex) and
// X-Forwarded-Client-Cert (Envoy's format: Hash, Subject, URI). The same
// headers sent by the client are removed. One access-log line is written
// per request.
//
// Each verified connection is routed once, after its handshake: an h2
// connection to http.Server; an HTTP/1.1 connection to an http://
// upstream to the fast path (fastpath.Server.ServeConn), which serves it
// on the handshake's goroutine as long as its requests are plain
// (body-less GET, HEAD, OPTIONS or TRACE with a head it accepts), writing
// each request upstream and the answer back exactly as ReverseProxy and
// http.Server would (a test compares the bytes), and hands the first
// request that is not plain, and the rest of its connection, back to
// http.Server with the bytes already read put back in front. Body-less
// requests that net/http serves to an http:// upstream still go over the
// fast path's pool of HTTP/1.1 connections (fastpath.Transport), written
// and read by the request's goroutine; every other request, and every
// request to an https:// upstream, over an http.Transport.
// fleetca_proxy_fast_path_requests_total counts the requests the fast path
// served. Config.DisableHTTP1FastPath turns the fast path and its pool off:
// every request then goes through http.Server, ReverseProxy and
// http.Transport.
//
// # Device JWTs
//
// Config.Auth "jwt" (no client certificate is asked for) or "any" (a
// certificate if the client sends one) lets devices that cannot present
// a certificate authenticate each request with a device JWT in
// Authorization: Bearer, checked by Deps.JWT (verify.JWTVerifier) against
// Config.JWTAudience. An accepted request goes upstream with the identity
// headers of the certificate whose key signed it plus X-Device-Key-Id (the
// kid), and without the Authorization header. A refused one gets 401 with
// WWW-Authenticate: Bearer realm="fleetca", error="invalid_token",
// error_description="<reason>" (RFC 6750 §3; no error for a missing
// token), a "device JWT refused" log line with the reason, and
// fleetca_proxy_jwt_total{outcome,reason}. On the fast path a per-request
// hook (fastpath.Conn.Authorize) asks the verifier; a refusal hands the
// request to net/http, which answers it. A connection is filed under the
// serial of every certificate whose token it carried (a load balancer's
// carries many devices'), so that a revocation closes it as it closes an
// mTLS one; every request is checked again regardless.
//
// # TCP mode
//
// With a tcp:// upstream the bytes are piped, with an optional PROXY
// protocol v2 header first; one line per connection.
//
// # MQTT mode and device JWTs
//
// With Config.MQTT (a tcp:// upstream that is an MQTT broker) and
// Config.Auth jwt or any, a client may come without a certificate (jwt
// asks for none; any asks for one and verifies it if sent) and prove who
// it is with a device JWT in its CONNECT packet's password, its client ID
// being its device ID. The proxy reads that first packet with mochi-mqtt's
// packets package (MQTT 3.1.1 and 5), at most MaxConnectBytes, within
// Config.HandshakeTimeout of accept, and reads no byte past it. Anything
// but a CONNECT closes the connection. The token is checked by Deps.JWT
// (verify.JWTVerifier: signature by a live certificate's key of the
// device, audience <Config.JWTAudience>/devices/<ID>, times, revocation),
// and its device must be the client ID. A refusal is answered with a
// CONNACK in the client's version: 3.1.1's 0x05 not authorized (0x04 bad
// user name or password for a missing or unparsable token, 0x03 server
// unavailable when the revocation data or key set is missing), 5's 0x87,
// 0x86 or 0x88 with the reason as reason string; then the connection is
// closed. It is logged ("mqtt client refused", with the reason) and
// counted in fleetca_proxy_mqtt_connects_total{outcome,reason}. An
// accepted client is registered under its token's certificate serial
// (revocation closes it, as for certificates), and the broker gets the
// CONNECT re-encoded by the library with the password removed and the
// username set to the device ID, all else kept, then the piped session;
// the access-log line carries the token's kid. The token authenticates
// the session only until its exp plus verify.JWTSkew (the skew the check
// allowed): a timer armed at acceptance (Deps.AfterFunc) then closes the
// connection, after a DISCONNECT with reason code 0xA0 (maximum connect
// time) and reason string session_expired for an MQTT 5 client; it is
// logged ("mqtt session expired", with the device ID and kid) and counted
// in fleetca_proxy_mqtt_connects_total{outcome="closed",
// reason="session_expired"}. A session that ends first stops its timer.
// The proxy does not parse the broker's packets, so the DISCONNECT may
// follow a broker packet that the pipe had only partly written (a packet
// split across TCP reads); the client sees the connection end either way.
// A client with a
// certificate is held to the same rule (client ID = its certificate's
// device ID, the CONNECT rewritten alike), so that no device names another
// to the broker.
//
// # Invariants
//
// A request reaches the upstream only on a connection whose client
// certificate was verified and which is registered under its serial, and
// always carries the verified client's identity headers, never the
// client's own.
//
// Each verified connection is tracked by its certificate's serial. When
// the Checker announces a revoked serial (Subscribe), every connection
// with it is closed at once: HTTP keep-alive and HTTP/2 connections,
// connections on the fast path (whose upstream exchange is interrupted),
// upgraded (WebSocket) ones and TCP pipes alike. Closing a connection
// never blocks (the socket is closed, no TLS close_notify is sent), so it
// may run in the Checker's callback.
//
// Fail closed for open connections too: when the Checker announces that
// its data went stale (SubscribeStale: the CRL is past its nextUpdate and
// grace, so every device is refused from then on), every open connection
// is closed at that instant, handshaking ones included, logged once at
// Error with the reason and counted in
// fleetca_proxy_stale_connections_closed_total. Devices reconnect once a
// fresh CRL loads.
//
// Shutdown: Serve stops accepting, closes connections still handshaking,
// upgraded connections and TCP pipes at once, closes idle HTTP
// connections (the fast path's too), lets requests in flight finish for
// up to Config.ShutdownGrace, then closes whatever is left.
//
// # Caveats
//
// The proxy drives the TLS handshake itself, before the HTTP server sees
// the connection; so http.Server's TLS settings are unused and its
// handshake errors never appear: the proxy logs its own.
//
// A refused client gets the TLS alert bad_certificate (42), whatever the
// reason, a revoked certificate included: TLS has certificate_revoked
// (44), but crypto/tls sends alertBadCertificate for every error that
// VerifyConnection returns, without looking at it (Go 1.26,
// src/crypto/tls/handshake_server.go, in doResumeHandshake and
// doFullHandshake; handshake_server_tls13.go, in readClientCertificate),
// and no code path sends alertCertificateRevoked, which alert.go only
// defines. Its mapping of x509 errors to unknown_ca and
// certificate_expired applies only to its own verification (ClientCAs),
// which cannot check revocation; and tls.AlertError only reports alerts
// on QUIC connections, it chooses none. The proxy's log line ("client refused", reason revoked,
// serial, revocation_reason, tls_alert) and
// fleetca_proxy_handshakes_total{outcome="refused",reason="revoked"} say
// what the alert cannot. TestRevokedRefusalSaysRevoked pins the alert.
//
// A verified chain is cached per leaf (Config.VerifyCacheSize), for the
// time the chain is valid, until the next Reload. Revocation is never
// cached by the proxy: the Checker is asked on every handshake, and its
// lookup must be cheap (a verify.Checker's CRL lookup is O(1)).
//
// In TLS 1.3, VerifyConnection runs before the client has proved that it
// holds the certificate's key, so it has no effect but its answer;
// connections are registered by serial only once the handshake is done.
// A revocation announced between the two is caught by an epoch counter
// (see connSet.register); the connection is then closed without an alert.
//
// On the HTTP/1.1 fast path, a client that goes away while its request
// waits for the upstream's answer is noticed when the answer comes (at
// most UpstreamTimeout later), not at once as http.Server's background
// read notices it; closing the connection (revocation, shutdown) does
// interrupt the upstream exchange at once. The fast path's doc lists what
// else differs, and what it keeps, of net/http's behaviour.
//
// The package imports only package verify of fleetca's (the verifier
// side, which links nothing of the CA's: a test holds it to that), and its
// own internal/fastpath.
package proxy
