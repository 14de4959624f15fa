// Package revocation is the CA side of revocation: it revokes
// certificates and devices, and publishes what verifiers learn of it, the
// device CRL and the root CRL (built, numbered, cached), the OCSP
// responder (request bytes in, response bytes out) and the revocation
// feed (the revocation log, long-polled).
//
// It decides what CRLs and OCSP responses say; package ca signs them, and
// package store keeps the revocations. It must not serve HTTP (package
// web decodes requests, calls the Service and encodes its answers), hold
// the verifier side (package verify: checking, parsing and syncing CRLs,
// which must link nothing of the CA's), read flags or the environment, or
// call time.Now in its logic (the clock is Deps.Now).
//
// The main types are Service (New, Deps, Config: the revocation section
// of fleetca.yaml), RevokeRequest, Published (a signed CRL ready to serve)
// and OCSPAnswer. ParseReason and ReasonNames are the reasons a
// revocation may give; ParseOCSPRequest reads an OCSP request; SignRootCRL
// signs a root CRL where the root key is (`fleetca crl sign-root`).
//
// # Basics
//
// New loads the whole revocation log into an index of revoked serials,
// issues a delegated OCSP responder certificate, publishes the first
// device CRL and loads or signs the root CRL; Run keeps all three current
// until its context ends.
//
// Several replicas (fleetca serve processes) may share one store; each
// has a Service, and they agree through the store alone
// (store.Replication), so the same code serves bbolt and PostgreSQL. Run
// follows the store's revocation log by Seq (gapless, in commit order:
// nothing skipped or read twice) on each Changes signal and every
// Config.PollInterval (1s), since signals are lost while a database
// listener reconnects: another replica's revocation is indexed, its
// cached OCSP answers replaced, the feed's waiters woken and a CRL
// scheduled, as for this replica's own. One replica at a time signs the
// device CRL: the one that takes the CRL lease (LeaseCRL, for
// Config.CRLLease, 15s) when a CRL is due; it numbers it from the store's
// counter and records it (PutCRL). The others serve the store's latest
// CRL (LatestCRL, read with the log), once it passes the checks this
// Service's own would (issued and signed by the intermediate, numbered as
// recorded, newer than the one served, not stale). A replica that has a
// revocation to publish and finds the lease another's tries again every
// PollInterval until that replica's CRL lists it, or the lease runs out
// (a holder that died) and it signs itself. At start a replica signs if
// it gets the lease, and otherwise serves the store's current CRL (or
// waits for the holder's first). Run gives the lease up when it ends.
//
// Revoke revokes a certificate by serial, or a device (each of its live
// certificates, and the device, which may not enroll again until
// ResetDevice). It is one store transaction with its audit row; before it
// returns, the revoked OCSP answers replace the cached good ones, the
// feed's waiters are woken, and a new device CRL is scheduled.
// keyCompromise also blocks the keys, for every device. Applied does the
// same after the fact for revocations another package's transaction
// recorded: the certificates a renewal superseded (enroll hands them over;
// revocation is never imported by enroll).
//
// The device CRL (served at api.CRLPath) lists every revoked certificate,
// signed by the intermediate. It is built CRLPublishDelay (default 200 ms)
// after a revocation, so that a burst of revocations shares one CRL, and
// at the latest when half of the current one's validity (CRLValidity,
// default 24h) has passed. The root CRL (api.RootCRLPath) is the root's,
// over intermediates (none are revoked); it is signed here when the root
// key is present and otherwise read from Deps.RootCRLPath, where the
// operator copies what `fleetca crl sign-root` wrote.
//
// # Partitioned CRLs
//
// With Config.CRLPartitions N > 1 each new device certificate is assigned
// a partition (package ca, from its serial; recorded in the store with
// the certificate and copied into its revocation log entry) and points at
// partition p's CRL, PublicURL+"/crl/<p>" (api.PartitionCRLPath), besides
// which the full CRL stays as it is. Each partition CRL lists the revoked
// certificates recorded in p, carries an IDP naming that URL, and is
// built, numbered (store counter "crl_number/<p>"), leased and recorded
// (store.Replication's partition methods) on its own, by the rules of the
// full CRL: a revocation marks only its certificate's partition pending,
// and only pending partitions (or those past half their validity) are
// re-signed, CRLPublishDelay after the revocation, by the holder of that
// partition's lease; the others adopt it from the store. The number of
// partitions published is the largest N any server of the store has run
// with (store meta "crl_partitions_max"), so that lowering N keeps
// serving the partitions live certificates point at. Partitions
// (api.PartitionsPath) is the discovery document; its Full.Needed says
// whether an unrevoked certificate without a partition (issued before N >
// 1) may still be live, from one read of the certificates at New.
//
// RespondOCSP answers RFC 6960 requests in the RFC 5019 profile: good,
// revoked (time and reason), unknown for a serial this CA never issued,
// unauthorized for another issuer's certificate, malformedRequest for
// anything else. Answers are signed by the delegated responder
// certificate, which is renewed at two thirds of its lifetime. An answer
// without a nonce is cached while at least half its validity
// (OCSPValidity, default 1h) remains, and the exact request bytes map
// straight to it; a nonce is echoed, and that answer is not cached. A
// cache hit returns the entry's one OCSPAnswer, shared by every request it
// answers (no allocation): callers must not modify it.
//
// Feed returns the revocation log after a sequence number, in order, and
// when there is nothing new waits (at most api.FeedMaxWait) for the next
// revocation: the long-poll behind api.FeedPath, whose wire format is
// api.FeedResponse. An empty answer means nothing happened.
//
// # Invariants
//
//   - Each partition CRL's numbers only grow too, by the same means,
//     within the partition.
//   - Device CRL numbers only grow, across restarts and replicas too
//     (RFC 5280 §5.2.3): each comes from the store's crl_number counter,
//     drawn only under the CRL lease, and the store records a CRL only if
//     its number is greater than the latest's; a replica serves a CRL only
//     if its number is greater than the one it serves. Root CRL
//     numbers are the thisUpdate in Unix seconds, so that they grow
//     without a shared counter (the root key may be on another machine).
//   - No CRL entry is dated after its CRL's thisUpdate (RFC 5280 §5.1.2.6),
//     and no OCSP answer's thisUpdate precedes its revocation: when the
//     clock is behind a revocation, the CRL or answer is dated at the
//     revocation.
//   - An expired certificate leaves the device CRL only after one CRL
//     issued past its expiry listed it (RFC 5280 §3.3); after a restart,
//     one more.
//   - A revoked answer is never replaced by a good one: the revoked index
//     and the OCSP cache change under one lock, and an answer signed while
//     a revocation landed is not cached as good.
//   - No OCSP answer outlives the responder certificate that signed it:
//     Config.Validate keeps OCSPValidity at most a third of
//     ResponderValidity, and the certificate is renewed at two thirds.
//   - Reasons are RFC 5280 §5.3.1's (api.Reason). removeFromCRL is
//     refused: RFC 5280 keeps it for delta CRLs, to undo a certificateHold,
//     and fleetca publishes full CRLs only.
//
// # Errors
//
// Revoke: fault.NotFound (no such certificate or device),
// fault.AlreadyRevoked (nothing changed: harmless), fault.Malformed
// (neither or both of serial and device ID, a reason not accepted).
// ResetDevice: fault.NotFound, fault.Conflict (not revoked). RootCRL:
// fault.Unavailable when this server has no current root CRL. ParseReason
// and ParseOCSPRequest: fault.Malformed. Config.Validate: fault.Malformed
// naming the revocation.* key. Hints name config keys and request fields,
// never CLI flags. Anything else (the store, the signer) is an internal
// error, wrapped.
//
// # Caveats
//
// A revocation made through another replica reaches this one's cached
// OCSP answers, feed waiters and CRL within PollInterval at worst (at
// once when the store's signal arrives); until then a cached good answer
// may be served (an uncached one reads the store, and is current). A
// replica that serves another's CRL parses it whole to check it: for a
// CRL of a million entries (about 50 MB of DER) about 1 s on each replica,
// where signing it took about 4 s on the signer. The root CRL is each
// replica's own (signed where the root key is, numbered by its thisUpdate
// in seconds, or read from its root.crl): copy the same root.crl to every
// replica that lacks the root key. The device CRL is rebuilt whole each
// time; its PEM form is encoded at its first request. The OCSP cache and
// its request index are bounded by OCSPCacheEntries and evict an
// arbitrary entry when full. A revocation pre-signs the revoked answer
// for SHA-1 CertIDs only (what most clients send); others are signed at
// their next request. Without the root key and without a current root
// CRL file, the server runs but serves no root CRL, and logs an error
// every minute until one is copied in.
package revocation
