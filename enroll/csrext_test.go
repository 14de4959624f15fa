package enroll

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"strings"
	"testing"

	"github.com/fleetca/fleetca/internal/fault"
)

// TestCheckExtensionsNamesTheExtension: a CSR asking for more than a device
// gets is refused as BadCSR, and the detail names the extension and what it
// asks for, because the user must find it in the CSR they made.
func TestCheckExtensionsNamesTheExtension(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string // in the detail; nil: accepted
	}{
		{"csr-ext-ca-false.pem", nil},
		{"csr-ext-ku-digitalsignature.pem", nil},
		{"csr-ext-eku-clientauth.pem", nil},
		{"csr-challenge-password.pem", nil},
		{"csr-p256-uri.pem", nil},
		{"csr-ext-ca-true.pem", []string{"basicConstraints", "2.5.29.19", "CA:TRUE"}},
		{"csr-ext-ku-keycertsign.pem", []string{"keyUsage", "keyCertSign, cRLSign"}},
		{"csr-ext-ku-keyencipherment.pem", []string{"keyUsage", "keyEncipherment"}},
		{"csr-ext-eku-serverauth.pem", []string{"extendedKeyUsage", "serverAuth"}},
		{"csr-ext-unknown.pem", []string{"1.3.6.1.4.1.99999.1"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := checkCSR(readCSR(t, tc.file), binding{deviceID: "dev-1"}, testTrustDomain)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("checkCSR(%s) = %v, want accepted", tc.file, err)
				}
				return
			}
			fe, ok := errors.AsType[*fault.Error](err)
			if !ok || fe.Kind != fault.BadCSR {
				t.Fatalf("checkCSR(%s) = %v, want BadCSR", tc.file, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(fe.Detail, w) {
					t.Errorf("checkCSR(%s) detail %q, want it to name %q", tc.file, fe.Detail, w)
				}
			}
		})
	}
}

// TestExtensionValues: the value parsers, on values the fixtures do not
// cover (pathlen, malformed DER, bits past cRLSign, an empty EKU list).
func TestExtensionValues(t *testing.T) {
	mustMarshal := func(v any) []byte {
		b, err := asn1.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		ext  pkix.Extension
		want string // in the detail; "": accepted
	}{
		{"ok/ku-empty", pkix.Extension{Id: oidKeyUsage, Value: mustMarshal(asn1.BitString{})}, ""},
		{"fail/ca-false-pathlen", pkix.Extension{Id: oidBasicConstraints, Value: mustMarshal(struct {
			PathLen int
		}{0})}, "pathlen:0"},
		{"fail/bc-garbage", pkix.Extension{Id: oidBasicConstraints, Value: []byte{0x30, 0x03, 0x01}}, "does not parse"},
		{"fail/bc-trailing", pkix.Extension{Id: oidBasicConstraints, Value: []byte{0x30, 0x00, 0x00}}, "does not parse"},
		{"fail/ku-decipher-only", pkix.Extension{Id: oidKeyUsage, Value: mustMarshal(asn1.BitString{Bytes: []byte{0x80, 0x80}, BitLength: 9})}, "decipherOnly"},
		{"fail/ku-bit-10", pkix.Extension{Id: oidKeyUsage, Value: mustMarshal(asn1.BitString{Bytes: []byte{0x00, 0x20}, BitLength: 11})}, "bit 10"},
		{"fail/ku-garbage", pkix.Extension{Id: oidKeyUsage, Value: []byte{0x04, 0x00}}, "does not parse"},
		{"fail/eku-empty", pkix.Extension{Id: oidExtKeyUsage, Value: mustMarshal([]asn1.ObjectIdentifier{})}, "does not parse"},
		{"fail/eku-any", pkix.Extension{Id: oidExtKeyUsage, Value: mustMarshal([]asn1.ObjectIdentifier{{2, 5, 29, 37, 0}})}, "anyExtendedKeyUsage"},
		{"fail/eku-private", pkix.Extension{Id: oidExtKeyUsage, Value: mustMarshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 4, 1, 99999, 2}})}, "1.3.6.1.4.1.99999.2"},
		{"fail/ski", pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 14}, Value: mustMarshal([]byte{1, 2, 3})}, "subjectKeyIdentifier (2.5.29.14)"},
		{"fail/must-staple", pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 24}, Value: mustMarshal([]int{5})}, "tlsFeature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkExtensions(&x509.CertificateRequest{Extensions: []pkix.Extension{tc.ext}})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("checkExtensions = %v, want accepted", err)
				}
				return
			}
			fe, ok := errors.AsType[*fault.Error](err)
			if !ok || fe.Kind != fault.BadCSR || !strings.Contains(fe.Detail, tc.want) {
				t.Fatalf("checkExtensions = %v, want BadCSR naming %q", err, tc.want)
			}
		})
	}
}
