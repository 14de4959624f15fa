package ca

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.step.sm/crypto/x509util"

	"github.com/fleetca/fleetca/api"
)

// TestSignDeviceMatchesTemplate checks that the extensions and subject
// signDevice encodes itself give the TBSCertificate, byte for byte, that
// x509.CreateCertificate builds from the template fields SignDevice's
// contract names (as SignDevice did before it encoded them), for every CA
// key type, with and without CRL partitions, for device keys of each type
// and device IDs that are and are not PrintableStrings.
func TestSignDeviceMatchesTemplate(t *testing.T) {
	for _, caType := range KeyTypes() {
		for _, partitions := range []int{0, 16} {
			a := partitionedAuthority(t, caType, partitions)
			for _, keyName := range []string{"ec-p256", "ec-p384", "rsa-2048", "ed25519"} {
				pub := deviceKey(t, keyName).Public()
				for _, id := range []api.DeviceID{"sensor-0042", "dev_7.a-B", "x"} {
					name := fmt.Sprintf("ca=%s/partitions=%d/key=%s/id=%s", caType, partitions, keyName, id)
					t.Run(name, func(t *testing.T) {
						cert, err := a.SignDevice(t.Context(), DeviceRequest{DeviceID: id, PublicKey: pub})
						if err != nil {
							t.Fatalf("SignDevice() error = %v", err)
						}
						ski, err := x509util.GenerateSubjectKeyID(pub)
						if err != nil {
							t.Fatal(err)
						}
						crl := []string{testPublicURL + "/crl"}
						if partitions > 1 {
							crl = []string{PartitionURL(testPublicURL, PartitionOfSerial(cert.SerialNumber, partitions))}
						}
						tmpl := &x509.Certificate{
							Subject:               pkix.Name{CommonName: string(id)},
							URIs:                  []*url.URL{api.DeviceSPIFFEID(testTrustDomain, id)},
							KeyUsage:              x509.KeyUsageDigitalSignature,
							ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
							BasicConstraintsValid: true,
							SerialNumber:          cert.SerialNumber,
							NotBefore:             cert.NotBefore,
							NotAfter:              cert.NotAfter,
							SubjectKeyId:          ski,
							OCSPServer:            []string{testPublicURL + "/ocsp"},
							IssuingCertificateURL: []string{testPublicURL + "/intermediate.crt"},
							CRLDistributionPoints: crl,
							SignatureAlgorithm:    wantSigAlg[caType],
						}
						der, err := x509.CreateCertificate(rand.Reader, tmpl, a.Intermediate(), pub, a.signer)
						if err != nil {
							t.Fatal(err)
						}
						want, err := x509.ParseCertificate(der)
						if err != nil {
							t.Fatal(err)
						}
						if !bytes.Equal(cert.RawTBSCertificate, want.RawTBSCertificate) {
							t.Errorf("SignDevice() TBSCertificate\n%x\nwant (from the template)\n%x", cert.RawTBSCertificate, want.RawTBSCertificate)
						}
					})
				}
			}
		}
	}
}

// TestSignDeviceAsParsed checks that the certificate SignDevice returns,
// which it builds rather than parses, is in every field what
// x509.ParseCertificate makes of its DER, and that the DER verifies.
func TestSignDeviceAsParsed(t *testing.T) {
	for _, caType := range KeyTypes() {
		for _, partitions := range []int{0, 4} {
			a := partitionedAuthority(t, caType, partitions)
			for _, keyName := range []string{"ec-p256", "rsa-2048", "ed25519"} {
				t.Run(fmt.Sprintf("ca=%s/partitions=%d/key=%s", caType, partitions, keyName), func(t *testing.T) {
					pub := deviceKey(t, keyName).Public()
					got, err := a.SignDevice(t.Context(), DeviceRequest{DeviceID: "dev_0042", PublicKey: pub})
					if err != nil {
						t.Fatalf("SignDevice() error = %v", err)
					}
					want, err := x509.ParseCertificate(got.Raw)
					if err != nil {
						t.Fatalf("ParseCertificate(SignDevice().Raw) error = %v", err)
					}
					if err := want.CheckSignatureFrom(a.Intermediate()); err != nil {
						t.Errorf("CheckSignatureFrom(intermediate) = %v", err)
					}
					type equaler interface{ Equal(x crypto.PublicKey) bool }
					if !want.PublicKey.(equaler).Equal(got.PublicKey) {
						t.Errorf("PublicKey = %v, want %v", got.PublicKey, want.PublicKey)
					}
					g := *got
					g.PublicKey = want.PublicKey
					if diff := cmp.Diff(*want, g, cmp.Comparer(func(x, y *big.Int) bool { return x.Cmp(y) == 0 })); diff != "" {
						t.Errorf("SignDevice() differs from its parsed DER (-parsed +returned):\n%s", diff)
					}
				})
			}
		}
	}
}
