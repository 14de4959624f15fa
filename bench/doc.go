// Package bench is the root of fleetca's benchmark module: the load tools
// behind `make bench`, kept out of the product's import graph. It holds no
// code; its commands are in the directories below it.
//
// # The tools
//
// Each builds ./cmd/fleetca from this checkout (or runs the binary that
// -fleetca names), runs it as its own process on loopback listeners only,
// measures it, and prints a table. Every figure comes with a baseline
// measured in the same run, on the same machine, with the same client, so
// that a loaded or slow machine shifts both sides:
//
//	tool            measures                                   baseline in the same run
//	enrollload      POST /v1/enroll: enrollments/s, latency     the crypto floor per certificate (CSR
//	                percentiles, server CPU per certificate;   parse, check + signature), timed in
//	                EST simpleenroll and step's /1.0/sign      process; step-ca v0.30.2 (installed and
//	                the same way (-client all)                 started by the tool) at c=32, its
//	                                                           /1.0/sign; native /v1/enroll, interleaved
//	                                                           with the others; the issues' ratios
//	revocationload  OCSP responses/s, revocations/s through     `openssl ocsp` as a responder (single
//	                the admin API, revoke-to-OCSP and           process and -multi); a bare
//	                revoke-to-CRL latency, CRL build time and   x509.CreateRevocationList of the same
//	                size at 10k..1M entries                     entries
//	proxyload       fleetca proxy: full handshakes/s,           nginx doing the same job in front of
//	                keep-alive requests/s, added latency, a     the same upstream; a direct call to the
//	                1M-entry CRL, revoke-to-deny and            upstream; nginx as `fleetca export
//	                revoke-to-close; exported nginx configs     nginx` configures it
//	renewload       POST /v1/renew at concurrency 32:           enrollments/s with the same connections:
//	                renewals/s over mutual TLS (a new           one new connection per enrollment, and
//	                connection per renewal) and with a          keep-alive; the ratios against the
//	                renewal token (keep-alive)                  issue's 0.9x
//	replicaload     enrollments/s at concurrency 32 on one     one replica on bbolt (fsync on); the
//	                and two replicas sharing one PostgreSQL     same revocation seen by A's own OCSP;
//	                (durable, started by the tool);             the same listing before the million
//	                revoke through A -> B's OCSP revoked,       devices are loaded, and its SQL
//	                p50/p99; a page of 100 of 1M devices        statement alone
//	consoleload     the admin console's pages (overview,        the 100 ms target of issue 15
//	                devices first and deep, a prefix search,
//	                a device) on bbolt with 1M devices and 3M
//	                certificates, in process: median server time
//
// Each command's doc.go says in full what it does and which flags it takes
// (go run ./NAME -h). A missed target is reported in the table, never an
// error, unless -strict; a request that fails where none should is an error
// (exit 1).
//
// # Running them
//
// From the repository root, `make bench` runs the six with their
// defaults, enrollload with -client all (about eighteen minutes on two
// cores), then the Go benchmarks of ca, store/boltstore and
// store/pgstore. replicaload needs PostgreSQL (apt-get install
// postgresql). One tool, with flags, from this directory:
//
//	cd bench
//	go run ./enrollload -concurrency 32 -reps 5
//	go run ./enrollload -client all -concurrency 32
//	go run ./revocationload -phases ocsp,crl -crl-sizes 10k,100k
//	go run ./proxyload -phases handshake,revoke -nginx none
//	go run ./renewload -duration 2s -reps 1
//	go run ./replicaload -phases revoke,list -devices 100k
//
// They are Linux only (they read CPU times and memory from /proc) and are
// development tools, never shipped.
//
// # The module
//
// bench/go.mod is a module of its own, github.com/fleetca/fleetca/bench,
// whose replace directive points at the repository root: the benchmarks
// build against the product in the same checkout, and `go test ./...` at
// the root neither builds nor tests them. `make test` runs this module's
// vet and tests after the product's. The benchmarks use the product's
// public packages only: client and api for every call to the CA's API
// that sets up or triggers a measurement (tokens, step tokens, renewal tokens, the
// proxies' server certificate and devices, proxyload's revocations), and ca, revocation
// and store where they sign or parse in process; replicaload also starts
// PostgreSQL with internal/pgtest.Start (a bench package may import the
// product's internal packages: its import path is under the product's),
// and loads its million devices in SQL against store/pgstore's schema. The load itself
// (enrollments, renewals, OCSP requests, revocationload's revocations,
// the proxies' handshakes) is sent by each tool's own tuned HTTP or TLS
// client, which never verifies a chain during a timed loop; where it
// reads the CA's JSON, it reads the api types (EST's PKCS #7 with
// github.com/smallstep/pkcs7). renewload mints its
// renewal tokens with client.RenewalToken, as a device's agent does.
package bench
