package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/internal/backend"
)

// revocationRecord is a value of the revocations bucket: the entry with its
// serial as lowercase hex, which a JSON number could not hold exactly. The
// embedded Serial is not encoded (json:"-"); this one shadows it.
type revocationRecord struct {
	store.Revocation
	Serial string `json:"serial"`
}

// Revoke revokes a certificate (r.Serial) or a device (r.DeviceID) in one
// transaction shared, through the store's group commit (batch), with concurrent Issue, Revoke,
// Renew and AppendAudit calls. It checks, before it writes anything, that the
// certificate or device exists (store.ErrNotFound) and is not revoked
// (store.ErrAlreadyRevoked); a refusal writes nothing and returns no
// entries.
//
// For each certificate it revokes (the one named, or every certificate of
// the device that is Live at r.At, in serial order) it sets RevokedAt to
// r.At and Reason to r.Reason, appends a revocations entry with the next
// Seq and, if r.BlockKeys, adds the certificate's key to blocked_keys. For
// a device it also sets Status to store.DeviceRevoked, and UpdatedAt and
// RevokedAt to r.At. Then it appends r.Audit with the next audit Seq, and returns the
// entries it appended.
//
// It reads every field of r. Exactly one of Serial and DeviceID must be
// set, and At must not be zero; otherwise the error wraps no sentinel. A
// serial that serialKey cannot encode (not positive, too long) is never
// found.
func (s *Store) Revoke(ctx context.Context, r store.RevokeRequest) ([]store.Revocation, error) {
	wrap, err := backend.CheckRevoke(r)
	if err != nil {
		return nil, err
	}
	var certKey []byte
	if r.Serial != nil {
		var err error
		if certKey, err = serialKey(r.Serial); err != nil {
			return nil, wrap(store.ErrNotFound) // no such serial can be stored
		}
	}
	var out []store.Revocation
	err = s.batch(ctx, func(tx *bbolt.Tx) (cond, err error) {
		out = nil // a re-run starts afresh
		var tok store.Token
		spend := r.Token != store.TokenHash{}
		if spend {
			if tok, cond, err = spendableToken(tx.Bucket(bucketTokens), r.Token, r.At); cond != nil || err != nil {
				return cond, err
			}
		}
		var entries []store.Revocation
		if certKey != nil {
			entries, cond, err = revokeSerialTx(tx, r, certKey)
		} else {
			entries, cond, err = revokeDeviceTx(tx, r)
		}
		if cond != nil || err != nil {
			return cond, err
		}
		if spend {
			tok.Spent++
			if err := putJSON(tx.Bucket(bucketTokens), r.Token[:], tok); err != nil {
				return nil, fmt.Errorf("token: %w", err)
			}
		}
		out = entries
		return nil, nil
	})
	if err != nil {
		return nil, wrap(err)
	}
	if len(out) > 0 {
		s.signal()
	}
	return out, nil
}

// revokeSerialTx is the body of Revoke for r.Serial, whose serialKey is
// certKey. Like issueTx, it checks its conditions before its first write
// (a refusal, cond, leaves tx untouched), and err is internal.
func revokeSerialTx(tx *bbolt.Tx, r store.RevokeRequest, certKey []byte) (_ []store.Revocation, cond, err error) {
	v := tx.Bucket(bucketCerts).Get(certKey)
	if v == nil {
		return nil, store.ErrNotFound, nil
	}
	c, err := decodeCertificate(certKey, v)
	if err != nil {
		return nil, nil, err
	}
	if !c.RevokedAt.IsZero() {
		return nil, fmt.Errorf("revoked at %s: %w", c.RevokedAt.Format(time.RFC3339), store.ErrAlreadyRevoked), nil
	}

	// Every condition holds: write.
	e, err := revokeCertTx(tx, certKey, c, r)
	if err != nil {
		return nil, nil, err
	}
	audit := r.Audit
	if audit.DeviceID == "" {
		audit.DeviceID = c.DeviceID // the caller names the serial only
	}
	if _, err := appendAudit(tx, audit); err != nil {
		return nil, nil, err
	}
	return []store.Revocation{e}, nil, nil
}

// revokeDeviceTx is the body of Revoke for r.DeviceID, under the same rules
// as revokeSerialTx.
func revokeDeviceTx(tx *bbolt.Tx, r store.RevokeRequest) (_ []store.Revocation, cond, err error) {
	devices := tx.Bucket(bucketDevices)
	certs := tx.Bucket(bucketCerts)
	deviceID := []byte(r.DeviceID)
	var dev store.Device
	found, err := getJSON(devices, deviceID, &dev)
	switch {
	case err != nil:
		return nil, nil, fmt.Errorf("device: %w", err)
	case !found:
		return nil, store.ErrNotFound, nil
	case dev.Status == store.DeviceRevoked:
		return nil, fmt.Errorf("revoked at %s: %w", dev.UpdatedAt.Format(time.RFC3339), store.ErrAlreadyRevoked), nil
	}

	// Read the live certificates before writing any: a device has few.
	type liveCert struct {
		key []byte
		c   store.Certificate
	}
	var live []liveCert
	prefix := deviceIndexPrefix(r.DeviceID)
	cur := tx.Bucket(bucketCertsByDevice).Cursor()
	for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
		key := bytes.Clone(k[len(prefix):])
		v := certs.Get(key)
		if v == nil {
			return nil, nil, fmt.Errorf("certificate index entry %x has no certificate", k)
		}
		c, err := decodeCertificate(key, v)
		if err != nil {
			return nil, nil, err
		}
		if c.Live(r.At) {
			live = append(live, liveCert{key, c})
		}
	}

	// Write.
	out := make([]store.Revocation, 0, len(live))
	for _, l := range live {
		e, err := revokeCertTx(tx, l.key, l.c, r)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, e)
	}
	old := dev
	dev.Status, dev.UpdatedAt, dev.RevokedAt = store.DeviceRevoked, r.At, r.At
	if err := putDevice(tx, &old, dev); err != nil {
		return nil, nil, err
	}
	if _, err := appendAudit(tx, r.Audit); err != nil {
		return nil, nil, err
	}
	return out, nil, nil
}

// revokeCertTx revokes c, stored under certKey, as r says: it records
// RevokedAt and Reason, appends the revocations entry with the bucket's
// next sequence number (rolled back with tx, so committed numbers have no
// gaps) and blocks the key if r.BlockKeys. It returns the entry.
func revokeCertTx(tx *bbolt.Tx, certKey []byte, c store.Certificate, r store.RevokeRequest) (store.Revocation, error) {
	c.RevokedAt, c.Reason = r.At, r.Reason
	certJSON, err := encodeCertificate(c)
	if err != nil {
		return store.Revocation{}, err
	}
	if err := tx.Bucket(bucketCerts).Put(certKey, certJSON); err != nil {
		return store.Revocation{}, fmt.Errorf("certificate: %w", err)
	}
	log := tx.Bucket(bucketRevocations)
	seq, err := log.NextSequence()
	if err != nil {
		return store.Revocation{}, fmt.Errorf("revocation sequence: %w", err)
	}
	e := store.Revocation{
		Seq: seq, Serial: c.Serial, DeviceID: c.DeviceID,
		RevokedAt: c.RevokedAt, Reason: c.Reason, NotAfter: c.NotAfter, Partition: c.Partition,
	}
	if err := putJSON(log, seqKey(seq), revocationRecord{Revocation: e, Serial: c.Serial.Text(16)}); err != nil {
		return store.Revocation{}, fmt.Errorf("revocation: %w", err)
	}
	if err := countRevocation(tx, e.Reason, e.RevokedAt); err != nil {
		return store.Revocation{}, fmt.Errorf("revocation counters: %w", err)
	}
	if r.BlockKeys {
		if err := tx.Bucket(bucketBlockedKeys).Put(c.KeyHash[:], []byte{}); err != nil {
			return store.Revocation{}, fmt.Errorf("blocked key: %w", err)
		}
	}
	return e, nil
}

// ResetDevice sets the Status of the revoked device with the ID to
// store.DeviceActive and its UpdatedAt to at, and appends audit, in one
// transaction; it returns the updated device. Its certificates, blocked
// keys and RevokedAt are left as they are; the manufacturer certificate it
// enrolled with is released (its mfr_certs entry deleted). For an unknown
// ID it returns an error wrapping
// store.ErrNotFound. For a device that is not revoked it writes nothing and
// returns the device as stored with an error wrapping store.ErrNotRevoked.
func (s *Store) ResetDevice(ctx context.Context, id string, at time.Time, audit store.AuditEvent) (store.Device, error) {
	var d store.Device
	var notRevoked bool
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		d, notRevoked = store.Device{}, false
		devices := tx.Bucket(bucketDevices)
		found, err := getJSON(devices, []byte(id), &d)
		switch {
		case err != nil:
			return err
		case !found:
			return store.ErrNotFound
		case d.Status != store.DeviceRevoked:
			notRevoked = true
			return fmt.Errorf("status %s: %w", d.Status, store.ErrNotRevoked)
		}
		old := d
		d.Status, d.UpdatedAt = store.DeviceActive, at
		d.NotAfter, d.RenewBy = time.Time{}, time.Time{}
		if err := putDevice(tx, &old, d); err != nil {
			return err
		}
		if m := d.Manufacturer; m != nil {
			// Released only if it is this device's: another device may
			// not free it.
			mfrCerts := tx.Bucket(bucketMfrCerts)
			if string(mfrCerts.Get(m.Fingerprint[:])) == id {
				if err := mfrCerts.Delete(m.Fingerprint[:]); err != nil {
					return err
				}
			}
		}
		_, err = appendAudit(tx, audit)
		return err
	})
	if err != nil {
		err = fmt.Errorf("reset device %q: %w", id, err)
		if notRevoked {
			return d, err
		}
		return store.Device{}, err
	}
	return d, nil
}

// ListRevocations returns the revocations entries with Seq > afterSeq in
// Seq order, at most store.RevocationLimit(limit) of them.
func (s *Store) ListRevocations(ctx context.Context, afterSeq uint64, limit int) ([]store.Revocation, error) {
	var out []store.Revocation
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		out, err = list(tx.Bucket(bucketRevocations).Cursor(), nil, seqKey(afterSeq), store.RevocationLimit(limit), decodeRevocation)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list revocations after %d: %w", afterSeq, err)
	}
	return out, nil
}

// decodeRevocation decodes a revocations record; Seq comes from its key.
func decodeRevocation(k, v []byte) (store.Revocation, error) {
	if len(k) != 8 {
		return store.Revocation{}, fmt.Errorf("malformed revocation key %x", k)
	}
	var rec revocationRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return store.Revocation{}, fmt.Errorf("decode revocation %x: %w", k, err)
	}
	serial, err := parseHexSerial(rec.Serial)
	if err != nil {
		return store.Revocation{}, fmt.Errorf("decode revocation %x: %w", k, err)
	}
	e := rec.Revocation
	e.Seq, e.Serial = binary.BigEndian.Uint64(k), serial
	return e, nil
}

// KeyBlocked reports whether the key is in blocked_keys.
func (s *Store) KeyBlocked(ctx context.Context, h store.KeyHash) (bool, error) {
	var blocked bool
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		blocked = tx.Bucket(bucketBlockedKeys).Get(h[:]) != nil
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("check whether key %x is blocked: %w", h[:8], err)
	}
	return blocked, nil
}
