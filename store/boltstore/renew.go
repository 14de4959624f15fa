package boltstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"
	"time"

	"go.etcd.io/bbolt"

	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/internal/backend"
)

// maxNonceSweep is how many expired nonces one spend forgets at most. Each
// spend adds one nonce and forgets up to this many expired ones, so the
// nonces bucket holds little more than the unexpired nonces, and no
// transaction pays for a long backlog at once.
const maxNonceSweep = 16

// fleetRenewNowKey is the fleet bucket's key of the last fleet-wide
// RenewNow, a timeKey.
var fleetRenewNowKey = []byte("renew_now_at")

// Renew records a renewal of r.Parent in one transaction shared, through
// the store's group commit (batch), with concurrent Issue, Revoke, Renew and AppendAudit
// calls. In this order, and before it writes anything, it checks that the
// parent exists (store.ErrNotFound) and belongs to r.Certificate.DeviceID
// (an error wrapping no sentinel), that its device is not revoked
// (store.ErrDeviceRevoked) and was not revoked after the parent was issued
// (store.ErrCertificateRevoked), whether the call is a retry, then the parent
// (store.ErrCertificateRevoked, store.ErrNotNewest), the device's last
// renewal (store.ErrRenewedRecently), the nonce (store.ErrNonceSpent), the
// key (store.ErrKeyBlocked, store.ErrKeyInUse) and the serial
// (store.ErrConflict). The first failure is returned, wrapped, and nothing
// is written.
//
// A retry is recognised when the device has an unrevoked certificate whose
// Parent is r.Parent and whose KeyHash is r.Certificate.KeyHash, issued
// less than r.RetryWindow before r.Now (the newest such one, by IssuedAt
// then serial): Renew returns it, Replayed, and writes nothing but the
// nonce, if it is not spent already.
//
// Otherwise it stores the certificate with Parent set and its index entry,
// binds the key, sets the device's LastRenewalAt and UpdatedAt to r.Now,
// revokes the oldest live certificates of the device as r.MaxActive
// requires (reason 4, superseded, at r.Now, with their revocations
// entries, as Revoke writes them), spends the nonce (forgetting up to
// maxNonceSweep nonces expired at r.Now) and appends r.Audit with the next
// Seq.
//
// It reads every field of r. r.Parent (positive; otherwise never found)
// and r.Now are required, and of r.Certificate, Serial (positive),
// DeviceID, KeyHash, NotAfter, IssuedAt and DER; a missing one is an error
// that wraps no sentinel. It decodes the index fields of every certificate
// the device ever had.
func (s *Store) Renew(ctx context.Context, r store.Renewal) (store.RenewResult, error) {
	c := r.Certificate
	wrap := func(err error) error {
		return fmt.Errorf("renew certificate %x of device %q: %w", r.Parent, c.DeviceID, err)
	}
	if err := backend.CheckRenewal(r); err != nil {
		return store.RenewResult{}, wrap(err)
	}
	parentKey, err := serialKey(r.Parent)
	if err != nil {
		return store.RenewResult{}, wrap(store.ErrNotFound) // no such serial can be stored
	}
	certKey, err := serialKey(c.Serial)
	if err != nil {
		return store.RenewResult{}, wrap(err)
	}
	// The caller's record is not kept: the result is a copy.
	c.Serial = new(big.Int).Set(c.Serial)
	c.Parent = new(big.Int).Set(r.Parent)
	c.DER = bytes.Clone(c.DER)
	certJSON, err := encodeCertificate(c)
	if err != nil {
		return store.RenewResult{}, wrap(err)
	}
	var res store.RenewResult
	err = s.batch(ctx, func(tx *bbolt.Tx) (cond, err error) {
		res = store.RenewResult{} // a re-run starts afresh
		out, cond, err := renewTx(tx, r, c, parentKey, certKey, certJSON)
		if cond == nil && err == nil {
			res = out
		}
		return cond, err
	})
	if err != nil {
		return store.RenewResult{}, wrap(err)
	}
	if len(res.Superseded) > 0 {
		s.signal()
	}
	return res, nil
}

// lineageRecord is what renewTx decodes of each certs record of the
// device: the fields the renewal rules need, not the DER, which a full
// decode would turn from base64 for nothing.
type lineageRecord struct {
	DeviceID  string        `json:"device_id"`
	KeyHash   store.KeyHash `json:"key_hash"`
	NotAfter  time.Time     `json:"not_after"`
	IssuedAt  time.Time     `json:"issued_at"`
	RevokedAt time.Time     `json:"revoked_at"`
	Parent    string        `json:"parent"`
}

// getLineageEntry reads the certs record under key as a lineage entry and
// the device it names; found is false when there is none.
func getLineageEntry(certs *bbolt.Bucket, key []byte) (e backend.Entry, deviceID string, found bool, err error) {
	var rec lineageRecord
	found, err = getJSON(certs, key, &rec)
	switch {
	case err != nil:
		return backend.Entry{}, "", false, fmt.Errorf("certificate: %w", err)
	case !found:
		return backend.Entry{}, "", false, nil
	}
	serial, err := parseSerialKey(key)
	if err != nil {
		return backend.Entry{}, "", false, err
	}
	e = backend.Entry{
		Serial: serial, KeyHash: rec.KeyHash,
		NotAfter: rec.NotAfter, IssuedAt: rec.IssuedAt, RevokedAt: rec.RevokedAt,
	}
	if rec.Parent != "" {
		if e.Parent, err = parseHexSerial(rec.Parent); err != nil {
			return backend.Entry{}, "", false, fmt.Errorf("certificate %x parent: %w", serial, err)
		}
	}
	return e, rec.DeviceID, true, nil
}

// readLineage reads the certificates of the device, in serial order.
func readLineage(certs *bbolt.Bucket, cur *bbolt.Cursor, deviceID string) ([]backend.Entry, error) {
	var out []backend.Entry
	prefix := deviceIndexPrefix(deviceID)
	for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
		e, _, found, err := getLineageEntry(certs, k[len(prefix):])
		if err != nil {
			return nil, err
		} else if !found {
			return nil, fmt.Errorf("certificate index entry %x has no certificate", k)
		}
		out = append(out, e)
	}
	return out, nil
}

// renewTx is the body of Renew; c is r.Certificate with its Parent set,
// certKey its serialKey and certJSON its encoding, parentKey r.Parent's
// serialKey. Like issueTx, it checks every condition before its first
// write, so a refusal (cond) leaves tx untouched; err is internal and
// rolls tx back. It is idempotent: it changes nothing but tx.
func renewTx(tx *bbolt.Tx, r store.Renewal, c store.Certificate, parentKey, certKey, certJSON []byte) (_ store.RenewResult, cond, err error) {
	devices := tx.Bucket(bucketDevices)
	certs := tx.Bucket(bucketCerts)
	byDevice := tx.Bucket(bucketCertsByDevice)
	keys := tx.Bucket(bucketKeys)
	var none store.RenewResult

	// The parent and its device.
	parent, parentDevice, found, err := getLineageEntry(certs, parentKey)
	switch {
	case err != nil:
		return none, nil, err
	case !found:
		return none, store.ErrNotFound, nil
	}
	if parentDevice != c.DeviceID {
		return none, fmt.Errorf("the parent belongs to device %q", parentDevice), nil
	}
	deviceID := []byte(c.DeviceID)
	var dev store.Device
	found, err = getJSON(devices, deviceID, &dev)
	switch {
	case err != nil:
		return none, nil, fmt.Errorf("device: %w", err)
	case !found:
		return none, nil, errors.New("the parent's device is not recorded")
	case dev.Status == store.DeviceRevoked:
		return none, fmt.Errorf("revoked at %s: %w", dev.UpdatedAt.Format(time.RFC3339), store.ErrDeviceRevoked), nil
	case !dev.RevokedAt.IsZero() && !parent.IssuedAt.After(dev.RevokedAt):
		// Revoking the device revoked only its live certificates; one
		// that had expired by then is as dead, whatever a reset did since.
		return none, fmt.Errorf("issued before its device was revoked at %s: %w", dev.RevokedAt.Format(time.RFC3339), store.ErrCertificateRevoked), nil
	}
	entries, err := readLineage(certs, byDevice.Cursor(), c.DeviceID)
	if err != nil {
		return none, nil, err
	}
	lin := backend.Judge(r, entries)
	if lin.Parent == nil {
		return none, nil, fmt.Errorf("certificate index lacks the parent %x", r.Parent)
	}

	// A retry: the earlier answer, and the nonce spent.
	if lin.Retry != nil {
		key, err := serialKey(lin.Retry.Serial)
		if err != nil {
			return none, nil, err
		}
		earlier, err := decodeCertificate(key, certs.Get(key))
		if err != nil {
			return none, nil, err
		}
		if r.Nonce != nil {
			spent, err := nonceSpent(tx, r.Nonce.Hash, r.Now)
			if err != nil {
				return none, nil, err
			}
			if !spent {
				if err := spendNonce(tx, *r.Nonce, r.Now); err != nil {
					return none, nil, err
				}
			}
		}
		return store.RenewResult{Certificate: earlier, Replayed: true}, nil, nil
	}

	// The parent, the device's last renewal, the nonce.
	switch {
	case !parent.RevokedAt.IsZero():
		return none, fmt.Errorf("revoked at %s: %w", parent.RevokedAt.Format(time.RFC3339), store.ErrCertificateRevoked), nil
	case lin.Newer != nil:
		return none, fmt.Errorf("certificate %x was issued after it: %w", lin.Newer.Serial, store.ErrNotNewest), nil
	case r.MinInterval > 0 && dev.LastRenewalAt.After(r.Now.Add(-r.MinInterval)):
		return none, fmt.Errorf("last renewal at %s: %w", dev.LastRenewalAt.Format(time.RFC3339), store.ErrRenewedRecently), nil
	}
	if r.Nonce != nil {
		spent, err := nonceSpent(tx, r.Nonce.Hash, r.Now)
		if err != nil {
			return none, nil, err
		}
		if spent {
			return none, store.ErrNonceSpent, nil
		}
	}

	// The key and the serial.
	if tx.Bucket(bucketBlockedKeys).Get(c.KeyHash[:]) != nil {
		return none, fmt.Errorf("key %x: %w", c.KeyHash[:8], store.ErrKeyBlocked), nil
	}
	owner := keys.Get(c.KeyHash[:])
	bindKey := owner == nil
	if !bindKey && !bytes.Equal(owner, deviceID) {
		return none, fmt.Errorf("key %x: %w", c.KeyHash[:8], store.ErrKeyInUse), nil
	}
	if certs.Get(certKey) != nil {
		return none, fmt.Errorf("serial %x exists: %w", c.Serial, store.ErrConflict), nil
	}

	// Every condition holds: write.
	if bindKey {
		if err := keys.Put(c.KeyHash[:], deviceID); err != nil {
			return none, nil, fmt.Errorf("key: %w", err)
		}
	}
	if err := certs.Put(certKey, certJSON); err != nil {
		return none, nil, fmt.Errorf("certificate: %w", err)
	}
	if err := byDevice.Put(append(deviceIndexPrefix(c.DeviceID), certKey...), nil); err != nil {
		return none, nil, fmt.Errorf("certificate index: %w", err)
	}
	old := dev
	dev.LastRenewalAt, dev.UpdatedAt = r.Now, r.Now
	dev.NotAfter, dev.RenewBy = backend.DeviceCertificate(c)
	if err := putDevice(tx, &old, dev); err != nil {
		return none, nil, err
	}
	if err := countCertificate(tx, c, false); err != nil {
		return none, nil, err
	}
	superseded, err := supersedeTx(tx, lin.Superseded(r), r.Now)
	if err != nil {
		return none, nil, err
	}
	if r.Nonce != nil {
		if err := spendNonce(tx, *r.Nonce, r.Now); err != nil {
			return none, nil, err
		}
	}
	if _, err := appendAudit(tx, r.Audit); err != nil {
		return none, nil, err
	}
	return store.RenewResult{Certificate: c, Superseded: superseded}, nil, nil
}

// supersedeTx revokes old (certificates of the device, oldest first) as
// Revoke would, with reason superseded at now. It returns the log
// entries, in Seq order.
func supersedeTx(tx *bbolt.Tx, old []*backend.Entry, now time.Time) ([]store.Revocation, error) {
	certs := tx.Bucket(bucketCerts)
	rr := store.RevokeRequest{At: now, Reason: reasonSuperseded}
	var out []store.Revocation
	for _, e := range old {
		key, err := serialKey(e.Serial)
		if err != nil {
			return nil, err
		}
		c, err := decodeCertificate(key, certs.Get(key))
		if err != nil {
			return nil, err
		}
		entry, err := revokeCertTx(tx, key, c, rr)
		if err != nil {
			return nil, err
		}
		out = append(out, entry)
	}
	return out, nil
}

// reasonSuperseded is the RFC 5280 §5.3.1 CRLReason code of a certificate
// that a renewal replaced.
const reasonSuperseded = 4

// nonceSpent reports whether the nonce h was spent and has not expired at now.
func nonceSpent(tx *bbolt.Tx, h [32]byte, now time.Time) (bool, error) {
	v := tx.Bucket(bucketNonces).Get(h[:])
	if v == nil {
		return false, nil
	}
	expires, err := parseTimeKey(v)
	if err != nil {
		return false, fmt.Errorf("nonce: %w", err)
	}
	return expires.After(now), nil
}

// spendNonce forgets up to maxNonceSweep nonces expired at now, oldest
// first, then records n as spent until n.Expires (replacing an expired
// record of the same nonce).
func spendNonce(tx *bbolt.Tx, n store.Nonce, now time.Time) error {
	nonces, byExpiry := tx.Bucket(bucketNonces), tx.Bucket(bucketNonceExpiry)

	// Collect, then delete: a cursor's Next after Delete can skip a key.
	var expired [][]byte
	limit := timeKey(now)
	cur := byExpiry.Cursor()
	for k, _ := cur.First(); k != nil && len(expired) < maxNonceSweep; k, _ = cur.Next() {
		if len(k) != timeKeyLen+len(n.Hash) {
			return fmt.Errorf("malformed nonce expiry key %x", k)
		}
		if bytes.Compare(k[:timeKeyLen], limit) > 0 {
			break
		}
		expired = append(expired, bytes.Clone(k))
	}
	for _, k := range expired {
		if err := byExpiry.Delete(k); err != nil {
			return fmt.Errorf("nonce expiry: %w", err)
		}
		h := k[timeKeyLen:]
		if bytes.Equal(nonces.Get(h), k[:timeKeyLen]) {
			if err := nonces.Delete(h); err != nil {
				return fmt.Errorf("nonce: %w", err)
			}
		}
	}

	if old := nonces.Get(n.Hash[:]); old != nil {
		if err := byExpiry.Delete(append(bytes.Clone(old), n.Hash[:]...)); err != nil {
			return fmt.Errorf("nonce expiry: %w", err)
		}
	}
	exp := timeKey(n.Expires)
	if err := nonces.Put(n.Hash[:], exp); err != nil {
		return fmt.Errorf("nonce: %w", err)
	}
	if err := byExpiry.Put(append(bytes.Clone(exp), n.Hash[:]...), []byte{}); err != nil {
		return fmt.Errorf("nonce expiry: %w", err)
	}
	return nil
}

// RenewNow records that an admin asked the device with the ID, or with id
// "" the whole fleet, to renew now: it sets the device's RenewNowAt (and
// nothing else of it), or the fleet's renew-now time, to at, and appends
// audit, in one transaction. For an unknown device it returns an error
// wrapping store.ErrNotFound and writes nothing. A zero at is an error
// wrapping no sentinel (zero means "never").
func (s *Store) RenewNow(ctx context.Context, id string, at time.Time, audit store.AuditEvent) error {
	what := fmt.Sprintf("device %q", id)
	if id == "" {
		what = "the fleet"
	}
	if at.IsZero() {
		return fmt.Errorf("renew now %s: time is required", what)
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		if id == "" {
			if err := tx.Bucket(bucketFleet).Put(fleetRenewNowKey, timeKey(at)); err != nil {
				return err
			}
		} else {
			devices := tx.Bucket(bucketDevices)
			var d store.Device
			found, err := getJSON(devices, []byte(id), &d)
			switch {
			case err != nil:
				return err
			case !found:
				return store.ErrNotFound
			}
			d.RenewNowAt = at
			if err := putJSON(devices, []byte(id), d); err != nil {
				return err
			}
		}
		_, err := appendAudit(tx, audit)
		return err
	})
	if err != nil {
		return fmt.Errorf("renew now %s: %w", what, err)
	}
	return nil
}

// FleetRenewNow returns the time of the last RenewNow for the whole fleet
// (in UTC), zero if there was none.
func (s *Store) FleetRenewNow(ctx context.Context) (time.Time, error) {
	var at time.Time
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketFleet).Get(fleetRenewNowKey)
		if v == nil {
			return nil
		}
		var err error
		at, err = parseTimeKey(v)
		return err
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("get fleet renew-now time: %w", err)
	}
	return at, nil
}
