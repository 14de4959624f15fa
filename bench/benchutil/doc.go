// Package benchutil holds what the benchmark commands under bench/ share:
// their common flags and setup (Main, Flags, Prepare), building fleetca
// from the checkout bench/go.mod's replace names (ProductRoot, Build),
// running `fleetca init` and `fleetca serve` as a separate process and
// finding its listeners (StartServer, or Init, SetConfig to change
// fleetca.yaml, then Serve), a client of its API for setup and admin
// calls (Server.Client, package client with the data directory's root and
// admin token; TokenMinter for pattern tokens), the load's enrollment
// client (P-256 CSRs, with their keys for devices that go on to renew,
// POST /v1/enroll on a tuned HTTP client, checking the answer as an
// api.EnrollResponse without verifying its chain), reading raw HTTP/1
// answers for the lean load clients (ReadHead, ReadBody, ReadAnswer),
// reading CPU times and memory from /proc, and what the reports print:
// medians and percentiles, durations in µs and ms, ratios, counts as 1M
// and 10k, and the concurrency levels the flags take (ParseLevels).
//
// It is a development tool, Linux only for the CPU times, and never shipped.
package benchutil
