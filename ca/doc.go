// Package ca is fleetca's certificate authority: the key hierarchy, key
// loading, the certificate profiles, serial numbers and signing.
//
// # Basics
//
// Init creates a CA once, in the data directory: a root (20 years, path
// length 1) and an intermediate that issues (5 years, path length 0), with
// their keys under secrets/ (encrypted PKCS#8 when a password is given).
// It never overwrites an existing CA. It also makes the step provisioner
// key and the audit key (AuditKey: Ed25519, in golang.org/x/mod/sumdb/note
// form, never a CA key), which signs the audit log's checkpoints; its
// public key is DIR/audit.pub, named AuditKeyName(CA name). serve makes
// either when it is missing (a CA older than the key).
//
// New turns a Config (the ca section of fleetca.yaml) and Deps into an
// *Authority: it loads both certificates and the intermediate key (a file
// through softkms, or any go.step.sm/crypto/kms URI), checks that they
// belong together, and works out once everything the profiles need. The
// Authority is immutable afterwards and safe for concurrent use.
//
// SignDevice issues the device client certificate (docs/ARCHITECTURE.md,
// "The contract") for a DeviceRequest (an api.DeviceID and a public key):
// subject CN the device ID, one URI SAN, the device's SPIFFE ID
// (api.DeviceSPIFFEID, in Deps.TrustDomain). SignServer issues a TLS server certificate, for the
// HTTPS listener or a verifier. Both set AIA (OCSP, caIssuers) and a CRL
// distribution point on the HTTP listener's public URL. GenerateKey makes
// keys of the supported KeyTypes.
//
// SignDevice is on every enrollment's path, so it does no work twice
// (devicecert.go): the extensions every device certificate shares are
// encoded once, by New, the subject key identifier, SAN and subject per
// certificate, and they reach x509.CreateCertificate (which still encodes
// the TBSCertificate, signs it and checks the signature it made) as
// ExtraExtensions in the order it would write them, so the certificate is
// byte for byte what the template's fields would give. The
// *x509.Certificate returned is built from what was signed rather than
// parsed back, equal in every field to x509.ParseCertificate of its Raw;
// its slices may be shared with the Authority and must not be changed.
//
// # Revocation
//
// Package revocation decides what CRLs and OCSP responses say; ca signs
// them. SignCRL signs the device CRL (the intermediate's, served at
// PublicURL+"/crl") from a CRLTemplate: number, thisUpdate, nextUpdate
// and the entries, which x509.CreateRevocationList encodes in the order
// given without a copy. SignRootCRL signs the root's CRL over
// intermediates (PublicURL+"/root.crl") with the root key. Both write the
// authority key identifier and CRL number and no issuing distribution
// point: an IDP would make OpenSSL, BoringSSL and rustls-webpki refuse
// the CRL for certificates whose distribution point URL differs from it.
//
// Partitioned CRLs (Deps.CRLPartitions N > 1, revocation.crl_partitions):
// SignDevice assigns each certificate partition PartitionOfSerial(serial,
// N) and writes PartitionURL (PublicURL+"/crl/<p>") as its CRL
// distribution point; PartitionOf reads it back for the store record,
// which is what counts from then on. SignCRL with
// CRLTemplate.DistributionPoint signs partition p's CRL with a critical
// IDP naming exactly that URL and onlyContainsUserCerts
// (IssuingDistributionPoint), so that verifiers match each certificate
// with its partition's CRL alone. Server certificates keep the full CRL.
//
// NewOCSPResponder issues a short-lived delegated OCSP responder
// certificate (RFC 6960 §4.2.2.2: id-kp-OCSPSigning, id-pkix-ocsp-nocheck)
// for a fresh P-256 key; its Sign turns an ocsp.Response template into a
// signed response that embeds that certificate. MatchesIssuer tells
// whether an OCSP request's CertID names the intermediate, from hashes
// computed in New.
//
// # What it must not do
//
// ca signs what it is asked to: whether a device may have a certificate,
// and whether its CSR and key are acceptable, is package enroll's
// decision. ca knows nothing of tokens or HTTP, keeps no records (the
// caller stores what it issues), reads no flags or environment, and never
// calls time.Now in its logic: the clock is Deps.Now. It writes no rule of
// its own for device IDs or trust domains: those are package api's, which
// ca applies again to what it signs (a value converted rather than parsed
// is refused there).
//
// # Errors
//
// Anything the caller or operator can fix is a *fault.Error (package
// internal/fault), whose hint names the configuration key (ca.root_key,
// password_file, trust_domain) or the request field (dns) to change, never
// a command-line flag or an environment variable; its Key or Field says
// which, for the CLI and web to render. Kinds: Malformed for bad
// configuration or input, NotFound for missing files, Unavailable for an
// encrypted key without a password, an
// offline root key (SignRootCRL says to run `fleetca crl sign-root` where
// the key is), an expired intermediate or an OCSP responder certificate
// that is not valid at signing time, Unauthorized for a wrong
// password, BadKey for a key type that cannot be certified, Conflict when
// Init finds a CA already there. A CRL or OCSP template that breaks the
// documented rules (a missing serial, a reason code of 7, a thisUpdate
// after producedAt, ...) is Malformed: a bug in the caller. Everything else
// is internal, wrapped with %w.
//
// # Invariants
//
//   - Serial numbers are 159 bits: the issuing millisecond (mod 2^31) in
//     the top 31, then 128 random bits; positive, at most 20 octets.
//   - A device certificate names exactly its device: CN = the device ID,
//     one URI SAN = its SPIFFE ID, both from an ID api.ParseDeviceID
//     accepts.
//   - A certificate never outlives the intermediate that signed it.
//   - The intermediate's key matches its certificate, and the
//     intermediate chains to the root at New's time.
//   - Key files are mode 0600, in a 0700 directory; New refuses a file
//     (bare path or softkms URI) holding a private key, encrypted or not,
//     that the group or others may read, with
//     the chmod that fixes it (CheckSecretFile, also used for the password
//     file). Keys in other KMSes (pkcs11:, ...) have no file to check.
//   - The root key is never loaded to issue: only RootSigner loads it, on
//     first use, for SignRootCRL and new intermediates.
//   - CRLs are complete, direct v2 CRLs with an AKI and a CRL number; an
//     entry of reason unspecified has no reason code extension (RFC 5280
//     §5.3.1). No template is changed, and CRL entries are never copied.
//   - The OCSP responder key exists only in memory; its certificate never
//     outlives the intermediate and carries no OCSP or CRL URL.
//   - Clocks: CRL and OCSP dates are the template's; an OCSP response's
//     producedAt defaults to Deps.Now, never the wall clock.
//
// # Caveats
//
// x509.CreateCertificate verifies every signature it makes, so each
// issued certificate costs one signature and one verification; CRLs and
// OCSP responses are signed without that check. OCSPResponder.Sign
// writes the response itself (with cryptobyte) rather than calling
// golang.org/x/crypto/ocsp.CreateResponse, which takes producedAt from
// time.Now truncated to the minute; its ResponseData is otherwise the
// same, byte for byte. Sign takes no context: it does no I/O. A PKCS#11
// or other non-soft KMS works only in a binary that registers it with
// go.step.sm/crypto/kms; this package registers softkms only.
package ca
