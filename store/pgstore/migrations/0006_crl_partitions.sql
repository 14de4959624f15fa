-- fleetca store schema, version 6: partitioned CRLs
-- (revocation.crl_partitions; store.Replication's partition methods).
-- See store/pgstore/doc.go.

-- The CRL partition a certificate was assigned at issuance; NULL for one
-- issued without partitions (every certificate before this version).
ALTER TABLE certificates ADD COLUMN crl_partition smallint
	CHECK (crl_partition >= 0 AND crl_partition < 256);
-- The revoked certificate's partition, copied into its log entry.
ALTER TABLE revocations ADD COLUMN crl_partition smallint;

-- Each partition's CRL lease and latest CRL, one row per partition
-- (absent until its lease is first taken). number is 0 until the first
-- PutPartitionCRL; it only ever grows.
CREATE TABLE crl_partitions (
	partition   smallint PRIMARY KEY CHECK (partition >= 0 AND partition < 256),
	holder      text NOT NULL,
	until       timestamptz NOT NULL,
	number      bigint NOT NULL DEFAULT 0 CHECK (number >= 0),
	this_update timestamptz,
	next_update timestamptz,
	der         bytea
);
