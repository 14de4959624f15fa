// Package boltstore implements store.Store on bbolt, in one file: fleetca's
// default, embedded store (DIR/fleetca.db).
//
// It owns the file's layout and its transactions. It must not decide
// policy (which conditions apply to an issuance is the caller's, passed in
// store.Issuance; which keys to block, in store.RevokeRequest), parse
// certificates (DER is opaque here), import any
// fleetca package but store, or let a bbolt type or bare bbolt error out.
//
// The main types are Store, made by Open, and Options, whose zero value is
// the production setting.
//
// # Basics
//
// Every method is one bbolt transaction: reads run in View, writes in
// Update, and Issue, Revoke and AppendAudit in Batch, which commits the
// writes of concurrent callers together with one fsync (group commit: a
// factory line enrolling from many stations pays one fsync per batch, not
// per device; so does a burst of revocations).
// A write that returns nil has been fsynced, unless Options.NoSync.
//
// The buckets, and their keys and values:
//
//	devices          device ID -> store.Device as JSON
//	certs            serial key -> store.Certificate as JSON (Serial omitted: it is the key)
//	certs_by_device  device ID, 0x00, serial key -> empty
//	keys             store.KeyHash -> device ID
//	tokens           store.TokenHash -> store.Token as JSON
//	token_ids        token ID -> store.TokenHash
//	audit            Seq as 8 bytes big-endian -> store.AuditEvent as JSON
//	counters         name -> value as 8 bytes big-endian
//	meta             key -> value
//	revocations      Seq as 8 bytes big-endian -> store.Revocation as JSON (Serial as lowercase hex)
//	blocked_keys     store.KeyHash -> empty
//
// A serial key is the length of the serial's big-endian bytes in one byte,
// then those bytes, so that byte order is numeric order and ListCertificates
// pages in serial order.
//
// # Invariants
//
//   - Every certs record has exactly one certs_by_device entry, and its
//     KeyHash is in keys naming its DeviceID; Issue writes all three, with
//     the device, the token's Spent and the audit row, or none of them.
//   - A token ID in token_ids names a record in tokens.
//   - Audit Seq values are 1, 2, 3, ... without gaps, in commit order: they
//     come from the audit bucket's sequence, which rolls back with its
//     transaction. Revocation Seq values likewise, from the revocations
//     bucket's sequence.
//   - Every revocations entry names a certs record revoked with the same
//     RevokedAt and Reason, and no serial has two entries: Revoke writes the
//     entry with the certificate's RevokedAt and refuses a revoked
//     certificate. (A certificate that Issue recorded already revoked has
//     no entry.)
//   - A device becomes revoked in the transaction that revokes each of its
//     certificates live at that time, and Issue refuses it while it stays
//     revoked. Keys in blocked_keys are never removed; Issue refuses them
//     for every device.
//   - A function passed to Batch may run more than once (bbolt re-runs the
//     batch without a caller whose function failed), so it is idempotent:
//     it checks every condition before its first write and reports a
//     failed condition through a variable it resets on each run, never by
//     returning an error, which would roll back its neighbours' work too.
//   - Bytes from Get and cursors are copied (or decoded) before the
//     transaction ends.
//
// # Caveats
//
// One process at a time: Open takes an exclusive lock on the file and
// gives up after Options.Timeout with ErrLocked. A batched write waits up
// to Options.MaxBatchDelay for company before it commits, which is latency
// a lone caller pays. The file never shrinks; deleted pages are reused.
// The free list is not written at commit (bbolt's NoFreelistSync) but
// rebuilt by a scan at Open, which makes Open of a large file slower.
// Serials longer than 255 bytes and device IDs containing a NUL byte are
// refused. Revoke of a device decodes every certificate the device ever
// had, in the shared write transaction. Open adds the buckets an older
// file lacks (revocations, blocked_keys), so such a file upgrades in
// place. Check verifies the file's structure, not the records' meaning.
package boltstore
