// Package enroll is fleetca's registration authority: it decides who may get
// which certificate, and asks package ca to sign it.
//
// # Basics
//
// A Service mints enrollment tokens (CreateToken), and redeems them against a
// CSR (Enroll). A token is 256 random bits with the recognisable prefix
// "fca_et_"; only its SHA-256 is stored. A token names one device
// (DeviceID) or a glob of device IDs (DevicePattern) that a factory station
// may enroll, for a number of uses and until an expiry.
//
// Enroll checks, in order: the token (well formed, known, not revoked, not
// expired, uses left), the key (ECDSA P-256/P-384, RSA 2048..8192 bits with
// e >= 65537, Ed25519; NIST SP 800-57 112-bit floor), the CSR signature (not
// SHA-1), and the names: the CA, not the CSR, decides the subject, so a CSR
// may carry only CN=<device ID> and at most the one URI SAN
// spiffe://<trust domain>/device/<device ID>; anything else is refused, never
// rewritten. Then ca signs, and one store transaction spends the token and
// records the certificate, the device, the key binding and the audit row.
//
// IssueServer issues a TLS server certificate (for fleetca proxy) on an
// admin's request: the CSR passes the same key and signature policy
// (CheckServerCSR) and may name only what the admin asked for; the
// certificate is audited, not recorded as a device's.
//
// # Caveats
//
// Conditions that a concurrent enrollment can change (token uses, a device
// appearing, a device's live-certificate count, a key bound elsewhere) are
// checked by the store inside that transaction, not here, so a refusal never
// burns a token and N racing uses of a 1-use token yield one certificate. A
// certificate signed for a request that the store then refuses is discarded,
// never returned.
//
// This package has no HTTP: it returns *fault.Error for anything the caller
// can fix, and plain wrapped errors otherwise.
package enroll
