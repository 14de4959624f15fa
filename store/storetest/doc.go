// Package storetest is the contract suite of store.Store: Run checks that
// a backend does what the interface's documentation promises, method by
// method and error by error, and under concurrency.
//
// # Basics
//
// A backend's test calls Run with a constructor of empty stores:
// store/boltstore runs it on files in t.TempDir(), and store/pgstore runs
// it on a PostgreSQL server its test binary starts (internal/pgtest), a
// database per subtest; both run RunCopy, pgstore across the two kinds. Run's subtests (Issue,
// IssueConcurrent, Token, Device, Certificate, Revoke, RevokeConcurrent,
// ResetDevice, Renew, RenewRetry, RenewConcurrent, Lineage, Supersede,
// RenewNow, ListRevocations, Audit, AuditTree, Stats, QueryDevices,
// QueryAudit, NextCounter, Meta, Close, Context) run in parallel, each on a
// store of its own. Stats, QueryDevices and QueryAudit replay one scripted history
// (consoleHistory) with every time half an hour from an hour's boundary,
// since Stats may count by the hour; every query is paged through its
// cursors to the end and compared with a model of it (wantDevices,
// wantAudit). RunCopy also compares the source's and the target's
// answers to them.
//
// AuditTree is the rule of the tamper-evident audit log (issue 16): after
// a scripted history of every kind of write that appends audit rows, and
// after concurrent appenders, the rows' Seqs are 1..n and each row's Root
// is the RFC 6962 tree hash the suite recomputes from the rows' LeafData
// alone (golang.org/x/mod/sumdb/tlog, in memory); AuditTree gives (n, that
// root); AuditHashes gives exactly the suite's stored hashes, ErrNotFound
// past them, and inclusion and consistency proofs built from it check; a
// refused write appends nothing; Time is kept to AuditTimePrecision; and
// checkpoints are kept in Size order (ErrStaleCheckpoint, paging,
// ErrNotFound when none). RunCopy checks that a copy keeps the rows, roots,
// stored hashes and checkpoints identical and goes on appending.
//
// Backends' own tests use the same tree: TreeOf recomputes the stored
// hashes and roots of a list of events (a MemTree is a tlog.HashReader),
// and CheckAuditTree is AuditTree's whole-log check of any store.
// RunAuditScanLimit checks QueryAudit's scan limit (store.AuditScanLimit)
// on a store whose limit the backend's test lowers, since only the
// backend can.
//
// # Invariants
//
//   - It speaks only store.Store and imports nothing of fleetca's but
//     package store: what it checks holds for any backend.
//   - Time is fixed: T0 and offsets from it, never the clock.
//   - Certificates carry fake DER, which a store must not parse, and real
//     *big.Int serials, one of them above 2^128 as fleetca's are.
//   - Errors are checked with errors.Is against the store's sentinels,
//     never by their text.
//   - A refused write is checked to have written nothing: no device, no
//     spent use, no audit row (nor audit tree hash), no revocation; a refused Renew, no spent
//     nonce either (nonces are seen only through Renew: the suite spends
//     one again on another device to tell).
//
// # Caveats
//
// The constructor owns the cleanup of each store (an integrity check,
// Close); subtests may close the store they were given. The concurrent
// subtests show races only as wrong results, so run the suite with -race.
package storetest
