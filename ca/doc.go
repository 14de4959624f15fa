// Package ca is fleetca's certificate authority: the key hierarchy, key
// loading, the certificate profiles, serial numbers and signing.
//
// # Basics
//
// Init creates a CA once, in the data directory: a root (20 years, path
// length 1) and an intermediate that issues (5 years, path length 0), with
// their keys under secrets/ (encrypted PKCS#8 when a password is given).
// It never overwrites an existing CA.
//
// New turns a Config (the ca section of fleetca.yaml) and Deps into an
// *Authority: it loads both certificates and the intermediate key (a file
// through softkms, or any go.step.sm/crypto/kms URI), checks that they
// belong together, and works out once everything the profiles need. The
// Authority is immutable afterwards and safe for concurrent use.
//
// SignDevice issues the device client certificate of DESIGN.md; SignServer
// the HTTPS listener's certificate. Both set AIA (OCSP, caIssuers) and a
// CRL distribution point on the HTTP listener's public URL. GenerateKey
// makes keys of the supported KeyTypes.
//
// # What it must not do
//
// ca signs what it is asked to: whether a device may have a certificate,
// and whether its CSR and key are acceptable, is package enroll's
// decision. ca knows nothing of tokens or HTTP, keeps no records (the
// caller stores what it issues), reads no flags or environment, and never
// calls time.Now in its logic: the clock is Deps.Now.
//
// # Errors
//
// Anything the caller or operator can fix is a *fault.Error (package
// internal/fault): Malformed for bad configuration or input, NotFound for
// missing files, Unavailable for an encrypted key without a password, an
// offline root key or an expired intermediate, Unauthorized for a wrong
// password, BadKey for a key type that cannot be certified, Conflict when
// Init finds a CA already there. Everything else is internal, wrapped with
// %w.
//
// # Invariants
//
//   - Serial numbers are 159 random bits: positive, at most 20 octets.
//   - A certificate never outlives the intermediate that signed it.
//   - The intermediate's key matches its certificate, and the
//     intermediate chains to the root at New's time.
//   - Key files are mode 0600, in a 0700 directory.
//   - The root key is never loaded to issue: only RootSigner loads it, on
//     first use.
//
// # Caveats
//
// x509.CreateCertificate verifies every signature it makes, so each
// issued certificate costs one signature and one verification. The
// OCSP responder key, CRLs and OCSP responses are not here yet. A PKCS#11
// or other non-soft KMS works only in a binary that registers it with
// go.step.sm/crypto/kms; this package registers softkms only.
package ca
