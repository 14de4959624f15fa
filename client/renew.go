package client

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"go.step.sm/crypto/jose"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
)

// maxDeviceClients bounds how many mutual-TLS clients (one per device
// certificate) a Client keeps for their open connections.
const maxDeviceClients = 64

// ErrCertificateExpired is wrapped by the fault Renew returns when the CA
// refused the certificate as expired in the TLS handshake: by its clock the
// certificate has expired, and only the renewal token can renew it now.
var ErrCertificateExpired = errors.New("the CA refused the client certificate as expired")

// RenewRequest is what Renew sends.
type RenewRequest struct {
	// Chain is the certificate to renew, then its intermediates (leaf
	// first, as Enroll returns it and `fleetca enroll` writes it).
	// Required.
	Chain []*x509.Certificate
	// Key is the leaf's private key. Required; it never leaves the
	// process: it proves possession in the TLS handshake or signs the
	// renewal token.
	Key crypto.Signer
	// CSR, if not nil, is a DER PKCS #10 request for a new key: a rekey.
	// Nil renews the same key.
	CSR []byte
	// Token authenticates with a renewal token (api.RenewalTokenClaims)
	// instead of mutual TLS: the one way to renew a certificate that has
	// expired, whose TLS handshake the CA refuses.
	Token bool
}

// Renewal is the answer to Renew: the CA's answer, and its chain parsed and
// checked.
type Renewal struct {
	api.EnrollResponse
	// Certs is Chain parsed: the new leaf, then the intermediate(s).
	Certs []*x509.Certificate
	// Retry is true when the CA answered with the certificate it had
	// already issued for this same renewal (the answer to an earlier try
	// was lost), false for a certificate issued now.
	Retry bool
}

// Renew asks the CA for a successor of req.Chain[0] (POST /v1/renew): the
// same key if req.CSR is nil, else the CSR's (a rekey). Over mutual TLS it
// presents the certificate and chain with req.Key, trusting the same roots
// as every other call; with req.Token it sends a renewal token instead (see
// RenewalToken). The new chain is returned only once it verifies against
// the client's roots for clientAuth, certifies the expected key and names
// the same device.
//
// Errors: Malformed or BadKey for a request that cannot be sent (no chain,
// a key that is not the leaf's, a CSR that does not parse); the CA's
// refusals as the *fault.Error it raised (Forbidden for a revoked
// certificate or device, Conflict for a certificate that is not the
// device's newest, Unauthorized for an expired one past the CA's grace,
// ...), RateLimited for a device that renewed too recently, with the
// CA's Retry-After in the fault's RetryAfter; Unavailable when the CA
// cannot be reached. A fault wrapping ErrCertificateExpired says the CA
// refused the TLS handshake because the certificate has expired: ask again
// with Token.
func (c *Client) Renew(ctx context.Context, req RenewRequest) (*Renewal, error) {
	if len(req.Chain) == 0 || req.Chain[0] == nil {
		return nil, fault.New(fault.Malformed, "no certificate to renew", "give the device's certificate and its chain")
	}
	if req.Key == nil {
		return nil, fault.New(fault.Malformed, "no private key to renew the certificate with", "give the certificate's private key")
	}
	leaf := req.Chain[0]
	if !samePublic(leaf.PublicKey, req.Key.Public()) {
		return nil, fault.New(fault.BadKey, fmt.Sprintf("the private key is not the key of certificate %s", serialHex(leaf)),
			"give the key that was made with the certificate")
	}
	pub := leaf.RawSubjectPublicKeyInfo
	var body any
	contentType := ""
	if req.CSR != nil {
		csr, err := x509.ParseCertificateRequest(req.CSR)
		if err != nil {
			return nil, fault.Wrap(err, fault.Malformed, "the rekey CSR is not a DER PKCS #10 request", "make it with the new key")
		}
		pub = csr.RawSubjectPublicKeyInfo
		body, contentType = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: req.CSR}), "application/x-pem-file"
	}

	var (
		out  Renewal
		resp *http.Response
		err  error
	)
	if req.Token {
		tok, terr := RenewalToken(req.Chain, req.Key, c.base+api.RenewPath, c.now())
		if terr != nil {
			return nil, terr
		}
		resp, err = c.send(ctx, c.http, unreachable, "POST", api.RenewPath, tok, body, contentType, &out.EnrollResponse)
	} else {
		resp, err = c.send(ctx, c.deviceHTTP(req.Chain, req.Key), handshakeRefused, "POST", api.RenewPath, "", body, contentType, &out.EnrollResponse)
	}
	if err != nil {
		return nil, err
	}
	out.Retry = resp.StatusCode == http.StatusOK
	if out.Certs, err = c.verifyIssued(out.Chain, pub, x509.ExtKeyUsageClientAuth, c.now()); err != nil {
		return nil, err
	}
	if got, want := out.Certs[0].Subject.CommonName, leaf.Subject.CommonName; got != want {
		return nil, fault.New(fault.Forbidden, fmt.Sprintf("the renewed certificate names device %q, not %q", got, want),
			"report this to the CA's operator")
	}
	return &out, nil
}

// RenewalInfo returns the renewal window the CA suggests for the
// certificate with this serial (lowercase hex; GET
// /v1/renewal-info/{serial}), and how long to wait before asking again
// (its Retry-After; zero if it gave none). A window whose start has passed
// means renew now. NotFound for a serial the CA does not know; Malformed
// for an answer that is not a window.
func (c *Client) RenewalInfo(ctx context.Context, serial string) (api.RenewalInfo, time.Duration, error) {
	var info api.RenewalInfo
	if serial == "" || strings.Trim(serial, "0123456789abcdef") != "" {
		return info, 0, fault.New(fault.Malformed, fmt.Sprintf("the serial %q is not lowercase hex", serial), "give the certificate's serial as the CA prints it")
	}
	resp, err := c.send(ctx, c.http, unreachable, "GET", api.RenewalInfoPath+serial, "", nil, "", &info)
	if err != nil {
		return info, 0, err
	}
	w := info.SuggestedWindow
	if w.Start.IsZero() || w.End.Before(w.Start) {
		return api.RenewalInfo{}, 0, fault.New(fault.Malformed, fmt.Sprintf("the CA's renewal window for %s is not a window (%s to %s)", serial,
			w.Start.Format(time.RFC3339), w.End.Format(time.RFC3339)), "check that the URL is a fleetca CA of a version this client knows")
	}
	after, _ := parseRetryAfter(resp.Header.Get("Retry-After"), c.now())
	return info, after, nil
}

// RenewalToken mints a renewal token for the certificate chain[0] (leaf
// first, then its intermediates), signed by key, its private key: a JWT
// whose header carries the chain as x5c and whose claims are
// api.RenewalTokenClaims, sub the leaf's CN (the device ID), aud audience
// (the full renew URL, https://HOST:PORT/v1/renew), valid from now for
// api.RenewalTokenMaxLifetime, with a random jti. The algorithm follows the
// key: ES256, ES384 or ES512 for ECDSA P-256, P-384 or P-521, RS256 for
// RSA, EdDSA for Ed25519; any other key is a BadKey fault.
func RenewalToken(chain []*x509.Certificate, key crypto.Signer, audience string, now time.Time) (string, error) {
	if len(chain) == 0 || chain[0] == nil || key == nil {
		return "", fault.New(fault.Malformed, "a renewal token needs the certificate and its key", "")
	}
	leaf := chain[0]
	if !samePublic(leaf.PublicKey, key.Public()) {
		return "", fault.New(fault.BadKey, fmt.Sprintf("the private key is not the key of certificate %s", serialHex(leaf)),
			"give the key that was made with the certificate")
	}
	alg, err := signatureAlgorithm(key.Public())
	if err != nil {
		return "", err
	}
	// RFC 7515 §4.1.6: standard base64 of each DER, not base64url.
	x5c := make([]string, len(chain))
	for i, cert := range chain {
		x5c[i] = base64.StdEncoding.EncodeToString(cert.Raw)
	}
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("x5c", x5c)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		return "", fmt.Errorf("renewal token signer: %w", err)
	}
	id := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return "", fmt.Errorf("renewal token id: %w", err)
	}
	claims := api.RenewalTokenClaims{
		Subject:   leaf.Subject.CommonName,
		Audience:  audience,
		IssuedAt:  now.Unix(),
		NotBefore: now.Unix(),
		Expiry:    now.Add(api.RenewalTokenMaxLifetime).Unix(),
		ID:        hex.EncodeToString(id),
	}
	tok, err := jose.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign renewal token: %w", err)
	}
	return tok, nil
}

// signatureAlgorithm is the JWS algorithm (RFC 7518 §3.1, RFC 8037 §3.1)
// for a key.
func signatureAlgorithm(pub crypto.PublicKey) (jose.SignatureAlgorithm, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return jose.ES256, nil
		case elliptic.P384():
			return jose.ES384, nil
		case elliptic.P521():
			return jose.ES512, nil
		}
	case *rsa.PublicKey:
		return jose.RS256, nil
	case ed25519.PublicKey:
		return jose.EdDSA, nil
	}
	return "", fault.New(fault.BadKey, fmt.Sprintf("a %T cannot sign a renewal token", pub), "use an ECDSA, RSA or Ed25519 key")
}

// deviceHTTP returns the client that presents chain (leaf first) with key
// in the TLS handshake, trusting the client's roots, over TLS 1.2 or
// later. One is kept per certificate, so that its connections are reused;
// at most maxDeviceClients (past that, the old ones are dropped).
func (c *Client) deviceHTTP(chain []*x509.Certificate, key crypto.Signer) *http.Client {
	id := sha256.Sum256(chain[0].Raw)
	c.mu.Lock()
	defer c.mu.Unlock()
	if hc, ok := c.devices[id]; ok {
		return hc
	}
	if len(c.devices) >= maxDeviceClients || c.devices == nil {
		for _, old := range c.devices {
			old.CloseIdleConnections()
		}
		c.devices = make(map[[32]byte]*http.Client)
	}
	cert := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, ch := range chain {
		cert.Certificate = append(cert.Certificate, ch.Raw)
	}
	// Always present it, whatever CA names the server lists: a certificate
	// silently left out would come back as a confusing "no credential".
	hc := newHTTPClient(c.roots, c.timeout, func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil })
	c.devices[id] = hc
	return hc
}

// handshakeRefused classifies a failed mutual-TLS round trip: the CA's TLS
// alert about our certificate when it sent one (crypto/tls has no type for
// a received alert: its text is all there is), unreachable otherwise.
func handshakeRefused(base string, err error) error {
	op, ok := errors.AsType[*net.OpError](err)
	if !ok || op.Op != "remote error" || op.Err == nil {
		return unreachable(base, err)
	}
	const hint = "check that the certificate and key are a device certificate of this CA"
	switch op.Err.Error() {
	case "tls: expired certificate":
		return fault.Wrap(errors.Join(ErrCertificateExpired, err), fault.Unauthorized,
			"the CA refused the certificate in the TLS handshake: by its clock the certificate has expired",
			"renew it with a renewal token, signed by its key")
	case "tls: unknown certificate authority":
		return fault.Wrap(err, fault.Forbidden, "the CA refused the certificate in the TLS handshake: it did not issue it", hint)
	case "tls: bad certificate", "tls: revoked certificate", "tls: unsupported certificate", "tls: certificate required":
		return fault.Wrap(err, fault.Forbidden, "the CA refused the certificate in the TLS handshake", hint)
	}
	return unreachable(base, err)
}

// samePublic reports whether two public keys are equal.
func samePublic(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// serialHex is a certificate's serial as fleetca prints it.
func serialHex(c *x509.Certificate) string { return c.SerialNumber.Text(16) }
