// Package benchutil holds what the benchmark commands under bench/ share:
// their common flags and setup (Main, Flags, Prepare, Logger, ExitCode),
// building fleetca from the checkout bench/go.mod's replace names
// (ProductRoot, Build), running `fleetca init` and `fleetca serve` as a
// separate process and finding its listeners (StartServer, or Init,
// SetConfig to change fleetca.yaml, then Serve; StartLogged in a tool's
// temporary directory), a client of its API for setup and admin calls
// (Server.Client, package client with the data directory's root and admin
// token; TokenMinter for pattern tokens), the load's enrollment client
// (P-256 CSRs, with their keys for devices that go on to renew, POST
// /v1/enroll on a tuned HTTP client, checking the answer as an
// api.EnrollResponse without verifying its chain), the lean HTTP/1 load
// client (Conn, over TCP or TLS with a pinned server certificate,
// PinnedTLS; ReadHead, ReadBody, ReadAnswer for the answers), a timed
// phase of prepared requests and what it measured (RunPhase, Phase,
// Summarize; ForEach for setup work), reading CPU times and memory from
// /proc, and what the reports print: the machine, medians and
// percentiles, durations in µs and ms, ratios, counts as 1M and 10k, and
// the concurrency levels and phases the flags take (ParseLevels,
// ParsePhases).
//
// It is a development tool, Linux only for the CPU times, and never shipped.
package benchutil
