// Package enroll is fleetca's registration authority: it decides who may get
// which certificate, and asks package ca to sign it.
//
// # Basics
//
// A Service (New, from a Config and Deps) mints enrollment tokens
// (CreateToken) and redeems them against a CSR (Enroll). A token is 256
// random bits with the recognisable prefix "fca_et_"; only its SHA-256 is
// stored, and it is shown by its ID (TokenID). A token names one device
// (TokenRequest.DeviceID) or a glob of device IDs (DevicePattern) that a
// factory station may enroll, for a number of uses and until an expiry.
// The admin token (MintAdminToken, AuthenticateAdmin) is kept the same way.
//
// Enroll checks, in order: the token (well formed, known, not revoked, not
// expired, uses left), the key (ECDSA P-256/P-384, RSA 2048..8192 bits with
// e >= 65537, Ed25519; NIST SP 800-57 112-bit floor), the CSR signature (not
// SHA-1), and the names: the CA, not the CSR, decides the subject, so a CSR
// may carry only CN=<device ID> and at most the one URI SAN, the device's
// SPIFFE ID spiffe://<trust domain>/device/<device ID>; anything else is
// refused, never rewritten. Then ca signs, and one store transaction spends
// the token and records the certificate, the device, the key binding and
// the audit row. The Result names the device as an api.DeviceID.
//
// IssueServer issues a TLS server certificate (for fleetca proxy) on an
// admin's request: the CSR passes the same key and signature policy
// (CheckServerCSR) and may name only what the admin asked for; the
// certificate is audited, not recorded as a device's.
//
// # Invariants
//
//   - Device IDs and the trust domain follow package api's rules, written
//     there once: enroll parses a token request's device ID and a pattern
//     token's CSR CN with api.ParseDeviceID, and builds the one URI SAN a
//     CSR may carry with api.DeviceSPIFFEID.
//   - A refusal never burns a token: conditions that a concurrent
//     enrollment can change (token uses, a device appearing, a device's
//     live-certificate count, a key bound elsewhere) are checked by the
//     store inside the issuing transaction, so N racing uses of a 1-use
//     token yield one certificate. A certificate signed for a request that
//     the store then refuses is discarded, never returned.
//   - Token secrets never reach a log, an error or the store: Secret logs
//     as REDACTED, and an error about a token never repeats it.
//
// # What it must not do
//
// enroll has no HTTP and no CLI: it returns a *fault.Error for anything
// the caller can fix, and a plain wrapped error otherwise. Its hints name
// the request field (ttl, uses, device_id, device_pattern) or the
// configuration key (enroll.max_token_ttl, trust_domain) to change, never
// a command-line flag or an environment variable, and the error's Field or
// Key says which, so that web and the CLI can point at it in their own
// terms. It does not sign (ca does), keep records itself (the store does),
// or read the clock other than through Deps.Now.
//
// # Caveats
//
// Store errors are classified where they are met: a token condition
// becomes Unauthorized, a device or key condition Conflict or Forbidden.
// A pattern token enrolls only devices the CA has not seen; an enrolled
// device needs a token for its own ID.
package enroll
