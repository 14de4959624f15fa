// Command renewload is the renewal benchmark behind `make bench`.
//
// It builds fleetca, creates a fresh CA with `fleetca init`, sets
// ca.renew_min_interval in its fleetca.yaml (1s by default, so that no
// renewal is refused as too soon; each device renews once anyway), starts
// `fleetca serve` on it as a separate process (bbolt with fsync on,
// loopback listeners only), and mints pattern tokens through the admin
// API with package client. Then, at concurrency 32, it measures four
// modes side by side in the same run:
//
//	enroll-ka        POST /v1/enroll (pre-generated P-256 CSRs), keep-alive:
//	                 one connection per worker, as enrollload measures it
//	enroll-conn      the same, one new connection (a full TLS handshake) per
//	                 request
//	renew-mtls-conn  POST /v1/renew with an empty body over mutual TLS with the
//	                 device's certificate and key, one new connection (a full
//	                 handshake with that certificate) per renewal
//	renew-token-ka   POST /v1/renew with an empty body and Authorization: Bearer
//	                 <renewal token>, keep-alive: a different device on each
//	                 request of a connection
//
// and reports renewals/s over enrollments/s like for like:
// renew-mtls-conn against enroll-conn, renew-token-ka against enroll-ka,
// each judged against the target (at least 0.9x at concurrency
// 32). It also prints renew-mtls-conn against enroll-ka, the issue's
// literal pairing ("renewals over mTLS with keep-alive, beside
// enrollments"), without a verdict: it charges a handshake to one side
// only. Beside each like-for-like ratio it prints the bound the renewal's
// extra public-key operations alone allow at the enrollment's measured
// CPU, with a P-256 verification and signature timed in the same run
// (pkcost.go): an mTLS renewal pays one verification more on the server
// (the handshake's certificate and CertificateVerify for the CSR's
// signature) and one signature on the client; a token renewal none (its
// token's signature for the CSR's; its certificate is proved by the CA's
// record of it, not by a signature).
//
// Why no mode renews over mTLS with keep-alive: a connection's client
// certificate is fixed at its handshake, so only the first request on it
// is a renewal; the next, with the same certificate, is a retry (200, the
// certificate already issued, nothing signed) or, once the device has a
// newer certificate, a 409. Many genuine renewals per connection do not
// exist; a fleet of agents renews one device per connection, which
// renew-mtls-conn measures, and the token form (what a device whose
// certificate has expired sends) renews a device per request, which can
// share connections.
//
// Before each renewal phase, outside its timing, it enrolls the devices
// that phase will renew, each with a new P-256 key, through the load
// client's fast path (pre-generated CSRs, benchutil.PostCSR on a keep-alive
// client, answers checked without verifying their chain), and for the
// token form mints one renewal token per device with client.RenewalToken,
// as `fleetca renew` does (go.step.sm/crypto's jose package: ES256 with the
// device's key; x5c = the certificate and its intermediate; sub, aud = the
// renew URL, a random jti, five minutes of life). Each phase gets fresh requests, sized from the rate seen so far;
// the modes are interleaved within each repetition, so that drift on the
// machine hits them alike. Only 201 Created counts: any other answer, a
// 200 retry of a renewal included, is an error (exit 1). The first 201 of
// each phase is checked: the device asked for, and for a renewal a new
// serial whose parent_serial is the certificate renewed.
//
// The load is sent by a lean HTTP/1.1-over-TLS client (requests serialized
// up front, answers read just enough to check them), not through package
// client or net/http: net/http cannot present a different client
// certificate on each connection, and both cost the shared cores more.
// It offers TLS 1.3 with X25519 only, never resumes a session, and pins
// the server's certificate (taken from one verified handshake at the
// start) instead of verifying its chain on each handshake.
//
// Baseline, in the same run: the two enrollment modes. The report prints,
// per mode, the median requests per second, latency percentiles, the
// server's CPU per request (utime+stime from /proc/<pid>/stat), the
// client's, the connections opened per request, and the CPU other
// processes took ("other"): a busy machine makes the rates meaningless,
// and the table says so. A missed target is reported, not an error (exit
// 0, unless -strict).
//
// Usage, in bench/ (the benchmarks' own module; `make bench` runs it with
// the defaults from the repository root):
//
//	go run ./renewload [-duration 5s] [-reps 3] [-warmup 1s] [-concurrency 32]
//	    [-renew-min-interval 1s] [-max-jobs 60000] [-server-env GOGC=400]
//	    [-fleetca BINARY] [-keep] [-strict]
//
// The defaults finish in about two minutes on two cores.
//
// It is a development tool, Linux only (it reads /proc), and never shipped.
package main
