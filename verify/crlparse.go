package verify

import (
	"bytes"
	"crypto/x509"
	encoding_asn1 "encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cryptobyte_asn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/fleetca/fleetca/api"
)

// CRLEntry is one revoked certificate in a CRL.
type CRLEntry struct {
	RevokedAt time.Time
	Reason    api.Reason
}

// CRL is a parsed, verified CRL with its serials indexed.
//
// The index holds no pointers, so that the collector does not scan a CRL
// of a million entries on every cycle, and costs about 50 bytes an entry.
type CRL struct {
	Number                 *big.Int
	ThisUpdate, NextUpdate time.Time
	// short indexes serials of at most 20 octets (RFC 5280 §4.1.2.2 allows
	// no more) by their magnitude, right-aligned: magnitudes have no
	// leading zero octet, so each number has one key.
	short map[[shortSerial]byte]packedEntry
	// long indexes longer serials by their magnitude, as a string.
	long map[string]packedEntry
	// scope is the fullName URIs of the CRL's Issuing Distribution Point,
	// and scoped whether it has one (a partition CRL): see crlScope.
	scope  []string
	scoped bool
}

// shortSerial is the longest serial, in octets, that CRL.short holds.
const shortSerial = 20

// packedEntry is a CRLEntry without pointers: the revocation time in Unix
// seconds (CRL times have no fractions of a second, RFC 5280 §5.1.2.6).
type packedEntry struct {
	at     int64
	reason int64
}

func (e packedEntry) entry() CRLEntry {
	return CRLEntry{RevokedAt: time.Unix(e.at, 0).UTC(), Reason: api.Reason(e.reason)}
}

// Lookup reports whether serial is on the CRL.
func (c *CRL) Lookup(serial *big.Int) (CRLEntry, bool) {
	if (serial.BitLen()+7)/8 <= shortSerial {
		var k [shortSerial]byte
		serial.FillBytes(k[:]) // the magnitude, as Bytes, right-aligned
		e, ok := c.short[k]
		return e.entry(), ok
	}
	e, ok := c.long[string(serial.Bytes())]
	return e.entry(), ok
}

// has reports whether the serial whose magnitude is mag (as big.Int.Bytes
// gives it) is on the CRL.
func (c *CRL) has(mag string) bool {
	if len(mag) <= shortSerial {
		var k [shortSerial]byte
		copy(k[shortSerial-len(mag):], mag)
		_, ok := c.short[k]
		return ok
	}
	_, ok := c.long[mag]
	return ok
}

// Len is the number of entries.
func (c *CRL) Len() int { return len(c.short) + len(c.long) }

// addedSince returns the serials on c that are not on old.
func (c *CRL) addedSince(old *CRL) []*big.Int {
	var added []*big.Int
	for k := range c.short {
		if _, ok := old.short[k]; !ok {
			added = append(added, new(big.Int).SetBytes(k[:]))
		}
	}
	for k := range c.long {
		if _, ok := old.long[k]; !ok {
			added = append(added, new(big.Int).SetBytes([]byte(k)))
		}
	}
	return added
}

// ParseCRL reads a CRL (DER, or PEM "X509 CRL"), checks its signature
// against issuer and that it carries a CRL number and a nextUpdate, reads
// its Issuing Distribution Point if any (refusing one fleetca does not
// issue: crlScope), and indexes its serials. It does not judge freshness.
//
// It accepts exactly what x509.ParseRevocationList accepts, but reads the
// revoked certificates itself: ParseRevocationList makes about seven
// allocations an entry (a big.Int, the entry twice over, for the
// deprecated field too, each extension and its OID) and grows two slices
// by doubling, which for a CRL of a million entries allocates 1.3 GB and
// takes over a second. Everything but the entries still goes through
// ParseRevocationList, as a copy of the CRL whose revokedCertificates is
// empty; the signature is then checked over the original.
func ParseCRL(b []byte, issuer *x509.Certificate) (*CRL, error) {
	if block, _ := pem.Decode(b); block != nil {
		if block.Type != "X509 CRL" {
			return nil, fmt.Errorf("PEM block is %s, not X509 CRL", block.Type)
		}
		b = block.Bytes
	}
	rl, revoked, err := parseCRLEnvelope(b)
	if err != nil {
		return nil, fmt.Errorf("parse CRL: %w", err)
	}
	if err := rl.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("CRL is not signed by %s: %w", issuer.Subject, err)
	}
	if rl.Number == nil {
		return nil, errors.New("CRL has no CRL number (RFC 5280 §5.2.3)")
	}
	if rl.NextUpdate.IsZero() || rl.NextUpdate.Before(rl.ThisUpdate) {
		return nil, errors.New("CRL has no valid nextUpdate")
	}
	crl := &CRL{Number: rl.Number, ThisUpdate: rl.ThisUpdate, NextUpdate: rl.NextUpdate}
	if crl.scope, crl.scoped, err = crlScope(rl); err != nil {
		return nil, fmt.Errorf("parse CRL: %w", err)
	}
	if err := crl.index(revoked); err != nil {
		return nil, fmt.Errorf("parse CRL: %w", err)
	}
	return crl, nil
}

// errMalformed is what x509.ParseRevocationList says of a CRL it cannot
// split into its parts.
var errMalformed = errors.New("x509: malformed crl")

// parseCRLEnvelope parses der (RFC 5280 §5.1) with
// x509.ParseRevocationList, but with an empty revokedCertificates
// (present if der's is), and returns it with RawTBSRevocationList set to
// der's, which the signature covers, and the contents of der's
// revokedCertificates, for index. It walks der as ParseRevocationList
// does, so that the copy differs only there: trailing bytes it ignores are
// ignored here, and copied.
func parseCRLEnvelope(der []byte) (*x509.RevocationList, cryptobyte.String, error) {
	input := cryptobyte.String(der)
	if !input.ReadASN1Element(&input, cryptobyte_asn1.SEQUENCE) || !input.ReadASN1(&input, cryptobyte_asn1.SEQUENCE) {
		return nil, nil, errMalformed
	}
	var tbsRaw, tbs cryptobyte.String
	if !input.ReadASN1Element(&tbsRaw, cryptobyte_asn1.SEQUENCE) {
		return nil, nil, errors.New("x509: malformed tbs crl")
	}
	tbs = tbsRaw
	if !tbs.ReadASN1(&tbs, cryptobyte_asn1.SEQUENCE) {
		return nil, nil, errors.New("x509: malformed tbs crl")
	}
	// version, signature, issuer, thisUpdate, nextUpdate OPTIONAL: copied.
	rest := tbs
	var skip cryptobyte.String
	if !rest.ReadASN1Element(&skip, cryptobyte_asn1.INTEGER) ||
		!rest.ReadASN1Element(&skip, cryptobyte_asn1.SEQUENCE) ||
		!rest.ReadASN1Element(&skip, cryptobyte_asn1.SEQUENCE) {
		return nil, nil, errMalformed
	}
	for i := range 2 { // thisUpdate, then nextUpdate if present
		if !rest.PeekASN1Tag(cryptobyte_asn1.UTCTime) && !rest.PeekASN1Tag(cryptobyte_asn1.GeneralizedTime) {
			if i == 0 {
				return nil, nil, errors.New("x509: unsupported time format")
			}
			break
		}
		var tag cryptobyte_asn1.Tag
		if !rest.ReadAnyASN1Element(&skip, &tag) {
			return nil, nil, errMalformed
		}
	}
	head := tbs[:len(tbs)-len(rest)]
	var revoked cryptobyte.String
	hasRevoked := rest.PeekASN1Tag(cryptobyte_asn1.SEQUENCE)
	if hasRevoked && !rest.ReadASN1(&revoked, cryptobyte_asn1.SEQUENCE) {
		return nil, nil, errMalformed
	}
	// crlExtensions and whatever follows: copied.
	var b cryptobyte.Builder
	b.AddASN1(cryptobyte_asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cryptobyte_asn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(head)
			if hasRevoked {
				b.AddASN1(cryptobyte_asn1.SEQUENCE, func(*cryptobyte.Builder) {})
			}
			b.AddBytes(rest)
		})
		b.AddBytes(input) // signatureAlgorithm, signatureValue and the rest
	})
	envelope, err := b.Bytes()
	if err != nil {
		return nil, nil, err
	}
	rl, err := x509.ParseRevocationList(envelope)
	if err != nil {
		return nil, nil, err
	}
	rl.RawTBSRevocationList = bytes.Clone(tbsRaw)
	rl.Raw = nil // the copy's; der's is not kept
	return rl, revoked, nil
}

// oidReasonCode is id-ce-cRLReasons (2.5.29.21, RFC 5280 §5.3.1), DER
// encoded with its tag and length.
var oidReasonCode = []byte{0x06, 0x03, 0x55, 0x1d, 0x15}

// index reads the revokedCertificates (the contents of the SEQUENCE) into
// c, checking each entry as x509.ParseRevocationList does: a SEQUENCE of a
// well-formed INTEGER serial, a UTCTime or GeneralizedTime, and optional
// well-formed extensions, of which a reason code must be an ENUMERATED;
// bytes after them are ignored. A serial listed twice keeps its last
// entry.
func (c *CRL) index(revoked cryptobyte.String) error {
	n := 0
	for s := revoked; !s.Empty(); n++ {
		var skip cryptobyte.String
		if !s.ReadASN1Element(&skip, cryptobyte_asn1.SEQUENCE) {
			return errMalformed
		}
	}
	c.short = make(map[[shortSerial]byte]packedEntry, n)
	for !revoked.Empty() {
		var entry cryptobyte.String
		if !revoked.ReadASN1(&entry, cryptobyte_asn1.SEQUENCE) {
			return errMalformed
		}
		var serial cryptobyte.String
		if !entry.ReadASN1(&serial, cryptobyte_asn1.INTEGER) || !validInteger(serial) {
			return errors.New("x509: malformed serial number")
		}
		at, err := readTime(&entry)
		if err != nil {
			return err
		}
		e := packedEntry{at: at}
		var exts cryptobyte.String
		var present bool
		if !entry.ReadOptionalASN1(&exts, &present, cryptobyte_asn1.SEQUENCE) {
			return errors.New("x509: malformed extensions")
		}
		for present && !exts.Empty() {
			var ext, oid, value cryptobyte.String
			if !exts.ReadASN1(&ext, cryptobyte_asn1.SEQUENCE) {
				return errors.New("x509: malformed extension")
			}
			if !ext.ReadASN1Element(&oid, cryptobyte_asn1.OBJECT_IDENTIFIER) {
				return errors.New("x509: malformed extension OID field")
			}
			isReason := bytes.Equal(oid, oidReasonCode)
			if !isReason {
				// Only checked, as x509 checks it: rare enough that the
				// allocation does not matter.
				var id encoding_asn1.ObjectIdentifier
				if check := oid; !check.ReadASN1ObjectIdentifier(&id) {
					return errors.New("x509: malformed extension OID field")
				}
			}
			if ext.PeekASN1Tag(cryptobyte_asn1.BOOLEAN) {
				var critical bool
				if !ext.ReadASN1Boolean(&critical) {
					return errors.New("x509: malformed extension critical field")
				}
			}
			if !ext.ReadASN1(&value, cryptobyte_asn1.OCTET_STRING) {
				return errors.New("x509: malformed extension value field")
			}
			if isReason {
				var reason int
				if !value.ReadASN1Enum(&reason) {
					return errors.New("x509: malformed reasonCode extension")
				}
				e.reason = int64(reason)
			}
		}
		c.add(serial, e)
	}
	return nil
}

// readTime reads a revocationDate (RFC 5280 §5.1.2.6) as x509 does, and
// returns it in Unix seconds. The forms RFC 5280 §4.1.2.5 prescribes,
// YYMMDDHHMMSSZ and YYYYMMDDHHMMSSZ, are read here, which is four times
// faster than time.Parse and its round trip through Format; anything else
// goes to cryptobyte, which x509 uses.
func readTime(s *cryptobyte.String) (int64, error) {
	b := *s
	if len(b) >= 2 && (b[0] == byte(cryptobyte_asn1.UTCTime) && b[1] == 13 || b[0] == byte(cryptobyte_asn1.GeneralizedTime) && b[1] == 15) &&
		len(b) >= 2+int(b[1]) && b[1+b[1]] == 'Z' {
		if sec, ok := parseTimeZ(b[2:1+b[1]], b[0] == byte(cryptobyte_asn1.UTCTime)); ok {
			*s = b[2+b[1]:]
			return sec, nil
		}
	}
	var at time.Time
	switch {
	case s.PeekASN1Tag(cryptobyte_asn1.UTCTime):
		if !s.ReadASN1UTCTime(&at) {
			return 0, errors.New("x509: malformed UTCTime")
		}
	case s.PeekASN1Tag(cryptobyte_asn1.GeneralizedTime):
		if !s.ReadASN1GeneralizedTime(&at) {
			return 0, errors.New("x509: malformed GeneralizedTime")
		}
	default:
		return 0, errors.New("x509: unsupported time format")
	}
	return at.Unix(), nil
}

// parseTimeZ reads the digits of YYMMDDHHMMSS (utc) or YYYYMMDDHHMMSS,
// the Z stripped, with time.Parse's range checks; ok is false for
// anything it would refuse (the caller then asks cryptobyte). Two-digit
// years 50 to 99 are 1950 to 1999 (RFC 5280 §4.1.2.5.1).
func parseTimeZ(d []byte, utc bool) (sec int64, ok bool) {
	for _, c := range d {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	num := func(i int) int { return int(d[i]-'0')*10 + int(d[i+1]-'0') }
	var year int
	if utc {
		year = 2000 + num(0)
		if year >= 2050 {
			year -= 100
		}
		d = d[2:]
	} else {
		year = num(0)*100 + num(2)
		d = d[4:]
	}
	month, day, hour, minute, second := num(0), num(2), num(4), num(6), num(8)
	if month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59 {
		return 0, false
	}
	// The last day of the month: day 0 of the next one.
	if day > time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day() {
		return 0, false
	}
	return time.Date(year, time.Month(month), day, hour, minute, second, 0, time.UTC).Unix(), true
}

// add files e under the serial whose DER INTEGER contents are serial.
func (c *CRL) add(serial []byte, e packedEntry) {
	var mag []byte
	if serial[0]&0x80 == 0 {
		mag = serial
		for len(mag) > 0 && mag[0] == 0 {
			mag = mag[1:]
		}
	} else {
		// A negative serial (RFC 5280 forbids them; x509 reads them):
		// keyed, as Lookup keys a serial, by its absolute value. The
		// two's complement value is the unsigned one minus 2^(8 len).
		n := new(big.Int).SetBytes(serial)
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(serial))))
		mag = n.Bytes()
	}
	if len(mag) <= shortSerial {
		var k [shortSerial]byte
		copy(k[shortSerial-len(mag):], mag)
		c.short[k] = e
		return
	}
	if c.long == nil {
		c.long = map[string]packedEntry{}
	}
	c.long[string(mag)] = e
}

// validInteger reports whether b is the contents of a DER INTEGER:
// not empty, and minimally encoded (cryptobyte's rule).
func validInteger(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	if len(b) == 1 {
		return true
	}
	return !(b[0] == 0 && b[1]&0x80 == 0 || b[0] == 0xff && b[1]&0x80 == 0x80)
}
