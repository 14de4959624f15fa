// Package proxy is fleetca's reference mTLS-terminating proxy: it lets
// through only devices that present a valid, unrevoked fleetca client
// certificate, and it closes the connections a device already has open
// when the device is revoked.
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
// refusal is logged at Info with its reason and counted in
// fleetca_proxy_handshakes_total{outcome,reason}.
//
// In HTTP mode (an http:// or https:// upstream) it is an
// httputil.ReverseProxy: HTTP/1.1 and HTTP/2 from clients, upgrades
// (WebSocket) passed through, X-Forwarded-For/-Host/-Proto set, and the
// client's identity sent to the upstream in X-Device-Id (the certificate's
// CN, fleetca's device ID), X-Client-Cert-Serial (lowercase hex) and
// X-Forwarded-Client-Cert (Envoy's format: Hash, Subject, URI). The same
// headers sent by the client are removed. One access-log line is written
// per request. A body-less GET, HEAD, OPTIONS or TRACE to an http://
// upstream (no upgrade, no Expect) goes over the proxy's own pool of
// HTTP/1.1 connections, written and read by the request's goroutine
// (h1Upstream); every other request, and every request to an https://
// upstream, over an http.Transport. For an http:// upstream, HTTP/1.1
// connections are served on their own goroutine (h1fast.go) as long as
// their requests are plain (body-less GET, HEAD, OPTIONS or TRACE with a
// head parseRequestHead accepts): the request is written upstream and the
// answer back exactly as ReverseProxy and http.Server would (a test
// compares the bytes). The first request that is not plain, and the rest
// of its connection, go to http.Server with the bytes already read put
// back in front. In TCP mode (a tcp:// upstream) the bytes are piped, with
// an optional PROXY protocol v2 header first; one line per connection.
//
// Each verified connection is tracked by its certificate's serial. When
// the Checker announces a revoked serial (Subscribe), every connection
// with it is closed at once: HTTP keep-alive and HTTP/2 connections,
// upgraded (WebSocket) ones and TCP pipes alike.
//
// # Caveats
//
// The proxy drives the TLS handshake itself, before the HTTP server sees
// the connection; so http.Server's TLS settings are unused and its
// handshake errors never appear: the proxy logs its own.
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
// (see connSet.register).
//
// On the HTTP/1.1 fast path, a client that goes away while its request
// waits for the upstream's answer is noticed when the answer comes (at
// most UpstreamTimeout later), not at once as http.Server's background
// read notices it; closing the connection (revocation, shutdown) does
// interrupt the upstream exchange at once.
//
// The package imports only package revocation of fleetca's.
package proxy
