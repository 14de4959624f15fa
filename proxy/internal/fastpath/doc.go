// Package fastpath is the proxy's HTTP/1.1 fast path: it serves the plain
// requests of a verified HTTP/1.1 client connection to an http:// upstream
// itself, answering each byte for byte as the proxy's slow path
// (http.Server, httputil.ReverseProxy) would, and hands the connection to
// net/http at the first request that is not plain. Only package proxy
// uses it.
//
// Why: net/http's server costs a keep-alive request a goroutine of its
// own (the background read that watches for the client going away), a
// cancelable context, a Request and a ResponseWriter, and ReverseProxy a
// clone of the request and its header; with http.Transport's read and
// write goroutines and the upstream's work, that was more than half the
// proxy's CPU per request.
//
// # What it owns
//
//   - Server (server.go, exchange.go): serves a connection on the caller's
//     goroutine (ServeConn) and drains on shutdown (Shutdown).
//   - parseRequestHead (parse.go): which request heads are plain, read the
//     way net/http reads them (FuzzParseRequestHead holds it to that).
//   - Transport (transport.go): the pool of HTTP/1.1 connections to the
//     upstream, also the ReverseProxy's RoundTripper for the requests the
//     slow path serves, with an http.Transport as its fallback for the
//     rest.
//
// What it does not own: the TLS handshake and the client's verification,
// the identity headers' names and values, the access log and metrics, the
// connections' registry (revocation closes connections) and the decision
// to use the fast path at all (proxy.Config.DisableHTTP1FastPath). The
// proxy keeps those and passes in what the fast path needs: Config.OwnHeader
// and Conn.Header for the identity, Deps.Served and Deps.UpstreamFailed for
// the log and metrics, and Conn.Context, which ends when the proxy closes
// the connection.
//
// # Basics
//
// New builds a Server for an upstream, or says (ErrUnsupported) why it
// cannot send requests there exactly as ReverseProxy would. ServeConn
// takes a verified connection that did not negotiate h2 and serves it for
// as long as its requests are plain: body-less GET, HEAD, OPTIONS and
// TRACE requests, HTTP/1.1, with a head parseRequestHead accepts. Each is
// written to a pooled upstream connection (Transport) and the answer is
// written straight back. The first request that is not plain (a body, an
// upgrade, Expect, HTTP/1.0, a malformed or oversized head, ...) and every
// later request on the connection are returned to the caller, for
// http.Server and the ReverseProxy, with the bytes already read put back
// in front.
//
// # Invariants
//
// The fast path never answers a request it does not fully handle: what it
// does not take, malformed requests included, net/http answers or refuses.
//
// What it keeps of the slow path, byte for byte where it can
// (proxy's TestFastPathMatchesSlowPath compares them):
//   - the upstream request, as ReverseProxy's Rewrite makes it: the
//     upstream's URL joined with the path, the query as sent, hop-by-hop
//     headers and those named in Connection removed, Te: trailers kept,
//     X-Forwarded-For/-Host/-Proto, the identity headers (Conn.Header) in
//     place of the client's, User-Agent only if the client sent one,
//     Cache-Control: no-cache for Pragma: no-cache;
//   - the answer, as http.Server's ResponseWriter behind ReverseProxy
//     writes it: the status line with Go's reason phrase, headers sorted,
//     hop-by-hop ones removed, trailers announced and sent, Date added,
//     Content-Type sniffed, 1xx answers passed on, no body for HEAD, 1xx,
//     204 and 304, chunked when the upstream sent no length and then
//     flushed per read, as for text/event-stream, Connection: close when
//     the client asked or the server is shutting down;
//   - timeouts: ReadHeaderTimeout from the first byte of a request,
//     IdleTimeout between requests, no write timeout;
//   - errors: 502, or 504 after a timeout, with the proxy's body, reported
//     to Deps.UpstreamFailed so the proxy logs and counts them as its own;
//   - one Deps.Served call per request, for the proxy's access log and
//     metrics;
//   - revocation and shutdown: the end of Conn.Context (the proxy closing
//     the connection) interrupts its upstream exchange at once; Shutdown
//     closes idle connections at once and lets requests in flight finish.
//
// # Caveats
//
// What differs from the slow path: a client that goes away while its
// request waits for the upstream's answer is noticed when the answer comes
// (http.Server's background read notices at once), so the upstream's work
// is not cut short; a status code below 100 from the upstream is a 502
// (the slow path panics in WriteHeader and drops the connection); and a
// connection whose first request has not started when a shutdown begins is
// closed at once (http.Server gives new connections 5 seconds).
//
// A connection returned by ServeConn is not a *tls.Conn, so http.Server
// leaves Request.TLS nil: the caller sets it from the connection's
// ConnectionState.
package fastpath
