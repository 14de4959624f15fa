// Command proxyload is the proxy benchmark behind `make bench`: fleetca
// proxy against nginx doing the same job, side by side in the same run,
// in front of the same upstream.
//
// Setup, on loopback only: it builds fleetca, creates a CA with `fleetca
// init --no-password` and serves it (`fleetca serve`, its own process),
// and, through its API with package client (as `fleetca cert server`,
// `token create` and `enroll` do), issues the proxies' server certificate
// for localhost and 127.0.0.1 and enrolls P-256 devices with a pattern
// token. The upstream is this program run again as its own process
// (-as-upstream: net/http answering 200 "ok", echoing the X-Device-Id it
// was sent). In front of it:
//
//   - fleetca proxy (its own process): --ca root+intermediate, the server
//     certificate, --crl-url the CA's HTTP listener and --revocation-feed its HTTPS
//     listener; a JSON access-log line per request, to a file.
//   - nginx, installed from Debian's packages if missing (nginx-light),
//     from a generated configuration: as many workers as CPUs, TLS with
//     the same certificate, ssl_verify_client on against the same bundle,
//     ssl_crl with the device CRL and the root CRL (nginx wants a CRL for
//     every CA of the chain), no session cache and no tickets, proxy_pass
//     over keep-alive upstream connections, the same identity headers, and
//     an access-log line per request, to a file.
//
// Phases, each interleaving the targets repetition by repetition:
//
//  1. handshake: full handshakes per second (no resumption; TLS 1.3,
//     X25519), one request with Connection: close per connection, at
//     concurrency 8 and 32.
//  2. keepalive: requests per second over kept-alive connections, one per
//     worker: direct to the upstream, through fleetca proxy, through nginx.
//  3. latency: one request at a time over a kept-alive connection: p50 and
//     p99 through each proxy, minus those of a direct call.
//  4. crl: a CRL of -crl-size (default 1M) random serials, plus one
//     device's (the canary), signed in process with the data directory's
//     intermediate. A second fleetca proxy and a second nginx, started on
//     the CA's small CRL, are switched to it (SIGHUP to each): how long
//     until the canary is refused, and their memory after. Then
//     handshakes per second with and without it, for both.
//  5. revoke: for -revocations devices one at a time, with a kept-alive
//     connection open through fleetca proxy: the time from the admin API's
//     revoke call (client.RevokeCertificate) returning until a new handshake with the device is
//     refused (tried every -poll), and until the open connection is closed.
//  6. verifier: nginx as `fleetca export nginx` configures it, not from
//     proxyload's template, on the CA's CRL as the revoke phase left it: one export per row, each on its own port,
//     included as written in a minimal main configuration (the no-CRL
//     row removes the ssl_crl line from a copy; the OCSP-cache row
//     uncomments ssl_ocsp_cache in a copy). Full handshakes per second
//     at -verifier-concurrency with (a) no CRL, (b) the CA's CRL, (c) a
//     CRL of -verifier-crl-size (default 100k) entries, (d) ssl_ocsp
//     against the CA's responder, with and without ssl_ocsp_cache, and
//     (e) a CRL of 1/-verifier-partitions of c, as a partitioned CRL or
//     shorter certificate lifetimes would give each verifier. c and e
//     are signed in process and installed by `fleetca crl sync --once
//     --exec '<nginx -s reload>'` from a small server that also serves
//     the CA's root CRL; the time until the canary is refused, split
//     into the sync command and nginx's reload, and nginx's memory, for
//     the switch to c and back.
//  7. jwt: a third fleetca proxy with --auth jwt (issue 17) beside the
//     mTLS one: keep-alive requests per second, each with a Bearer token
//     (ES256, one per device, signed at setup), at -keepalive-concurrency;
//     then new connections per second without a client certificate, each
//     request with a token signed for it (a new jti: the proxy verifies a
//     signature per connection), beside full mTLS handshakes, at
//     -handshake-concurrency. Targets: 0.9x and 1.0x the mTLS figures.
//
// Baseline, in the same run: nginx doing the same job in front of the
// same upstream (phases 1 to 4), a direct call to the upstream (phases 2
// and 3), and nginx as `fleetca export nginx` configures it, with and
// without a CRL or OCSP (phase 6). -nginx none drops nginx, and with it
// the comparison.
//
// Usage, in bench/ (the benchmarks' own module; `make bench` runs it with
// the defaults from the repository root):
//
//	go run ./proxyload [-duration 4s] [-reps 3] [-phases handshake,keepalive,latency,crl,revoke,verifier,jwt]
//	    [-crl-size 1M] [-verifier-crl-size 100k] [-nginx nginx|none] [-fleetca BINARY] [-keep] [-strict]
//
// The defaults take about four and a half minutes on two cores, the
// verifier phase alone (-phases verifier) about 80 seconds. The client, the
// proxies, the upstream and the CA share the machine's cores; the table
// shows each side's CPU per operation, and the CPU that other processes
// took ("other"). A missed target is reported, not an error (exit 0,
// unless -strict); a failed request where none should fail is an error
// (exit 1).
//
// It is a development tool, Linux only (it reads /proc), and never shipped.
package main
