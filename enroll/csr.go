package enroll

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/smallstep/certificates/policy"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// MaxCSRBytes bounds the DER of a CSR; an 8192-bit RSA request with its one
// permitted name is far below it.
const MaxCSRBytes = 16 << 10

// request is a CSR that passed every check: its device and key.
type request struct {
	csr      *x509.CertificateRequest
	deviceID api.DeviceID
	keyHash  store.KeyHash
}

// binding says which device IDs a token lets a CSR name.
type binding struct {
	deviceID api.DeviceID // the token's device, or ""
	pattern  string       // the token's glob, or ""
	// stepDNS allows one DNS SAN equal to the device ID: the step CLI
	// puts the token's sans in its CSR. The certificate is fleetca's
	// profile all the same.
	stepDNS bool
	// names is the Service's name-policy engine (newNamePolicy), built
	// once; nil builds one for the request.
	names *policy.NamePolicyEngine
}

// newNamePolicy returns the name-policy engine of every CSR without a step
// DNS SAN: URI SANs in the trust domain, and no other SAN type (the
// engine refuses a type without a permitted rule once any rule is
// permitted). The CN needs no rule of the engine: deviceOf and checkNames
// allow only CN=<device ID>. The engine is read-only once built, so
// requests share it.
func newNamePolicy(trustDomain api.TrustDomain) (*policy.NamePolicyEngine, error) {
	e, err := policy.New(policy.WithPermittedURIDomains(string(trustDomain)))
	if err != nil {
		return nil, fmt.Errorf("build the name policy of trust domain %q: %w", trustDomain, err)
	}
	return e, nil
}

// acceptedSigAlgs are the CSR signature algorithms we verify; SHA-1 and MD5
// are refused (their collisions make the proof of possession worthless).
var acceptedSigAlgs = map[x509.SignatureAlgorithm]bool{
	x509.SHA256WithRSA: true, x509.SHA384WithRSA: true, x509.SHA512WithRSA: true,
	x509.SHA256WithRSAPSS: true, x509.SHA384WithRSAPSS: true, x509.SHA512WithRSAPSS: true,
	x509.ECDSAWithSHA256: true, x509.ECDSAWithSHA384: true, x509.ECDSAWithSHA512: true,
	x509.PureEd25519: true,
}

var (
	oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidSAN        = asn1.ObjectIdentifier{2, 5, 29, 17}
)

// checkCSR parses a DER CSR and applies the key, signature, name and
// extension policy.
// The device ID comes from the binding's device, or, for a pattern, from
// the CSR's CN. trustDomain names the device URI SAN the CSR may carry.
func checkCSR(der []byte, b binding, trustDomain api.TrustDomain) (*request, error) {
	csr, err := parseCSR(der)
	if err != nil {
		return nil, err
	}
	id, err := deviceOf(csr, b)
	if err != nil {
		return nil, err
	}
	if err := checkNames(csr, id, trustDomain, b.stepDNS, b.names); err != nil {
		return nil, err
	}
	if err := checkExtensions(csr); err != nil {
		return nil, err
	}
	return &request{csr: csr, deviceID: id, keyHash: sha256.Sum256(csr.RawSubjectPublicKeyInfo)}, nil
}

// parseCSR parses a DER CSR and applies the size, key and signature policy
// that every CSR meets, whatever it asks for.
func parseCSR(der []byte) (*x509.CertificateRequest, error) {
	if len(der) > MaxCSRBytes {
		return nil, fault.New(fault.TooLarge, fmt.Sprintf("the CSR is %d bytes, more than %d", len(der), MaxCSRBytes), "send a CSR with one key and no extra names")
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		if kerr := describeKey(der); kerr != nil {
			return nil, kerr
		}
		return nil, fault.Wrap(err, fault.BadCSR, "the CSR is not a valid PKCS #10 request",
			"send a CSR made by openssl req, fleetca enroll or another PKCS #10 tool")
	}
	if err := checkKey(csr.PublicKey); err != nil {
		return nil, err
	}
	if !acceptedSigAlgs[csr.SignatureAlgorithm] {
		return nil, fault.New(fault.BadCSR, fmt.Sprintf("the CSR is signed with %s, which is not accepted", csr.SignatureAlgorithm),
			"sign the CSR with SHA-256 or stronger (openssl req -sha256)")
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fault.Wrap(err, fault.BadCSR, "the CSR signature does not verify",
			"the CSR must be signed by the private key it certifies; make it again")
	}
	return csr, nil
}

// deviceOf decides the device ID: the token's, or the CN for a pattern token.
func deviceOf(csr *x509.CertificateRequest, b binding) (api.DeviceID, error) {
	cn := csr.Subject.CommonName
	if b.deviceID != "" {
		if cn != "" && cn != string(b.deviceID) {
			return "", fault.New(fault.BadCSR,
				fmt.Sprintf("the CSR names device %q but the token is for device %q", cn, b.deviceID),
				fmt.Sprintf("make the CSR with -subj /CN=%s, or with no subject", b.deviceID))
		}
		return b.deviceID, nil
	}
	if cn == "" {
		return "", fault.New(fault.BadCSR, "the CSR has no common name, and a pattern token takes the device ID from it",
			fmt.Sprintf("make the CSR with -subj /CN=<device ID> matching %q", b.pattern))
	}
	id, err := api.ParseDeviceID(cn)
	if err != nil {
		return "", fault.Wrap(err, fault.BadCSR, fmt.Sprintf("the CSR's common name %q is not a device ID", cn), api.DeviceIDHint)
	}
	if !matchPattern(b.pattern, id) {
		return "", fault.New(fault.Forbidden, fmt.Sprintf("the token does not allow device %q: it allows %q", id, b.pattern),
			"use a device ID that matches the token's pattern, or a token for this device")
	}
	return id, nil
}

// checkNames refuses a CSR that names anything but its device: a subject
// other than CN=<id>, and any SAN other than the one device URI. Names are
// checked with the smallstep name-policy engine (names, or one built for
// the request; with stepDNS always one for the request, which also allows
// the DNS name id), then for exactness (the engine matches URI hosts, not
// paths, and skips SAN types Go cannot parse).
func checkNames(csr *x509.CertificateRequest, id api.DeviceID, trustDomain api.TrustDomain, stepDNS bool, names *policy.NamePolicyEngine) error {
	const hint = "make the CSR with only CN=<device ID> in its subject and no SANs; the CA adds the device's names"
	for _, atv := range csr.Subject.Names {
		if !atv.Type.Equal(oidCommonName) {
			return fault.New(fault.BadCSR, fmt.Sprintf("the CSR subject has attribute %s = %v; only CN is allowed", attrName(atv.Type), atv.Value), hint)
		}
	}
	if n := len(csr.Subject.Names); n > 1 {
		return fault.New(fault.BadCSR, fmt.Sprintf("the CSR subject has %d common names; at most one is allowed", n), hint)
	}
	engine := names
	if stepDNS {
		for _, d := range csr.DNSNames {
			if d != string(id) {
				return fault.New(fault.BadCSR, fmt.Sprintf("the CSR asks for DNS name %q; a step token allows only %q", d, id), hint)
			}
		}
		if len(csr.DNSNames) > 1 {
			return fault.New(fault.BadCSR, fmt.Sprintf("the CSR asks for %d DNS names; a step token allows one", len(csr.DNSNames)), hint)
		}
		var err error
		if engine, err = policy.New(
			policy.WithSubjectCommonNameVerification(),
			policy.WithPermittedCommonNames(string(id)),
			policy.WithPermittedURIDomains(string(trustDomain)),
			policy.WithPermittedDNSDomains(string(id)),
		); err != nil {
			return fmt.Errorf("build name policy for %q: %w", id, err)
		}
	} else if engine == nil {
		var err error
		if engine, err = newNamePolicy(trustDomain); err != nil {
			return err
		}
	}
	if err := engine.IsX509CertificateRequestAllowed(csr); err != nil {
		var pe *policy.NamePolicyError
		if errors.As(err, &pe) {
			return fault.Wrap(err, fault.BadCSR, fmt.Sprintf("the CSR asks for %s name %q, which is not device %q's", pe.NameType, pe.Name, id), hint)
		}
		return fmt.Errorf("name policy for %q: %w", id, err)
	}
	want := api.DeviceSPIFFEID(trustDomain, id).String()
	for _, u := range csr.URIs {
		if u.String() != want {
			return fault.New(fault.BadCSR, fmt.Sprintf("the CSR asks for URI %q; the only one allowed is %q", u, want), hint)
		}
	}
	if len(csr.URIs) > 1 {
		return fault.New(fault.BadCSR, fmt.Sprintf("the CSR asks for %d URIs; at most one is allowed", len(csr.URIs)), hint)
	}
	parsed := len(csr.DNSNames) + len(csr.IPAddresses) + len(csr.EmailAddresses) + len(csr.URIs)
	for _, ext := range csr.Extensions {
		if !ext.Id.Equal(oidSAN) {
			continue
		}
		if n, ok := countGeneralNames(ext.Value); !ok || n != parsed {
			return fault.New(fault.BadCSR, "the CSR asks for a subject alternative name of a type fleetca does not issue", hint)
		}
	}
	return nil
}

// countGeneralNames counts the entries of a SubjectAltName extension value
// (RFC 5280 §4.2.1.6, GeneralNames).
func countGeneralNames(v []byte) (int, bool) {
	in := cryptobyte.String(v)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() {
		return 0, false
	}
	n := 0
	for !seq.Empty() {
		var name cryptobyte.String
		var tag cbasn1.Tag
		if !seq.ReadAnyASN1(&name, &tag) {
			return 0, false
		}
		n++
	}
	return n, true
}

// attrName names common subject attributes for error messages.
func attrName(oid asn1.ObjectIdentifier) string {
	names := map[string]string{
		"2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU",
		"2.5.4.5": "serialNumber", "1.2.840.113549.1.9.1": "emailAddress",
	}
	if n, ok := names[oid.String()]; ok {
		return n
	}
	return oid.String()
}
