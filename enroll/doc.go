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
// A pattern that matches every device ID (AnyDevice: "*", "?*", ...) is
// refused unless the request says AnyDevice too. A TTL, when given, is
// 1m..enroll.max_token_ttl; only an absent TTL means
// enroll.default_token_ttl, so "0s" is refused, not read as the default.
// Admin tokens are kept the same way: each belongs to a named admin
// (store.Admin) with a role, viewer < operator < owner (CreateAdmin,
// DisableAdmin, RotateAdmin, CheckAdmin, RequireRole). init's token is the
// first owner's, named admin (MintAdminToken); a CA from before named
// admins gets that owner from its old token on serve (UpgradeAdminToken).
// Every audit row of an admin's act names it: actor admin:<name>, from
// the request's context (internal/adminctx).
//
// Enroll checks, in order: the token (well formed, known, not revoked, not
// expired, uses left), the key (ECDSA P-256/P-384, RSA 2048..8192 bits with
// e >= 65537, Ed25519; NIST SP 800-57 112-bit floor), the CSR signature (not
// SHA-1), and the names: the CA, not the CSR, decides the subject, so a CSR
// may carry only CN=<device ID> and at most the one URI SAN, the device's
// SPIFFE ID spiffe://<trust domain>/device/<device ID>; and the extension
// request, which may ask only for what a device certificate gets anyway
// (keyUsage digitalSignature, extendedKeyUsage clientAuth alone,
// basicConstraints CA:FALSE, the device's SAN): CA:TRUE, keyCertSign, an
// EKU other than clientAuth, or any other extension, known or not, is
// refused by name (csrext.go). Anything else is refused, never rewritten.
// Attributes other than the extension request (challengePassword, sent by
// EST and SCEP clients) are not looked at. Then ca signs, and one store transaction spends
// the token and records the certificate, the device, the key binding and
// the audit row. The Result names the device as an api.DeviceID.
// A token with uses left after a request is kept in memory (tokencache.go)
// so that its next request skips the store read of the first check; the
// transaction checks the token again, and this Service's own spends and
// revocations keep the copy up to date (a read from before a revocation
// or a spend, cached after it, does not undo it). Only a token revoked or spent through
// another replica sharing the store is refused after signing (by the
// transaction, with nothing written) rather than before.
//
// # Step tokens
//
// CreateToken with Format StepTokenFormat mints a one-time token in the
// step CLI's JWK-provisioner form (steptoken.go): an ES256 JWT signed with
// Deps.Step's key (ca.step_provisioner_key), kid = the key's RFC 7638
// thumbprint, iss = the provisioner name (ca.step_provisioner), aud = the
// first of StepSignURLs, sub and sans = the device ID, sha = the root's
// SHA-256, a random jti, nbf/iat/exp from the TTL. The store keeps it as a
// one-use token whose hash derives from the jti. EnrollStep checks it with
// jose (kid, signature, iss, aud any sign URL, with or without /1.0 or the
// port, sub, sans, times with 1 min of leeway) and redeems it through the
// same core as Enroll; the CSR may carry the one DNS SAN = the device ID
// that step adds, and still gets fleetca's profile. EnrollStep with no
// token and a TLS client chain enrolls with it as a manufacturer
// certificate instead.
//
// A step revocation token (TokenRequest.RevokeSerial, step format) is the
// same JWT for the revoke URLs (each sign URL with /revoke for /sign),
// sub = the certificate's serial in decimal as step ca revoke sends it, no
// sans; minted only for a known, unrevoked certificate and recorded as a
// one-use token of its device. ParseStepRevokeToken checks it (no token
// is spent there): revocation spends it in the revoke transaction.
//
// CreateTokens mints a batch of one-use tokens (TokenBatchRequest: up to
// api.MaxTokenBatch device IDs, no repeats) and stores them with their
// audit rows in one store transaction (store.CreateTokens).
// ParseDeviceIDList reads a factory station's file of device IDs (one a
// line, blank lines and # comments skipped), whole or not at all, naming
// the first bad line.
//
// # Manufacturer certificates
//
// A manufacturer (AddManufacturer, ListManufacturers, RemoveManufacturer;
// manufacturer.go) is a CA whose certificates, put into devices in the
// factory (IDevIDs), enroll instead of a token: EnrollWithManufacturer
// takes the TLS client's chain and the CSR. It verifies the leaf against
// each manufacturer's CA in turn (intermediates from the chain, validity at
// the clock's now, any extended key usage: IDevIDs often lack clientAuth),
// reads the device ID from the subject CN or serialNumber as the
// manufacturer says, checks it is a device ID and matches the
// manufacturer's device_pattern, then the CSR as for a token of that
// device. The store records the certificate's SHA-256 and serial with the
// device in the issuing transaction: a second use is a Conflict until an
// admin revokes and resets the device (store.ResetDevice releases it), and
// an existing device that did not enroll with that certificate is a
// Conflict too. The audit row's actor is manufacturer:<name>, its detail
// the manufacturer certificate's serial and SHA-256.
//
// # Renewal
//
// Renew is the one renewal core: POST /v1/renew and the step CLI's /renew
// and /rekey call it, and so will EST's simplereenroll. A device
// proves it holds its certificate over mutual TLS (web passes the TLS
// peer chain, which its listener verified to the fleet's intermediate;
// Renew checks no signature of it, only that the leaf is a clientAuth
// certificate valid at now and, byte for byte, one this CA recorded: a
// caller must pass only a chain whose key a handshake proved), or with a
// renewal token: a JWT signed by the certificate's key, with the chain in
// its x5c (or step's x5cInsecure) header, parsed with
// go.step.sm/crypto/jose and checked in renewtoken.go (the chain to the
// intermediate alone, as of the certificate's own validity: proved by the
// store's record when the leaf is, byte for byte, the certificate this CA
// recorded under the intermediate, else by its signatures; sub = the
// device ID, aud = one of Config.RenewURLs (RenewURLs makes fleetca's and
// step's, /renew and /1.0/renew), exp - iat at most 5 minutes, 10 minutes
// of skew, used
// once). Only a token renews a certificate that has expired, and only
// within Config.RenewAfterExpiry (ca.renew_after_expiry). The CA, not the
// request, decides the new certificate: the device's names from the
// record, the current profile and validity; a rekey's CSR passes the whole
// enrollment CSR policy for that device. One store.Renew transaction then
// applies the lineage rules: only the newest unrevoked certificate of an
// active device renews; a retry (the same certificate and key within
// RetryWindow, 24 h) returns the certificate already issued; one renewal
// per device per Config.RenewMinInterval, else fault.RateLimited with
// RetryAfter; certificates beyond max_active_certificates are revoked as
// superseded and handed to Deps.Revoked.
//
// Every issued certificate comes with when to renew it (Result.RenewAfter:
// two thirds of the validity, ±1 % of it by the serial; and the window
// around it). RenewalInfo answers the same for any serial, in the manner
// of ACME ARI (RFC 9773), and moves the window to the moment the
// certificate was revoked or an admin asked its device (RenewNow) or the
// fleet (FleetRenewNow) to renew. Run keeps the gauge
// fleetca_enroll_device_certificates (active devices by the time to expiry
// of their newest certificate) current, recounting every ExpiryRefresh;
// fleetca_enroll_renewals_total counts renewals by kind (renew, rekey,
// after_expiry) and outcome.
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
//   - A renewal refused writes nothing and spends no renewal token; a
//     renewal token is spent (by its jti, or by its signed payload) in the
//     transaction that records the renewal. enroll never imports
//     revocation: superseded certificates leave through Deps.Revoked.
//
// # What it must not do
//
// enroll has no HTTP and no CLI: it returns a *fault.Error for anything
// the caller can fix, and a plain wrapped error otherwise. Its hints name
// the request field (ttl, uses, device_id, device_pattern, any_device) or the
// configuration key (enroll.max_token_ttl, trust_domain,
// ca.renew_after_expiry) to change, never
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
