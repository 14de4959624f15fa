// Package agent is the device side of renewal: it keeps one device
// certificate and its key renewed, from the CA's renewal window, for as
// long as the device runs, including after a long time offline. `fleetca
// renew` is its command line; any Go program on a device may use it.
//
// # Basics
//
// A Renewer (New) reads a certificate file (the leaf then its chain, as
// `fleetca enroll` writes it) and its key file. Once renews if the
// certificate is due (or Config.Force) and says when it will be due
// otherwise; Run sleeps until the renewal window, renews, and starts over,
// until its context ends or the CA refuses for good.
//
// The window is the CA's (client.RenewalInfo, RFC 9773 in spirit): Run
// looks at it at least every Config.CheckInterval, or sooner when the CA's
// Retry-After says so, so that an admin's renew-now is seen at the next
// look. When the CA cannot say, the certificate is due two thirds into
// its validity. While the CA cannot be reached, Run tries again with
// capped exponential backoff and jitter, reset after each success; a 429
// waits its Retry-After. While the certificate is valid it renews over
// mutual TLS; once it has expired (by the device's clock, or when the CA
// refuses the handshake as expired) it sends the renewal token instead.
//
// After a renewal the new certificate and chain (and, on a rekey, the new
// key, mode 0600) are installed so that a crash at any point leaves, once
// the agent starts again, a key that matches its certificate: see the
// comment at the top of files.go for the steps and how each half-done
// state is repaired. Then Deps.Exec runs (the service reload).
//
// # Invariants
//
//   - The private key never leaves the device; a rekey's new key is on
//     disk (KEY.next) before its CSR is sent, so that a lost answer is
//     retried with the same key and the CA returns the certificate it
//     already issued.
//   - A refusal other than "unavailable" or "too soon" (a revoked
//     certificate or device, an older certificate, an expired one past
//     the CA's grace, a bad request) ends Run with that fault, whose hint
//     says what to do.
//   - Time comes from Deps.Now and waits from Deps.Sleep: tests run the
//     schedule on a fake clock (testing/synctest).
//
// # Caveats
//
// One Renewer per pair of files: two processes renewing the same files
// race. The key must be an unencrypted PEM file (PKCS #8, SEC 1 or PKCS
// #1). The agent imports client, api and internal packages only, never the
// CA's.
package agent
