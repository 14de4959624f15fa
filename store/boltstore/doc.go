// Package boltstore implements store.Store on bbolt, in one file: fleetca's
// default, embedded store (DIR/fleetca.db).
//
// It owns the file's layout and its transactions. It must not decide
// policy (which conditions apply to an issuance is the caller's, passed in
// store.Issuance; which keys to block, in store.RevokeRequest; the retry
// window, interval and limit of a renewal, in store.Renewal), parse
// certificates (DER is opaque here), import any
// fleetca package but store and store/internal/backend, or let a bbolt
// type or bare bbolt error out.
//
// What pgstore decides the same way is store/internal/backend's, not a
// copy here: the argument checks of Revoke, Renew and CreateToken(s), the
// renewal lineage rules (backend.Judge: the retry, a newer certificate,
// the live ones; Lineage.Superseded: what MaxActive revokes), the
// ListCertificates cursor and Load's record loop. This package reads the
// records those rules need and writes what they decide.
//
// The main types are Store, made by Open, and Options, whose zero value is
// the production setting.
//
// # Basics
//
// Every method is one bbolt transaction: reads run in View, writes in
// Update, and Issue, Revoke, Renew and AppendAudit in the group commit
// (groupcommit.go), which commits
// the writes of concurrent callers together with one fsync (group commit: a
// factory line enrolling from many stations pays one fsync per batch, not
// per device; so do a burst of revocations and a fleet renewing at once).
// A write that returns nil has been fsynced, unless Options.NoSync.
//
// The buckets, and their keys and values:
//
//	devices          device ID -> store.Device, a binary record
//	certs            serial key -> store.Certificate, a binary record (Serial
//	                 omitted: it is the key)
//	certs_by_device  device ID, 0x00, serial key -> empty
//	keys             store.KeyHash -> device ID
//	tokens           store.TokenHash -> store.Token, a binary record
//	token_ids        token ID -> store.TokenHash
//	audit            Seq as 8 bytes big-endian -> store.AuditEvent, a binary record
//	counters         name -> value as 8 bytes big-endian
//	meta             key -> value
//	revocations      Seq as 8 bytes big-endian -> store.Revocation as JSON (Serial as lowercase hex)
//	blocked_keys     store.KeyHash -> empty
//	nonces           store.Nonce hash -> time key of its Expires
//	nonce_expiry     time key of Expires, nonce hash -> empty
//	fleet            "renew_now_at" -> time key of the last fleet-wide RenewNow
//	manufacturers    name -> Manufacturer JSON
//	mfr_certs        manufacturer certificate SHA-256 -> device ID (used; ResetDevice deletes)
//	crl              "lease" -> {holder, until} JSON; "latest" -> store.CRL JSON;
//	                 "number" -> the latest CRL's Number, 8 bytes big-endian;
//	                 the same suffixed "/<p>" ("lease/3", ...) for partition p's CRL
//	admins           admin name -> store.Admin JSON
//	admin_hashes     admin TokenHash -> admin name (the current token's; RotateAdmin moves it)
//	audit_hashes     tlog stored-hash index as 8 bytes big-endian -> tlog.Hash (32 bytes):
//	                 the audit tree's stored hashes (tlog.StoredHashes of each event's leaf)
//	audit_checkpoints checkpoint Size as 8 bytes big-endian -> store.Checkpoint as JSON
//
// and the buckets derived from those (console.go), for the console's
// queries, which Load and Dump leave out (Load rebuilds them):
//
//	devices_by_status          status, 0x00, device ID -> empty
//	devices_by_renew_by        time key of RenewBy, device ID -> empty (active devices with a RenewBy)
//	devices_by_created         time key of CreatedAt, device ID -> empty
//	devices_by_status_created  status, 0x00, time key of CreatedAt, device ID -> empty
//	audit_by_device            device ID, 0x00, Seq as 8 bytes -> empty (every audit row naming a device)
//	stats                      "n:active", "n:revoked", "n:certs", "n:not_after", "n:renew_by" ->
//	                           count (8 bytes); histogram keys: kind ('A' active devices' NotAfter,
//	                           'R' their RenewBy, 'X' revocations but superseded, 'E' enrollments),
//	                           unit ('h' UTC hour, 'd' UTC day), number as 8 bytes with the sign bit
//	                           flipped -> count; "layout" -> the derived layout's version
//
// A binary record (codec.go) is the byte 0x01 and then the record's
// fields in a fixed order; files written before it hold these records as
// JSON (a certificate's Parent as lowercase hex), which every reader still
// takes, so such a file opens as it is and its records turn binary as
// they are written again. The other records are JSON.
//
// The buckets written in key order (certs, whose serials carry the
// issuance time on top, audit, audit_hashes, revocations) split their
// pages at 90 % full rather than bbolt's 50 % (appendFill), so that a
// commit writes the pages an append fills, not twice as many.
//
// A serial key is the length of the serial's big-endian bytes in one byte,
// then those bytes, so that byte order is numeric order and ListCertificates
// pages in serial order. A time key is the Unix seconds as 8 bytes
// big-endian with the sign bit flipped, then the nanoseconds as 4 bytes
// big-endian, so that byte order is time order: nonce_expiry lists the
// nonces that expire first first.
//
// # Invariants
//
//   - Every certs record has exactly one certs_by_device entry, and its
//     KeyHash is in keys naming its DeviceID; Issue writes all three, with
//     the device, the token's Spent and the audit row, or none of them.
//     Renew writes them with the device's LastRenewalAt, the superseded
//     revocations, the spent nonce and the audit row, or none of them.
//   - A Parent that Renew records names a certificate of the same device
//     (Issue records a Parent as given; enroll gives none). Every write of
//     a certs record (Issue, Renew, a revocation) encodes the whole record,
//     so a revocation keeps the Parent.
//   - A nonce in nonces has exactly one nonce_expiry entry, with the same
//     expiry. A spend (Renew, retries included) first forgets at most
//     maxNonceSweep (16) nonces expired at its Now, oldest first, so the
//     bucket holds little more than the unexpired nonces and no transaction
//     pays for a backlog; an expired nonce not yet forgotten is usable
//     again, exactly as one forgotten.
//   - A token ID in token_ids names a record in tokens.
//   - Audit Seq values are 1, 2, 3, ... without gaps, in commit order: they
//     come from the audit bucket's sequence, which rolls back with its
//     transaction. Revocation Seq values likewise, from the revocations
//     bucket's sequence.
//   - The audit tree: appendAudit, in the transaction of the change the
//     event records, truncates the event's Time to microseconds (UTC),
//     computes its leaf and Root with backend.AppendAudit, reading the
//     stored hashes in the same transaction (so the events of one batch,
//     or of one Revoke, see each other's hashes), and writes the row and
//     its stored hashes together. audit_hashes therefore holds exactly
//     tlog.StoredHashCount(last Seq) hashes, and AuditTree computes the
//     root from them. Checkpoints only grow: PutCheckpoint refuses a Size
//     not above the last key of audit_checkpoints or above the last Seq.
//   - Every revocations entry names a certs record revoked with the same
//     RevokedAt and Reason, and no serial has two entries: Revoke, and Renew
//     when it supersedes (reason 4), write the entry with the certificate's
//     RevokedAt through one function, and revoke only unrevoked
//     certificates. (A certificate that Issue recorded already revoked has
//     no entry.)
//   - A device becomes revoked in the transaction that revokes each of its
//     certificates live at that time (a lineage is one device's, so every
//     live renewal goes too), and Issue and Renew refuse it while it stays
//     revoked. Keys in blocked_keys are never removed; Issue and Renew
//     refuse them for every device.
//   - A function passed to Batch may run more than once (bbolt re-runs the
//     batch without a caller whose function failed), so it is idempotent:
//     it checks every condition before its first write and reports a
//     failed condition through a variable it resets on each run, never by
//     returning an error, which would roll back its neighbours' work too.
//   - The derived buckets agree with the records: every device write goes
//     through putDevice, which moves the device between index entries and
//     histogram buckets (the old record's out, the new one's in); Issue
//     and Renew count the certificate (Issue an enrollment, by the day of
//     its IssuedAt), revokeCertTx a revocation that is not a
//     supersession, appendAudit indexes a row that names a device. Stats
//     reads counters and at most a few hundred histogram buckets (whole
//     days from the day buckets, the ends of a range from the hour
//     buckets), so its cost does not grow with the fleet; QueryDevices
//     and QueryAudit by device walk one index.
//   - Bytes from Get and cursors are copied (or decoded) before the
//     transaction ends.
//
// # Caveats
//
// One process at a time: Open takes an exclusive lock on the file and
// gives up after Options.Timeout with ErrLocked. A batched write that finds
// no commit under way waits Options.MaxBatchDelay for company before it
// commits, which is latency a lone caller pays; under load the writes that
// arrive during a commit share the next, with no timer. The file never shrinks; deleted pages are reused.
// The free list is not written at commit (bbolt's NoFreelistSync) but
// rebuilt by a scan at Open, which makes Open of a large file slower.
// Serials longer than 255 bytes and device IDs containing a NUL byte are
// refused. Revoke of a device decodes every certificate the device ever
// had, in the shared write transaction, and so does Renew (the fields its
// rules read, for the newest-certificate, retry and MaxActive rules): a
// device that renews every day for ten years pays for 3,650 records per
// renewal. Open adds the buckets an older file lacks (revocations,
// blocked_keys, nonces, nonce_expiry, fleet, manufacturers, mfr_certs,
// crl, admins, admin_hashes, audit_hashes, audit_checkpoints), so such a
// file upgrades in place; its certificates have no Parent. A file whose
// stats "layout" is older than the derived buckets' (or absent) gets them
// rebuilt at Open, in one pass over devices, certificates, revocations and
// audit rows, which also gives each device without a NotAfter those of its
// newest certificate; Load rebuilds them after its records. QueryAudit
// without a DeviceID examines at most store.AuditScanLimit rows per call.
// Check verifies the file's structure, not the records' meaning.
//
// Open also builds the audit tree of a file written before it (audit rows,
// no audit_hashes): in its update transaction, in chunks of 4,096 rows,
// it stores each row back with its Time truncated to microseconds (the
// leaf truncates it anyway, so the hashes do not depend on this) and its
// Root, and writes the stored hashes; a log with a gap in its Seqs makes
// Open fail rather than number leaves wrongly. Load keeps rows (Time,
// Root) as dumped and computes the stored hashes from their leaves, so a
// copy of a tampered log still shows the tampering.
package boltstore
