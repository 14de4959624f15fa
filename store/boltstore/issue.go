package boltstore

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/internal/backend"
)

// Issue records an issued certificate in one transaction shared, through
// the store's group commit (batch), with concurrent Issue, Revoke, Renew and AppendAudit
// calls: they commit with one fsync. It checks, in this order and before
// it writes anything, the token (exists, not revoked, unexpired at is.Now,
// a use left), the manufacturer certificate (unused), the device (new if is.RequireNewDevice, not revoked, fewer than
// is.MaxActive live certificates), the key (not blocked, not bound to
// another device) and the serial (unused: store.ErrConflict). The first
// failure is returned, wrapped, and nothing is written. Otherwise it spends
// a use of the token, creates the device (DeviceActive, CreatedAt =
// UpdatedAt = is.Now) or sets its UpdatedAt to is.Now, binds the key,
// stores the certificate and its index entry, and appends is.Audit with
// the next Seq.
//
// It reads every field of is. Of is.Certificate, Serial (positive),
// DeviceID (not empty, no NUL byte), KeyHash (not zero), NotAfter (not
// zero) and DER (not empty) are required; a missing one is an error that
// wraps no sentinel. The certificate is stored as given, RevokedAt and Parent too.
func (s *Store) Issue(ctx context.Context, is store.Issuance) error {
	c := is.Certificate
	wrap := func(err error) error {
		return fmt.Errorf("issue certificate %x for device %q: %w", c.Serial, c.DeviceID, err)
	}
	if err := backend.CheckIssuance(is); err != nil {
		return wrap(err)
	}
	certKey, err := serialKey(c.Serial)
	if err != nil {
		return wrap(err)
	}
	// Encoded once, outside the write lock; the batched function only
	// reads it.
	certJSON, err := encodeCertificate(c)
	if err != nil {
		return wrap(err)
	}
	err = s.batch(ctx, func(tx *bbolt.Tx) (cond, err error) {
		return issueTx(tx, is, certKey, certJSON)
	})
	if err != nil {
		return wrap(err)
	}
	return nil
}

// spendableToken reads the token with hash h and checks that it has a use
// to spend at now: it exists (ErrTokenNotFound), is not revoked, not
// expired and not used up. It writes nothing.
func spendableToken(tokens *bbolt.Bucket, h store.TokenHash, now time.Time) (tok store.Token, cond, err error) {
	found, err := getJSON(tokens, h[:], &tok)
	switch {
	case err != nil:
		return tok, nil, fmt.Errorf("token: %w", err)
	case !found:
		return tok, store.ErrTokenNotFound, nil
	case !tok.RevokedAt.IsZero():
		return tok, fmt.Errorf("token %s: %w", tok.ID, store.ErrTokenRevoked), nil
	case !tok.ExpiresAt.After(now):
		return tok, fmt.Errorf("token %s expired at %s: %w", tok.ID, tok.ExpiresAt.Format(time.RFC3339), store.ErrTokenExpired), nil
	case tok.Spent >= tok.Uses:
		return tok, fmt.Errorf("token %s spent %d of %d uses: %w", tok.ID, tok.Spent, tok.Uses, store.ErrTokenUsedUp), nil
	}
	return tok, nil, nil
}

// issueTx is the body of Issue. It checks every condition before its first
// write, so a refusal (cond) leaves tx untouched; err is internal and rolls
// tx back. It is idempotent: it reads is, certKey and certJSON and changes
// nothing but tx.
func issueTx(tx *bbolt.Tx, is store.Issuance, certKey, certJSON []byte) (cond, err error) {
	c := is.Certificate
	tokens := tx.Bucket(bucketTokens)
	devices := tx.Bucket(bucketDevices)
	certs := tx.Bucket(bucketCerts)
	byDevice := tx.Bucket(bucketCertsByDevice)
	keys := tx.Bucket(bucketKeys)

	// The token.
	var tok store.Token
	spendToken := is.Token != store.TokenHash{}
	if spendToken {
		if tok, cond, err = spendableToken(tokens, is.Token, is.Now); cond != nil || err != nil {
			return cond, err
		}
	}

	// The manufacturer certificate.
	mfr := is.Manufacturer
	mfrCerts := tx.Bucket(bucketMfrCerts)
	if mfr != nil && mfrCerts.Get(mfr.Fingerprint[:]) != nil {
		return fmt.Errorf("manufacturer certificate %s of %s: %w", mfr.Serial, mfr.Manufacturer, store.ErrManufacturerCertUsed), nil
	}

	// The device.
	var dev store.Device
	deviceID := []byte(c.DeviceID)
	exists, err := getJSON(devices, deviceID, &dev)
	switch {
	case err != nil:
		return nil, fmt.Errorf("device: %w", err)
	case exists && is.RequireNewDevice:
		return store.ErrDeviceExists, nil
	case exists && mfr != nil && (dev.Manufacturer == nil || dev.Manufacturer.Fingerprint != mfr.Fingerprint):
		return fmt.Errorf("not enrolled with this manufacturer certificate: %w", store.ErrDeviceExists), nil
	case exists && dev.Status == store.DeviceRevoked:
		return store.ErrDeviceRevoked, nil
	}
	if is.MaxActive > 0 && exists {
		live, err := countLive(certs, byDevice.Cursor(), deviceIndexPrefix(c.DeviceID), is.Now, is.MaxActive)
		if err != nil {
			return nil, err
		}
		if live >= is.MaxActive {
			return fmt.Errorf("%d live, at most %d: %w", live, is.MaxActive, store.ErrTooManyCertificates), nil
		}
	}

	// The key and the serial.
	if tx.Bucket(bucketBlockedKeys).Get(c.KeyHash[:]) != nil {
		return fmt.Errorf("key %x: %w", c.KeyHash[:8], store.ErrKeyBlocked), nil
	}
	owner := keys.Get(c.KeyHash[:])
	bindKey := owner == nil
	if !bindKey && !bytes.Equal(owner, deviceID) {
		return fmt.Errorf("key %x: %w", c.KeyHash[:8], store.ErrKeyInUse), nil
	}
	if certs.Get(certKey) != nil {
		return fmt.Errorf("serial exists: %w", store.ErrConflict), nil
	}

	// Every condition holds: write.
	if spendToken {
		tok.Spent++
		if err := putJSON(tokens, is.Token[:], tok); err != nil {
			return nil, fmt.Errorf("token: %w", err)
		}
	}
	var old *store.Device
	if exists {
		prev := dev
		old = &prev
		dev.UpdatedAt = is.Now
	} else {
		dev = store.Device{ID: c.DeviceID, Status: store.DeviceActive, CreatedAt: is.Now, UpdatedAt: is.Now}
	}
	if mfr != nil {
		m := *mfr
		dev.Manufacturer = &m
		if err := mfrCerts.Put(mfr.Fingerprint[:], deviceID); err != nil {
			return nil, fmt.Errorf("manufacturer certificate: %w", err)
		}
	}
	dev.NotAfter, dev.RenewBy = backend.DeviceCertificate(c)
	if err := putDevice(tx, old, dev); err != nil {
		return nil, err
	}
	if err := countCertificate(tx, c, true); err != nil {
		return nil, err
	}
	if bindKey {
		if err := keys.Put(c.KeyHash[:], deviceID); err != nil {
			return nil, fmt.Errorf("key: %w", err)
		}
	}
	if err := certs.Put(certKey, certJSON); err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	if err := byDevice.Put(append(deviceIndexPrefix(c.DeviceID), certKey...), nil); err != nil {
		return nil, fmt.Errorf("certificate index: %w", err)
	}
	if _, err := appendAudit(tx, is.Audit); err != nil {
		return nil, err
	}
	return nil, nil
}

// countLive counts the live certificates at now among the index entries
// under prefix, stopping at limit.
func countLive(certs *bbolt.Bucket, c *bbolt.Cursor, prefix []byte, now time.Time, limit int) (int, error) {
	// Only the fields Live reads are decoded.
	var life struct {
		NotAfter  time.Time `json:"not_after"`
		RevokedAt time.Time `json:"revoked_at"`
	}
	n := 0
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && n < limit; k, _ = c.Next() {
		life.NotAfter, life.RevokedAt = time.Time{}, time.Time{}
		found, err := getJSON(certs, k[len(prefix):], &life)
		if err != nil {
			return 0, fmt.Errorf("certificate: %w", err)
		}
		if !found {
			return 0, fmt.Errorf("certificate index entry %x has no certificate", k)
		}
		if (store.Certificate{NotAfter: life.NotAfter, RevokedAt: life.RevokedAt}).Live(now) {
			n++
		}
	}
	return n, nil
}
