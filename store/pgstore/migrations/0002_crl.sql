-- fleetca store schema, version 2: one CRL signer across replicas
-- (store.Replication). See store/pgstore/doc.go.

-- The lease of the CRL signer, in one row (absent until first taken).
-- LeaseCRL takes it with a compare-and-swap on until.
CREATE TABLE crl_lease (
	one    boolean PRIMARY KEY DEFAULT true CHECK (one),
	holder text NOT NULL,
	until  timestamptz NOT NULL
);

-- The latest signed CRL, in one row (absent until the first PutCRL).
-- Its number only ever grows: PutCRL's upsert is conditional on it.
CREATE TABLE crl_latest (
	one         boolean PRIMARY KEY DEFAULT true CHECK (one),
	number      bigint NOT NULL CHECK (number > 0),
	this_update timestamptz,
	next_update timestamptz,
	der         bytea NOT NULL
);
