package enroll

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.step.sm/crypto/jose"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// inputKinds are the fault kinds a refusal of untrusted input may have.
var inputKinds = map[fault.Kind]bool{
	fault.Malformed: true, fault.BadCSR: true, fault.BadKey: true, fault.Forbidden: true,
	fault.TooLarge: true, fault.Unauthorized: true,
}

// FuzzCheckCSR feeds arbitrary DER to the CSR policy, seeded with every
// fixture in testdata (the extension requests among them). Invariants: no
// panic; a refusal is a *fault.Error of an input kind; an accepted CSR is
// the input itself (it re-encodes to the same bytes), names its device and
// asks for no extension a device certificate does not get.
func FuzzCheckCSR(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "*.pem"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		if block, _ := pem.Decode(b); block != nil {
			f.Add(block.Bytes, false)
			f.Add(block.Bytes, true)
		}
	}
	f.Fuzz(func(t *testing.T, der []byte, pattern bool) {
		b := binding{deviceID: "dev-1"}
		if pattern {
			b = binding{pattern: "*"}
		}
		req, err := checkCSR(der, b, testTrustDomain)
		if err != nil {
			if k, ok := fault.KindOf(err); !ok || !inputKinds[k] {
				t.Fatalf("checkCSR refusal is not an input fault: %v (%T)", err, err)
			}
			return
		}
		if !bytes.Equal(req.csr.Raw, der) {
			t.Fatalf("accepted CSR does not re-encode to its input")
		}
		if _, err := api.ParseDeviceID(string(req.deviceID)); err != nil {
			t.Fatalf("accepted CSR for an invalid device ID %q", req.deviceID)
		}
		if err := checkKey(req.csr.PublicKey); err != nil {
			t.Fatalf("accepted CSR with a refused key: %v", err)
		}
		for _, ext := range req.csr.Extensions {
			if !slices.ContainsFunc([]asn1.ObjectIdentifier{oidSAN, oidKeyUsage, oidExtKeyUsage, oidBasicConstraints}, ext.Id.Equal) {
				t.Fatalf("accepted CSR asking for extension %s", ext.Id)
			}
		}
	})
}

// FuzzParseToken: no panic; a refusal is Unauthorized; an accepted token
// re-encodes to itself (its prefix plus 43 base64url characters).
func FuzzParseToken(f *testing.F) {
	good, err := newSecret(EnrollTokenPrefix)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{string(good), "", EnrollTokenPrefix, string(good) + "=", string(good)[:20], AdminTokenPrefix + "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseToken(EnrollTokenPrefix, s)
		if err != nil {
			if k, ok := fault.KindOf(err); !ok || k != fault.Unauthorized {
				t.Fatalf("ParseToken refusal kind = %v, want Unauthorized", err)
			}
			if bytes.Contains([]byte(err.Error()), []byte(s)) && len(s) > 8 {
				t.Fatalf("ParseToken error repeats the token: %v", err)
			}
			return
		}
		if h != hashSecret(Secret(s)) || len(s) != len(EnrollTokenPrefix)+encodedLen {
			t.Fatalf("accepted token %q has the wrong hash or length", s)
		}
	})
}

// FuzzParseRenewalToken feeds arbitrary strings to the renewal-token
// checks (tokenVerifier.verify), seeded with good tokens in both header
// forms and near misses. Invariants: no panic; a refusal is
// fault.Unauthorized; an accepted token names a certificate of the fleet
// for a device, and the same input is spent under the same nonce; under
// the fleet's own intermediate, the store's record of the seeds'
// certificate proves a token exactly when its chain's signatures would
// (tokenVerifier.recorded against leaf; which intermediates records may
// vouch under at all is TestRenewTokenRecorded's).
func FuzzParseRenewalToken(f *testing.F) {
	now := testStart
	authority, err := ca.New(context.Background(), ca.Config{}.WithDefaults(), ca.Deps{Dir: caDir, PublicURL: "http://127.0.0.1:8080",
		TrustDomain: testTrustDomain, Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	auds, err := parseAudiences(testRenewURLs)
	if err != nil {
		f.Fatal(err)
	}
	v := newTokenVerifier(authority.Intermediate(), auds)
	// The fleet as a verifier sees it, independent of what v trusts.
	fleetRoots, fleetInters := x509.NewCertPool(), x509.NewCertPool()
	fleetRoots.AddCert(authority.Root())
	fleetInters.AddCert(authority.Intermediate())

	key := newKey(f)
	leaf, err := authority.SignDevice(context.Background(), ca.DeviceRequest{DeviceID: "dev-1", PublicKey: key.Public()})
	if err != nil {
		f.Fatal(err)
	}
	chain := []*x509.Certificate{leaf, authority.Intermediate()}
	lookup := func(serial *big.Int) (store.Certificate, bool) {
		if serial.Cmp(leaf.SerialNumber) != 0 {
			return store.Certificate{}, false
		}
		return store.Certificate{Serial: leaf.SerialNumber, DeviceID: "dev-1", DER: leaf.Raw}, true
	}
	claims := jose.Claims{Subject: "dev-1", Audience: jose.Audience{testRenewURLs[0]}, ID: "seed",
		IssuedAt: jose.NewNumericDate(now), Expiry: jose.NewNumericDate(now.Add(5 * time.Minute))}
	good := mint(f, key, chain, claims, false)
	f.Add(good)
	f.Add(mint(f, key, chain, claims, true))
	wrongAud := claims
	wrongAud.Audience = jose.Audience{"https://ca.fleet.test:8443/v1/enroll"}
	f.Add(mint(f, key, chain, wrongAud, false))
	f.Add(mint(f, newKey(f), chain, claims, false))
	for _, s := range []string{"", "a.b.c", "{}", good[:len(good)/2], good + "x", strings.ReplaceAll(good, ".", "..")} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		tok, err := v.verify(raw, now, nil)
		byRecord, rerr := v.verify(raw, now, lookup)
		switch {
		case (err == nil) != (rerr == nil):
			t.Fatalf("verify by signatures: %v; by the record: %v; want the same answer", err, rerr)
		case err == nil && (!bytes.Equal(byRecord.leaf.Raw, tok.leaf.Raw) || byRecord.nonce != tok.nonce):
			t.Fatalf("verify by the record accepted another certificate or nonce than by signatures")
		case err == nil && byRecord.record != nil && !bytes.Equal(byRecord.record.DER, tok.leaf.Raw):
			t.Fatalf("verify by the record returned another certificate's record")
		case raw == good && (rerr != nil || byRecord.record == nil):
			t.Fatalf("the seed token was not proved by its record: %v", rerr)
		}
		if err != nil {
			if k, ok := fault.KindOf(err); !ok || k != fault.Unauthorized {
				t.Fatalf("verify refusal = %v (%T), want fault.Unauthorized", err, err)
			}
			return
		}
		if _, err := api.ParseDeviceID(tok.leaf.Subject.CommonName); err != nil {
			t.Fatalf("accepted a token for certificate CN %q, not a device ID", tok.leaf.Subject.CommonName)
		}
		if _, err := tok.leaf.Verify(x509.VerifyOptions{Roots: fleetRoots, Intermediates: fleetInters, CurrentTime: tok.leaf.NotAfter.Add(-time.Minute),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Fatalf("accepted a token whose certificate does not chain to the fleet: %v", err)
		}
		again, err := v.verify(raw, now, nil)
		if err != nil || again.nonce != tok.nonce {
			t.Fatalf("the same token verified twice: %v, nonce %x then %x", err, tok.nonce.Hash, again.nonce.Hash)
		}
		if tok.nonce.Expires.After(now.Add(api.RenewalTokenMaxLifetime + 2*api.RenewalTokenSkew)) {
			t.Fatalf("nonce kept until %s, longer than a token can be accepted", tok.nonce.Expires)
		}
	})
}
