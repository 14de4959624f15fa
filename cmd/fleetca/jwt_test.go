package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.step.sm/crypto/jose"
	"go.step.sm/crypto/minica"
	"go.step.sm/crypto/pemutil"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/verify"
)

// TestJWTCommand: `fleetca jwt` signs with each key type; the verify
// package accepts its tokens (x5c, so no key set is needed), with the kid
// and alg of the key.
func TestJWTCommand(t *testing.T) {
	t.Parallel()
	ca, err := minica.New()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	crlPath := filepath.Join(dir, "crl.der")
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now().Add(-time.Minute),
		NextUpdate: time.Now().Add(time.Hour)}, ca.Intermediate, ca.Signer)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(crlPath, crl, 0o644)
	checker, err := verify.NewChecker(verify.CheckerConfig{CRL: crlPath, Issuer: ca.Intermediate}, verify.CheckerDeps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := checker.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Root)
	v, err := verify.NewJWTVerifier(verify.JWTConfig{Checker: checker, Roots: roots})
	if err != nil {
		t.Fatal(err)
	}
	const aud = "https://api.example.com"
	for i, tc := range []struct {
		kind string
		alg  jose.SignatureAlgorithm
	}{{"p256", jose.ES256}, {"p384", jose.ES384}, {"rsa", jose.RS256}, {"ed25519", jose.EdDSA}} {
		t.Run("ok/"+tc.kind, func(t *testing.T) {
			var key crypto.Signer
			switch tc.kind {
			case "p256":
				key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			case "p384":
				key, _ = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
			case "rsa":
				key, _ = rsa.GenerateKey(rand.Reader, 2048)
			case "ed25519":
				_, key, _ = ed25519.GenerateKey(rand.Reader)
			}
			cert, err := ca.Sign(&x509.Certificate{SerialNumber: big.NewInt(int64(i + 10)), PublicKey: key.Public(),
				Subject: pkix.Name{CommonName: "dev-1"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			if err != nil {
				t.Fatal(err)
			}
			keyFile, certFile := filepath.Join(dir, tc.kind+".key"), filepath.Join(dir, tc.kind+".crt")
			block, err := pemutil.Serialize(key, pemutil.WithPKCS8(true))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600)
			chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
				pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Intermediate.Raw})...)
			os.WriteFile(certFile, chain, 0o644)

			r := runCLI(t, nil, "jwt", "--key", keyFile, "--cert", certFile, "--aud", aud+"/devices/dev-1", "--ttl", "30m", "--x5c")
			if r.code != exitOK {
				t.Fatalf("fleetca jwt: exit %d, stderr %q", r.code, r.stderr)
			}
			token := strings.TrimSpace(r.stdout)
			tok, err := jose.ParseSigned(token)
			if err != nil {
				t.Fatal(err)
			}
			if h := tok.Headers[0]; h.Algorithm != string(tc.alg) || h.KeyID != api.KeyID(cert.Raw) {
				t.Errorf("header alg %s kid %s, want %s %s", h.Algorithm, h.KeyID, tc.alg, api.KeyID(cert.Raw))
			}
			got, err := v.VerifyDeviceJWT(t.Context(), token, aud)
			if err != nil {
				t.Fatalf("VerifyDeviceJWT(fleetca jwt's token) = %v", err)
			}
			if got.DeviceID != "dev-1" || got.KeyID != api.KeyID(cert.Raw) || got.Expiry.Sub(time.Now()) > 30*time.Minute {
				t.Errorf("VerifyDeviceJWT() = %s %s exp %s, want dev-1, the certificate's kid, exp within 30m", got.DeviceID, got.KeyID, got.Expiry)
			}
		})
	}
	t.Run("fail/usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"jwt", "--cert", "x", "--aud", aud + "/devices/dev-1"},
			{"jwt", "--key", "x", "--cert", "y"},
			{"jwt", "--key", "x", "--cert", "y", "--aud", aud + "/devices/dev-1", "--ttl", "0s"},
			{"jwt", "--key", filepath.Join(dir, "p256.key"), "--cert", filepath.Join(dir, "p256.crt"), "--aud", aud + "/devices/dev-2"},
		} {
			wantOneLine(t, strings.Join(args, " "), runCLI(t, nil, args...), exitUsage)
		}
	})
	t.Run("fail/key-not-cert", func(t *testing.T) {
		wantOneLine(t, "jwt with another key", runCLI(t, nil, "jwt", "--key", filepath.Join(dir, "rsa.key"), "--cert", filepath.Join(dir, "p256.crt"),
			"--aud", aud+"/devices/dev-1"), exitError)
	})
}
