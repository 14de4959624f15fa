package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/internal/backend"
)

var (
	_ store.Dumper = (*Store)(nil)
	_ store.Loader = (*Store)(nil)
)

// Dump calls fn with every record, in one read transaction, in the order
// store.Dumper documents. fn runs inside that transaction: a slow fn holds
// the snapshot (bbolt lets writers go on meanwhile).
func (s *Store) Dump(ctx context.Context, fn func(store.Record) error) error {
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return dumpTx(ctx, tx, fn)
	})
	if err != nil {
		return fmt.Errorf("dump store: %w", err)
	}
	return nil
}

// Counts returns how many records of each kind Dump gives.
func (s *Store) Counts(ctx context.Context) (map[string]int64, error) {
	counts := map[string]int64{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		clear(counts)
		return dumpTx(ctx, tx, func(r store.Record) error {
			counts[r.Kind()]++
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("count records: %w", err)
	}
	return counts, nil
}

// dumpTx is Dump's body. It checks ctx every 1024 records.
func dumpTx(ctx context.Context, tx *bbolt.Tx, fn func(store.Record) error) error {
	n := 0
	each := func(bucket []byte, decode func(k, v []byte) (store.Record, error)) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			if n++; n%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			r, err := decode(k, v)
			if err != nil {
				return fmt.Errorf("%s %x: %w", bucket, k, err)
			}
			return fn(r)
		})
	}
	steps := []struct {
		bucket []byte
		decode func(k, v []byte) (store.Record, error)
	}{
		{bucketManufacturers, func(_, v []byte) (store.Record, error) {
			var m store.Manufacturer
			return store.Record{Manufacturer: &m}, json.Unmarshal(v, &m)
		}},
		{bucketAdmins, func(_, v []byte) (store.Record, error) {
			var a store.Admin
			return store.Record{Admin: &a}, json.Unmarshal(v, &a)
		}},
		{bucketDevices, func(_, v []byte) (store.Record, error) {
			var d store.Device
			return store.Record{Device: &d}, decodeRecord(v, &d)
		}},
		{bucketCerts, func(k, v []byte) (store.Record, error) {
			c, err := decodeCertificate(k, v)
			return store.Record{Certificate: &c}, err
		}},
		{bucketMfrCerts, func(k, v []byte) (store.Record, error) {
			u := store.ManufacturerUse{DeviceID: string(v)}
			if copy(u.Fingerprint[:], k) != len(k) || len(k) != len(u.Fingerprint) {
				return store.Record{}, errors.New("malformed fingerprint")
			}
			return store.Record{ManufacturerUse: &u}, nil
		}},
		{bucketTokens, func(_, v []byte) (store.Record, error) {
			var t store.Token
			return store.Record{Token: &t}, decodeRecord(v, &t)
		}},
		{bucketRevocations, func(k, v []byte) (store.Record, error) {
			e, err := decodeRevocation(k, v)
			return store.Record{Revocation: &e}, err
		}},
		{bucketBlockedKeys, func(k, _ []byte) (store.Record, error) {
			var h store.KeyHash
			if len(k) != len(h) {
				return store.Record{}, errors.New("malformed key hash")
			}
			copy(h[:], k)
			return store.Record{BlockedKey: &h}, nil
		}},
		{bucketNonces, func(k, v []byte) (store.Record, error) {
			var n store.Nonce
			if len(k) != len(n.Hash) {
				return store.Record{}, errors.New("malformed nonce")
			}
			copy(n.Hash[:], k)
			var err error
			n.Expires, err = parseTimeKey(v)
			return store.Record{Nonce: &n}, err
		}},
		{bucketAudit, func(_, v []byte) (store.Record, error) {
			var e store.AuditEvent
			return store.Record{Audit: &e}, decodeRecord(v, &e)
		}},
		{bucketAuditCheckpoints, func(k, v []byte) (store.Record, error) {
			c, err := decodeCheckpoint(k, v)
			return store.Record{Checkpoint: &c}, err
		}},
		{bucketCounters, func(k, v []byte) (store.Record, error) {
			if len(v) != 8 {
				return store.Record{}, errors.New("malformed counter")
			}
			return store.Record{Counter: &store.Counter{Name: string(k), Value: binary.BigEndian.Uint64(v)}}, nil
		}},
		{bucketMeta, func(k, v []byte) (store.Record, error) {
			return store.Record{Meta: &store.Meta{Key: string(k), Value: bytes.Clone(v)}}, nil
		}},
		{bucketFleet, func(k, v []byte) (store.Record, error) {
			if !bytes.Equal(k, fleetRenewNowKey) {
				return store.Record{}, errors.New("unknown fleet setting")
			}
			t, err := parseTimeKey(v)
			return store.Record{FleetRenewNow: &t}, err
		}},
	}
	for _, st := range steps {
		if err := each(st.bucket, st.decode); err != nil {
			return err
		}
	}
	b := tx.Bucket(bucketCRL)
	if b.Get(crlNumberKey) != nil {
		var c store.CRL
		if _, err := getRecord(b, crlLatestKey, &c); err != nil {
			return err
		}
		if err := fn(store.Record{CRL: &c}); err != nil {
			return err
		}
	}
	for p := range store.MaxCRLPartitions {
		keys := partitionCRLKeys(p)
		if b.Get(keys.number) == nil {
			continue
		}
		c := store.PartitionCRL{Partition: p}
		if _, err := getRecord(b, keys.latest, &c.CRL); err != nil {
			return err
		}
		if err := fn(store.Record{PartitionCRL: &c}); err != nil {
			return err
		}
	}
	return nil
}

// Load writes the records into this store, which must be empty, in one
// transaction; see store.Loader. It keeps every Seq and counter value,
// and sets the audit and revocations sequences to the largest loaded. It
// then computes the audit tree's stored hashes from the loaded events
// (keeping their Time and Root as loaded): the audit Seqs must be 1..n
// without a gap.
func (s *Store) Load(ctx context.Context, next func() (store.Record, bool, error)) error {
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		for _, name := range allBuckets {
			if k, _ := tx.Bucket(name).Cursor().First(); k != nil {
				return fmt.Errorf("bucket %s has records: %w", name, store.ErrNotEmpty)
			}
		}
		if err := backend.LoadRecords(ctx, next, func(r store.Record) error { return loadRecord(tx, r) }); err != nil {
			return err
		}
		if err := buildTree(tx, false); err != nil {
			return fmt.Errorf("audit tree: %w", err)
		}
		return rebuildDerived(tx)
	})
	if err != nil {
		return fmt.Errorf("load store: %w", err)
	}
	return nil
}

// loadRecord writes one dumped record into the buckets of tx.
func loadRecord(tx *bbolt.Tx, r store.Record) error {
	switch {
	case r.Manufacturer != nil:
		return putRecord(tx.Bucket(bucketManufacturers), []byte(r.Manufacturer.Name), r.Manufacturer)
	case r.Admin != nil:
		if err := putRecord(tx.Bucket(bucketAdmins), []byte(r.Admin.Name), r.Admin); err != nil {
			return err
		}
		return tx.Bucket(bucketAdminHashes).Put(r.Admin.TokenHash[:], []byte(r.Admin.Name))
	case r.Device != nil:
		return putRecord(tx.Bucket(bucketDevices), []byte(r.Device.ID), r.Device)
	case r.Certificate != nil:
		return loadCertificate(tx, *r.Certificate)
	case r.ManufacturerUse != nil:
		return tx.Bucket(bucketMfrCerts).Put(r.ManufacturerUse.Fingerprint[:], []byte(r.ManufacturerUse.DeviceID))
	case r.Token != nil:
		if err := putRecord(tx.Bucket(bucketTokens), r.Token.Hash[:], r.Token); err != nil {
			return err
		}
		return tx.Bucket(bucketTokenIDs).Put([]byte(r.Token.ID), r.Token.Hash[:])
	case r.Revocation != nil:
		return loadRevocation(tx, *r.Revocation)
	case r.BlockedKey != nil:
		return tx.Bucket(bucketBlockedKeys).Put(r.BlockedKey[:], []byte{})
	case r.Nonce != nil:
		exp := timeKey(r.Nonce.Expires)
		if err := tx.Bucket(bucketNonces).Put(r.Nonce.Hash[:], exp); err != nil {
			return err
		}
		return tx.Bucket(bucketNonceExpiry).Put(append(exp, r.Nonce.Hash[:]...), []byte{})
	case r.Audit != nil:
		return loadSeq(tx.Bucket(bucketAudit), r.Audit.Seq, r.Audit)
	case r.Checkpoint != nil:
		if r.Checkpoint.Size <= 0 {
			return fmt.Errorf("checkpoint size %d is not positive", r.Checkpoint.Size)
		}
		return putRecord(tx.Bucket(bucketAuditCheckpoints), seqKey(uint64(r.Checkpoint.Size)), r.Checkpoint)
	case r.Counter != nil:
		return tx.Bucket(bucketCounters).Put([]byte(r.Counter.Name), binary.BigEndian.AppendUint64(nil, r.Counter.Value))
	case r.Meta != nil:
		return tx.Bucket(bucketMeta).Put([]byte(r.Meta.Key), bytes.Clone(r.Meta.Value))
	case r.FleetRenewNow != nil:
		return tx.Bucket(bucketFleet).Put(fleetRenewNowKey, timeKey(*r.FleetRenewNow))
	case r.CRL != nil:
		return putCRL(tx.Bucket(bucketCRL), fullCRLKeys, *r.CRL)
	case r.PartitionCRL != nil:
		c := r.PartitionCRL
		if err := checkPartition(c.Partition); err != nil || c.Number == 0 || len(c.DER) == 0 {
			return fmt.Errorf("partition CRL %d of partition %d: out of range, or no DER", c.Number, c.Partition)
		}
		return putCRL(tx.Bucket(bucketCRL), partitionCRLKeys(c.Partition), c.CRL)
	}
	return errors.New("empty record")
}

// loadCertificate writes a dumped certificate with its device index entry
// and key binding, as Issue and Renew do.
func loadCertificate(tx *bbolt.Tx, c store.Certificate) error {
	k, err := serialKey(c.Serial)
	if err != nil {
		return err
	}
	data, err := encodeCertificate(c)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketCerts).Put(k, data); err != nil {
		return err
	}
	if err := tx.Bucket(bucketCertsByDevice).Put(append(deviceIndexPrefix(c.DeviceID), k...), []byte{}); err != nil {
		return err
	}
	return tx.Bucket(bucketKeys).Put(c.KeyHash[:], []byte(c.DeviceID))
}

// loadRevocation writes a dumped revocation log entry under its Seq.
func loadRevocation(tx *bbolt.Tx, e store.Revocation) error {
	if e.Serial == nil || e.Serial.Sign() <= 0 {
		return fmt.Errorf("revocation %d: serial %v is not positive", e.Seq, e.Serial)
	}
	rec := revocationRecord{Revocation: e, Serial: e.Serial.Text(16)}
	return loadSeq(tx.Bucket(bucketRevocations), e.Seq, rec)
}

// loadSeq stores v under seq in b and moves b's sequence up to seq, so
// that the next append continues after the largest loaded.
func loadSeq(b *bbolt.Bucket, seq uint64, v any) error {
	if seq == 0 {
		return errors.New("sequence number 0")
	}
	if err := putRecord(b, seqKey(seq), v); err != nil {
		return err
	}
	if seq > b.Sequence() {
		return b.SetSequence(seq)
	}
	return nil
}
