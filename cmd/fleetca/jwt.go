package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.step.sm/crypto/jose"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
)

// jwtOptions are the inputs of `fleetca jwt`.
type jwtOptions struct {
	keyFile, certFile, aud string
	ttl                    time.Duration
	x5c                    bool
}

func newJWTCmd(e env) *cobra.Command {
	var o jwtOptions
	cmd := &cobra.Command{
		Use:   "jwt --key F --cert F --aud URL [--ttl 1h] [--x5c]",
		Short: "Print a JWT signed with a device's key, for a service that checks device JWTs",
		Long: `jwt prints a JWT (JWS compact serialization) signed with the device key in
--key, which the certificate in --cert (from 'fleetca enroll' or 'fleetca
renew') certifies. Services that cannot see the device's client certificate
(behind a TLS-terminating load balancer, an MQTT password) check it instead:
'fleetca proxy --auth jwt', or any Go service through the verify package.

The token's header has alg from the key type (ES256 for P-256, ES384 for
P-384, RS256 for RSA, EdDSA for Ed25519) and kid, the lowercase hex SHA-256
of the certificate (the kid of the key in the CA's key set,
GET /v1/devices/{id}/keys); with --x5c it also carries the certificate and
its chain from --cert, so that a verifier needs nothing from the CA but its
CRL or feed. The claims are aud (--aud, which must end in
/devices/<device ID>), sub (the device ID, the certificate's CN), iat (now)
and exp (now + --ttl). Verifiers refuse a token whose exp is more than their
maximum lifetime (default 24h) after iat.

Example:
  fleetca jwt --key dev.key --cert dev.crt --aud https://api.example.com/devices/dev-1 --ttl 1h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runJWT(cmd, e, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.keyFile, "key", "", "the device's private key (PEM)")
	f.StringVar(&o.certFile, "cert", "", "the device's certificate (PEM, leaf first; a chain may follow)")
	f.StringVar(&o.aud, "aud", "", "the audience: the service's base URL followed by /devices/<device ID>")
	f.DurationVar(&o.ttl, "ttl", time.Hour, "how long the token is valid (1s to 720h; verifiers allow 24h by default)")
	f.BoolVar(&o.x5c, "x5c", false, "put the certificate and its chain from --cert in the token's x5c header")
	return cmd
}

func runJWT(cmd *cobra.Command, e env, o jwtOptions) error {
	switch {
	case o.keyFile == "" || o.certFile == "":
		return usagef("jwt needs --key FILE and --cert FILE")
	case o.aud == "":
		return usagef("jwt needs --aud URL (the service's base URL followed by /devices/<device ID>)")
	case o.ttl < time.Second || o.ttl > 720*time.Hour:
		return flagUsage("ttl", fmt.Errorf("%s is outside 1s..720h", o.ttl))
	}
	pair, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
	if err != nil {
		return fault.Wrap(err, fault.BadKey, fmt.Sprintf("the key %s and certificate %s cannot be used together: %v", o.keyFile, o.certFile, err),
			"give the device key and the certificate fleetca issued for it")
	}
	cert := pair.Leaf
	id := cert.Subject.CommonName
	if !strings.HasSuffix(o.aud, api.JWTDevicesSegment+id) {
		return flagUsage("aud", fmt.Errorf("%q does not end in %s%s, the device of the certificate", o.aud, api.JWTDevicesSegment, id))
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	alg := jwtAlg(pair.PrivateKey)
	if !ok || alg == "" {
		return fault.New(fault.BadKey, fmt.Sprintf("the key in %s is of a type JWTs are not signed with", o.keyFile),
			"use a P-256, P-384, RSA or Ed25519 device key")
	}
	opts := new(jose.SignerOptions).WithType("JWT").WithHeader("kid", api.KeyID(cert.Raw))
	if o.x5c {
		var chain []string
		for _, der := range pair.Certificate {
			chain = append(chain, base64.StdEncoding.EncodeToString(der))
		}
		opts.WithHeader("x5c", chain)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: signer}, opts)
	if err != nil {
		return fmt.Errorf("jwt signer: %w", err)
	}
	clock := e.now
	if clock == nil {
		clock = time.Now
	}
	now := clock().Truncate(time.Second)
	claims := jose.Claims{Audience: jose.Audience{o.aud}, Subject: id,
		IssuedAt: jose.NewNumericDate(now), Expiry: jose.NewNumericDate(now.Add(o.ttl))}
	tok, err := jose.Signed(s).Claims(claims).Serialize()
	if err != nil {
		return fmt.Errorf("sign the JWT: %w", err)
	}
	_, err = fmt.Fprintln(e.stdout, tok)
	return err
}

// jwtAlg is the JWS algorithm of a device key's type, "" for none.
func jwtAlg(key crypto.PrivateKey) jose.SignatureAlgorithm {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return jose.ES256
		case elliptic.P384():
			return jose.ES384
		}
	case *rsa.PrivateKey:
		return jose.RS256
	case ed25519.PrivateKey:
		return jose.EdDSA
	}
	return ""
}
