// Package storebench holds the fixtures of the store backends'
// benchmarks, so that store/boltstore's and store/pgstore's numbers come
// from the same workload: the certificates and devices they record, the
// enrollment token they spend, a bound on the calls in flight, and
// BenchmarkIssue's loop itself (Issue).
//
// # Basics
//
// Only the backends' _test.go files import it (it is internal to store).
// A benchmark's device n is Device(n), its certificate Certificate(...)
// with DERSize bytes of DER, and its serials Serial(n) or Serial(n, i):
// time-ordered on top and 128 random-looking bits below, as fleetca's
// are, derived from n so that a setup and a timed loop agree without
// sharing state.
//
// # What it must not do
//
// It must not time anything but what a benchmark asks for, read the
// wall clock for record times (every time is the caller's now), or know a
// backend's internals: what a backend needs beyond store.Store (an
// unsynced setup, a durable server) stays in its own test files.
package storebench
