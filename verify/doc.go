// Package verify is the verifier side of fleetca's revocation: it tells
// whether a certificate of the fleet is revoked, from what the CA
// publishes, and keeps the CRL files of verifiers that read files. The
// reference proxy, `fleetca crl sync`, `fleetca export` and any Go service
// that checks fleet devices use it.
//
// It owns the Checker (CRL, revocation feed or OCSP; freshness and grace;
// the Refusal a refused certificate gets), the Syncer behind `crl sync`,
// CRL parsing (ParseCRL, an index of a million serials in about 50 MB),
// OCSP response checking (VerifyOCSPResponse), the revocation feed's
// client and the conditional fetch of CRLs. It must not know the CA's
// internals: it imports nothing of ours but the wire types (package api)
// and leaf helpers (internal/fault, atomicfile, certutil, redact),
// so that a verifier links no ca, store, enroll, revocation or KMS code (a
// test holds it to that). It reads no flags or environment, and logs
// through the injected logger only.
//
// The main types are Checker (NewChecker, CheckerConfig, CheckerDeps),
// RefusedError and its Refusal, CRL (ParseCRL), Syncer (NewSyncer,
// SyncConfig, SyncDeps, SyncResult), and JWTVerifier (NewJWTVerifier,
// JWTConfig, DeviceJWT, JWTError and its Reason constants).
//
// # Device JWTs
//
// VerifyDeviceJWT checks a token a device signed with the key of its
// fleetca certificate (issue 17): a compact JWS with alg ES256, ES384,
// RS256 or EdDSA fitting the key (never none or HMAC); aud =
// <audienceBase>/devices/<id> (sub, if present, the same id); exp
// required, not past, at most MaxLifetime after iat or nbf (after now
// without either); nbf and iat not in the future; 10 minutes of skew on
// each time (JWTSkew). The key is found by kid (api.KeyID: the lowercase
// hex SHA-256 of the certificate; the RFC 7638 thumbprint of the key is
// accepted too; no kid when the device has one live key) in the JWK Set
// the CA serves at <KeysURL>/v1/devices/{id}/keys, fetched conditionally
// (ETag), revalidated after KeysMaxAge and refetched on an unknown kid at
// most every KeysRefetch per device; or it is the certificate of the
// token's x5c header, verified to Roots now. Either way the certificate
// must verify to Roots with clientAuth now, have CN = id, and pass the
// Checker (stale or missing revocation data: refused, unavailable).
// Results are cached by token until exp; a cached one is checked again
// against its times and the Checker, and dropped when the Checker
// announces its certificate's revocation.
//
// # Basics
//
// Verifiers are given base URLs, never the URL of a file: the CA's HTTP
// listener (http://ca.example:8080), under which they fetch api.CRLPath
// (/crl, the device CRL) and api.RootCRLPath (/root.crl), and the CA's
// HTTPS listener (https://ca.example:8443), under which they follow
// api.FeedPath (/v1/revocations). BaseURL checks one and refuses a URL
// that names a file under the listener, saying which URL was expected; a
// 404 for a CRL says so too.
//
// A Checker is built for one issuer, the fleet's intermediate. In CRL mode
// it fetches the device CRL (conditionally: an unchanged CRL costs a 304),
// checks its signature against the issuer, indexes its serials and
// answers Check from memory; Run refetches it every Refresh and once half
// its validity has passed. With a Feed it also long-polls the CA's
// revocation feed and refuses what the feed announces at once, before the
// next CRL lists it. In OCSP mode it asks the responder (the one named, or
// each certificate's AIA) and caches each answer until its nextUpdate.
// Subscribe tells a verifier of every revocation the Checker learns after
// the fact, so that it can close connections already open; SubscribeStale
// tells it the instant its CRL goes stale, so that it can close them all.
//
// A Syncer keeps one PEM file with the device CRL and then the root CRL,
// as OpenSSL-based verifiers (nginx, HAProxy, Mosquitto) and Envoy read
// it, and runs the verifier's reload command when the file changed.
//
// # Invariants
//
//   - Fail closed. Check refuses (a *RefusedError) when it has no data yet
//     (NoData), when the CRL in use is past its nextUpdate by more than
//     Grace and no fresh one could be had (Stale), when the responder does
//     not know the certificate (UnknownCert), when the certificate is not
//     the issuer's (WrongIssuer), and when it is revoked (Revoked). Grace
//     (unset: DefaultGrace, 1h; at most 168h) is the only slack: within it
//     a CRL or an OCSP answer past its nextUpdate is still used while no
//     newer one can be had. A Grace set to zero is zero: the data is
//     refused the second after its nextUpdate.
//   - The instant a CRL goes stale, SubscribeStale's subscribers are told
//     (a timer on CheckerDeps.AfterFunc at nextUpdate+Grace, moved when a
//     fresher CRL loads), so that a verifier closes what it let in before.
//   - CRL numbers never go back (RFC 5280 §5.2.3). The Checker keeps the
//     CRL in use when it fetches a lower number, a CRL signed by another
//     key, or one already expired beyond its grace. The Syncer keeps the
//     installed CRL, across restarts too (it reads its file first), when
//     the CA serves a lower number, or the same number with other bytes.
//   - What crl sync installs was signed by the right issuer: the device
//     CRL by an intermediate and the root CRL by a root of the issuers
//     given. It refuses a CRL that is expired, dated after this machine's
//     clock (OpenSSL would refuse every device until then), without a
//     number or a nextUpdate, with data before or after it (PEM or DER),
//     or malformed. It writes the file only once both CRLs are known,
//     atomically (mode 0644), and only when its content changed; a refused
//     or unreachable CRL leaves the last good file in place.
//   - A failed reload is owed: it is retried at the next Sync, and by the
//     next Syncer on the same file (a marker file beside it, created with
//     O_EXCL, never followed).
//   - The feed only adds: an announced serial is refused until a signed CRL
//     lists it, and then the CRL's entry is the one kept. The feed never
//     unrevokes, and the freshness rule applies to the CRL alone: a feed
//     that answers cannot keep a stale CRL alive.
//
// # The revocation feed
//
// GET api.FeedPath?since=N&limit=api.FeedBatch&wait=api.FeedWait on the
// CA's HTTPS listener answers an api.FeedResponse: the revocations after
// seq N, in order, at once if there are any, else after up to the wait
// (the CA honours at most api.FeedMaxWait). The feed is not signed: it is
// followed over HTTPS only, with a client that trusts the fleet's roots.
// A verifier starts at seq 0 and passes the last seq it saw; an answer
// shorter than the batch means it has caught up. The Syncer treats the
// history before that point as known (its first sync covered it) and,
// after it, syncs at once on each announcement, then again shortly
// (0.25 s doubling, five times) until an installed CRL lists every
// announced serial, since the CA publishes its CRL a moment after the
// revocation. Feed failures are logged at Warn and retried with backoff
// (1 s doubling to 30 s); the CRL goes on applying meanwhile.
//
// # Caveats
//
// The Checker trusts the TLS stack for the chain: Check tests that the
// leaf names the issuer (name and key identifier), not its signature, so
// call it from tls.Config.VerifyConnection after verification (never
// VerifyPeerCertificate, which resumed sessions skip). A CRL Checker has
// no data until Refresh or Run loaded a CRL: load one before serving, or
// accept that every device is refused until then. A CheckerConfig.CRL
// that is not an http(s) URL is read as a file, which Run rereads every
// Refresh. The Checker reads the one full device CRL: it follows no delta
// CRL and no partition of it. The OCSP cache evicts an arbitrary entry
// when full. Feed answers are bounded at 16 MiB, CRLs at MaxCRLBytes.
package verify
