// Package pgstore implements store.Store on PostgreSQL (15 or newer) with
// pgx v5: the store of several fleetca replicas sharing one database,
// behind any load balancer, any of which answers any request.
//
// It owns the schema, its migrations and the transactions. It must not
// decide policy (the caller's, passed in store.Issuance, store.Renewal and
// store.RevokeRequest), parse certificates (DER is opaque here), import
// any fleetca package but store and store/internal/backend, read a clock,
// log a password, or let a pgx type out; it must not build the CLI's
// configuration (cmd/fleetca reads the DSN and the password file and
// calls Open or Migrate).
//
// The rules it shares with boltstore are store/internal/backend's: the
// argument checks of Revoke, Renew and CreateToken(s), the renewal
// lineage rules (backend.Judge, Lineage.Superseded) over the device's
// certificates read under its row lock, the ListCertificates cursor and
// Load's record loop.
//
// The main types are Store, made by Open, and Options. Migrate applies
// the schema migrations (fleetca db migrate); SchemaVersion is the
// version this build knows.
//
// # Basics
//
// Every method is one READ COMMITTED transaction on a pgxpool connection
// (reads are a single statement). A write that returns nil has committed;
// with synchronous_commit on (PostgreSQL's default) that commit is
// flushed to the WAL.
//
// The schema is created and upgraded by embedded, numbered migrations
// (migrations/0001_init.sql, 0002_crl.sql, ...). Migrate applies the ones
// a database lacks, each in a transaction of its own that first takes
// pg_advisory_xact_lock, so that replicas starting together apply each
// once, and records the version in schema_version. Open refuses a schema
// newer than SchemaVersion (ErrSchemaNewer: "upgrade fleetca"), and an
// older one unless Options.Migrate (ErrSchemaOlder).
//
// The tables, and what a row is:
//
//	devices        a store.Device (the manufacturer certificate in mfr_* columns); indexed by
//	               (status, id), (created_at, id), (status, created_at, id), and for active
//	               devices (renew_by, id) and not_after (migration 0004, the console's)
//	certificates   a store.Certificate; serial and parent numeric, indexed by (device_id, serial);
//	               crl_partition NULL for none (every row before migration 6)
//	key_bindings   key hash -> the device it is certified for (primary key: one device per key)
//	blocked_keys   a key hash Revoke blocked
//	tokens         a store.Token, by hash; id unique
//	nonces         a spent renewal nonce and its expiry, indexed by expiry
//	audit          a store.AuditEvent, by Seq, with its Root; indexed by (device_id, seq)
//	audit_hashes   the audit tree's stored hashes, by tlog.StoredHashIndex
//	audit_checkpoints      a store.Checkpoint, by size
//	audit_checkpoint_head  one row: the largest checkpoint's size
//	revocations    a store.Revocation, by Seq; serial unique; indexed by revoked_at
//	log_heads      one row: the last audit Seq, the last revocation Seq, the audit tree's right edge
//	counters       NextCounter's counters
//	meta           PutMeta's values
//	fleet          one row: the last fleet-wide RenewNow
//	manufacturers  a store.Manufacturer
//	mfr_certs      a manufacturer certificate's fingerprint -> the device it enrolled
//	admins         a store.Admin, by name; token_hash unique
//	crl_lease      one row: the CRL signer's lease (holder, until)
//	crl_latest     one row: the latest signed CRL
//	crl_partitions a CRL partition's lease and latest CRL (number 0: none yet), by partition
//	schema_version one row: the migration version
//	console_counts Stats' counts of active and revoked devices, of certificates and of
//	               enrollments per UTC day ("e:<day>"), each spread over 16 shard rows
//	               that writes add to at random (no row every enrollment waits for)
//
// and one function, fleetca_append_logs (migration 7), which appends to
// the audit and revocation logs and the audit tree under the log_heads
// row lock (see Invariants).
//
// Text that listings order (device IDs, token IDs, manufacturer and admin names) is
// COLLATE "C", so pages are in byte order as in boltstore, whatever the
// database's locale. Serials are numeric, so ListCertificates pages in
// numeric order from a hex cursor. A zero time.Time is NULL.
//
// # Invariants
//
//   - Races between replicas are settled by PostgreSQL, never by a read
//     followed by a write. A token's use is spent by a conditional UPDATE
//     (spent < uses, unrevoked, unexpired) RETURNING, which PostgreSQL
//     re-evaluates on the newest row after waiting for a concurrent
//     spender; a nonce, a manufacturer certificate's use, a key binding, a
//     serial and a new device row by INSERT ... ON CONFLICT DO NOTHING (or
//     DO UPDATE ... WHERE) RETURNING, where the unique index admits one
//     inserter. Never SELECT ... FOR UPDATE to check that a row is
//     absent: it locks nothing when there is no row, so two transactions
//     both see it absent and both spend (TestForUpdateDoubleSpend).
//   - Every write about a device (Issue, Renew, Revoke, ResetDevice)
//     locks the device's row first (SELECT ... FOR NO KEY UPDATE, or the
//     INSERT that creates it), so MaxActive's count, Renew's
//     newest-certificate, retry and supersede rules, and a device's
//     revocation see no concurrent change to its certificates.
//   - Audit and revocation Seq values are 1, 2, 3, ... without gaps, in
//     commit order: a write's last round trip carries, after its other
//     writes and before the COMMIT, the logs' statement (appendLogsSQL),
//     whose function fleetca_append_logs (migration 7) locks the
//     log_heads row, takes the next values, appends the audit rows with
//     their roots, the tree's stored hashes and its new right edge (the
//     hashes of its complete subtrees, log_heads.audit_edge), and whose
//     statement inserts the revocation entries with theirs; the row lock
//     is held until the commit, so the next appender gets the following
//     values only once this one is visible. The server hashes, since an
//     event's leaf includes its Seq, known only under the lock: Go sends
//     each leaf without its beginning {"seq":0 (leafTail), and the
//     function hashes as tlog does (leaf index = Seq-1, Time to the
//     microsecond; TestAppendLogsHashes checks every root and stored hash
//     against tlog's). So the lock is held for the server's work on the
//     rest of the pipeline and the commit, never for a client round
//     trip. A reader that
//     pages ListRevocations by the last Seq it saw (the proxies' feed,
//     from any replica) never skips one. A bigserial would not do: its
//     values are drawn in start order, and Seq 11 could commit, and be
//     read past, before 10 (TestReplicasRevocationSeq).
//   - The CRL lease is a compare-and-swap upsert of crl_lease (taken when
//     free, expired, or already the holder's); PutCRL checks the lease
//     under a row lock and records the CRL only if its number is greater
//     than the latest's, so CRL numbers strictly increase whoever signs.
//   - A revoking (or superseding) transaction sends pg_notify on
//     fleetca_rev, and PutCRL on fleetca_crl; PostgreSQL delivers them on
//     commit. Changes listens on a dedicated connection
//     (application_name fleetca-listen), reconnects with backoff, and
//     signals on each loss, since notifications sent meanwhile are lost.
//   - A write sends its statements in as few round trips as the rules
//     allow, since each costs both sides CPU: the BEGIN goes with the
//     first statement, the writes that need no answer (and the spend)
//     and the logs' statement with the COMMIT, and
//     Issue (for a new device) and Renew send their conditions'
//     statements in one pgx.Batch, writes included (INSERT ... ON
//     CONFLICT DO NOTHING RETURNING), and judge the results in the
//     contract's order: the first refused condition is the answer and
//     the ROLLBACK undoes the rest. A new device's Issue is two round
//     trips, AppendAudit one (TestRoundTrips). A statement that holds a
//     lock must come before any whose
//     snapshot must see what the lock waited for (a statement's snapshot
//     is taken when it starts); a statement that could not see a row
//     committed after its snapshot (an INSERT's conflict with a row its
//     SELECT cannot read) reruns the transaction (errRaced).
//   - The audit tree: AuditTree is the size and tlog.TreeHash of the
//     right edge, read in one statement; AuditHashes reads audit_hashes.
//     PutCheckpoint locks the audit_checkpoint_head row, judges under it
//     (backend.CheckCheckpoint: larger than the latest, within the tree)
//     and raises it, so of replicas racing, each sees the earlier's size
//     and sizes only grow (store.ErrStaleCheckpoint for the others).
//     Migration 5 builds the tree of the rows a database already had, in
//     Go (buildAuditTree, tlog), in its transaction; rows are not
//     re-timed (timestamptz keeps microseconds already). A gap in Seq
//     fails it.
//   - Serialization failures (40001), deadlocks (40P01) and errRaced are
//     retried, at most 8 runs of the transaction (Store.inTx); a duplicate
//     that no condition caught (23505) is store.ErrConflict.
//   - No error contains the password (the DSN's or Options.Password);
//     pgx errors leave wrapped, their text redacted.
//
// # Caveats
//
// Times are stored to the microsecond (timestamptz): a time with
// nanoseconds comes back truncated.
//
// Every write transaction holds the log_heads row lock (and an Issue with
// a shared token, that token's row lock) from its last round trip's logs'
// statement through its commit: the locks last until the WAL flush, so
// commits are flushed one after another and PostgreSQL cannot group them.
// Since migration 7 no client round trip happens under them (the server
// hashes the audit tree), and a new device's Issue is two round trips
// again; with tlog's hashing in Go (issue 16) it was three, one of them
// under the lock. On the 2-core test machine, shared with other work
// (load average 9-13), BenchmarkIssue (fsync on, 32 in flight) gave, in
// 17 interleaved pairs of 3 s runs, medians of 331 enrollments/s before
// and 469 after with one replica (paired ratio 1.29), 365 and 358 with
// three (0.96): on a machine that busy it is bound by CPU more than by
// the lock, about 1.0-1.4 ms of PostgreSQL backend CPU per enrollment
// (about 20 statements; the change saved about 5%) and 0.3 ms of the
// client's (0.4 before). More replicas add connections and lock waiters,
// not flushes. The Seq rule costs that. A later design may number the
// audit log after commit (in the order the rows became visible) and
// split a many-use token's count over several rows.
//
// Serials longer than 255 bytes are refused, and counters, Seq values and
// CRL numbers above 2^63-1. Dump reads one REPEATABLE READ snapshot; Load
// writes with COPY in one transaction and derives the key bindings from
// the certificates, and the audit tree's hashes from the events (their
// roots and the checkpoints kept as loaded). CockroachDB and other PostgreSQL-compatible databases
// are not supported (no LISTEN/NOTIFY, advisory locks that do nothing).
package pgstore
