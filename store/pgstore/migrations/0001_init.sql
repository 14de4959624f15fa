-- fleetca store schema, version 1. See store/pgstore/doc.go for what each
-- table holds and its invariants. Text that is ordered or paged by (IDs,
-- names) is COLLATE "C", so its order is byte order, as in boltstore,
-- whatever the database's locale. Serials are numeric (they are longer
-- than 64 bits), so their order is numeric order. A zero time.Time is NULL.

CREATE TABLE devices (
	id              text COLLATE "C" PRIMARY KEY,
	status          text NOT NULL CHECK (status IN ('active', 'revoked')),
	created_at      timestamptz NOT NULL,
	updated_at      timestamptz NOT NULL,
	last_renewal_at timestamptz,
	renew_now_at    timestamptz,
	revoked_at      timestamptz,
	-- The manufacturer certificate it last enrolled with; all three or none.
	mfr_name        text,
	mfr_serial      text,
	mfr_fingerprint bytea
);

CREATE TABLE certificates (
	serial     numeric PRIMARY KEY CHECK (serial > 0 AND scale(serial) = 0),
	-- Deferrable: Load (fleetca db copy) may write a certificate before
	-- its device within its one transaction.
	device_id  text COLLATE "C" NOT NULL REFERENCES devices (id) DEFERRABLE INITIALLY IMMEDIATE,
	key_hash   bytea NOT NULL,
	not_before timestamptz,
	not_after  timestamptz NOT NULL,
	issued_at  timestamptz,
	der        bytea NOT NULL,
	revoked_at timestamptz,
	reason     integer NOT NULL DEFAULT 0,
	parent     numeric
);
-- A device's certificates in serial order (ListCertificates, Renew, Revoke).
CREATE INDEX certificates_device_serial ON certificates (device_id, serial);

-- The key binding: a key is certified for one device only.
CREATE TABLE key_bindings (
	key_hash  bytea PRIMARY KEY,
	device_id text COLLATE "C" NOT NULL
);

CREATE TABLE blocked_keys (
	key_hash bytea PRIMARY KEY
);

CREATE TABLE tokens (
	hash           bytea PRIMARY KEY,
	id             text COLLATE "C" NOT NULL UNIQUE,
	device_id      text NOT NULL DEFAULT '',
	device_pattern text NOT NULL DEFAULT '',
	uses           integer NOT NULL,
	spent          integer NOT NULL,
	created_at     timestamptz,
	expires_at     timestamptz,
	revoked_at     timestamptz
);

-- Spent nonces, remembered until they expire.
CREATE TABLE nonces (
	hash    bytea PRIMARY KEY,
	expires timestamptz NOT NULL
);
CREATE INDEX nonces_expires ON nonces (expires);

CREATE TABLE audit (
	seq       bigint PRIMARY KEY,
	time      timestamptz,
	action    text NOT NULL,
	actor     text NOT NULL,
	device_id text NOT NULL DEFAULT '',
	serial    text NOT NULL DEFAULT '',
	token_id  text NOT NULL DEFAULT '',
	detail    text NOT NULL DEFAULT ''
);

CREATE TABLE revocations (
	seq        bigint PRIMARY KEY,
	serial     numeric NOT NULL UNIQUE,
	device_id  text NOT NULL,
	revoked_at timestamptz NOT NULL,
	reason     integer NOT NULL,
	not_after  timestamptz NOT NULL
);

-- The last Seq of the audit and revocation logs, in one row. Every
-- transaction that appends to a log updates it last, so its row lock
-- orders the committers: Seq values are given out in commit order,
-- without gaps (a sequence would give them out in start order).
CREATE TABLE log_heads (
	one            boolean PRIMARY KEY DEFAULT true CHECK (one),
	audit_seq      bigint NOT NULL,
	revocation_seq bigint NOT NULL
);
INSERT INTO log_heads (audit_seq, revocation_seq) VALUES (0, 0);

CREATE TABLE counters (
	name  text PRIMARY KEY,
	value bigint NOT NULL
);

CREATE TABLE meta (
	key   text PRIMARY KEY,
	value bytea NOT NULL
);

-- Fleet-wide settings, in one row.
CREATE TABLE fleet (
	one          boolean PRIMARY KEY DEFAULT true CHECK (one),
	renew_now_at timestamptz
);
INSERT INTO fleet (renew_now_at) VALUES (NULL);

CREATE TABLE manufacturers (
	name           text COLLATE "C" PRIMARY KEY,
	ca_pem         text NOT NULL,
	device_id_from text NOT NULL,
	device_pattern text NOT NULL DEFAULT '',
	created_at     timestamptz
);

-- Manufacturer certificates that enrolled a device (one use each, until
-- ResetDevice of that device releases it).
CREATE TABLE mfr_certs (
	fingerprint bytea PRIMARY KEY,
	device_id   text NOT NULL
);
