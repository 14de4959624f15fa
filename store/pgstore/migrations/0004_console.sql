-- fleetca store schema, version 4: the admin console's queries
-- (store.Store QueryDevices, Stats, QueryAudit). See store/pgstore/doc.go.

-- The device's newest certificate's NotAfter and the end of its renewal
-- window (store.Device), backfilled from each device's newest
-- certificate (a device reset since its revocation: only from one issued
-- after its revoked_at).
ALTER TABLE devices ADD COLUMN not_after timestamptz, ADD COLUMN renew_by timestamptz;

UPDATE devices d SET not_after = c.not_after,
	renew_by = date_trunc('second', c.not_before + (c.not_after - c.not_before) * 2 / 3 + (c.not_after - c.not_before) / 100)
FROM (
	SELECT DISTINCT ON (device_id) device_id, not_before, not_after, issued_at
	FROM certificates
	ORDER BY device_id, issued_at DESC NULLS LAST, serial DESC
) c
WHERE c.device_id = d.id AND c.not_before IS NOT NULL
	AND (d.status = 'revoked' OR d.revoked_at IS NULL OR c.issued_at > d.revoked_at);

-- QueryDevices: each allowed order from an index.
CREATE INDEX devices_status_id ON devices (status, id);
CREATE INDEX devices_renew_by ON devices (renew_by, id) WHERE status = 'active' AND renew_by IS NOT NULL;
CREATE INDEX devices_created ON devices (created_at, id);
CREATE INDEX devices_status_created ON devices (status, created_at, id);
-- Stats: ranges of active devices' not_after, of revocations' times.
CREATE INDEX devices_not_after ON devices (not_after) WHERE status = 'active' AND not_after IS NOT NULL;
CREATE INDEX revocations_revoked_at ON revocations (revoked_at);

-- QueryAudit by device, newest first.
CREATE INDEX audit_device_seq ON audit (device_id, seq);

-- Stats' counts of devices by status, of certificates and of
-- enrollments per day, kept by the
-- writes that change them. Each name's count is spread over shards (a
-- write adds to a random one; Stats sums them), so that concurrent
-- enrollments seldom wait for one row's lock.
CREATE TABLE console_counts (
	name  text NOT NULL,
	shard smallint NOT NULL,
	n     bigint NOT NULL,
	PRIMARY KEY (name, shard)
);
INSERT INTO console_counts (name, shard, n)
	SELECT 'active', 0, count(*) FROM devices WHERE status = 'active'
	UNION ALL SELECT 'revoked', 0, count(*) FROM devices WHERE status = 'revoked'
	UNION ALL SELECT 'certs', 0, count(*) FROM certificates
	-- Enrollments by UTC day ('e:' and the day's number since 1970).
	UNION ALL SELECT 'e:' || floor(extract(epoch FROM issued_at) / 86400)::bigint, 0, count(*)
		FROM certificates WHERE parent IS NULL AND issued_at IS NOT NULL GROUP BY 1;
