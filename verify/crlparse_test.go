package verify

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"github.com/fleetca/fleetca/api"
)

// refEntries is what x509.ParseRevocationList makes of a CRL's entries,
// keyed as a Checker keys serials (the magnitude), the last entry of a
// serial winning: what ParseCRL must index.
func refEntries(rl *x509.RevocationList) map[string]CRLEntry {
	m := map[string]CRLEntry{}
	for _, e := range rl.RevokedCertificateEntries {
		m[string(e.SerialNumber.Bytes())] = CRLEntry{RevokedAt: e.RevocationTime, Reason: api.Reason(e.ReasonCode)}
	}
	return m
}

// sameAsX509 checks crl against x509.ParseRevocationList's reading of der.
func sameAsX509(t *testing.T, crl *CRL, der []byte) {
	t.Helper()
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("x509.ParseRevocationList refused what ParseCRL accepted: %v", err)
	}
	if crl.Number.Cmp(rl.Number) != 0 || !crl.ThisUpdate.Equal(rl.ThisUpdate) || !crl.NextUpdate.Equal(rl.NextUpdate) {
		t.Errorf("ParseCRL() = number %v, %v..%v, want %v, %v..%v", crl.Number, crl.ThisUpdate, crl.NextUpdate, rl.Number, rl.ThisUpdate, rl.NextUpdate)
	}
	want := refEntries(rl)
	if crl.Len() != len(want) {
		t.Errorf("ParseCRL().Len() = %d, want %d", crl.Len(), len(want))
	}
	for k, w := range want {
		serial := new(big.Int).SetBytes([]byte(k))
		got, ok := crl.Lookup(serial)
		if !ok || !got.RevokedAt.Equal(w.RevokedAt) || got.Reason != w.Reason {
			t.Errorf("Lookup(%x) = %v at %v, %v; want %v at %v", serial, got.Reason, got.RevokedAt, ok, w.Reason, w.RevokedAt)
		}
		if !crl.has(k) {
			t.Errorf("has(%x) = false, want true", serial)
		}
	}
}

var oidInvalidityDate = asn1.ObjectIdentifier{2, 5, 29, 24}

func TestParseCRLMatchesX509(t *testing.T) {
	ca := newTestCA(t)
	pow2 := func(n uint) *big.Int { return new(big.Int).Lsh(big.NewInt(1), n) }
	neg := func(x *big.Int) *big.Int { return new(big.Int).Neg(x) }
	invalidity, _ := asn1.Marshal(t0.Add(-time.Hour))
	tests := []struct {
		name    string
		serials []*big.Int
		at      time.Time
		reason  int
		extra   []pkix.Extension
	}{
		{"none", nil, t0, 0, nil},
		{"small", []*big.Int{big.NewInt(0), big.NewInt(1), big.NewInt(127), big.NewInt(128), big.NewInt(255), big.NewInt(256)}, t0, int(api.ReasonKeyCompromise), nil},
		{"20-octets", []*big.Int{new(big.Int).Sub(pow2(159), big.NewInt(1)), pow2(152), new(big.Int).Sub(pow2(160), big.NewInt(1))}, t0, int(api.ReasonSuperseded), nil},
		{"longer-than-20-octets", []*big.Int{pow2(160), pow2(200), new(big.Int).Add(pow2(300), big.NewInt(7))}, t0, int(api.ReasonAffiliationChanged), nil},
		{"negative", []*big.Int{big.NewInt(-1), big.NewInt(-128), big.NewInt(-129), neg(pow2(170))}, t0, 0, nil},
		{"unspecified-writes-no-reason", []*big.Int{big.NewInt(9)}, t0, 0, nil},
		{"generalized-time", []*big.Int{big.NewInt(10)}, time.Date(2051, 2, 3, 4, 5, 6, 0, time.UTC), int(api.ReasonCessationOfOperation), nil},
		{"utc-time-1950", []*big.Int{big.NewInt(11)}, time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC), int(api.ReasonKeyCompromise), nil},
		{"other-extension", []*big.Int{big.NewInt(12), big.NewInt(13)}, t0, int(api.ReasonKeyCompromise), []pkix.Extension{{Id: oidInvalidityDate, Value: invalidity}}},
		{"duplicate-serial", []*big.Int{big.NewInt(14), big.NewInt(14)}, t0, int(api.ReasonSuperseded), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := &x509.RevocationList{Number: big.NewInt(7), ThisUpdate: t0, NextUpdate: t0.Add(time.Hour)}
			for i, s := range tc.serials {
				tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s,
					RevocationTime: tc.at.Add(-time.Duration(i) * time.Second), ReasonCode: tc.reason, ExtraExtensions: tc.extra})
			}
			der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Intermediate, ca.Signer)
			if err != nil {
				t.Fatal(err)
			}
			crl, err := ParseCRL(der, ca.Intermediate)
			if err != nil {
				t.Fatalf("ParseCRL() error = %v", err)
			}
			sameAsX509(t, crl, der)
		})
	}
}

// TestParseCRLSignatureCoversEntries: the entries are read apart from the
// rest, but the signature is checked over all of it.
func TestParseCRLSignatureCoversEntries(t *testing.T) {
	ca := newTestCA(t)
	der := ca.crl(t, 1, t0, time.Hour, 0x0badcafe)
	if _, err := ParseCRL(der, ca.Intermediate); err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(der, []byte{0x0b, 0xad, 0xca, 0xfe})
	if i < 0 {
		t.Fatal("serial not found in the CRL")
	}
	tampered := bytes.Clone(der)
	tampered[i+3] = 0xff // another serial revoked instead
	if _, err := ParseCRL(tampered, ca.Intermediate); err == nil {
		t.Error("ParseCRL() accepted a CRL whose entry was changed after signing")
	}
	if _, err := ParseCRL(der, newTestCA(t).Intermediate); err == nil {
		t.Error("ParseCRL() accepted a CRL signed by another CA")
	}
}

func TestCRLAddedSince(t *testing.T) {
	ca := newTestCA(t)
	parse := func(serials ...int64) *CRL {
		crl, err := ParseCRL(ca.crl(t, 1, t0, time.Hour, serials...), ca.Intermediate)
		if err != nil {
			t.Fatal(err)
		}
		return crl
	}
	old, cur := parse(1, 2), parse(1, 2, 3, 1<<62)
	got := cur.addedSince(old)
	if len(got) != 2 || !(got[0].Int64() == 3 && got[1].Int64() == 1<<62 || got[1].Int64() == 3 && got[0].Int64() == 1<<62) {
		t.Errorf("addedSince() = %v, want 3 and %d", got, int64(1)<<62)
	}
	if got := old.addedSince(cur); len(got) != 0 {
		t.Errorf("addedSince(a superset) = %v, want none", got)
	}
}

// FuzzParseCRLEnvelope: whatever the bytes, the CRL's parts and entries are
// read as x509.ParseRevocationList reads them, and refused when it refuses
// them (the signature, which mutated input would not pass, aside).
func FuzzParseCRLEnvelope(f *testing.F) {
	ca := newTestCA(f)
	f.Add(ca.crl(f, 1, t0, time.Hour))
	f.Add(ca.crl(f, 2, t0, time.Hour, 1, 2, 3, -4, 1<<40))
	tmpl := &x509.RevocationList{Number: big.NewInt(3), ThisUpdate: t0, NextUpdate: t0.Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{
			{SerialNumber: new(big.Int).Lsh(big.NewInt(1), 170), RevocationTime: time.Date(2051, 1, 1, 0, 0, 0, 0, time.UTC), ReasonCode: 1},
			{SerialNumber: big.NewInt(5), RevocationTime: t0, ExtraExtensions: []pkix.Extension{{Id: oidInvalidityDate, Value: []byte{0x18, 0x00}}}},
		}}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Intermediate, ca.Signer)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(der)
	f.Fuzz(func(t *testing.T, b []byte) {
		rl, refErr := x509.ParseRevocationList(b)
		env, revoked, err := parseCRLEnvelope(b)
		var crl *CRL
		if err == nil {
			crl = &CRL{Number: env.Number, ThisUpdate: env.ThisUpdate, NextUpdate: env.NextUpdate}
			err = crl.index(revoked)
		}
		if (err == nil) != (refErr == nil) {
			t.Fatalf("parseCRLEnvelope+index error = %v, x509.ParseRevocationList error = %v", err, refErr)
		}
		if err != nil {
			return
		}
		if !bytes.Equal(env.RawTBSRevocationList, rl.RawTBSRevocationList) || !bytes.Equal(env.Signature, rl.Signature) ||
			env.SignatureAlgorithm != rl.SignatureAlgorithm {
			t.Fatal("the signed part, the signature or its algorithm differ from x509's")
		}
		if (env.Number == nil) != (rl.Number == nil) || env.Number != nil && env.Number.Cmp(rl.Number) != 0 {
			t.Fatalf("CRL number %v, x509's %v", env.Number, rl.Number)
		}
		if env.Number != nil {
			sameAsX509(t, crl, b)
		}
	})
}

// TestReadTimeMatchesCryptobyte: the fast reading of revocation dates
// accepts and refuses what cryptobyte (x509's reader) does, with the same
// result, over the edges of each field.
func TestReadTimeMatchesCryptobyte(t *testing.T) {
	var cases []string
	add := func(tag byte, s string) { cases = append(cases, string([]byte{tag, byte(len(s))})+s) }
	for _, hms := range []string{"000000", "235959", "240000", "236000", "235960", "12345"} {
		for _, md := range []string{"0101", "0229", "0230", "0431", "0430", "1231", "1301", "0001", "0100", "0132"} {
			for _, yy := range []string{"00", "24", "49", "50", "52", "68", "69", "99"} {
				add(0x17, yy+md+hms+"Z")
			}
			for _, yyyy := range []string{"0000", "1900", "1999", "2000", "2024", "2100", "9999"} {
				add(0x18, yyyy+md+hms+"Z")
			}
		}
	}
	for _, odd := range []string{"2401011200Z", "240101120000+0100", "240101120000", "2401011200000Z", "24o101120000Z", "-40101120000Z"} {
		add(0x17, odd)
	}
	for _, odd := range []string{"20240101120000.5Z", "20240101120000", "20240101120000+0000", "2024010112000Z", "+0240101120000Z"} {
		add(0x18, odd)
	}
	for _, c := range cases {
		s := cryptobyte.String(c + "rest")
		got, err := readTime(&s)
		want := cryptobyte.String(c + "rest")
		var at time.Time
		var ok bool
		if c[0] == 0x17 {
			ok = want.ReadASN1UTCTime(&at)
		} else {
			ok = want.ReadASN1GeneralizedTime(&at)
		}
		if (err == nil) != ok {
			t.Errorf("readTime(%q) error = %v, cryptobyte ok = %v", c[2:], err, ok)
			continue
		}
		if ok && (got != at.Unix() || string(s) != string(want)) {
			t.Errorf("readTime(%q) = %d, rest %q; cryptobyte %d (%v), rest %q", c[2:], got, s, at.Unix(), at, want)
		}
	}
}
