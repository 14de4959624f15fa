// Package store is fleetca's persistence contract: the Store interface,
// its records and its sentinel errors. It owns what "recorded" means; a
// backend owns how.
//
// # Basics
//
// Store is the one interface fleetca's packages share, because more than
// one backend implements it: store/boltstore (embedded bbolt, the default)
// and store/pgstore (PostgreSQL, for replicas). store/storetest is the
// contract suite every backend runs. Domain packages (enroll, revocation)
// and web take a Store, and their tests use a real boltstore, not a mock.
//
// The records are Device (an enrolled device, its DeviceStatus, its last
// renewal and renew-now times), Certificate (an issued device certificate:
// serial, device, KeyHash, validity, DER, revocation and the Parent it
// renewed, so that a device's certificates form its lineage), Token (an
// enrollment token, stored by its TokenHash, shown by its ID), Revocation
// (an entry of the revocation log, which the CRLs and the revocation feed
// are built from), AuditEvent (a row of the audit log) and Nonce (a
// one-time value, a renewal token's, remembered until it expires).
// Issuance, Renewal and RevokeRequest are the write requests that carry
// the caller's decisions; RenewResult says what Renew did; Page bounds a
// listing.
//
// Replication (part of Store) is what several replicas sharing one store
// need: one CRL signer at a time (LeaseCRL, a lease with an expiry), the
// latest signed CRL that every replica serves (PutCRL, LatestCRL), and a
// hint that another replica revoked something (Changes). Dumper and
// Loader, which both backends implement, copy a whole store into an empty
// one (fleetca db copy); storetest.RunCopy is their suite.
//
// # Invariants
//
//   - Every method is one transaction: it happens whole or not at all,
//     and a write that returned nil is durable (fsynced) and survives a
//     crash. Issue spends the token, records the certificate and the
//     device, binds the key and appends the audit row together; Revoke
//     revokes, writes the log entries, blocks the keys, spends its
//     RevokeRequest.Token if any and appends the audit row together;
//     CreateTokens stores a batch of tokens and their audit rows together; Renew spends the nonce, records the certificate
//     with its Parent and the device's LastRenewalAt, revokes what
//     Renewal.MaxActive supersedes (with log entries, as Revoke writes
//     them) and appends the audit row together, and a retry of it
//     (Renewal.RetryWindow) returns the certificate already recorded. No
//     failure burns a token or a nonce, or acknowledges early.
//   - Audit and revocation Seq values are 1, 2, 3, ... without gaps, in
//     commit order; a counter's values never repeat, across restarts too.
//   - The audit log is an RFC 6962 tree (golang.org/x/mod/sumdb/tlog)
//     whose leaf Seq-1 is the event's LeafData: each event's Root, and the
//     tree's stored hashes (AuditHashes), are written in the transaction
//     that appends it. Checkpoints (PutCheckpoint) only grow.
//   - Errors are the sentinels below, wrapped with the operation
//     (`get device "d-17": not found`); test them with errors.Is. Every
//     condition error (ErrTokenUsedUp, ErrDeviceExists, ErrKeyBlocked, ...)
//     wraps ErrConflict as well. A backend's own errors and types never
//     leave it.
//   - Records returned are copies; the caller may keep and change them.
//   - CRL numbers recorded by PutCRL strictly increase, whoever holds the
//     lease; a holder whose lease ran out records nothing.
//
// # What it must not do
//
// A store enforces only the conditions that must be checked atomically
// with its write: a token's remaining uses, a device's existence and
// status, its number of live certificates, a key bound to another device
// or blocked, a certificate or device revoked already, the newest
// certificate of a device, its last renewal, a nonce spent. Which of them
// apply is the caller's policy, passed in: enroll sets Issuance's fields,
// revocation says in RevokeRequest which keys to block, the renewal RA
// sets Renewal's retry window, minimum interval and MaxActive (and decides
// itself whether an expired parent may renew). A store parses no
// certificate (DER is opaque to it), checks no device ID or trust domain
// (callers parse those with package api), reads no clock (every time comes
// in the request) and logs nothing.
//
// # Caveats
//
// This package imports nothing of fleetca's, so identities are plain
// strings here: device IDs are string, not api.DeviceID, and the callers
// convert on the way in and out. Serials are *big.Int; at the API's edges
// they are lowercase hex (Page.After of ListCertificates too).
package store
