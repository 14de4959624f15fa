package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"

	"go.step.sm/crypto/x509util"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
)

// serialBytes is the length of a serial number before its top bit is
// cleared: 159 bits, within RFC 5280 §4.1.2.2's 20 octets, of which 128 are
// random (newSerial), above the CA/Browser Forum's 64 bits.
const serialBytes = 20

// profile is everything about the certificates an Authority issues that
// New can work out once: issuer, URLs, signature algorithm, lifetimes.
// It is read-only after newProfile, so SignDevice may share its slices
// with the templates it builds (x509.CreateCertificate only reads them).
type profile struct {
	issuer      *x509.Certificate
	sigAlg      x509.SignatureAlgorithm
	trustDomain api.TrustDomain
	ocsp        []string // AIA id-ad-ocsp (RFC 5280 §4.2.2.1)
	caIssuers   []string // AIA id-ad-caIssuers
	crl         []string // CRL distribution point (RFC 5280 §4.2.1.13)
	// partitionCRL is each partition's CRL distribution point, for device
	// certificates; nil without partitions (they use crl).
	partitionCRL   [][]string
	deviceEKU      []x509.ExtKeyUsage
	serverEKU      []x509.ExtKeyUsage
	deviceValidity time.Duration
	serverValidity time.Duration
	backdate       time.Duration
	// deviceExts are the extensions every device certificate shares,
	// encoded once (devicecert.go).
	deviceExts deviceExtensions
}

// newProfile builds the profile from a defaulted, validated cfg, the
// public URL without its trailing slash, and the issuer.
func newProfile(cfg Config, baseURL string, trustDomain api.TrustDomain, partitions int, issuer *x509.Certificate, pub crypto.PublicKey) (profile, error) {
	sigAlg, err := signatureAlgorithm(pub)
	if err != nil {
		return profile{}, fault.Wrap(err, fault.Malformed,
			"the intermediate key is of an unsupported type", "use an ECDSA, RSA or Ed25519 intermediate")
	}
	var parts [][]string
	if partitions > 1 {
		parts = make([][]string, partitions)
		for p := range parts {
			parts[p] = []string{PartitionURL(baseURL, p)}
		}
	}
	p := profile{
		partitionCRL:   parts,
		issuer:         issuer,
		sigAlg:         sigAlg,
		trustDomain:    trustDomain,
		ocsp:           []string{baseURL + "/ocsp"},
		caIssuers:      []string{baseURL + "/intermediate.crt"},
		crl:            []string{baseURL + "/crl"},
		deviceEKU:      []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		serverEKU:      []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		deviceValidity: cfg.DeviceValidity,
		serverValidity: cfg.ServerValidity,
		backdate:       cfg.Backdate,
	}
	if p.deviceExts, err = newDeviceExtensions(&p); err != nil {
		return profile{}, fmt.Errorf("encode the device certificate extensions: %w", err)
	}
	return p, nil
}

// DeviceRequest is what SignDevice certifies. The caller (enroll) has
// already checked the CSR, the key and the names.
type DeviceRequest struct {
	// DeviceID names the device, as api.ParseDeviceID returns it.
	DeviceID api.DeviceID
	// PublicKey is the device's key: *ecdsa.PublicKey, *rsa.PublicKey or
	// ed25519.PublicKey. Its strength is enroll's policy, not checked here.
	PublicKey crypto.PublicKey
}

// SignDevice issues a device certificate (docs/ARCHITECTURE.md, "The
// contract"):
//
//   - subject CN = DeviceID and nothing else; one URI SAN, the device's
//     SPIFFE ID spiffe://<trust domain>/device/<DeviceID>
//     (api.DeviceSPIFFEID; SPIFFE X.509-SVID §2);
//   - EKU clientAuth; KU digitalSignature, critical, for every key type,
//     RSA included (RFC 5280 §4.2.1.12 allows no keyEncipherment with
//     clientAuth); basicConstraints cA false, critical;
//   - subject and authority key identifiers (RFC 5280 §4.2.1.1-2, method
//     1: SHA-1 of the subjectPublicKey);
//   - AIA with OCSP and caIssuers URLs and a CRL distribution point, on
//     Deps.PublicURL: the full CRL's, or with Deps.CRLPartitions > 1 its
//     partition's (PartitionOfSerial, PartitionURL; PartitionOf reads it
//     back for the store record);
//   - a serial of 159 random bits, positive;
//   - NotBefore now minus Backdate, NotAfter now plus DeviceValidity but
//     never after the intermediate's NotAfter;
//   - signed by the intermediate with the algorithm its key implies.
//
// A DeviceID that api.ParseDeviceID refuses (one made by conversion) is
// its Malformed fault: ca signs, so it applies the rule again rather than
// trust the type. An unsupported key type is BadKey, an
// expired intermediate Unavailable; signing failures are internal. ctx is
// checked before signing. SignDevice reads req.DeviceID and req.PublicKey.
func (a *Authority) SignDevice(ctx context.Context, req DeviceRequest) (*x509.Certificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if _, err := api.ParseDeviceID(string(req.DeviceID)); err != nil {
		return nil, err
	}
	if err := checkLeafKey(req.PublicKey); err != nil {
		return nil, err
	}
	// The template's fields, were SignDevice to fill them, would be:
	// Subject CN DeviceID; URIs the SPIFFE ID; KeyUsage digitalSignature
	// alone, for RSA keys too (RFC 5280 §4.2.1.12 allows only
	// digitalSignature and/or keyAgreement with clientAuth, and a TLS
	// client never decrypts with its key); ExtKeyUsage clientAuth;
	// BasicConstraintsValid. signDevice encodes them itself, the same.
	return a.signDevice(req.DeviceID, req.PublicKey)
}

// SignServer issues a TLS server certificate for the HTTPS listener: EKU
// serverAuth; KU digitalSignature (plus keyEncipherment for RSA); DNS and
// IP SANs; subject CN the first DNS name, else the first IP, when it fits
// in 64 characters (otherwise an empty subject and a critical SAN, RFC 5280
// §4.2.1.6); ServerValidity; the same AIA, CRL distribution point, key
// identifiers and serials as SignDevice. No names, or a DNS name that is
// not a lowercase hostname (a leading "*." is allowed), is Malformed.
func (a *Authority) SignServer(ctx context.Context, dns []string, ips []net.IP, pub crypto.PublicKey) (*x509.Certificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(dns) == 0 && len(ips) == 0 {
		return nil, fault.WithField(fault.New(fault.Malformed, "a server certificate needs a DNS name or an IP address",
			"name the server's host in dns, or its address in ips"), "dns")
	}
	for _, name := range dns {
		if !validHostname(name) {
			return nil, fault.WithField(fault.New(fault.Malformed, fmt.Sprintf("%q is not a valid DNS name", name),
				"use a lowercase hostname such as ca.example.net"), "dns")
		}
	}
	for _, ip := range ips {
		if len(ip) != net.IPv4len && len(ip) != net.IPv6len {
			return nil, fault.New(fault.Malformed, fmt.Sprintf("%v is not an IP address", ip), "")
		}
	}
	if err := checkLeafKey(pub); err != nil {
		return nil, err
	}
	// keyEncipherment for RSA: RSA key transport in TLS 1.2 (RFC 5246
	// §7.4.7.1); RFC 5280 §4.2.1.12 allows it with serverAuth.
	ku := x509.KeyUsageDigitalSignature
	if _, ok := pub.(*rsa.PublicKey); ok {
		ku |= x509.KeyUsageKeyEncipherment
	}
	var cn string
	if len(dns) > 0 {
		cn = dns[0]
	} else {
		cn = ips[0].String()
	}
	if len(cn) > 64 {
		cn = ""
	}
	p := &a.profile
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		DNSNames:              dns,
		IPAddresses:           ips,
		KeyUsage:              ku,
		ExtKeyUsage:           p.serverEKU,
		BasicConstraintsValid: true,
	}
	return a.sign(tmpl, pub, p.serverValidity)
}

// sign completes tmpl (serial, validity, key identifiers, AIA, the full
// CRL's distribution point, signature algorithm) and signs it with the
// intermediate. It fills in every field x509.CreateCertificate reads that
// the profile decides, and leaves the rest to tmpl. SignServer uses it;
// device certificates take signDevice's quicker way.
func (a *Authority) sign(tmpl *x509.Certificate, pub crypto.PublicKey, validity time.Duration) (*x509.Certificate, error) {
	p := &a.profile
	serial, notBefore, notAfter, err := a.validity(validity)
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(pub)
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = notBefore
	tmpl.NotAfter = notAfter
	tmpl.SubjectKeyId = ski
	// AuthorityKeyId comes from the issuer's SubjectKeyId.
	tmpl.OCSPServer = p.ocsp
	tmpl.IssuingCertificateURL = p.caIssuers
	tmpl.CRLDistributionPoints = p.crl
	tmpl.SignatureAlgorithm = p.sigAlg
	// x509util.CreateCertificate signs with x509.CreateCertificate (which
	// also verifies the signature it made) and parses the result once.
	cert, err := x509util.CreateCertificate(tmpl, p.issuer, pub, a.signer)
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	return cert, nil
}

// intermediateExpired is the Unavailable fault of signing after the
// intermediate's NotAfter.
func intermediateExpired(end time.Time) error {
	return fault.New(fault.Unavailable,
		fmt.Sprintf("the intermediate expired at %s", end.UTC().Format(time.RFC3339)),
		"issue a new intermediate")
}

// badKey is the BadKey fault of a public key that cannot be encoded.
func badKey(err error) error {
	return fault.Wrap(err, fault.BadKey, "the public key cannot be encoded", "")
}

// checkLeafKey returns a BadKey fault unless pub is of a type we certify.
// Its strength is enroll's policy.
func checkLeafKey(pub crypto.PublicKey) error {
	switch pub.(type) {
	case *ecdsa.PublicKey, *rsa.PublicKey, ed25519.PublicKey:
		return nil
	}
	return fault.New(fault.BadKey, fmt.Sprintf("a %T key cannot be certified", pub),
		"use an ECDSA P-256 or P-384, RSA or Ed25519 key")
}

// newSerial returns a positive, non-zero serial of 159 bits (20 bytes with
// the top bit cleared, so that the DER INTEGER needs no leading zero and
// stays within 20 octets; RFC 5280 §4.1.2.2): the milliseconds of now's
// Unix time modulo 2^31 in the top 31 bits, then 128 random bits.
//
// The random bits are what the CA/Browser Forum's 64 bits (BR §7.1) and
// our own 128 ask for, and the low bits that PartitionOfSerial reads. The
// time on top makes the serials of an enrollment burst neighbours in the
// store's serial-ordered indexes (a bbolt commit rewrites a few leaf pages
// at the right edge, not one random page per certificate). It wraps every
// 24.8 days, which only moves where the neighbours are; order is not
// promised, uniqueness rests on the random bits.
func newSerial(now time.Time) (*big.Int, error) {
	var b [serialBytes]byte
	const randomBytes = 16
	for {
		if _, err := rand.Read(b[serialBytes-randomBytes:]); err != nil {
			return nil, fmt.Errorf("serial: %w", err)
		}
		// 31 bits of milliseconds in b[0:4], the top bit clear; the 128
		// random bits in b[4:20].
		binary.BigEndian.PutUint32(b[:4], uint32(now.UnixMilli())&0x7fffffff)
		if s := new(big.Int).SetBytes(b[:]); s.Sign() > 0 {
			return s, nil
		}
	}
}

// validHostname reports whether name is a lowercase LDH hostname of at most
// 253 bytes (RFC 1123 §2.1), optionally with a leading "*." wildcard label.
func validHostname(name string) bool {
	name = strings.TrimPrefix(name, "*.")
	if name == "" || len(name) > 253 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
