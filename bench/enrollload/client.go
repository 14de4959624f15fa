package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"

	"github.com/smallstep/pkcs7"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/bench/benchutil"
)

// clientKind is one of the ways a device enrolls that the benchmark
// compares: fleetca's own API, EST and the step CLI's /sign, each against
// the same CA in the same run.
type clientKind struct {
	name   string
	path   string // on the HTTPS listener
	status int    // the answer to a success
	desc   string
}

var (
	nativeClient = clientKind{"native", api.EnrollPath, http.StatusCreated,
		"Authorization: Bearer <pattern token>, PEM CSR; 201 JSON"}
	estClient = clientKind{"est", api.ESTPrefix + "/" + api.ESTOpSimpleEnroll, http.StatusOK,
		"HTTP Basic <device ID>:<pattern token>, base64 DER CSR; 200 certs-only PKCS #7, base64"}
	stepClient = clientKind{"step", api.StepPrefix + api.StepSignPath, http.StatusCreated,
		`{"csr": PEM, "ott": <step token minted by the CA for the device>}; 201 {crt, ca, certChain}`}
)

// clientKinds are the kinds, in the order the report lists them; native
// first: the others are measured against it.
var clientKinds = []clientKind{nativeClient, estClient, stepClient}

// isPeer reports whether k enrolls against a server other than fleetca
// (step-ca, the bare server), which the step-ca table compares, not the
// client kinds' one.
func isPeer(k clientKind) bool { return k == stepCAClient || k == bareClient }

// parseClients reads -client: one kind's name, or "all".
func parseClients(s string) ([]clientKind, error) {
	if s == "all" {
		return clientKinds, nil
	}
	for _, k := range clientKinds {
		if k.name == s {
			return []clientKind{k}, nil
		}
	}
	return nil, fmt.Errorf("-client is %q, want native, est, step or all", s)
}

// request is a job's HTTP request, built before timing: the body and the
// Authorization header.
type request struct {
	contentType string
	auth        string // the Authorization header's value; "" for none
	body        []byte
}

// newRequest builds the request of kind k that enrolls device id with the
// DER CSR csr and token (a pattern token for native and EST, the device's
// step token for step), as that kind of client sends it.
func newRequest(k clientKind, id, token string, csr []byte) (request, error) {
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})
	switch k.name {
	case nativeClient.name, bareClient.name:
		return request{contentType: "application/x-pem-file", auth: "Bearer " + token, body: csrPEM}, nil
	case estClient.name:
		body := make([]byte, base64.StdEncoding.EncodedLen(len(csr)))
		base64.StdEncoding.Encode(body, csr)
		basic := base64.StdEncoding.EncodeToString([]byte(id + ":" + token))
		return request{contentType: "application/pkcs10", auth: "Basic " + basic, body: body}, nil
	case stepClient.name, stepCAClient.name:
		body, err := json.Marshal(api.StepSignRequest{CSR: string(csrPEM), OTT: token})
		if err != nil {
			return request{}, err
		}
		return request{contentType: "application/json", body: body}, nil
	}
	panic("enrollload: unknown client kind " + k.name)
}

// checkAnswer checks the body of a success of kind k for device id, as
// that kind of client reads it, and returns the certificate. It verifies
// no chain: the load loop calls it and must not spend the server's CPU on
// that.
func checkAnswer(k clientKind, body []byte, id string) (*x509.Certificate, error) {
	switch k.name {
	case nativeClient.name, bareClient.name:
		return benchutil.ParseEnrollment(body, id)
	case estClient.name:
		return checkEST(body, id)
	case stepClient.name, stepCAClient.name:
		return checkStep(body, id)
	}
	panic("enrollload: unknown client kind " + k.name)
}

// checkEST reads an EST simpleenroll answer (RFC 7030 §4.2.3): base64,
// whitespace tolerated (RFC 8951), of a certs-only PKCS #7 that holds the
// device's certificate, and no CA certificate.
func checkEST(body []byte, id string) (*x509.Certificate, error) {
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(body)), ""))
	if err != nil {
		return nil, fmt.Errorf("the answer is not base64: %w", err)
	}
	p7, err := pkcs7.Parse(der)
	if err != nil {
		return nil, fmt.Errorf("the answer is not PKCS #7: %w", err)
	}
	if len(p7.Certificates) != 1 {
		return nil, fmt.Errorf("the certs-only PKCS #7 holds %d certificates, want the device's only", len(p7.Certificates))
	}
	cert := p7.Certificates[0]
	if cert.IsCA || cert.Subject.CommonName != id {
		return nil, fmt.Errorf("asked for %q, got a certificate for %q (CA: %v)", id, cert.Subject.CommonName, cert.IsCA)
	}
	return cert, nil
}

// checkStep reads a step /sign answer as the step CLI does: crt is the
// device's certificate, ca its issuer, certChain the two in that order.
func checkStep(body []byte, id string) (*x509.Certificate, error) {
	var r api.StepSignResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("the answer is not step's sign JSON: %w", err)
	}
	cert, err := benchutil.ParseCertPEM([]byte(r.ServerPEM))
	if err != nil {
		return nil, fmt.Errorf("crt: %w", err)
	}
	ca, err := benchutil.ParseCertPEM([]byte(r.CaPEM))
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	switch {
	case cert.Subject.CommonName != id:
		return nil, fmt.Errorf("asked for %q, got a certificate for %q", id, cert.Subject.CommonName)
	case len(r.CertChainPEM) != 2 || r.CertChainPEM[0] != r.ServerPEM || r.CertChainPEM[1] != r.CaPEM:
		return nil, errors.New("certChain is not [crt, ca]")
	case !ca.IsCA || !bytes.Equal(cert.RawIssuer, ca.RawSubject) || !bytes.Equal(cert.AuthorityKeyId, ca.SubjectKeyId):
		return nil, fmt.Errorf("ca %q did not issue crt (issuer %q)", ca.Subject, cert.Issuer)
	}
	return cert, nil
}

// newCSR returns a DER CSR for device id with a new P-256 key, as kind k's
// client makes it: the step CLI puts the token's sans (the device ID) in
// a DNS SAN; the others name the device in the CN only.
func newCSR(k clientKind, id string) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}
	if k.name == stepClient.name || k.name == stepCAClient.name {
		tmpl.DNSNames = []string{id}
	}
	return x509.CreateCertificateRequest(rand.Reader, tmpl, key)
}

// makeCSRs returns n DER CSRs of kind k (newCSR) for devices
// DeviceID(devicePrefix, first) onwards, generated on every core.
func makeCSRs(ctx context.Context, k clientKind, first, n int) ([][]byte, error) {
	out := make([][]byte, n)
	err := benchutil.ForEach(ctx, runtime.GOMAXPROCS(0), n, func(i int) error {
		csr, err := newCSR(k, benchutil.DeviceID(devicePrefix, first+i))
		out[i] = csr
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("generate CSRs: %w", err)
	}
	return out, nil
}
