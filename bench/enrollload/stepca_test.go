package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	"go.step.sm/crypto/jose"
)

// TestStepCATokens checks the one-time tokens minted for step-ca's JWK
// provisioner: signed by its key with its kid, aud /1.0/sign, sha the
// root's fingerprint, the device in sub and sans, a jti of its own each.
func TestStepCATokens(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		new(jose.SignerOptions).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	s := &stepCA{url: "https://127.0.0.1:9000", signer: signer, rootSHA: "abcd"}
	toks, err := s.tokens(7, 2)
	if err != nil {
		t.Fatal(err)
	}
	jtis := map[string]bool{}
	for i, tok := range toks {
		jwt, err := jose.ParseSigned(tok)
		if err != nil {
			t.Fatal(err)
		}
		if kid := jwt.Headers[0].KeyID; kid != "k1" {
			t.Errorf("token %d kid = %q, want k1", i, kid)
		}
		var c stepCAClaims
		if err := jwt.Claims(&key.PublicKey, &c); err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
		id := []string{"b-00000007", "b-00000008"}[i]
		if c.Issuer != "bench" || c.Subject != id || len(c.Audience) != 1 || c.Audience[0] != "https://127.0.0.1:9000/1.0/sign" ||
			c.SHA != "abcd" || len(c.SANs) != 1 || c.SANs[0] != id || c.ID == "" || jtis[c.ID] {
			t.Errorf("token %d claims = %+v, want sub and sans %s, aud .../1.0/sign, sha abcd, a new jti", i, c, id)
		}
		jtis[c.ID] = true
	}
}
