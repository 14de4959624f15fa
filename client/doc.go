// Package client is the CA's HTTP API as a Go client: trust bootstrap by a
// root's fingerprint or a root file, enrollment, renewal, the admin API,
// and the verifier's trust bundle. The fleetca CLI, the renewal agent and the
// benchmarks use it; any Go program may.
//
// # Basics
//
// A Client talks to the CA's HTTPS listener and trusts only the roots it
// is given: read them from a file with ReadRoots, or fetch them once with
// Bootstrap, which keeps only the root whose SHA-256 the caller pinned
// (the fingerprint `fleetca serve` prints). Every later request verifies
// the server's chain against those roots, over TLS 1.2 or later.
//
// Error answers are RFC 9457 problem documents (api.Problem); the client
// turns each back into the *fault.Error the CA raised, of the same kind,
// detail and hint, so a caller handles a remote error as a local one.
//
// Renew renews a device certificate (POST /v1/renew). Over mutual TLS it
// presents the certificate with its key, through an HTTP client of its own
// for that certificate (same roots, TLS 1.2 or later); once the
// certificate has expired, the CA refuses that handshake, and Renew sends a
// renewal token instead (RenewRequest.Token): a JWT signed by the
// certificate's key with the chain in its x5c header, minted by
// RenewalToken with go.step.sm/crypto's jose package. RenewalInfo reads the
// renewal window the CA suggests. A refusal that says when to try again (a
// 429 for a device that renewed too recently, a 503) carries the answer's
// Retry-After in the fault's RetryAfter.
//
// FetchTrustBundle is the one call made over the CA's plain-HTTP listener:
// it fetches roots.pem and chain.pem, which prove nothing by themselves,
// and keeps them only if the root is pinned and every intermediate chains
// to it.
//
// # Invariants
//
//   - A token or key is never sent over plain HTTP: New and Bootstrap
//     refuse a URL that is not https://, before any connection is made.
//   - Every answer is read through a bound (MaxAnswerBytes); every request
//     has a timeout (Config.Timeout) besides the caller's context.
//   - An issued certificate is returned only after its chain verifies
//     against the trusted roots for its usage and its key is the one the
//     CSR carried (on a renewal: the certificate's own key, or the rekey
//     CSR's, and the same device).
//   - A private key never leaves the process: it signs the TLS handshake
//     or the renewal token.
//
// # Caveats
//
// Client imports nothing of the CA's internals: only api and
// internal/fault. Its hints name no CLI flag; the CLI adds its own words.
package client
