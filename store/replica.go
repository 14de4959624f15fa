package store

import (
	"context"
	"fmt"
	"time"
)

// ErrLeaseLost: PutCRL by a holder that does not hold the CRL lease (it
// ran out, or another holder took it).
var ErrLeaseLost = fmt.Errorf("%w: CRL lease not held", ErrConflict)

// ErrCRLNotNewer: PutCRL of a CRL whose Number is not greater than the
// latest recorded one's.
var ErrCRLNotNewer = fmt.Errorf("%w: CRL number not newer", ErrConflict)

// ErrNotEmpty: Load into a store that holds records already.
var ErrNotEmpty = fmt.Errorf("%w: store not empty", ErrConflict)

// CRL is a signed CRL as the store keeps it: replicas sharing a store
// serve the one the holder of the CRL lease signed last, so that every
// replica publishes the same CRL numbers.
type CRL struct {
	// Number is the CRL's cRLNumber; it increases with every CRL recorded.
	Number     uint64    `json:"number"`
	ThisUpdate time.Time `json:"this_update"`
	NextUpdate time.Time `json:"next_update"`
	// DER is the signed CRL.
	DER []byte `json:"der"`
}

// Replication is the part of Store that lets several fleetca replicas
// share one store. A store only one process opens (boltstore) implements
// it too, with the same rules, for its one process.
type Replication interface {
	// LeaseCRL takes or extends, for holder, the lease of the CRL signer,
	// until until: it returns true when the lease was free (never taken,
	// or its expiry is at or before now) or already holder's, and false,
	// writing nothing, when another holder's lease runs past now. The
	// holder's lease becomes until, earlier than before or later: a
	// holder gives its lease up with until = now + 1ns. until must be
	// after now (an error wrapping no sentinel otherwise).
	LeaseCRL(ctx context.Context, holder string, now, until time.Time) (bool, error)
	// PutCRL records c as the latest CRL, if holder holds the lease at now
	// (ErrLeaseLost otherwise) and c.Number is greater than the latest
	// recorded CRL's (ErrCRLNotNewer otherwise); a refusal writes nothing.
	// c.Number must be > 0 and c.DER not empty.
	PutCRL(ctx context.Context, holder string, now time.Time, c CRL) error
	// LatestCRL returns the latest recorded CRL if its Number is greater
	// than newerThan; ErrNotFound if there is none, or none newer (a cheap
	// poll: nothing is read but the number then).
	LatestCRL(ctx context.Context, newerThan uint64) (CRL, error)
	// Changes returns a channel that receives a value when a Revoke, a
	// Renew that superseded certificates, or a PutCRL may have committed,
	// through this store or another process sharing its database, until
	// ctx ends or the store closes (then the channel is closed). The
	// channel has a buffer of one and the store never blocks on it: one
	// value may stand for many commits. Values are a hint, never the
	// record: a value may be spurious, and while a shared database's
	// notifications are interrupted (a lost connection) some are lost, so
	// readers also poll ListRevocations and LatestCRL.
	Changes(ctx context.Context) <-chan struct{}
}

// Record is one record of a store's dump (Dumper, Loader): exactly one
// field is set. A dump holds everything a store keeps, so that a Load of
// it into an empty store of another kind gives a store that answers every
// method as the source did.
type Record struct {
	Device      *Device      `json:"device,omitempty"`
	Certificate *Certificate `json:"certificate,omitempty"` // with Parent and revocation fields
	Token       *Token       `json:"token,omitempty"`
	Revocation  *Revocation  `json:"revocation,omitempty"` // a revocation log entry, with its Seq
	Audit       *AuditEvent  `json:"audit,omitempty"`      // with its Seq and Root
	// Checkpoint is a signed audit checkpoint (PutCheckpoint).
	Checkpoint   *Checkpoint   `json:"checkpoint,omitempty"`
	Manufacturer *Manufacturer `json:"manufacturer,omitempty"`
	Admin        *Admin        `json:"admin,omitempty"`
	// ManufacturerUse is a manufacturer certificate that enrolled a device
	// and was not released since (Issuance.Manufacturer, ResetDevice).
	ManufacturerUse *ManufacturerUse `json:"manufacturer_use,omitempty"`
	BlockedKey      *KeyHash         `json:"blocked_key,omitempty"`
	// Nonce is a spent renewal nonce (one that has expired may be
	// included: it is usable again either way).
	Nonce   *Nonce   `json:"nonce,omitempty"`
	Counter *Counter `json:"counter,omitempty"`
	Meta    *Meta    `json:"meta,omitempty"`
	// FleetRenewNow is the time of the last fleet-wide RenewNow.
	FleetRenewNow *time.Time `json:"fleet_renew_now,omitempty"`
	// CRL is the latest recorded CRL (Replication.PutCRL); the lease is
	// not copied.
	CRL *CRL `json:"crl,omitempty"`
}

// ManufacturerUse records that the manufacturer certificate with the
// SHA-256 Fingerprint enrolled DeviceID.
type ManufacturerUse struct {
	Fingerprint [32]byte `json:"fingerprint"`
	DeviceID    string   `json:"device_id"`
}

// Counter is a NextCounter counter and its current value.
type Counter struct {
	Name  string `json:"name"`
	Value uint64 `json:"value"`
}

// Meta is a PutMeta value.
type Meta struct {
	Key   string `json:"key"`
	Value []byte `json:"value"`
}

// Kind names the kind of record r is: "device", "certificate", "token",
// "revocation", "audit", "checkpoint", "manufacturer", "admin", "manufacturer_use",
// "blocked_key", "nonce", "counter", "meta", "fleet_renew_now" or "crl";
// "" if no field is set.
func (r Record) Kind() string {
	switch {
	case r.Device != nil:
		return "device"
	case r.Certificate != nil:
		return "certificate"
	case r.Token != nil:
		return "token"
	case r.Revocation != nil:
		return "revocation"
	case r.Audit != nil:
		return "audit"
	case r.Checkpoint != nil:
		return "checkpoint"
	case r.Manufacturer != nil:
		return "manufacturer"
	case r.Admin != nil:
		return "admin"
	case r.ManufacturerUse != nil:
		return "manufacturer_use"
	case r.BlockedKey != nil:
		return "blocked_key"
	case r.Nonce != nil:
		return "nonce"
	case r.Counter != nil:
		return "counter"
	case r.Meta != nil:
		return "meta"
	case r.FleetRenewNow != nil:
		return "fleet_renew_now"
	case r.CRL != nil:
		return "crl"
	}
	return ""
}

// Dumper is a store whose records can be copied out (fleetca db copy).
type Dumper interface {
	// Dump calls fn with every record of the store, read in one
	// consistent snapshot, in this order of kinds: manufacturers, admins, devices,
	// certificates (by serial: a renewal's Parent may come after it),
	// manufacturer uses, tokens, revocations (by Seq), blocked keys,
	// nonces, audit (by Seq), checkpoints (by Size), counters, meta,
	// fleet renew-now, CRL. Each record is the caller's to keep. An error from fn stops Dump and is
	// returned.
	Dump(ctx context.Context, fn func(Record) error) error
	// Counts returns how many records of each Kind a Dump would give.
	Counts(ctx context.Context) (map[string]int64, error)
}

// Loader is a store that can be filled from a dump (fleetca db copy).
type Loader interface {
	// Load writes the records next returns (until it returns false) into
	// the store, which must be empty: ErrNotEmpty, writing nothing,
	// otherwise. Records keep their Seqs, counters their values, and the
	// store continues the sequences after the largest loaded. next may be
	// called from one goroutine at a time; an error from it is returned.
	// Records come in Dump's order, but a Loader must not rely on a
	// Parent coming before the certificate that names it. Audit events
	// keep their Time and Root as loaded (so that a copy of a tampered
	// log still shows it); the store computes the audit tree's stored
	// hashes from their leaves. Checkpoints are kept as loaded.
	// Load is all or nothing: on an error the store is left empty.
	Load(ctx context.Context, next func() (Record, bool, error)) error
}
