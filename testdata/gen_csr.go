//go:build ignore

// gen_csr writes the CSR fixtures in testdata that Go can make: one PEM file
// per case, named by it. README.md says what each is and what enrolling it
// must get. The DSA and secp256k1 fixtures, which Go cannot sign, come from
// gen_csr_openssl.sh.
//
// Rerun with either of
//
//	go run ./testdata/gen_csr.go            # from the repo root
//	cd testdata && go run gen_csr.go
//
// or pass -out DIR to write elsewhere. Keys are generated in memory and thrown
// away: testdata keeps no private keys. Each run makes new keys, so every byte
// of the fixtures changes; only what they are stays the same. Before writing
// anything the program parses each fixture back and checks it is the defect
// it is named for, and stops if one is not.
//
// No GODEBUG is needed: the smallest RSA key here is 1024 bits, which
// rsa.GenerateKey still allows (it refuses only keys under 1024 bits unless
// GODEBUG=rsa1024min=0).
package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fleetca/fleetca/api"
)

const (
	deviceID    = "dev-1"
	trustDomain = "fleet.test"
)

// fixture is one file to write. check, if set, says whether the bytes are
// what the name promises.
type fixture struct {
	name  string
	pem   []byte
	check func(der []byte) error
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("gen_csr: ")
	out := flag.String("out", defaultOut(), "directory to write the fixtures to")
	flag.Parse()

	fixtures, err := build()
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range fixtures {
		if f.check != nil {
			b, _ := pem.Decode(f.pem)
			if err := f.check(b.Bytes); err != nil {
				log.Fatalf("%s: %v", f.name, err)
			}
		}
	}
	for _, f := range fixtures {
		if err := os.WriteFile(filepath.Join(*out, f.name), f.pem, 0o644); err != nil {
			log.Fatal(err)
		}
	}
	log.Printf("wrote %d fixtures to %s", len(fixtures), *out)
}

// defaultOut is testdata whether the program runs from the repo root or from
// testdata itself.
func defaultOut() string {
	if _, err := os.Stat(filepath.Join("testdata", "gen_csr.go")); err == nil {
		return "testdata"
	}
	return "."
}

func build() ([]fixture, error) {
	var fs []fixture
	add := func(name string, der []byte, check func([]byte) error) {
		fs = append(fs, fixture{name: name, pem: pemCSR(der), check: check})
	}
	cn := pkix.Name{CommonName: deviceID}
	uri := spiffe(deviceID)

	// Accepted: every allowed key type, CN=dev-1.
	type keyCase struct {
		name string
		key  func() (crypto.Signer, error)
	}
	okKeys := []keyCase{
		{"csr-p256.pem", ec(elliptic.P256())},
		{"csr-p384.pem", ec(elliptic.P384())},
		{"csr-rsa2048.pem", rsaKey(2048)},
		{"csr-rsa3072.pem", rsaKey(3072)},
		{"csr-ed25519.pem", edKey},
	}
	// Refused keys (BadKey); DSA and secp256k1 come from gen_csr_openssl.sh.
	badKeys := []keyCase{
		{"csr-rsa1024.pem", rsaKey(1024)},
		{"csr-rsa1536.pem", rsaKey(1536)},
		{"csr-p224.pem", ec(elliptic.P224())},
		{"csr-p521.pem", ec(elliptic.P521())},
	}
	for _, kc := range append(okKeys, badKeys...) {
		key, err := kc.key()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kc.name, err)
		}
		der, err := csr(key, &x509.CertificateRequest{Subject: cn})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kc.name, err)
		}
		add(kc.name, der, validCSR)
	}

	// The rest use P-256 so that only the names (or the encoding) differ.
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	long := strings.Repeat("a", 129) // valid alphabet, one over the 128 limit
	named := []struct {
		name string
		tmpl x509.CertificateRequest
	}{
		// Accepted.
		{"csr-p256-uri.pem", x509.CertificateRequest{Subject: cn, URIs: []*url.URL{uri}}},
		{"csr-p256-empty-subject.pem", x509.CertificateRequest{}},
		// Refused: names that are not the device's (BadCSR).
		{"csr-extra-dns.pem", x509.CertificateRequest{Subject: cn, DNSNames: []string{"evil.example.com"}}},
		{"csr-other-cn.pem", x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev-2"}}},
		{"csr-extra-ou.pem", x509.CertificateRequest{Subject: pkix.Name{CommonName: deviceID, OrganizationalUnit: []string{"ops"}}}},
		{"csr-ip-san.pem", x509.CertificateRequest{Subject: cn, IPAddresses: []net.IP{net.IPv4(10, 0, 0, 1)}}},
		{"csr-email-san.pem", x509.CertificateRequest{Subject: cn, EmailAddresses: []string{deviceID + "@" + trustDomain}}},
		{"csr-wrong-uri.pem", x509.CertificateRequest{Subject: cn, URIs: []*url.URL{spiffe("dev-2")}}},
		// Both URIs are the right one: the only defect is that there are two.
		{"csr-two-uris.pem", x509.CertificateRequest{Subject: cn, URIs: []*url.URL{uri, spiffe(deviceID)}}},
		{"csr-bad-device-id.pem", x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev 1/../x"}}},
		{"csr-long-device-id.pem", x509.CertificateRequest{Subject: pkix.Name{CommonName: long}}},
	}
	for _, n := range named {
		der, err := csr(p256, &n.tmpl)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.name, err)
		}
		add(n.name, der, validCSR)
	}

	// Extension requests (PKCS #9 extensionRequest): what a device
	// certificate gets anyway is accepted, anything more is refused by name.
	extended := []struct {
		name string
		exts []pkix.Extension
	}{
		// Accepted.
		{"csr-ext-ca-false.pem", []pkix.Extension{ext(oidBasicConstraints, true, basicConstraints{})}},
		{"csr-ext-ku-digitalsignature.pem", []pkix.Extension{ext(oidKeyUsage, true, keyUsage(x509.KeyUsageDigitalSignature))}},
		{"csr-ext-eku-clientauth.pem", []pkix.Extension{ext(oidExtKeyUsage, false, []asn1.ObjectIdentifier{oidClientAuth})}},
		// Refused (BadCSR): more than a device gets.
		{"csr-ext-ca-true.pem", []pkix.Extension{ext(oidBasicConstraints, true, basicConstraints{IsCA: true})}},
		{"csr-ext-ku-keycertsign.pem", []pkix.Extension{ext(oidKeyUsage, true, keyUsage(x509.KeyUsageDigitalSignature|x509.KeyUsageCertSign|x509.KeyUsageCRLSign))}},
		{"csr-ext-ku-keyencipherment.pem", []pkix.Extension{ext(oidKeyUsage, true, keyUsage(x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment))}},
		{"csr-ext-eku-serverauth.pem", []pkix.Extension{ext(oidExtKeyUsage, false, []asn1.ObjectIdentifier{oidClientAuth, oidServerAuth})}},
		{"csr-ext-unknown.pem", []pkix.Extension{ext(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, false, "anything")}},
		{"csr-ext-eku-twice.pem", []pkix.Extension{
			ext(oidExtKeyUsage, false, []asn1.ObjectIdentifier{oidClientAuth}),
			ext(oidExtKeyUsage, false, []asn1.ObjectIdentifier{oidClientAuth}),
		}},
	}
	for _, e := range extended {
		der, err := csr(p256, &x509.CertificateRequest{Subject: cn, ExtraExtensions: e.exts})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.name, err)
		}
		check := hasExtensions(len(e.exts))
		if e.name == "csr-ext-eku-twice.pem" {
			check = mustNotParse // Go's parser refuses duplicate extension requests
		}
		add(e.name, der, check)
	}

	good, err := csr(p256, &x509.CertificateRequest{Subject: cn})
	if err != nil {
		return nil, err
	}

	// csr-bad-signature.pem: flip the last byte of the DER, which is the last
	// byte of the ECDSA signature's s. The INTEGER keeps its leading byte, so
	// the DER still parses; the signature no longer verifies.
	bad := bytes.Clone(good)
	bad[len(bad)-1] ^= 0xff
	add("csr-bad-signature.pem", bad, func(der []byte) error {
		r, err := x509.ParseCertificateRequest(der)
		if err != nil {
			return fmt.Errorf("want a CSR that parses: %w", err)
		}
		if r.CheckSignature() == nil {
			return errors.New("signature verifies, want it not to")
		}
		return nil
	})

	// csr-truncated.pem: the first half of a valid CSR's DER.
	add("csr-truncated.pem", good[:len(good)/2], mustNotParse)

	// not-a-csr.pem: a CERTIFICATE REQUEST block whose contents are not DER.
	add("not-a-csr.pem", []byte("this is not a DER-encoded PKCS #10 certificate request\n"), mustNotParse)

	// cert-not-csr.pem: a self-signed certificate (PEM type CERTIFICATE) where
	// a CSR belongs.
	cert, err := selfSigned(p256)
	if err != nil {
		return nil, err
	}
	fs = append(fs, fixture{
		name: "cert-not-csr.pem",
		pem:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert}),
		check: func(der []byte) error {
			if _, err := x509.ParseCertificate(der); err != nil {
				return fmt.Errorf("want a certificate: %w", err)
			}
			return mustNotParse(der)
		},
	})
	return fs, nil
}

var (
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidServerAuth       = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 1}
	oidClientAuth       = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 2}
)

// basicConstraints is RFC 5280 §4.2.1.9's value; CA:FALSE encodes as an
// empty SEQUENCE.
type basicConstraints struct {
	IsCA bool `asn1:"optional"`
}

// ext returns an extension whose value is v in DER; it panics on a value
// encoding/asn1 cannot encode, which is a bug here.
func ext(oid asn1.ObjectIdentifier, critical bool, v any) pkix.Extension {
	b, err := asn1.Marshal(v)
	if err != nil {
		panic(err)
	}
	return pkix.Extension{Id: oid, Critical: critical, Value: b}
}

// keyUsage encodes x509.KeyUsage bits as RFC 5280 §4.2.1.3's BIT STRING
// (bit 0, digitalSignature, is the most significant bit of the first byte).
func keyUsage(ku x509.KeyUsage) asn1.BitString {
	var b [2]byte
	n := 0
	for i := range 9 {
		if ku&(1<<i) != 0 {
			b[i/8] |= 0x80 >> (i % 8)
			n = i + 1
		}
	}
	return asn1.BitString{Bytes: b[:(n+7)/8], BitLength: n}
}

// hasExtensions checks that a CSR is valid and requests n extensions.
func hasExtensions(n int) func([]byte) error {
	return func(der []byte) error {
		if err := validCSR(der); err != nil {
			return err
		}
		r, _ := x509.ParseCertificateRequest(der)
		if len(r.Extensions) != n {
			return fmt.Errorf("requests %d extensions, want %d", len(r.Extensions), n)
		}
		return nil
	}
}

func ec(c elliptic.Curve) func() (crypto.Signer, error) {
	return func() (crypto.Signer, error) { return ecdsa.GenerateKey(c, rand.Reader) }
}

func rsaKey(bits int) func() (crypto.Signer, error) {
	return func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, bits) }
}

func edKey() (crypto.Signer, error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	return k, err
}

func spiffe(id string) *url.URL {
	return api.DeviceSPIFFEID(trustDomain, api.DeviceID(id))
}

func csr(key crypto.Signer, tmpl *x509.CertificateRequest) ([]byte, error) {
	return x509.CreateCertificateRequest(rand.Reader, tmpl, key)
}

func pemCSR(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func validCSR(der []byte) error {
	r, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return err
	}
	return r.CheckSignature()
}

func mustNotParse(der []byte) error {
	if _, err := x509.ParseCertificateRequest(der); err == nil {
		return errors.New("parses as a CSR, want it not to")
	}
	return nil
}

// selfSigned returns a self-signed client certificate for dev-1. The dates are fixed
// so that the fixture reads the same however old it is; nothing verifies it.
func selfSigned(key crypto.Signer) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: deviceID},
		NotBefore:    time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2035, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
}
