// Package backend holds what store/boltstore and store/pgstore decide the
// same way: the checks of a write request's arguments (Revoke, Renew,
// CreateToken), the renewal lineage rules (which earlier certificate a
// retry returns, whether a newer unrevoked one exists, which are live and
// which a renewal supersedes), the ListCertificates page cursor, the
// loop of store.Loader's Load, and the audit tree's arithmetic
// (AppendAudit: events to append and a tlog.HashReader of the stored
// hashes in, each event's Seq, Time and Root set and the stored hashes to
// write out; CheckCheckpoint: PutCheckpoint's rules).
//
// # Basics
//
// Everything here is a pure function of its arguments: no storage, no
// clock, no I/O. A backend reads its records, hands this package the
// fields the rules need, and writes what the rules decided, in its own
// transaction. Lineage takes a device's certificates as Entry values, in
// the backend's order, and returns what Renew needs to know of them.
//
// # Invariants
//
//   - The errors it returns are the backends' errors as the store
//     contract describes them: an argument error wraps no sentinel, and
//     its text is what both backends said before it was shared.
//   - It imports nothing of fleetca's but package store, and only the
//     store's backends import it (it is internal to store).
//
// # What it must not do
//
// It must not hold anything a single backend owns (bbolt keys, SQL, pgx
// types), decide policy (the caller's, in store.Renewal and
// store.RevokeRequest), or check what must be checked atomically with a
// write: that is the backend's transaction.
package backend
