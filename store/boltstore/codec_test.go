package boltstore

import (
	"encoding/json"
	"math/big"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.etcd.io/bbolt"

	"github.com/fleetca/fleetca/store"
)

// sameAsJSON fails unless got, a binary record's decoding, is what the
// JSON record of want decodes to, location and offset of every time
// included (cmp compares times with Equal; their JSON shows the offset).
func sameAsJSON[T any](t *testing.T, name string, got T, want T) {
	t.Helper()
	js, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var fromJSON T
	if err := json.Unmarshal(js, &fromJSON); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fromJSON, got); diff != "" {
		t.Errorf("%s: binary decoding differs from JSON's (-json +binary):\n%s", name, diff)
	}
	gotJS, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	wantJS, _ := json.Marshal(fromJSON)
	if string(gotJS) != string(wantJS) {
		t.Errorf("%s: binary decoding = %s, JSON's = %s", name, gotJS, wantJS)
	}
}

// The binary records decode to what their JSON records decoded to, for
// every field, times in UTC, in a zone and zero.
func TestBinaryRecords(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	times := []struct {
		name string
		t    time.Time
	}{
		{"utc", t0.Add(123456789 * time.Nanosecond)},
		{"zone", t0.In(paris)},
		{"west", t0.In(time.FixedZone("", -(7*3600 + 30*60)))},
		{"local", t0.Local()},
		{"zero", time.Time{}},
		{"before-1970", time.Date(1969, 7, 20, 20, 17, 40, 5, time.UTC)},
	}
	for _, tc := range times {
		t.Run(tc.name, func(t *testing.T) {
			tm := tc.t
			p := 7
			c := store.Certificate{
				Serial: big.NewInt(1), DeviceID: "dev-1", KeyHash: store.KeyHash{1, 2, 3},
				NotBefore: tm, NotAfter: tm.Add(time.Hour), IssuedAt: tm, DER: []byte{0x30, 1, 2},
				RevokedAt: tm, Reason: 4, Parent: new(big.Int).Lsh(big.NewInt(1), 158), Partition: &p,
			}
			v, err := encodeCertificate(c)
			if err != nil {
				t.Fatal(err)
			}
			key, _ := serialKey(c.Serial)
			gotC, err := decodeCertificate(key, v)
			if err != nil {
				t.Fatalf("decodeCertificate error = %v", err)
			}
			if diff := cmp.Diff(c, gotC, cmp.Comparer(func(a, b *big.Int) bool { return a.Cmp(b) == 0 })); diff != "" {
				t.Errorf("certificate round trip (-want +got):\n%s", diff)
			}
			gotC.Serial, gotC.Parent = nil, nil
			c.Serial, c.Parent = nil, nil
			sameAsJSON(t, "certificate", gotC, c)

			d := store.Device{
				ID: "dev-1", Status: store.DeviceRevoked, CreatedAt: tm, UpdatedAt: tm.Add(time.Second),
				LastRenewalAt: tm, RenewNowAt: tm, RevokedAt: tm,
				Manufacturer: &store.ManufacturerCert{Manufacturer: "acme", Serial: "0a", Fingerprint: [32]byte{9}},
				NotAfter:     tm, RenewBy: tm,
			}
			tok := store.Token{
				ID: "tok", Hash: store.TokenHash{4}, DeviceID: "dev-1", DevicePattern: "dev-*",
				Uses: 3, Spent: 2, CreatedAt: tm, ExpiresAt: tm, RevokedAt: tm,
			}
			e := store.AuditEvent{
				Seq: 1 << 40, Time: tm, Action: "certificate.issue", Actor: "token:tok", DeviceID: "dev-1",
				Serial: "0a", TokenID: "tok", Detail: "détail\x00", Root: [32]byte{5},
			}
			for _, r := range []any{d, tok, e} {
				v, err := encodeRecord(r)
				if err != nil || !isBinary(v) {
					t.Fatalf("encodeRecord(%T) = %x, %v, want a binary record", r, v, err)
				}
				switch r := r.(type) {
				case store.Device:
					var got store.Device
					if err := decodeRecord(v, &got); err != nil {
						t.Fatalf("decode device: %v", err)
					}
					sameAsJSON(t, "device", got, r)
				case store.Token:
					var got store.Token
					if err := decodeRecord(v, &got); err != nil {
						t.Fatalf("decode token: %v", err)
					}
					sameAsJSON(t, "token", got, r)
				case store.AuditEvent:
					var got store.AuditEvent
					if err := decodeRecord(v, &got); err != nil {
						t.Fatalf("decode audit event: %v", err)
					}
					sameAsJSON(t, "audit event", got, r)
				}
			}
		})
	}
}

// A record type that gains a field must gain it in codec.go too: the
// binary encoding names every field, and would drop a new one silently.
func TestBinaryRecordsCoverEveryField(t *testing.T) {
	for _, tc := range []struct {
		typ    reflect.Type
		fields int
	}{
		{reflect.TypeFor[store.Certificate](), 11},
		{reflect.TypeFor[store.Device](), 10},
		{reflect.TypeFor[store.Token](), 9},
		{reflect.TypeFor[store.AuditEvent](), 9},
	} {
		if got := tc.typ.NumField(); got != tc.fields {
			t.Errorf("%v has %d fields, codec.go encodes %d: encode the new one (and update this test)", tc.typ, got, tc.fields)
		}
	}
}

// A truncated or overlong binary record is an error, never a panic or a
// partial record.
func TestBinaryRecordMalformed(t *testing.T) {
	p := 3
	c, err := encodeCertificate(store.Certificate{
		Serial: big.NewInt(1), DeviceID: "dev-1", NotAfter: t0, IssuedAt: t0.In(time.FixedZone("", 3600)),
		DER: []byte("der"), Parent: big.NewInt(2), Partition: &p,
	})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := encodeRecord(store.Device{ID: "dev-1", Status: store.DeviceActive, CreatedAt: t0,
		Manufacturer: &store.ManufacturerCert{Manufacturer: "acme"}})
	tok, _ := encodeRecord(store.Token{ID: "t", Uses: 1, ExpiresAt: t0})
	e, _ := encodeRecord(store.AuditEvent{Seq: 1, Time: t0, Action: "a", Detail: "x"})
	key, _ := serialKey(big.NewInt(1))
	decoders := []struct {
		name   string
		v      []byte
		decode func([]byte) error
	}{
		{"certificate", c, func(v []byte) error { _, err := decodeCertificate(key, v); return err }},
		{"certificate-light", c, func(v []byte) error { _, err := certLight(v); return err }},
		{"device", d, func(v []byte) error { return decodeRecord(v, new(store.Device)) }},
		{"token", tok, func(v []byte) error { return decodeRecord(v, new(store.Token)) }},
		{"audit", e, func(v []byte) error { return decodeRecord(v, new(store.AuditEvent)) }},
		{"wrong-type", e, func(v []byte) error { return decodeRecord(v, new(store.Admin)) }},
	}
	for _, tc := range decoders {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "wrong-type" {
				if err := tc.decode(tc.v); err == nil {
					t.Errorf("decode of an audit event as an admin = nil error")
				}
				return
			}
			if err := tc.decode(tc.v); err != nil {
				t.Fatalf("decode of the whole record = %v", err)
			}
			for n := 1; n < len(tc.v); n++ {
				if err := tc.decode(tc.v[:n]); err == nil {
					t.Errorf("decode of its first %d bytes of %d = nil error", n, len(tc.v))
				}
			}
			if err := tc.decode(append(tc.v[:len(tc.v):len(tc.v)], 0)); err == nil {
				t.Errorf("decode with a byte after it = nil error")
			}
		})
	}
}

// jsonRecord is the record main wrote before the binary encoding: JSON of
// the store type, and of a certificate its certRecord (Parent in hex).
func jsonRecord(t *testing.T, bucket, k, v []byte) []byte {
	t.Helper()
	var js []byte
	var err error
	switch string(bucket) {
	case string(bucketCerts):
		c, derr := decodeCertificate(k, v)
		if derr != nil {
			t.Fatal(derr)
		}
		rec := certRecord{Certificate: c}
		if c.Parent != nil {
			rec.Parent = c.Parent.Text(16)
		}
		js, err = json.Marshal(rec)
	case string(bucketDevices):
		var d store.Device
		if err := decodeRecord(v, &d); err != nil {
			t.Fatal(err)
		}
		js, err = json.Marshal(d)
	case string(bucketTokens):
		var tok store.Token
		if err := decodeRecord(v, &tok); err != nil {
			t.Fatal(err)
		}
		js, err = json.Marshal(tok)
	case string(bucketAudit):
		var e store.AuditEvent
		if err := decodeRecord(v, &e); err != nil {
			t.Fatal(err)
		}
		js, err = json.Marshal(e)
	}
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// A file whose records are JSON, as every file written before the binary
// encoding, reads as it did (every record, the console's views, the audit
// tree), takes new writes beside its old records, and copies (Dump).
func TestOldJSONRecords(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "fleetca.db")
	s := open(t, path, Options{})
	consoleFleet(t, s)
	tok := store.Token{ID: "tok", Hash: store.TokenHash{7}, DevicePattern: "dev-*", Uses: 5, CreatedAt: t0, ExpiresAt: t0.Add(1000 * time.Hour)}
	if err := s.CreateToken(ctx, tok, store.AuditEvent{Time: t0, Action: "token.create"}); err != nil {
		t.Fatal(err)
	}
	dump := func(s *Store) []store.Record {
		var out []store.Record
		if err := s.Dump(ctx, func(r store.Record) error { out = append(out, r); return nil }); err != nil {
			t.Fatalf("Dump error = %v", err)
		}
		return out
	}
	tree := func(s *Store) [2]any {
		size, root, err := s.AuditTree(ctx)
		if err != nil {
			t.Fatalf("AuditTree error = %v", err)
		}
		return [2]any{size, root}
	}
	wantDump, wantView, wantTree := dump(s), viewConsole(t, s), tree(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketCerts, bucketDevices, bucketTokens, bucketAudit} {
			b := tx.Bucket(name)
			old := map[string][]byte{}
			err := b.ForEach(func(k, v []byte) error {
				if !isBinary(v) {
					t.Errorf("bucket %s key %x: a JSON record, want binary", name, k)
				}
				old[string(k)] = jsonRecord(t, name, k, v)
				return nil
			})
			if err != nil {
				return err
			}
			for k, v := range old {
				if err := b.Put([]byte(k), v); err != nil {
					return err
				}
				n++
			}
		}
		return nil
	})
	if cerr := db.Close(); err != nil || cerr != nil {
		t.Fatalf("write the JSON records: %v, %v", err, cerr)
	}
	if n < 20 {
		t.Fatalf("rewrote %d records, want the fleet's", n)
	}

	s = open(t, path, Options{})
	cmpBig := cmp.Comparer(func(a, b *big.Int) bool { return a.Cmp(b) == 0 })
	if diff := cmp.Diff(wantDump, dump(s), cmpBig); diff != "" {
		t.Errorf("Dump of the JSON records (-binary +json):\n%s", diff)
	}
	if diff := cmp.Diff(wantView, viewConsole(t, s)); diff != "" {
		t.Errorf("console views of the JSON records (-binary +json):\n%s", diff)
	}
	if diff := cmp.Diff(wantTree, tree(s)); diff != "" {
		t.Errorf("audit tree of the JSON records (-binary +json):\n%s", diff)
	}

	// New writes beside the old records: a renewal (the lineage, the
	// device), a device revocation (every certificate), an enrollment
	// spending the JSON token.
	if _, err := s.Renew(ctx, renewalOf(big.NewInt(10), big.NewInt(11), "dev-0", 11, t0.Add(210*time.Hour))); err != nil {
		t.Fatalf("Renew of a JSON lineage error = %v", err)
	}
	if _, err := s.Revoke(ctx, store.RevokeRequest{DeviceID: "dev-0", At: t0.Add(215 * time.Hour), Reason: 1,
		Audit: store.AuditEvent{Time: t0.Add(215 * time.Hour), Action: "device.revoke", DeviceID: "dev-0"}}); err != nil {
		t.Fatalf("Revoke of a JSON device error = %v", err)
	}
	c := store.Certificate{Serial: big.NewInt(20), DeviceID: "dev-20", KeyHash: store.KeyHash{20},
		NotBefore: t0, NotAfter: t0.Add(2000 * time.Hour), IssuedAt: t0.Add(216 * time.Hour), DER: []byte("der")}
	if err := s.Issue(ctx, store.Issuance{Certificate: c, Token: tok.Hash, Now: t0.Add(216 * time.Hour),
		Audit: store.AuditEvent{Time: t0.Add(216 * time.Hour), Action: "certificate.issue", DeviceID: "dev-20"}}); err != nil {
		t.Fatalf("Issue with a JSON token error = %v", err)
	}
	if got, err := s.GetToken(ctx, tok.Hash); err != nil || got.Spent != 1 {
		t.Errorf("GetToken after Issue = %+v, %v, want Spent 1", got, err)
	}
	certs, err := s.ListCertificates(ctx, "dev-0", store.Page{})
	if err != nil || len(certs) != 3 {
		t.Fatalf("ListCertificates(dev-0) = %d, %v, want 3", len(certs), err)
	}
	for _, c := range certs {
		if c.RevokedAt.IsZero() {
			t.Errorf("certificate %x of the revoked device is not revoked", c.Serial)
		}
	}
	// The audit tree's root recomputes from the rows, JSON and binary.
	events, err := s.ListAudit(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	size, root, err := s.AuditTree(ctx)
	if err != nil || size != int64(len(events)) || root != events[len(events)-1].Root {
		t.Errorf("AuditTree = %d, %x, %v, want %d and the last row's root %x", size, root, err, len(events), events[len(events)-1].Root)
	}
}
