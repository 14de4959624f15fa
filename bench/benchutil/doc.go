// Package benchutil holds what the benchmark commands under bench/ share:
// their common flags and setup (Main, Flags, Prepare), building fleetca
// from the checkout bench/go.mod's replace names (ProductRoot, Build),
// running `fleetca init` and `fleetca serve` as a separate process and
// finding its listeners, a client of its API for setup and admin calls
// (Server.Client, package client with the data directory's root and
// admin token), the load's enrollment client (P-256 CSRs, POST
// /v1/enroll on a tuned HTTP client, checking the answer as an
// api.EnrollResponse without verifying its chain), reading CPU times and
// memory from /proc, and what the reports print: medians and
// percentiles, durations in µs and ms, ratios, counts as 1M and 10k, and
// the concurrency levels the flags take (ParseLevels).
//
// It is a development tool, Linux only for the CPU times, and never shipped.
package benchutil
