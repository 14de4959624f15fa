// Command replicaload is the replica benchmark behind `make bench` (issue
// 14): fleetca on PostgreSQL, one and two replicas, beside one replica on
// bbolt, in one run.
//
// It builds fleetca and starts its own PostgreSQL (internal/pgtest.Start:
// Debian's postgresql package, initdb into the temporary directory, pg_ctl
// on loopback) with fsync, full_page_writes and synchronous_commit on, as
// production runs it; PostgreSQL groups concurrent commits' WAL flushes
// as it does by default. Then, on the same two cores:
//
//   - Enrollments/s at concurrency 32 (-concurrency) against one `fleetca
//     serve` on bbolt (fsync on), one on PostgreSQL, and two on the same
//     PostgreSQL database (copies of one data directory, as two machines
//     would run them), the workers split between them by connection
//     (worker w talks to replica w mod 2, as a round-robin load balancer
//     places connections). Every device spends a use of one pattern
//     token, as a factory line's do; one more row, on the one-replica
//     PostgreSQL setup, gives each device a one-time token of its own
//     (minted in batches before the timing), to show what the shared
//     token's row lock costs. Each setup: a warm-up, then -reps repetitions
//     of -duration; medians, latency percentiles over all. Beside each
//     rate: the CPU that fleetca (all replicas), PostgreSQL (the
//     postmaster and its backends) and this client spent per
//     enrollment, and where PostgreSQL's active sessions were waiting
//     (pg_stat_activity sampled every 20 ms: lock waits, WAL flushes, or on
//     CPU).
//   - Revocation to OCSP: -revocations certificates revoked one at a time
//     through replica A's admin API; from its 200 the tool polls replica
//     B's OCSP responder (POST, no nonce, every 2 ms; B was asked first,
//     so it had a cached good answer to replace) until it says revoked.
//     p50 and p99, beside the same measured against A itself.
//   - Listing one page of 100 devices (GET /v1/admin/devices?limit=100
//     after a random device) with 1,000,000 devices (-devices) in the
//     database, loaded in SQL with INSERT ... SELECT over generate_series,
//     not through the API (it says so in its output): the median of -lists
//     calls, beside the same call before the load and the SQL statement
//     alone.
//
// Targets, from the issue, printed beside each figure: one PostgreSQL
// replica at least 0.5x the bbolt rate; revocation to OCSP on another
// replica p99 under 1 s; one page of a million devices under 50 ms. A
// missed target is reported, not an error (exit 0, unless -strict); a
// request that fails is an error (exit 1).
//
// Usage, in bench/ (`make bench` runs it with the defaults):
//
//	go run ./replicaload [-duration 5s] [-reps 3] [-concurrency 32]
//	    [-revocations 50] [-devices 1M] [-lists 21] [-phases enroll,revoke,list]
//	    [-fleetca BINARY] [-tmp DIR] [-keep] [-strict]
//
// The defaults take about three and a half minutes on two cores. It needs
// PostgreSQL (apt-get install postgresql); as root it runs PostgreSQL as
// the postgres user, which must be able to enter -tmp. It is a development
// tool, Linux only (it reads /proc), and never shipped.
package main
