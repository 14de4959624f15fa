package enroll

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"strings"

	"github.com/fleetca/fleetca/internal/fault"
)

// Extension OIDs of RFC 5280 §4.2.1 that a CSR's extensionRequest
// (PKCS #9, RFC 2985 §5.4.2) may carry.
var (
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidEKUClientAuth    = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 2}
)

// extHint says what a device's CSR may ask for.
const extHint = "make the CSR without extensions, or with only what a device certificate gets anyway " +
	"(subjectAltName with the device URI, keyUsage digitalSignature, extendedKeyUsage clientAuth, basicConstraints CA:FALSE); " +
	"the CA sets the certificate's extensions"

// checkExtensions refuses a CSR whose extension request asks for anything
// a device certificate does not get (DESIGN.md, "The device certificate"):
// fleetca refuses such a request rather than rewrite it. It accepts only
//   - subjectAltName, which checkNames has checked;
//   - keyUsage with no bit but digitalSignature;
//   - extendedKeyUsage with clientAuth alone;
//   - basicConstraints CA:FALSE without a path length;
//
// and refuses any other extension by its name and OID, known or not,
// critical or not (a subjectKeyIdentifier or an OCSP must-staple asks for
// something the certificate does not carry). An extension asked for twice
// never gets here: x509.ParseCertificateRequest refuses it. The refusal names the extension and what it asks for. Attributes
// other than the extension request (challengePassword, which EST and SCEP
// clients send, or unstructuredName) ask nothing of the certificate and are
// not looked at here.
func checkExtensions(csr *x509.CertificateRequest) error {
	for _, ext := range csr.Extensions {
		name := extName(ext.Id)
		var refused string // what the extension asks for that is refused
		switch {
		case ext.Id.Equal(oidSAN):
			continue
		case ext.Id.Equal(oidBasicConstraints):
			refused = basicConstraintsAsked(ext.Value)
		case ext.Id.Equal(oidKeyUsage):
			refused = keyUsageAsked(ext.Value)
		case ext.Id.Equal(oidExtKeyUsage):
			refused = extKeyUsageAsked(ext.Value)
		default:
			return fault.New(fault.BadCSR,
				fmt.Sprintf("the CSR asks for extension %s, which a device certificate does not get", name), extHint)
		}
		if refused != "" {
			return fault.New(fault.BadCSR,
				fmt.Sprintf("the CSR asks for %s %s, which a device certificate does not get", name, refused), extHint)
		}
	}
	return nil
}

// basicConstraintsAsked returns what a basicConstraints value asks for
// beyond CA:FALSE, or "". RFC 5280 §4.2.1.9: SEQUENCE { cA BOOLEAN DEFAULT
// FALSE, pathLenConstraint INTEGER (0..MAX) OPTIONAL }.
func basicConstraintsAsked(v []byte) string {
	var bc struct {
		IsCA    bool `asn1:"optional"`
		PathLen int  `asn1:"optional,default:-1"`
	}
	if rest, err := asn1.Unmarshal(v, &bc); err != nil || len(rest) != 0 {
		return "with a value that does not parse"
	}
	switch {
	case bc.IsCA:
		return "CA:TRUE"
	case bc.PathLen >= 0:
		return fmt.Sprintf("pathlen:%d", bc.PathLen)
	}
	return ""
}

// keyUsageNames are the bits of RFC 5280 §4.2.1.3 KeyUsage, in order.
var keyUsageNames = []string{"digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment",
	"keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly"}

// keyUsageAsked returns the key usages a keyUsage value asks for beyond
// digitalSignature, or "".
func keyUsageAsked(v []byte) string {
	var bits asn1.BitString
	if rest, err := asn1.Unmarshal(v, &bits); err != nil || len(rest) != 0 {
		return "with a value that does not parse"
	}
	var extra []string
	for i := 1; i < bits.BitLength; i++ {
		if bits.At(i) == 0 {
			continue
		}
		if i < len(keyUsageNames) {
			extra = append(extra, keyUsageNames[i])
		} else {
			extra = append(extra, fmt.Sprintf("bit %d", i))
		}
	}
	return strings.Join(extra, ", ")
}

// ekuNames name the common extended key usages (RFC 5280 §4.2.1.12).
var ekuNames = map[string]string{
	"2.5.29.37.0":       "anyExtendedKeyUsage",
	"1.3.6.1.5.5.7.3.1": "serverAuth",
	"1.3.6.1.5.5.7.3.2": "clientAuth",
	"1.3.6.1.5.5.7.3.3": "codeSigning",
	"1.3.6.1.5.5.7.3.4": "emailProtection",
	"1.3.6.1.5.5.7.3.8": "timeStamping",
	"1.3.6.1.5.5.7.3.9": "OCSPSigning",
}

// extKeyUsageAsked returns the extended key usages an extKeyUsage value
// asks for besides clientAuth, or "". RFC 5280 §4.2.1.12: SEQUENCE SIZE
// (1..MAX) OF KeyPurposeId.
func extKeyUsageAsked(v []byte) string {
	var oids []asn1.ObjectIdentifier
	if rest, err := asn1.Unmarshal(v, &oids); err != nil || len(rest) != 0 || len(oids) == 0 {
		return "with a value that does not parse"
	}
	var extra []string
	for _, oid := range oids {
		if oid.Equal(oidEKUClientAuth) {
			continue
		}
		if n, ok := ekuNames[oid.String()]; ok {
			extra = append(extra, n)
		} else {
			extra = append(extra, oid.String())
		}
	}
	return strings.Join(extra, ", ")
}

// extNames name the extensions a CSR most often carries.
var extNames = map[string]string{
	"2.5.29.14":              "subjectKeyIdentifier",
	"2.5.29.15":              "keyUsage",
	"2.5.29.17":              "subjectAltName",
	"2.5.29.19":              "basicConstraints",
	"2.5.29.30":              "nameConstraints",
	"2.5.29.31":              "cRLDistributionPoints",
	"2.5.29.32":              "certificatePolicies",
	"2.5.29.35":              "authorityKeyIdentifier",
	"2.5.29.37":              "extendedKeyUsage",
	"1.3.6.1.5.5.7.1.1":      "authorityInfoAccess",
	"1.3.6.1.5.5.7.1.24":     "tlsFeature (OCSP must-staple)",
	"2.16.840.1.113730.1.1":  "nsCertType",
	"1.3.6.1.4.1.311.20.2":   "certificateTemplateName",
	"1.3.6.1.4.1.311.21.7":   "certificateTemplate",
	"2.16.840.1.113730.1.13": "nsComment",
	"1.2.840.113549.1.9.15":  "smimeCapabilities",
}

// extName names an extension for a message: "keyUsage (2.5.29.15)", or the
// OID alone.
func extName(oid asn1.ObjectIdentifier) string {
	if n, ok := extNames[oid.String()]; ok {
		return n + " (" + oid.String() + ")"
	}
	return oid.String()
}
