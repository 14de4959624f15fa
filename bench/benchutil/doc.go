// Package benchutil holds what the benchmark commands under bench/ share:
// their common flags and setup (Main, Flags, Prepare), building fleetca
// from the checkout bench/go.mod's replace names (ProductRoot, Build),
// running `fleetca init` and `fleetca serve` as a separate process and
// finding its listeners, the enrollment client (P-256 CSRs, POST
// /v1/enroll, checking the answer), reading CPU times and memory from
// /proc, and medians and percentiles.
//
// It is a development tool, Linux only for the CPU times, and never shipped.
package benchutil
