// Command revocationload is the revocation benchmark behind `make bench`.
//
// It builds fleetca, creates a fresh CA with `fleetca init --no-password`,
// starts `fleetca serve` on it as a separate process (bbolt with fsync on,
// loopback listeners only) and enrolls devices through the HTTPS API (a
// pattern token from package client, pre-generated P-256 CSRs sent by
// the load client). Then, against that server:
//
//  1. OCSP throughput from the cache: POST /ocsp with pre-built SHA-1
//     requests for the enrolled certificates, concurrency 8, keep-alive,
//     after one warming pass; side by side, in the same run and with the
//     same client, `openssl ocsp` as a responder over the same
//     certificates (an index.txt, and a delegated responder certificate
//     signed with the data directory's intermediate key), single process
//     and with -multi. One table gives every responder's answers/s,
//     server CPU per answer (and its kernel share) and fleetca's ratio to
//     it, then the ratio to the single process beside the 5x target, also
//     repetition by repetition. openssl's responder closes the connection
//     after every answer (it never keeps one alive, even when asked), so
//     the client reconnects for it. BenchmarkOCSPHTTP in cmd/fleetca is
//     this phase in process, to profile the responder.
//  2. Revocations per second sustained through the admin API
//     (concurrency 32), while a monitor checks that OCSP answers revoked
//     for the latest revocation and that the served CRL keeps up; then
//     that the last one reads revoked at once and that /crl lists them all.
//  3. Latency, one revocation at a time: from the revoke call returning to
//     OCSP answering revoked (it must be the very next request) and to
//     GET /crl listing it.
//
// Then, in process with the same CA's intermediate: CRL build time and
// size at 10k, 100k and 1M entries, ca.Authority.SignCRL and the whole
// revocation.Service publish path against a bare x509.CreateRevocationList
// of the same entries.
//
// Baseline, in the same run: `openssl ocsp` as a responder for the OCSP
// phase, and a bare x509.CreateRevocationList of the same entries for the
// CRL phase. The step-ca revocation rate the report prints is quoted from
// the issue that asked for the benchmark, not measured here.
//
// Usage, in bench/ (the benchmarks' own module; `make bench` runs it with
// the defaults from the repository root):
//
//	go run ./revocationload [-phases ocsp,revoke,latency,crl] [-crl-sizes 10k,100k,1M] ...
//
// Defaults finish in about three minutes on two cores. The client
// runs on the same machine as the servers and shares their cores. The
// requests it times (OCSP, and the revocations of phases 2 and 3) are
// sent raw on HTTP/1.1 clients with one warmed connection per worker,
// not through package client, so that the figures stay those of the
// server; the revocations' answers are read as api.RevokeResponse.
//
// It is a development tool, Linux only (it reads /proc), and never shipped.
package main
