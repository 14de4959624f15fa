package boltstore

import (
	"context"
	"fmt"
	"math/big"

	"go.etcd.io/bbolt"

	"github.com/fleetca/fleetca/store"
)

// GetDevice returns the device with the ID, or an error wrapping
// store.ErrNotFound.
func (s *Store) GetDevice(ctx context.Context, id string) (store.Device, error) {
	var d store.Device
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		found, err := getRecord(tx.Bucket(bucketDevices), []byte(id), &d)
		if err == nil && !found {
			err = store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return store.Device{}, fmt.Errorf("get device %q: %w", id, err)
	}
	return d, nil
}

// ListDevices returns devices ordered by ID (byte order), after p.After.
func (s *Store) ListDevices(ctx context.Context, p store.Page) ([]store.Device, error) {
	var out []store.Device
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		out, err = list(tx.Bucket(bucketDevices).Cursor(), nil, afterKey(p.After), p.PageLimit(),
			func(k, v []byte) (store.Device, error) {
				var d store.Device
				if err := decodeRecord(v, &d); err != nil {
					return d, fmt.Errorf("decode device %q: %w", k, err)
				}
				return d, nil
			})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list devices after %q: %w", p.After, err)
	}
	return out, nil
}

// GetCertificate returns the certificate with the serial, or an error
// wrapping store.ErrNotFound (a nil or non-positive serial is never found).
func (s *Store) GetCertificate(ctx context.Context, serial *big.Int) (store.Certificate, error) {
	var c store.Certificate
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		key, err := serialKey(serial)
		if err != nil {
			return store.ErrNotFound
		}
		v := tx.Bucket(bucketCerts).Get(key)
		if v == nil {
			return store.ErrNotFound
		}
		c, err = decodeCertificate(key, v)
		return err
	})
	if err != nil {
		return store.Certificate{}, fmt.Errorf("get certificate %x: %w", serial, err)
	}
	return c, nil
}

// ListCertificates returns the certificates of deviceID ("" for every
// device) in serial order, after the hex serial p.After. With a device it
// walks that device's entries of the certs_by_device index; a device with
// no certificates, or none known, gives an empty list. A p.After that is
// not hex is an error wrapping no sentinel.
func (s *Store) ListCertificates(ctx context.Context, deviceID string, p store.Page) ([]store.Certificate, error) {
	wrap := func(err error) error {
		if deviceID == "" {
			return fmt.Errorf("list certificates after %q: %w", p.After, err)
		}
		return fmt.Errorf("list certificates of device %q after %q: %w", deviceID, p.After, err)
	}
	after, err := afterSerialKey(p.After)
	if err != nil {
		return nil, wrap(err)
	}
	var out []store.Certificate
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		certs := tx.Bucket(bucketCerts)
		var err error
		if deviceID == "" {
			out, err = list(certs.Cursor(), nil, after, p.PageLimit(), decodeCertificate)
			return err
		}
		prefix := deviceIndexPrefix(deviceID)
		out, err = list(tx.Bucket(bucketCertsByDevice).Cursor(), prefix, after, p.PageLimit(),
			func(k, _ []byte) (store.Certificate, error) {
				key := k[len(prefix):]
				v := certs.Get(key)
				if v == nil {
					return store.Certificate{}, fmt.Errorf("certificate index entry %x has no certificate", k)
				}
				return decodeCertificate(key, v)
			})
		return err
	})
	if err != nil {
		return nil, wrap(err)
	}
	return out, nil
}

// parseHexSerial parses a positive serial in lowercase hex, as records
// store them.
func parseHexSerial(s string) (*big.Int, error) {
	n, ok := new(big.Int).SetString(s, 16)
	if !ok || n.Sign() <= 0 {
		return nil, fmt.Errorf("malformed serial %q", s)
	}
	return n, nil
}

// KeyOwner returns the ID of the device the key is bound to, or an error
// wrapping store.ErrNotFound.
func (s *Store) KeyOwner(ctx context.Context, h store.KeyHash) (string, error) {
	var owner string
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketKeys).Get(h[:])
		if v == nil {
			return store.ErrNotFound
		}
		owner = string(v) // copies
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("get owner of key %x: %w", h[:8], err)
	}
	return owner, nil
}

// afterKey turns a string Page cursor into a seek key; nil for "".
func afterKey(after string) []byte {
	if after == "" {
		return nil
	}
	return []byte(after)
}
