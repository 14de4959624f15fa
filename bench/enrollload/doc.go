// Command enrollload is the enrollment benchmark behind `make bench`.
//
// It builds fleetca, creates a fresh CA with `fleetca init`, starts
// `fleetca serve` on it as a separate process (bbolt with fsync on,
// loopback listeners only), and mints pattern tokens through the admin API
// with package client, between the timed phases. For each concurrency it
// warms up, then runs N workers that POST pre-generated P-256 CSRs (PEM,
// CN=b-<n>) to /v1/enroll over keep-alive HTTPS, several times. The load
// itself does not go through package client: its HTTP client is tuned for
// the measurement (a lean HTTP/1.1 client in the manner of wrk, one
// keep-alive connection per worker, or net/http's over one HTTP/2
// connection), and it checks the first answer of each phase for its device and serial
// without verifying the chain, which would take CPU from the server on the
// same cores. It prints, per concurrency, the median
// enrollments per second, latency percentiles and the server process's CPU
// time per certificate (utime+stime from /proc/<pid>/stat), set against the
// crypto floor per certificate that it measures in the same run, in
// process, on one core: checking a CSR's signature plus signing a
// certificate.
//
// With -client est or step it sends the same enrollments as another
// client would: EST simpleenroll (RFC 7030; HTTP Basic with the device ID
// and the pattern token, the CSR as base64 DER; the answer a certs-only
// PKCS #7 in base64, which it decodes and parses with
// github.com/smallstep/pkcs7), or step's POST /1.0/sign ({"csr": PEM,
// "ott": T}, with a CSR that carries the device ID in a DNS SAN as the
// step CLI makes it; the answer {crt, ca, certChain}, checked as step reads
// it). A step token is for one device and one use, so each step enrollment
// gets its own, minted before the timed phase through the admin API in
// batches, as a factory station mints them (`fleetca token create --format
// step --device-ids-file`). -client all
// runs the three at each concurrency, interleaved repetition by
// repetition against the same server, and prints a second table: each
// kind's median enrollments/s and server CPU per certificate over
// native's, with the target (EST and step at least 0.9x native at
// concurrency 32). Under each kind's row it prints the bound that kind's
// extra public-key operations alone allow: native's measured (server +
// client) CPU per certificate plus one P-256 verification, timed in the
// same run as the floor's CSR check, for step's token (EST pays none), as
// a rate ratio with the cores the limit, and how far the kind's measured
// server CPU per certificate is above it.
//
// Baselines, in the same run: the crypto floor above, measured in process
// by this program before the load starts (floor I, issue 19's: CSR parse
// and signature check plus x509.CreateCertificate), and step-ca v0.30.2
// itself. Unless -step-ca=false, the program installs step-ca once with
// `go install github.com/smallstep/certificates/cmd/step-ca@v0.30.2`
// (CGO_ENABLED=0, GOBIN=$HOME/.cache/fleetca-tools/bin, outside the
// repository; skipped when that binary is at that version), configures it
// in the run's temporary directory (a root and an intermediate made with
// go.step.sm/crypto's minica, the intermediate key under a password file,
// one JWK provisioner, the bbolt database, a loopback port), starts it,
// and at concurrency 32 enrolls against its POST /1.0/sign as one more
// kind interleaved with fleetca's, with one-time tokens it mints before
// timing with the provisioner's key (aud .../1.0/sign, sha the root's
// fingerprint, sans the device ID, a unique jti). It prints both servers'
// median enrollments/s and CPU per certificate (/proc/<pid>/stat), the
// rate ratio against issue 19's 6x, and fleetca's CPU per certificate
// over floor I against its 1.3x. `make test` never runs this program.
//
// The ceiling, in the same run: unless -bare=false, at concurrency 32 it
// also enrolls against a bare server, this program started again as its
// own process (FLEETCA_ENROLLLOAD_BARE names its directory; -server-env
// applies to it too): net/http and crypto/tls as serve uses them (TLS 1.2+,
// a P-256 certificate, serve's GOGC and GOMAXPROCS), answering native's
// POST /v1/enroll by floor I and nothing else (the CSR's parse and
// signature check, x509.CreateCertificate with the floor's device
// template, the enrollment JSON), with no token store, database, fsync,
// policy or log. A CA on Go's crypto and net/http does at least this per
// certificate, so the bare server's rate is about such a CA's ceiling on
// this machine with this client: its rate over step-ca's says whether 6x
// is within reach here (out of reach only if its best repetition over
// step-ca's worst falls short), and fleetca's CPU over its CPU is what
// fleetca's own work (echo, token, policy, durable store, audit tree,
// log) costs.
//
// Then, unless -profile 0, it profiles the same enrollments in process:
// `go test ./cmd/fleetca -bench EnrollHTTPS/h1/c=32 -cpuprofile` (serve's
// real HTTPS wiring on bbolt with fsync, -profile enrollments; serve
// itself has no pprof hook), reads the profile with `go tool pprof -raw`,
// drops the load generator's samples (pprof label side=client or setup),
// and prints the server's CPU by area: TLS, HTTP/JSON, CSR check, signing,
// x509 encoding, the store (bbolt, binary records, audit tree hashing,
// fsync), GC.
//
// Usage, in bench/ (the benchmarks' own module; `make bench` runs it with
// the defaults from the repository root):
//
//	go run ./enrollload [-client native|est|step|all] [-step-ca=true] [-bare=true] [-profile 20000]
//	    [-duration 5s] [-reps 3]
//	    [-concurrency 1,8,32] [-proto h1|h2] [-server-env GOGC=400]
//	    [-fleetca BINARY] [-keep] [-strict]
//
// The defaults (native, step-ca at c=32, the profile) finish in about
// three minutes on two cores; -client all, as `make bench` runs it, in
// about six. The client is
// HTTP/1.1 with keep-alive, one TLS connection per worker, as factory-line
// scripts (curl, fleetca enroll) talk, written lean (benchutil.Conn: each
// request one write from a buffer, the answer read just enough to check
// its status and length; net/http's client took about 75 µs of the two
// cores per enrollment, this one about half), the same for fleetca and
// step-ca; -proto h2 multiplexes every worker on one HTTP/2 connection
// with net/http's client instead.
//
// The client runs on the same machine as the server and shares its cores;
// its CPU per certificate is shown, and so is the CPU that other processes
// took during each repetition ("other"): a busy machine makes the rate and
// latency meaningless, and the table says so. CPU per certificate suffers
// less. A missed target is reported, not an error (exit 0, unless -strict);
// a request that fails is an error (exit 1).
//
// It is a development tool, Linux only (it reads /proc), and never shipped.
package main
