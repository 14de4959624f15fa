// Package revocation owns revoking and what verifiers learn of it: the
// device CRL and the root CRL (built, numbered, cached), the OCSP responder
// (request bytes in, response bytes out), and the Checker that verifiers use.
//
// # Basics
//
// The Checker is the verifier side: given the fleet's intermediate, it
// answers whether a certificate is revoked, from a CRL it fetches and
// verifies (serials indexed for O(1) lookup, refreshed before nextUpdate)
// or from the OCSP responder (answers cached until their nextUpdate). It
// fails closed: no data, data stale beyond the grace period, or a
// certificate the responder does not know is a *RefusedError saying why.
//
// # Caveats
//
// This package has no HTTP handlers: package web serves what it builds.
// Reason codes are RFC 5280 §5.3.1's; removeFromCRL is refused because
// fleetca publishes full CRLs only.
package revocation
