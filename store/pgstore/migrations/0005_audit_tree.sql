-- fleetca store schema, version 5: the audit log as an RFC 6962 tree (issue 16,
-- golang.org/x/mod/sumdb/tlog). See store/pgstore/doc.go. Migrate then
-- builds the tree of the rows already there, in Go (tlog's hashing,
-- never SQL's), and makes root NOT NULL.

-- The tree hash after each event.
ALTER TABLE audit ADD COLUMN root bytea CHECK (length(root) = 32);

-- The tree's stored hashes, by tlog.StoredHashIndex: every event's
-- appending transaction writes those tlog.StoredHashes gives for it.
CREATE TABLE audit_hashes (
	index bigint PRIMARY KEY CHECK (index >= 0),
	hash  bytea NOT NULL CHECK (length(hash) = 32)
);

-- The tree's right edge: the hashes of the complete subtrees of the tree
-- of audit_seq leaves, largest first (each also in audit_hashes),
-- concatenated. The appender reads it with the log_heads row lock it
-- takes anyway, so it needs no other read to extend the tree.
ALTER TABLE log_heads ADD COLUMN audit_edge bytea NOT NULL DEFAULT ''::bytea
	CHECK (length(audit_edge) % 32 = 0);

-- Signed checkpoints (store.Checkpoint), by size.
CREATE TABLE audit_checkpoints (
	size bigint PRIMARY KEY CHECK (size > 0),
	root bytea NOT NULL CHECK (length(root) = 32),
	time timestamptz,
	note bytea NOT NULL
);

-- The largest checkpoint's size, in one row: PutCheckpoint raises it by a
-- conditional UPDATE, whose row lock settles two replicas' race.
CREATE TABLE audit_checkpoint_head (
	one  boolean PRIMARY KEY DEFAULT true CHECK (one),
	size bigint NOT NULL
);
INSERT INTO audit_checkpoint_head (size) VALUES (0);
