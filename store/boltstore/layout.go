package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"time"

	"go.etcd.io/bbolt"

	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/internal/backend"
)

// Bucket names. The layout is described in doc.go; changing a name or a
// key encoding changes the file format.
var (
	bucketDevices          = []byte("devices")           // device ID -> Device record
	bucketCerts            = []byte("certs")             // serialKey -> Certificate record (Serial omitted)
	bucketCertsByDevice    = []byte("certs_by_device")   // device ID, 0x00, serialKey -> empty
	bucketKeys             = []byte("keys")              // KeyHash -> device ID
	bucketTokens           = []byte("tokens")            // TokenHash -> Token record
	bucketTokenIDs         = []byte("token_ids")         // token ID -> TokenHash
	bucketAudit            = []byte("audit")             // seqKey -> AuditEvent record
	bucketCounters         = []byte("counters")          // name -> uint64 big-endian
	bucketMeta             = []byte("meta")              // key -> value
	bucketRevocations      = []byte("revocations")       // seqKey -> revocationRecord JSON
	bucketBlockedKeys      = []byte("blocked_keys")      // KeyHash -> empty
	bucketNonces           = []byte("nonces")            // nonce hash -> timeKey of its expiry
	bucketNonceExpiry      = []byte("nonce_expiry")      // timeKey of expiry, nonce hash -> empty
	bucketFleet            = []byte("fleet")             // setting name -> value
	bucketManufacturers    = []byte("manufacturers")     // name -> Manufacturer JSON
	bucketMfrCerts         = []byte("mfr_certs")         // manufacturer certificate SHA-256 -> device ID
	bucketCRL              = []byte("crl")               // "lease", "latest", "number" (replica.go)
	bucketAdmins           = []byte("admins")            // admin name -> Admin JSON
	bucketAdminHashes      = []byte("admin_hashes")      // admin TokenHash -> admin name
	bucketAuditHashes      = []byte("audit_hashes")      // stored-hash index as seqKey -> tlog.Hash
	bucketAuditCheckpoints = []byte("audit_checkpoints") // Size as seqKey -> Checkpoint JSON
)

var allBuckets = [][]byte{
	bucketDevices, bucketCerts, bucketCertsByDevice, bucketKeys,
	bucketTokens, bucketTokenIDs, bucketAudit, bucketCounters, bucketMeta,
	bucketRevocations, bucketBlockedKeys, bucketNonces, bucketNonceExpiry, bucketFleet,
	bucketManufacturers, bucketMfrCerts, bucketCRL, bucketAdmins, bucketAdminHashes,
	bucketAuditHashes, bucketAuditCheckpoints,
}

// maxSerialBytes is the longest serial serialKey can encode. RFC 5280
// §4.1.2.2 allows 20 octets; the store does not enforce X.509 rules.
const maxSerialBytes = 255

// serialKey encodes a positive serial as its length in one byte followed by
// its big-endian bytes (no leading zeros). Byte order of these keys is the
// numeric order of the serials, which plain big-endian bytes of varying
// length would not give (0x02 sorts after 0x01 0x00).
func serialKey(n *big.Int) ([]byte, error) {
	if n == nil || n.Sign() <= 0 {
		return nil, fmt.Errorf("serial %v is not positive", n)
	}
	b := n.Bytes()
	if len(b) > maxSerialBytes {
		return nil, fmt.Errorf("serial is %d bytes long, more than %d", len(b), maxSerialBytes)
	}
	return append([]byte{byte(len(b))}, b...), nil
}

// parseSerialKey is the inverse of serialKey.
func parseSerialKey(k []byte) (*big.Int, error) {
	if len(k) < 2 || int(k[0]) != len(k)-1 || k[1] == 0 {
		return nil, fmt.Errorf("malformed serial key %x", k)
	}
	return new(big.Int).SetBytes(k[1:]), nil
}

// afterSerialKey returns the serialKey of the lowercase hex serial after,
// for a Page cursor; nil (start at the beginning) for "" and for 0.
func afterSerialKey(after string) ([]byte, error) {
	n, err := backend.ParseSerialCursor(after)
	if err != nil {
		return nil, err
	}
	if n.Sign() == 0 {
		return nil, nil
	}
	return serialKey(n)
}

// deviceIndexPrefix is the certs_by_device prefix of a device's entries.
// Device IDs cannot contain 0x00 (backend.CheckIssuance refuses it), so the prefix
// of one device never matches the entries of another.
func deviceIndexPrefix(deviceID string) []byte {
	p := make([]byte, 0, len(deviceID)+1)
	p = append(p, deviceID...)
	return append(p, 0)
}

// seqKey encodes an audit or revocation sequence number, big-endian so that
// byte order is numeric order.
func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, seq)
}

// timeKey encodes t as 12 bytes whose byte order is the order of the
// times: the Unix seconds, big-endian with the sign bit flipped (so that
// times before 1970 sort first), then the nanoseconds, big-endian. The
// location is not kept.
func timeKey(t time.Time) []byte {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, timeKeyLen), uint64(t.Unix())^(1<<63))
	return binary.BigEndian.AppendUint32(k, uint32(t.Nanosecond()))
}

// timeKeyLen is the length of a timeKey.
const timeKeyLen = 12

// parseTimeKey is the inverse of timeKey; the time is in UTC.
func parseTimeKey(k []byte) (time.Time, error) {
	if len(k) != timeKeyLen {
		return time.Time{}, fmt.Errorf("malformed time key %x", k)
	}
	sec := int64(binary.BigEndian.Uint64(k) ^ (1 << 63))
	nsec := binary.BigEndian.Uint32(k[8:])
	if nsec >= 1e9 {
		return time.Time{}, fmt.Errorf("malformed time key %x", k)
	}
	return time.Unix(sec, int64(nsec)).UTC(), nil
}

// errSkip, returned by a list decoder, leaves the record out of the page.
var errSkip = errors.New("skip")

// list returns the values of the keys of c that start with prefix and sort
// after prefix+after (exclusive; nil after starts at the first), at most
// limit of them, decoded by decode. The []byte decode gets are valid only
// during the transaction; decode must copy what it keeps.
func list[T any](c *bbolt.Cursor, prefix, after []byte, limit int, decode func(k, v []byte) (T, error)) ([]T, error) {
	out := make([]T, 0, min(limit, 16))
	seek := append(bytes.Clone(prefix), after...)
	k, v := c.Seek(seek)
	if after != nil && bytes.Equal(k, seek) {
		k, v = c.Next()
	}
	for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, v = c.Next() {
		rec, err := decode(k, v)
		if errors.Is(err, errSkip) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// listSeq returns, in Seq order, the records of bucket, keyed by seqKey,
// after after, at most limit of them (bounded like
// store.Page.PageLimit), decoded by decode.
func listSeq[T any](ctx context.Context, s *Store, bucket []byte, after uint64, limit int, decode func(k, v []byte) (T, error)) ([]T, error) {
	var out []T
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		out, err = list(tx.Bucket(bucket).Cursor(), nil, seqKey(after), store.Page{Limit: limit}.PageLimit(), decode)
		return err
	})
	return out, err
}
