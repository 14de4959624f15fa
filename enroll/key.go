package enroll

import (
	"crypto/dsa" //nolint:staticcheck // only to name and refuse DSA keys
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/asn1"
	"fmt"

	"github.com/fleetca/fleetca/internal/fault"
)

// Key sizes accepted for RSA, after NIST SP 800-57 Part 1 Table 2
// (2048 bits is the 112-bit floor) and a ceiling that bounds CPU per request.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

const keyHint = "use an ECDSA P-256 or P-384, RSA 2048 to 8192-bit, or Ed25519 key"

// checkKey enforces the device key policy (docs/ARCHITECTURE.md, "The
// contract"): ECDSA P-256 and P-384, RSA 2048..8192 bits with an odd
// public exponent of at least 65537, Ed25519.
// Anything else is fault.BadKey, naming the key.
func checkKey(pub any) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384():
			return nil
		}
		return fault.New(fault.BadKey, fmt.Sprintf("the key is ECDSA on curve %s, which is not accepted", k.Curve.Params().Name), keyHint)
	case *rsa.PublicKey:
		bits := k.N.BitLen()
		if bits < minRSABits || bits > maxRSABits {
			return fault.New(fault.BadKey, fmt.Sprintf("the key is RSA with %d bits, outside %d to %d", bits, minRSABits, maxRSABits), keyHint)
		}
		if k.E < 65537 || k.E%2 == 0 {
			return fault.New(fault.BadKey, fmt.Sprintf("the RSA key's public exponent %d is not an odd number of at least 65537", k.E), keyHint)
		}
		return nil
	case ed25519.PublicKey:
		return nil
	case *dsa.PublicKey:
		return fault.New(fault.BadKey, fmt.Sprintf("the key is DSA (%d bits), which is not accepted", k.P.BitLen()), keyHint)
	}
	return fault.New(fault.BadKey, fmt.Sprintf("the key type %T is not accepted", pub), keyHint)
}

// Algorithm and curve OIDs that Go's x509 parser cannot read, so that a CSR
// with such a key is refused by name rather than as unparseable.
var (
	oidPublicKeyEC  = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidPublicKeyDSA = asn1.ObjectIdentifier{1, 2, 840, 10040, 4, 1}
	oidPublicKeyRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	// oidPublicKeyEd25519 is RFC 8410 §3.
	oidPublicKeyEd25519 = asn1.ObjectIdentifier{1, 3, 101, 112}
	// goCurves are the named curves crypto/x509 parses (P-224 to P-521).
	goCurves = map[string]bool{
		"1.3.132.0.33": true, "1.2.840.10045.3.1.7": true, "1.3.132.0.34": true, "1.3.132.0.35": true,
	}
	curveNames = map[string]string{
		"1.3.132.0.10":          "secp256k1",
		"1.3.36.3.3.2.8.1.1.7":  "brainpoolP256r1",
		"1.3.36.3.3.2.8.1.1.11": "brainpoolP384r1",
		"1.3.36.3.3.2.8.1.1.13": "brainpoolP512r1",
		"1.2.840.10045.3.1.1":   "P-192",
		"1.3.132.0.33":          "P-224",
		"1.3.132.0.35":          "P-521",
	}
)

// csrKeyInfo is the part of a PKCS #10 request (RFC 2986 §4.1) needed to
// name its key when crypto/x509 cannot parse it.
type csrKeyInfo struct {
	Info struct {
		Raw       asn1.RawContent
		Version   int
		Subject   asn1.RawValue
		PublicKey struct {
			Algorithm struct {
				Algorithm  asn1.ObjectIdentifier
				Parameters asn1.RawValue `asn1:"optional"`
			}
			PublicKey asn1.BitString
		}
	}
}

// describeKey returns a fault.BadKey naming the key of a CSR that
// crypto/x509 refused to parse, or nil if the key is not the reason.
func describeKey(der []byte) error {
	var csr csrKeyInfo
	if _, err := asn1.Unmarshal(der, &csr); err != nil {
		return nil
	}
	alg := csr.Info.PublicKey.Algorithm
	switch {
	case alg.Algorithm.Equal(oidPublicKeyEC):
		var curve asn1.ObjectIdentifier
		if _, err := asn1.Unmarshal(alg.Parameters.FullBytes, &curve); err != nil {
			return fault.New(fault.BadKey, "the key is ECDSA with explicit or missing curve parameters, which are not accepted", keyHint)
		}
		name, known := curveNames[curve.String()]
		if !known && goCurves[curve.String()] {
			return nil // crypto/x509 reads this curve: the key is not why it failed
		}
		if !known {
			name = curve.String()
		}
		return fault.New(fault.BadKey, fmt.Sprintf("the key is ECDSA on curve %s, which is not accepted", name), keyHint)
	case alg.Algorithm.Equal(oidPublicKeyDSA):
		return fault.New(fault.BadKey, "the key is DSA, which is not accepted", keyHint)
	case alg.Algorithm.Equal(oidPublicKeyRSA), alg.Algorithm.Equal(oidPublicKeyEd25519):
		return nil
	}
	return fault.New(fault.BadKey, fmt.Sprintf("the key algorithm %s is not accepted", alg.Algorithm), keyHint)
}
