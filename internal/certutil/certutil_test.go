package certutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"
)

func TestSelfSigned(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mk := func(subject, issuer string, parent *x509.Certificate, signer *ecdsa.PrivateKey) *x509.Certificate {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: subject},
			NotBefore: now, NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
		if parent == nil {
			parent = tmpl
			parent.Issuer = pkix.Name{CommonName: issuer}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	root := mk("root", "root", nil, key)
	for _, tc := range []struct {
		name string
		cert *x509.Certificate
		want bool
	}{
		{"ok/root", root, true},
		{"fail/issued-by-the-root", mk("intermediate", "", root, key), false},
		{"fail/same-name-other-key", mk("root", "root", nil, other), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SelfSigned(tc.cert); got != tc.want {
				t.Errorf("SelfSigned(%s) = %v, want %v", tc.cert.Subject, got, tc.want)
			}
		})
	}
}
