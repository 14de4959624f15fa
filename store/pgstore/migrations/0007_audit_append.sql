-- fleetca store schema, version 7: the audit tree appended by the server
-- (issue 19). See store/pgstore/doc.go.
--
-- fleetca_append_logs takes the next audit and revocation Seq values
-- under the log_heads row lock, appends the audit events with their
-- roots, writes the tree's new stored hashes and right edge, and returns
-- the last Seq values before. A write sends it with its other last
-- statements and the COMMIT, in one round trip, so the lock is held for
-- the server's work and the commit only, never for a client round trip
-- (with the hashing in Go it was held for one).
--
-- The hashing is RFC 6962's as golang.org/x/mod/sumdb/tlog does it: leaf
-- hash SHA-256(0x00 || leaf), node hash SHA-256(0x01 || left || right),
-- leaf n's stored hashes at tlog.StoredHashIndex(0, n) onward (the leaf,
-- then one per complete subtree it closes), the root folded from the
-- right edge's smallest subtree leftwards (tlog.TreeHash). The leaf is
-- store.AuditEvent.LeafData: JSON that starts {"seq":<Seq>, where the
-- caller gives the rest (leaf_tails, from LeafData with Seq 0), since
-- only the Seq is unknown until the lock is held. The store's tests
-- check every root and stored hash it writes against tlog's.
--
-- n_revocations is the number of revocation entries the caller inserts
-- with Seq values revocation_before + 1, + 2, ...; the audit arrays hold
-- one element per event, in Seq order (time already truncated to the
-- microsecond, as its leaf has it).
CREATE FUNCTION fleetca_append_logs(
	n_revocations bigint,
	times timestamptz[], actions text[], actors text[], device_ids text[],
	serials text[], token_ids text[], details text[], leaf_tails bytea[],
	OUT audit_before bigint, OUT revocation_before bigint)
LANGUAGE plpgsql AS $$
DECLARE
	n integer := coalesce(cardinality(leaf_tails), 0);
	edge bytea;
	base bigint := 0;
	subtrees integer := 0;
	rest bigint;
	leaf bigint;
	h bytea;
	tree_root bytea;
	new_hashes bytea[] := '{}';
	new_roots bytea[] := '{}';
BEGIN
	SELECT l.audit_seq, l.revocation_seq, l.audit_edge INTO audit_before, revocation_before, edge
		FROM log_heads l FOR NO KEY UPDATE;

	-- base = tlog.StoredHashIndex(0, audit_before); the right edge has a
	-- hash per bit set in the size.
	rest := audit_before;
	WHILE rest > 0 LOOP
		base := base + rest;
		subtrees := subtrees + (rest & 1)::integer;
		rest := rest >> 1;
	END LOOP;
	IF length(edge) <> 32 * subtrees THEN
		RAISE EXCEPTION 'audit tree: the right edge of size % has % bytes, want %',
			audit_before, length(edge), 32 * subtrees;
	END IF;

	FOR i IN 1 .. n LOOP
		leaf := audit_before + i - 1; -- the leaf index: Seq - 1
		h := sha256('\x00'::bytea || convert_to('{"seq":' || (leaf + 1), 'UTF8') || leaf_tails[i]);
		new_hashes := array_append(new_hashes, h);
		-- Each low 1 bit of the index is a complete subtree on the edge,
		-- of the size the new one has reached: merge them.
		WHILE leaf & 1 = 1 LOOP
			h := sha256('\x01'::bytea || substring(edge FROM length(edge) - 31) || h);
			edge := substring(edge FOR length(edge) - 32);
			new_hashes := array_append(new_hashes, h);
			leaf := leaf >> 1;
		END LOOP;
		edge := edge || h;
		tree_root := h;
		FOR j IN REVERSE length(edge) / 32 - 1 .. 1 LOOP
			tree_root := sha256('\x01'::bytea || substring(edge FROM 32 * (j - 1) + 1 FOR 32) || tree_root);
		END LOOP;
		new_roots := array_append(new_roots, tree_root);
	END LOOP;

	INSERT INTO audit (seq, time, action, actor, device_id, serial, token_id, detail, root)
	SELECT audit_before + e.ord, e.at, e.action, e.actor, e.device_id, e.serial, e.token_id, e.detail, new_roots[e.ord]
	FROM unnest(times, actions, actors, device_ids, serials, token_ids, details) WITH ORDINALITY
		AS e(at, action, actor, device_id, serial, token_id, detail, ord);
	INSERT INTO audit_hashes (index, hash)
	SELECT base + e.ord - 1, e.hash FROM unnest(new_hashes) WITH ORDINALITY AS e(hash, ord);
	UPDATE log_heads SET audit_seq = audit_before + n, revocation_seq = revocation_before + n_revocations,
		audit_edge = edge;
END
$$;
