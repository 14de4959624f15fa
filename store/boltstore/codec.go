package boltstore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"

	"go.etcd.io/bbolt"

	"github.com/fleetca/fleetca/store"
)

// The records an enrollment writes and reads (certs, devices, tokens,
// audit) are stored in a binary encoding: JSON spent a tenth of an
// enrollment's store CPU and, with the DER in base64, a third more bytes
// per certificate. A binary record starts with recordV1, a byte no JSON
// record starts with ('{'), so a file written before keeps its JSON
// records and every reader takes both (decodeRecord, decodeCertificate).
// The other buckets' records (admins, manufacturers, revocations, CRLs,
// checkpoints) stay JSON: they are off the hot path.
//
// A v1 record is recordV1 and then its fields in a fixed order, each as
// one of:
//
//	string, bytes  uvarint length, then the bytes
//	int            varint (zigzag)
//	[32]byte       32 bytes
//	time           one byte: 0 zero (nothing follows); 1 UTC or 2 with a
//	               zone offset (varint seconds east of UTC follows); then
//	               varint Unix seconds and uvarint nanoseconds
//
// A time decodes as its JSON did: in UTC for offset 0, in time.Local when
// Local has that offset at that instant, and otherwise in a fixed zone of
// the offset; the zone's name is not kept.
const recordV1 = 0x01

// isBinary reports whether v is a binary record (not JSON).
func isBinary(v []byte) bool { return len(v) > 0 && v[0] == recordV1 }

// enc appends a record's fields.
type enc struct{ b []byte }

func (e *enc) bytes(p []byte) {
	e.b = binary.AppendUvarint(e.b, uint64(len(p)))
	e.b = append(e.b, p...)
}
func (e *enc) string(s string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}
func (e *enc) int(n int64)      { e.b = binary.AppendVarint(e.b, n) }
func (e *enc) hash(h [32]byte)  { e.b = append(e.b, h[:]...) }
func (e *enc) uint(n uint64)    { e.b = binary.AppendUvarint(e.b, n) }
func (e *enc) time(t time.Time) { e.b = appendTime(e.b, t) }

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	if _, off := t.Zone(); off == 0 {
		b = append(b, 1)
	} else {
		b = append(b, 2)
		b = binary.AppendVarint(b, int64(off))
	}
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// dec reads a record's fields; the first malformed field sets err, and
// the reads after it return zero values.
type dec struct {
	b   []byte
	err error
}

var errShort = errors.New("record ends early")

func (d *dec) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *dec) uint() uint64 {
	n, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[k:]
	return n
}

func (d *dec) int() int64 {
	n, k := binary.Varint(d.b)
	if k <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[k:]
	return n
}

// view returns the next bytes field without copying it.
func (d *dec) view() []byte {
	n := d.uint()
	if n > uint64(len(d.b)) {
		d.fail(errShort)
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *dec) string() string { return string(d.view()) }

func (d *dec) hash() (h [32]byte) {
	if len(d.b) < len(h) {
		d.fail(errShort)
		return h
	}
	copy(h[:], d.b)
	d.b = d.b[len(h):]
	return h
}

func (d *dec) time() time.Time {
	if len(d.b) == 0 {
		d.fail(errShort)
		return time.Time{}
	}
	tag := d.b[0]
	d.b = d.b[1:]
	var off int64
	switch tag {
	case 0:
		return time.Time{}
	case 1:
	case 2:
		off = d.int()
	default:
		d.fail(fmt.Errorf("malformed time tag %d", tag))
		return time.Time{}
	}
	sec, nsec := d.int(), d.uint()
	if d.err != nil {
		return time.Time{}
	}
	if nsec >= 1e9 || off != int64(int32(off)) {
		d.fail(errors.New("malformed time"))
		return time.Time{}
	}
	t := time.Unix(sec, int64(nsec))
	if off == 0 {
		return t.UTC()
	}
	if _, local := t.Zone(); int64(local) == off {
		return t
	}
	return t.In(time.FixedZone("", int(off)))
}

// end returns the decoding error, or one for bytes left over.
func (d *dec) end() error {
	if d.err == nil && len(d.b) > 0 {
		return fmt.Errorf("%d bytes after the record", len(d.b))
	}
	return d.err
}

// newDec starts decoding the binary record v.
func newDec(v []byte) *dec { return &dec{b: v[1:]} }

// encodeCertificate encodes c as a certs record (Serial omitted: it is the
// key). Every write of a certs record goes through it, so that none loses
// the Parent.
func encodeCertificate(c store.Certificate) ([]byte, error) {
	if c.Parent != nil && c.Parent.Sign() <= 0 {
		return nil, fmt.Errorf("encode certificate %x: parent serial %v is not positive", c.Serial, c.Parent)
	}
	if c.Partition != nil && *c.Partition < 0 {
		return nil, fmt.Errorf("encode certificate %x: partition %d is negative", c.Serial, *c.Partition)
	}
	e := enc{b: make([]byte, 0, 128+len(c.DeviceID)+len(c.DER))}
	e.b = append(e.b, recordV1)
	e.string(c.DeviceID)
	e.hash(c.KeyHash)
	e.time(c.NotBefore)
	e.time(c.NotAfter)
	e.time(c.IssuedAt)
	e.bytes(c.DER)
	e.time(c.RevokedAt)
	e.int(int64(c.Reason))
	var parent []byte
	if c.Parent != nil {
		parent = c.Parent.Bytes()
	}
	e.bytes(parent)
	var partition uint64 // 0 for none, else Partition+1
	if c.Partition != nil {
		partition = uint64(*c.Partition) + 1
	}
	e.uint(partition)
	return e.b, nil
}

// decodeCertificate decodes a certs record, binary or JSON; the serial
// comes from its key.
func decodeCertificate(k, v []byte) (store.Certificate, error) {
	serial, err := parseSerialKey(k)
	if err != nil {
		return store.Certificate{}, err
	}
	var c store.Certificate
	if isBinary(v) {
		c, err = decodeCertificateV1(v, true)
	} else {
		c, err = decodeCertificateJSON(v)
	}
	if err != nil {
		return store.Certificate{}, fmt.Errorf("decode certificate %x: %w", serial, err)
	}
	c.Serial = serial
	return c, nil
}

// decodeCertificateV1 decodes a binary certs record (without Serial);
// without withDER it leaves DER nil and copies nothing of it.
func decodeCertificateV1(v []byte, withDER bool) (store.Certificate, error) {
	var c store.Certificate
	d := newDec(v)
	c.DeviceID = d.string()
	c.KeyHash = d.hash()
	c.NotBefore = d.time()
	c.NotAfter = d.time()
	c.IssuedAt = d.time()
	if der := d.view(); withDER {
		c.DER = append([]byte{}, der...)
	}
	c.RevokedAt = d.time()
	c.Reason = int(d.int())
	if parent := d.view(); len(parent) > 0 {
		if parent[0] == 0 {
			d.fail(errors.New("malformed parent serial"))
		}
		c.Parent = new(big.Int).SetBytes(parent)
	}
	if p := d.uint(); p > 0 {
		if p > store.MaxCRLPartitions {
			d.fail(fmt.Errorf("partition %d out of range", p-1))
		}
		n := int(p - 1)
		c.Partition = &n
	}
	if err := d.end(); err != nil {
		return store.Certificate{}, err
	}
	return c, nil
}

// certRecord is a JSON certs record, as files written before the binary
// encoding hold: the certificate with its Parent as lowercase hex ("" for
// none), which a JSON number could not hold exactly. The embedded Parent
// is not encoded (json:"-"), nor is Serial, which is the record's key.
type certRecord struct {
	store.Certificate
	Parent string `json:"parent,omitempty"`
}

// decodeCertificateJSON decodes a JSON certs record (without Serial).
func decodeCertificateJSON(v []byte) (store.Certificate, error) {
	var rec certRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return store.Certificate{}, err
	}
	c := rec.Certificate
	if rec.Parent != "" {
		var err error
		if c.Parent, err = parseHexSerial(rec.Parent); err != nil {
			return store.Certificate{}, fmt.Errorf("parent: %w", err)
		}
	}
	return c, nil
}

// certLight decodes what the lineage, count and rebuild rules read of a
// certs record (every field but DER and Serial), binary or JSON; the JSON
// path decodes those fields only, not the base64 DER.
func certLight(v []byte) (store.Certificate, error) {
	if isBinary(v) {
		return decodeCertificateV1(v, false)
	}
	var rec struct {
		DeviceID  string        `json:"device_id"`
		KeyHash   store.KeyHash `json:"key_hash"`
		NotBefore time.Time     `json:"not_before"`
		NotAfter  time.Time     `json:"not_after"`
		IssuedAt  time.Time     `json:"issued_at"`
		RevokedAt time.Time     `json:"revoked_at"`
		Reason    int           `json:"reason"`
		Parent    string        `json:"parent"`
		Partition *int          `json:"partition"`
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return store.Certificate{}, err
	}
	c := store.Certificate{
		DeviceID: rec.DeviceID, KeyHash: rec.KeyHash, NotBefore: rec.NotBefore, NotAfter: rec.NotAfter,
		IssuedAt: rec.IssuedAt, RevokedAt: rec.RevokedAt, Reason: rec.Reason, Partition: rec.Partition,
	}
	if rec.Parent != "" {
		var err error
		if c.Parent, err = parseHexSerial(rec.Parent); err != nil {
			return store.Certificate{}, fmt.Errorf("parent: %w", err)
		}
	}
	return c, nil
}

func encodeDevice(dv *store.Device) ([]byte, error) {
	e := enc{b: make([]byte, 0, 96+2*len(dv.ID))}
	e.b = append(e.b, recordV1)
	e.string(dv.ID)
	e.string(string(dv.Status))
	e.time(dv.CreatedAt)
	e.time(dv.UpdatedAt)
	e.time(dv.LastRenewalAt)
	e.time(dv.RenewNowAt)
	e.time(dv.RevokedAt)
	// Rare (a manufacturer enrollment), so JSON inside: empty for nil.
	var mfr []byte
	if dv.Manufacturer != nil {
		var err error
		if mfr, err = json.Marshal(dv.Manufacturer); err != nil {
			return nil, err
		}
	}
	e.bytes(mfr)
	e.time(dv.NotAfter)
	e.time(dv.RenewBy)
	return e.b, nil
}

func decodeDevice(v []byte, dv *store.Device) error {
	d := newDec(v)
	*dv = store.Device{
		ID:            d.string(),
		Status:        store.DeviceStatus(d.string()),
		CreatedAt:     d.time(),
		UpdatedAt:     d.time(),
		LastRenewalAt: d.time(),
		RenewNowAt:    d.time(),
		RevokedAt:     d.time(),
	}
	if mfr := d.view(); len(mfr) > 0 {
		dv.Manufacturer = new(store.ManufacturerCert)
		if err := json.Unmarshal(mfr, dv.Manufacturer); err != nil {
			d.fail(fmt.Errorf("manufacturer: %w", err))
		}
	}
	dv.NotAfter = d.time()
	dv.RenewBy = d.time()
	return d.end()
}

func encodeToken(t *store.Token) []byte {
	e := enc{b: make([]byte, 0, 128+len(t.ID)+len(t.DeviceID)+len(t.DevicePattern))}
	e.b = append(e.b, recordV1)
	e.string(t.ID)
	e.hash(t.Hash)
	e.string(t.DeviceID)
	e.string(t.DevicePattern)
	e.int(int64(t.Uses))
	e.int(int64(t.Spent))
	e.time(t.CreatedAt)
	e.time(t.ExpiresAt)
	e.time(t.RevokedAt)
	return e.b
}

func decodeToken(v []byte, t *store.Token) error {
	d := newDec(v)
	*t = store.Token{
		ID:            d.string(),
		Hash:          d.hash(),
		DeviceID:      d.string(),
		DevicePattern: d.string(),
		Uses:          int(d.int()),
		Spent:         int(d.int()),
		CreatedAt:     d.time(),
		ExpiresAt:     d.time(),
		RevokedAt:     d.time(),
	}
	return d.end()
}

func encodeAuditEvent(ev *store.AuditEvent) []byte {
	e := enc{b: make([]byte, 0, 96+len(ev.Action)+len(ev.Actor)+len(ev.DeviceID)+len(ev.Serial)+len(ev.TokenID)+len(ev.Detail))}
	e.b = append(e.b, recordV1)
	e.uint(ev.Seq)
	e.time(ev.Time)
	e.string(ev.Action)
	e.string(ev.Actor)
	e.string(ev.DeviceID)
	e.string(ev.Serial)
	e.string(ev.TokenID)
	e.string(ev.Detail)
	e.hash(ev.Root)
	return e.b
}

func decodeAuditEvent1(v []byte, ev *store.AuditEvent) error {
	d := newDec(v)
	*ev = store.AuditEvent{
		Seq:      d.uint(),
		Time:     d.time(),
		Action:   d.string(),
		Actor:    d.string(),
		DeviceID: d.string(),
		Serial:   d.string(),
		TokenID:  d.string(),
		Detail:   d.string(),
		Root:     d.hash(),
	}
	return d.end()
}

// encodeRecord encodes v for its bucket: a store.Device, store.Token or
// store.AuditEvent (or a pointer to one) in the binary encoding, anything
// else as JSON.
func encodeRecord(v any) ([]byte, error) {
	switch r := v.(type) {
	case store.Device:
		return encodeDevice(&r)
	case *store.Device:
		return encodeDevice(r)
	case store.Token:
		return encodeToken(&r), nil
	case *store.Token:
		return encodeToken(r), nil
	case store.AuditEvent:
		return encodeAuditEvent(&r), nil
	case *store.AuditEvent:
		return encodeAuditEvent(r), nil
	}
	return json.Marshal(v)
}

// decodeRecord decodes v, binary or JSON, into dst. A binary record
// decodes only into the type encodeRecord encodes so; JSON into anything
// json.Unmarshal takes. dst does not share v's bytes.
func decodeRecord(v []byte, dst any) error {
	if !isBinary(v) {
		return json.Unmarshal(v, dst)
	}
	switch r := dst.(type) {
	case *store.Device:
		return decodeDevice(v, r)
	case *store.Token:
		return decodeToken(v, r)
	case *store.AuditEvent:
		return decodeAuditEvent1(v, r)
	}
	return fmt.Errorf("binary record for a %T", dst)
}

// getRecord decodes the record under key in b into dst (decodeRecord);
// found is false when the key is absent. dst outlives the transaction.
func getRecord(b *bbolt.Bucket, key []byte, dst any) (found bool, err error) {
	v := b.Get(key)
	if v == nil {
		return false, nil
	}
	if err := decodeRecord(v, dst); err != nil {
		return true, fmt.Errorf("decode %x: %w", key, err)
	}
	return true, nil
}

// putRecord stores the encoding of v (encodeRecord) under key in b.
func putRecord(b *bbolt.Bucket, key []byte, v any) error {
	data, err := encodeRecord(v)
	if err != nil {
		return fmt.Errorf("encode %x: %w", key, err)
	}
	return b.Put(key, data)
}
