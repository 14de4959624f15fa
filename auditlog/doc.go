// Package auditlog makes the store's audit log tamper-evident and checks
// it: it signs checkpoints of the audit tree, serves the proofs a witness
// needs, verifies a whole log (fleetca audit verify), and writes and
// checks exports with inclusion proofs (fleetca audit export, verify
// --export).
//
// # Basics
//
// The store appends every audit row as a leaf of an RFC 6962 Merkle tree
// (golang.org/x/mod/sumdb/tlog; leaf index = Seq-1, leaf data
// store.AuditEvent.LeafData) and keeps each row's tree root
// (store.AuditEvent.Root). This package never computes a hash by hand:
// tlog hashes and proves, golang.org/x/mod/sumdb/note signs.
//
// A checkpoint is a C2SP tlog-checkpoint note signed with the CA's audit
// key (ca.AuditKey): the lines
//
//	<origin>            the audit key's name, e.g. Acme-Devices/fleetca-audit
//	<size>              the tree size, decimal (= the last Seq it covers)
//	<root>              the tree hash, base64
//	time <RFC 3339>     when it was signed (an extension line)
//
// then a blank line and the signature line. FormatCheckpoint writes it,
// ParseCheckpoint reads it (strictly), OpenCheckpoint checks the
// signature and then parses.
//
// The Checkpointer (run by fleetca serve) signs one when the tree grew, at
// most every Config.CheckpointEvery (audit.checkpoint_every, default 1m),
// at start-up and at graceful shutdown. Replicas sharing a database race
// harmlessly: the store keeps only a checkpoint larger than the latest
// (store.ErrStaleCheckpoint).
//
// # Verification
//
// Verify reads the whole log and checks, in this order, stopping at the
// first problem (a *Problem naming the Seq): Seq contiguity from 1, each
// row's leaf and stored root (recomputed with tlog), every stored tree
// hash, the store's tree size and root, every checkpoint's signature
// (the pinned verifier key), origin, size and root, each checkpoint's
// consistency with the one before (tlog.ProveTree/CheckTree), rows not yet
// covered by a checkpoint, and completeness: every certificate, token and
// revocation in the store has its audit row.
//
// Rows after the latest checkpoint are normal for a while (the CA signs
// within checkpoint_every, and a CA killed with kill -9 signs them at its
// next start). Verify reports them as a problem only when the first of
// them is older than Options.Grace (2 x checkpoint_every + 1 minute by
// default) at Options.Now: a CA that ran would have signed them by then.
//
// # Caveats
//
// Without an external copy of a checkpoint (a witness: fleetca audit
// watch), someone who can write the store and holds the audit key could
// rewrite the whole log and re-sign; and someone who can write the store
// but not the key can still append rows with a current time and no
// checkpoint, which Verify accepts until Grace has passed. A rolled-back
// store (an older copy put back) verifies on its own: only a witness that
// saw a later checkpoint notices.
//
// This package imports store and internal/fault only (of ours); it knows
// nothing of HTTP or the CLI.
package auditlog
