// Package certutil holds the small certificate predicates that the
// verifier side (verify), the client and the CLI share, written once so
// that they cannot drift apart: SelfSigned, which tells a root from an
// intermediate in a trust bundle.
//
// # Invariants
//
//   - A predicate only reads the certificate: no I/O, no clock, no state.
//   - SelfSigned needs both the same issuer and subject bytes and a
//     signature the certificate's own key verifies: a name alone does not
//     make a root.
//
// It imports nothing of ours, so that both sides of fleetca may use it.
package certutil
