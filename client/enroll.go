package client

import (
	"context"
	"crypto/x509"
	"encoding/pem"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
)

// Enrollment is the answer to Enroll: the CA's answer, and its chain
// parsed and checked (it verifies against the client's roots, and its key
// is the CSR's).
type Enrollment struct {
	api.EnrollResponse
	// Certs is Chain parsed: the leaf, then the intermediate(s).
	Certs []*x509.Certificate
}

// Enroll sends csrDER (a DER PKCS #10 request) with an enrollment token to
// POST /v1/enroll and returns the checked certificate. The CA's own
// refusals come back as the *fault.Error it raised (Unauthorized for a
// bad token, BadCSR, BadKey, ...); a failed request spends no token.
func (c *Client) Enroll(ctx context.Context, token string, csrDER []byte) (*Enrollment, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fault.Wrap(err, fault.Malformed, "the CSR is not a DER PKCS #10 request", "make one with openssl req or fleetca enroll")
	}
	if token == "" {
		return nil, fault.New(fault.Unauthorized, "no enrollment token", "ask the CA's admin for an enrollment token")
	}
	body := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})
	var out Enrollment
	if err := c.do(ctx, "POST", api.EnrollPath, token, body, "application/x-pem-file", &out.EnrollResponse); err != nil {
		return nil, err
	}
	if out.Certs, err = c.verifyIssued(out.Chain, csr.RawSubjectPublicKeyInfo, x509.ExtKeyUsageClientAuth, c.now()); err != nil {
		return nil, err
	}
	return &out, nil
}
