package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strconv"
	"time"

	"go.step.sm/crypto/jose"

	"github.com/fleetca/fleetca/api"
)

// renewalToken mints the renewal token device d would send to renew its
// certificate without mutual TLS (api.RenewalTokenClaims): ES256 with the
// certificate's key, the certificate and its chain in the x5c header,
// sub = the device ID, aud = the renew URL, a random jti, and the longest
// lifetime the CA accepts from now. The benchmark mints them before a
// phase, outside its timing.
func renewalToken(d device, aud string, now time.Time) (string, error) {
	x5c := make([]string, len(d.chain))
	for i, der := range d.chain {
		x5c[i] = base64.StdEncoding.EncodeToString(der)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: d.key},
		new(jose.SignerOptions).WithType("JWT").WithHeader("x5c", x5c))
	if err != nil {
		return "", err
	}
	claims := api.RenewalTokenClaims{
		Subject: d.id, Audience: aud, ID: rand.Text(),
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: now.Add(api.RenewalTokenMaxLifetime).Unix(),
	}
	return jose.Signed(signer).Claims(claims).Serialize()
}

// buildPost serializes an HTTP/1.1 POST of body to path on host, with
// bearer as the Authorization if not empty, and Connection: close if
// closing.
func buildPost(host, path, bearer, contentType string, body []byte, closing bool) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: renewload\r\n", path, host)
	if bearer != "" {
		b.WriteString("Authorization: Bearer " + bearer + "\r\n")
	}
	if contentType != "" {
		b.WriteString("Content-Type: " + contentType + "\r\n")
	}
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	if closing {
		b.WriteString("Connection: close\r\n")
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}
