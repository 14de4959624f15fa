-- fleetca store schema, version 3: named admins with roles (store.Admin).
-- See store/pgstore/doc.go.

-- One row per admin. Its token is stored only as its SHA-256, unique, so
-- that an admin is found by the token it presents.
CREATE TABLE admins (
	name        text COLLATE "C" PRIMARY KEY,
	role        text NOT NULL CHECK (role IN ('viewer', 'operator', 'owner')),
	token_hash  bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
	created_at  timestamptz,
	disabled_at timestamptz,
	rotated_at  timestamptz
);
