package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
	"testing"

	"go.step.sm/crypto/keyutil"
)

// BenchmarkSignDevice measures SignDevice for a P-256 device key, per CA
// key type; "+csr" adds what enroll does first (parse the CSR, check its
// signature), to compare with BenchmarkCryptoFloor.
func BenchmarkSignDevice(b *testing.B) {
	dev := deviceKey(b, "ec-p256")
	csrDER := benchCSR(b, dev)
	for _, caType := range KeyTypes() {
		a := newAuthority(b, caType)
		req := DeviceRequest{DeviceID: "sensor-0042", PublicKey: dev.Public()}
		b.Run("ca="+string(caType), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.SignDevice(b.Context(), req); err != nil {
					b.Fatal(err)
				}
			}
		})
		if caType != KeyECP256 {
			continue
		}
		b.Run("ca="+string(caType)+"+csr", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				csr, err := x509.ParseCertificateRequest(csrDER)
				if err != nil {
					b.Fatal(err)
				}
				if err := csr.CheckSignature(); err != nil {
					b.Fatal(err)
				}
				if _, err := a.SignDevice(b.Context(), DeviceRequest{DeviceID: "sensor-0042", PublicKey: csr.PublicKey}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCryptoFloor measures the cryptography an enrollment cannot do
// without, for a P-256 device and a P-256 intermediate: checking the CSR's
// signature plus one ECDSA signature over a typical TBSCertificate
// ("floor"), and the parts separately. "self-check" is the verification
// x509.CreateCertificate adds after signing (not part of the floor).
func BenchmarkCryptoFloor(b *testing.B) {
	dev := deviceKey(b, "ec-p256")
	csr, err := x509.ParseCertificateRequest(benchCSR(b, dev))
	if err != nil {
		b.Fatal(err)
	}
	signer, err := keyutil.GenerateSigner("EC", "P-256", 0)
	if err != nil {
		b.Fatal(err)
	}
	key := signer.(*ecdsa.PrivateKey)
	cert, err := newAuthority(b, KeyECP256).SignDevice(b.Context(), DeviceRequest{DeviceID: "sensor-0042", PublicKey: dev.Public()})
	if err != nil {
		b.Fatal(err)
	}
	tbs := cert.RawTBSCertificate
	b.Logf("TBSCertificate: %d bytes", len(tbs))

	sign := func(b *testing.B) []byte {
		digest := sha256.Sum256(tbs)
		sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
		if err != nil {
			b.Fatal(err)
		}
		return sig
	}
	b.Run("floor", func(b *testing.B) {
		for b.Loop() {
			if err := csr.CheckSignature(); err != nil {
				b.Fatal(err)
			}
			sign(b)
		}
	})
	b.Run("csr-check", func(b *testing.B) {
		for b.Loop() {
			if err := csr.CheckSignature(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sign", func(b *testing.B) {
		for b.Loop() {
			sign(b)
		}
	})
	b.Run("self-check", func(b *testing.B) {
		sig := sign(b)
		for b.Loop() {
			digest := sha256.Sum256(tbs)
			if !ecdsa.VerifyASN1(&key.PublicKey, digest[:], sig) {
				b.Fatal("signature does not verify")
			}
		}
	})
}

// benchCSR returns a DER CSR such as a device sends, signed by key.
func benchCSR(b *testing.B, key crypto.Signer) []byte {
	b.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "sensor-0042"},
		URIs:    []*url.URL{{Scheme: "spiffe", Host: testTrustDomain, Path: "/device/sensor-0042"}},
	}, key)
	if err != nil {
		b.Fatal(err)
	}
	return der
}
