package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/fips140"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // subject key identifier, RFC 5280 §4.2.1.2 method 1
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"go.step.sm/crypto/x509util"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/fleetca/fleetca/api"
)

// A device certificate's extensions are encoded here rather than by
// x509.CreateCertificate from the template's fields: those that are the
// same for every device once, by newDeviceExtensions, and the two that
// are not (the subject key identifier and the SAN) per certificate. They
// reach x509.CreateCertificate as Certificate.ExtraExtensions, which
// replace the ones it would build, in the order it builds them, so that
// the TBSCertificate is byte for byte what the template's fields would
// give (TestSignDeviceMatchesTemplate). x509.CreateCertificate still
// encodes the TBSCertificate, signs it and checks the signature.

// OIDs of the device certificate's extensions (RFC 5280 §4.2) and of the
// access methods and key purpose they name.
var (
	oidExtKU              = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtEKU             = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidExtBasicConstr     = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidExtSubjectKeyID    = asn1.ObjectIdentifier{2, 5, 29, 14}
	oidExtAuthorityKeyID  = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidExtAIA             = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 1}
	oidExtSubjectAltName  = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidExtCRLDistribution = asn1.ObjectIdentifier{2, 5, 29, 31}
	oidAccessOCSP         = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1}
	oidAccessCAIssuers    = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 2}
	oidKPClientAuth       = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 2}
	oidAttrCommonName     = asn1.ObjectIdentifier{2, 5, 4, 3}
)

// deviceExtensions are the DER extensions every device certificate of a
// profile shares.
type deviceExtensions struct {
	keyUsage, extKeyUsage, basicConstraints pkix.Extension
	// authorityKeyID is nil when the intermediate has no subject key
	// identifier (x509.CreateCertificate then writes none either).
	authorityKeyID []pkix.Extension
	aia            pkix.Extension
	// crl is the CRL distribution point of each partition, or of the
	// full CRL alone (one element) without partitions.
	crl []pkix.Extension
}

// newDeviceExtensions encodes p's shared device extensions: KU
// digitalSignature and basicConstraints cA false, both critical; EKU
// clientAuth; the authority key identifier (the issuer's subject key
// identifier, RFC 5280 §4.2.1.1); AIA with p.ocsp and p.caIssuers; the CRL
// distribution point p.crl, or each of p.partitionCRL.
func newDeviceExtensions(p *profile) (deviceExtensions, error) {
	var e deviceExtensions
	var err error
	// KeyUsage BIT STRING with bit 0 (digitalSignature) set: one bit used,
	// seven unused (DER, X.690 §11.2.2).
	e.keyUsage = pkix.Extension{Id: oidExtKU, Critical: true, Value: []byte{0x03, 0x02, 0x07, 0x80}}
	if e.extKeyUsage.Value, err = derOf(func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidKPClientAuth) })
	}); err != nil {
		return e, err
	}
	e.extKeyUsage.Id = oidExtEKU
	// BasicConstraints with cA FALSE (the DEFAULT, so omitted) and no
	// pathLenConstraint: an empty SEQUENCE.
	e.basicConstraints = pkix.Extension{Id: oidExtBasicConstr, Critical: true, Value: []byte{0x30, 0x00}}
	if ski := p.issuer.SubjectKeyId; len(ski) > 0 {
		v, err := derOf(func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(ski) })
			})
		})
		if err != nil {
			return e, err
		}
		e.authorityKeyID = []pkix.Extension{{Id: oidExtAuthorityKeyID, Value: v}}
	}
	if e.aia.Value, err = derOf(func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			for _, u := range p.ocsp {
				addAccessDescription(b, oidAccessOCSP, u)
			}
			for _, u := range p.caIssuers {
				addAccessDescription(b, oidAccessCAIssuers, u)
			}
		})
	}); err != nil {
		return e, err
	}
	e.aia.Id = oidExtAIA
	points := p.partitionCRL
	if len(points) <= 1 {
		points = [][]string{p.crl}
	}
	for _, urls := range points {
		v, err := derOf(func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for _, u := range urls {
					// DistributionPoint { distributionPoint [0]
					// { fullName [0] { uniformResourceIdentifier [6] } } }
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
							b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
								b.AddASN1(cbasn1.Tag(6).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(u)) })
							})
						})
					})
				}
			})
		})
		if err != nil {
			return e, err
		}
		e.crl = append(e.crl, pkix.Extension{Id: oidExtCRLDistribution, Value: v})
	}
	return e, nil
}

// addAccessDescription adds an AccessDescription with a URI location
// (RFC 5280 §4.2.2.1).
func addAccessDescription(b *cryptobyte.Builder, method asn1.ObjectIdentifier, uri string) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(method)
		b.AddASN1(cbasn1.Tag(6).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(uri)) })
	})
}

// derOf runs build on a fresh builder and returns its bytes.
func derOf(build func(*cryptobyte.Builder)) ([]byte, error) {
	var b cryptobyte.Builder
	build(&b)
	return b.Bytes()
}

// signDevice signs a device certificate for id and pub (SignDevice's
// contract) and returns it as x509.ParseCertificate would, without
// parsing it back: every field is set from what was signed, and the raw
// fields are cut from the DER.
func (a *Authority) signDevice(id api.DeviceID, pub crypto.PublicKey) (*x509.Certificate, error) {
	p := &a.profile
	serial, notBefore, notAfter, err := a.validity(p.deviceValidity)
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(pub)
	if err != nil {
		return nil, err
	}
	uri := api.DeviceSPIFFEID(p.trustDomain, id)
	var b cryptobyte.Builder
	// SubjectKeyIdentifier: an OCTET STRING holding the identifier.
	b.AddASN1OctetString(ski)
	// SubjectAltName: GeneralNames with the one uniformResourceIdentifier.
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(6).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(uri.String())) })
	})
	// Subject: one RDN with the CN, a PrintableString if the device ID's
	// characters allow it, else a UTF8String, as encoding/asn1 chooses.
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidAttrCommonName)
				b.AddASN1(stringTag(string(id)), func(b *cryptobyte.Builder) { b.AddBytes([]byte(id)) })
			})
		})
	})
	enc, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encode device extensions: %w", err)
	}
	var skiVal, sanVal, rawSubject cryptobyte.String
	rest := cryptobyte.String(enc)
	if !rest.ReadASN1Element(&skiVal, cbasn1.OCTET_STRING) || !rest.ReadASN1Element(&sanVal, cbasn1.SEQUENCE) ||
		!rest.ReadASN1Element(&rawSubject, cbasn1.SEQUENCE) {
		return nil, errors.New("encode device extensions: cannot cut what was encoded")
	}
	skiExt := pkix.Extension{Id: oidExtSubjectKeyID, Value: skiVal}
	sanExt := pkix.Extension{Id: oidExtSubjectAltName, Value: sanVal}

	x := &p.deviceExts
	part := 0 // the index of the certificate's CRL distribution point
	if len(x.crl) > 1 {
		part = PartitionOfSerial(serial, len(x.crl))
	}
	crl := x.crl[part]
	exts := make([]pkix.Extension, 0, 8)
	exts = append(exts, x.keyUsage, x.extKeyUsage, x.basicConstraints, skiExt)
	exts = append(exts, x.authorityKeyID...)
	exts = append(exts, x.aia, sanExt, crl)
	tmpl := &x509.Certificate{
		SerialNumber:       serial,
		RawSubject:         rawSubject,
		NotBefore:          notBefore,
		NotAfter:           notAfter,
		SignatureAlgorithm: p.sigAlg,
		ExtraExtensions:    exts,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.issuer, pub, a.signer)
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	tbs, spki, sig, err := splitCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	cert := &x509.Certificate{
		Raw:                     der,
		RawTBSCertificate:       tbs,
		RawSubjectPublicKeyInfo: spki,
		RawSubject:              rawSubject,
		RawIssuer:               p.issuer.RawSubject,
		Signature:               sig,
		SignatureAlgorithm:      p.sigAlg,
		PublicKeyAlgorithm:      publicKeyAlgorithm(pub),
		PublicKey:               pub,
		Version:                 3,
		SerialNumber:            serial,
		Issuer:                  p.issuer.Subject,
		Subject: pkix.Name{CommonName: string(id), Names: []pkix.AttributeTypeAndValue{
			{Type: oidAttrCommonName, Value: string(id)},
		}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		Extensions:            exts,
		ExtKeyUsage:           p.deviceEKU,
		BasicConstraintsValid: true,
		MaxPathLen:            -1,
		SubjectKeyId:          ski,
		OCSPServer:            p.ocsp,
		IssuingCertificateURL: p.caIssuers,
		URIs:                  []*url.URL{uri},
		CRLDistributionPoints: p.crl,
	}
	if len(x.authorityKeyID) > 0 {
		cert.AuthorityKeyId = p.issuer.SubjectKeyId
	}
	if len(x.crl) > 1 {
		cert.CRLDistributionPoints = p.partitionCRL[part]
	}
	return cert, nil
}

// validity returns a new serial and the validity of a certificate issued
// now for validity: from now minus Backdate to now plus validity, but never
// after the intermediate's NotAfter, in UTC and whole seconds as the
// certificate encodes them (RFC 5280 §4.1.2.5). An expired intermediate is
// Unavailable.
func (a *Authority) validity(validity time.Duration) (*big.Int, time.Time, time.Time, error) {
	p := &a.profile
	now := a.now()
	if !now.Before(p.issuer.NotAfter) {
		return nil, time.Time{}, time.Time{}, intermediateExpired(p.issuer.NotAfter)
	}
	notAfter := now.Add(validity)
	if end := p.issuer.NotAfter; notAfter.After(end) {
		// RFC 5280 does not forbid a leaf outliving its issuer, but path
		// validation fails then anyway; say so in the certificate.
		notAfter = end
	}
	serial, err := newSerial(now)
	if err != nil {
		return nil, time.Time{}, time.Time{}, err
	}
	return serial, now.Add(-p.backdate).UTC().Truncate(time.Second), notAfter.UTC().Truncate(time.Second), nil
}

// subjectKeyID is RFC 5280 §4.2.1.2 method 1, the SHA-1 of the
// subjectPublicKey BIT STRING's value (in FIPS 140-3 mode, the leftmost
// 160 bits of its SHA-256, RFC 7093 §2), as x509util.GenerateSubjectKeyID
// computes it, without encoding the whole SubjectPublicKeyInfo for ECDSA
// and Ed25519 keys.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	var key []byte
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		b, err := k.Bytes() // the uncompressed point, SEC 1 §2.3.3 (RFC 5480 §2.2)
		if err != nil {
			return nil, badKey(err)
		}
		key = b
	case ed25519.PublicKey:
		key = k // RFC 8410 §4
	default:
		ski, err := x509util.GenerateSubjectKeyID(pub)
		if err != nil {
			return nil, badKey(err)
		}
		return ski, nil
	}
	if fips140.Enabled() {
		h := sha256.Sum256(key)
		return h[:20], nil
	}
	h := sha1.Sum(key) //nolint:gosec // RFC 5280 §4.2.1.2
	return h[:], nil
}

// publicKeyAlgorithm is x509.ParseCertificate's PublicKeyAlgorithm for
// the key types checkLeafKey accepts.
func publicKeyAlgorithm(pub crypto.PublicKey) x509.PublicKeyAlgorithm {
	switch pub.(type) {
	case *ecdsa.PublicKey:
		return x509.ECDSA
	case ed25519.PublicKey:
		return x509.Ed25519
	}
	return x509.RSA
}

// stringTag is the tag encoding/asn1 gives a Go string without a type:
// PrintableString when every character is one (X.680 §41.4, without '*'
// and '&'), else UTF8String.
func stringTag(s string) cbasn1.Tag {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			'\'' <= c && c <= ')' || '+' <= c && c <= '/' || c == ' ' || c == ':' || c == '=' || c == '?') {
			return cbasn1.UTF8String
		}
	}
	return cbasn1.PrintableString
}

// splitCertificate cuts a DER certificate that x509.CreateCertificate
// made into its TBSCertificate, SubjectPublicKeyInfo and signature value
// (RFC 5280 §4.1), the raw fields x509.ParseCertificate sets.
func splitCertificate(der []byte) (tbs, spki, sig []byte, err error) {
	in := cryptobyte.String(der)
	var cert, tbsEl, body cryptobyte.String
	var sigBits []byte
	ok := in.ReadASN1(&cert, cbasn1.SEQUENCE) && in.Empty() &&
		cert.ReadASN1Element(&tbsEl, cbasn1.SEQUENCE) &&
		cert.SkipASN1(cbasn1.SEQUENCE) && // signatureAlgorithm
		cert.ReadASN1BitStringAsBytes(&sigBits) && cert.Empty()
	tbsBody := tbsEl
	var spkiEl cryptobyte.String
	ok = ok && tbsBody.ReadASN1(&body, cbasn1.SEQUENCE) &&
		body.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) && // version
		body.SkipASN1(cbasn1.INTEGER) && // serialNumber
		body.SkipASN1(cbasn1.SEQUENCE) && // signature
		body.SkipASN1(cbasn1.SEQUENCE) && // issuer
		body.SkipASN1(cbasn1.SEQUENCE) && // validity
		body.SkipASN1(cbasn1.SEQUENCE) && // subject
		body.ReadASN1Element(&spkiEl, cbasn1.SEQUENCE)
	if !ok {
		return nil, nil, nil, errors.New("the signed certificate cannot be cut into its parts")
	}
	return tbsEl, spkiEl, sigBits, nil
}
