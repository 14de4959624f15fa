package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"go.step.sm/crypto/pemutil"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/certutil"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/internal/tlsconf"
)

// maxBundleBytes bounds a fetched PEM bundle of CA certificates.
const maxBundleBytes = 1 << 20

// ParseFingerprint reads a root's SHA-256 fingerprint: 64 hex digits, with
// or without colons, in either case. A Malformed fault otherwise.
func ParseFingerprint(s string) ([]byte, error) {
	fp, err := hex.DecodeString(strings.ToLower(strings.ReplaceAll(s, ":", "")))
	if err != nil || len(fp) != sha256.Size {
		return nil, fault.New(fault.Malformed, fmt.Sprintf("the fingerprint %q is not a SHA-256 in hex", s),
			"give the 64 hex digits of the root's SHA-256, as fleetca serve prints it")
	}
	return fp, nil
}

// ReadRoots returns the roots (self-signed certificates) in a PEM file. A
// NotFound fault if it cannot be read, Malformed if it holds no root.
func ReadRoots(file string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fault.Wrap(err, fault.NotFound, "cannot read the root certificate "+file, "give the CA's root.pem")
	}
	certs, err := pemutil.ParseCertificateBundle(b)
	if err != nil {
		return nil, fault.Wrap(err, fault.Malformed, file+" is not a PEM certificate bundle", "give the CA's root.pem")
	}
	roots := slices.DeleteFunc(certs, func(c *x509.Certificate) bool { return !certutil.SelfSigned(c) })
	if len(roots) == 0 {
		return nil, fault.New(fault.Malformed, file+" holds no root (self-signed) certificate", "give the CA's root.pem")
	}
	return roots, nil
}

// Bootstrap fetches the roots of the CA at url (its HTTPS listener) without
// trusting the connection, and returns the one whose SHA-256 is
// fingerprint: the connection proves nothing, the fingerprint proves the
// root. A Forbidden fault if the CA has no such root. It refuses a URL that
// is not https:// (see New), so that whatever is sent next goes to the
// same listener.
func Bootstrap(ctx context.Context, url string, fingerprint []byte) (*x509.Certificate, error) {
	base, err := httpsBase(url)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: DefaultTimeout, Transport: &http.Transport{
		// The answer is checked against the fingerprint below, never trusted as such.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tlsconf.MinVersion, CipherSuites: tlsconf.CipherSuites()}, //nolint:gosec
	}}
	roots, err := fetchCerts(ctx, hc, base, api.RootsPEMPath)
	if err != nil {
		return nil, err
	}
	for _, c := range roots {
		if sum := sha256.Sum256(c.Raw); bytes.Equal(sum[:], fingerprint) && certutil.SelfSigned(c) {
			return c, nil
		}
	}
	return nil, fault.New(fault.Forbidden, fmt.Sprintf("the CA at %s has no root with fingerprint %x", base, fingerprint),
		"check the fingerprint that fleetca serve printed; if it is right, this is not your CA")
}

// FetchTrustBundle fetches the CA's roots and intermediates from base, its
// plain-HTTP listener (what a verifier trusts is not secret, and the
// fingerprint check makes the channel irrelevant), and keeps them only if
// a root's SHA-256 is in pinned and every intermediate is a CA that chains
// to it. hc is the HTTP client to use (nil: one with DefaultTimeout).
func FetchTrustBundle(ctx context.Context, hc *http.Client, base string, pinned [][]byte) (root *x509.Certificate, inters []*x509.Certificate, err error) {
	if hc == nil {
		hc = &http.Client{Timeout: DefaultTimeout}
	}
	base = strings.TrimRight(base, "/")
	roots, err := fetchCerts(ctx, hc, base, api.RootsPEMPath)
	if err != nil {
		return nil, nil, err
	}
	for _, c := range roots {
		sum := sha256.Sum256(c.Raw)
		if certutil.SelfSigned(c) && slices.ContainsFunc(pinned, func(p []byte) bool { return bytes.Equal(p, sum[:]) }) {
			root = c
			break
		}
	}
	if root == nil {
		return nil, nil, fault.New(fault.Forbidden, "the CA at "+base+" serves no root matching the one to trust",
			"check the CA's URL and the root: if both are right, this is not your CA")
	}
	if inters, err = fetchCerts(ctx, hc, base, api.ChainPEMPath); err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	for _, c := range inters {
		if !c.IsCA {
			return nil, nil, fault.New(fault.Forbidden, fmt.Sprintf("%s%s holds %q, which is not a CA certificate", base, api.ChainPEMPath, c.Subject),
				"check that the URL is the CA whose root you trust")
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return nil, nil, fault.Wrap(err, fault.Forbidden, fmt.Sprintf("the intermediate %q from %s%s does not chain to the trusted root", c.Subject, base, api.ChainPEMPath),
				"check that the URL is the CA whose root you trust")
		}
	}
	return root, inters, nil
}

// fetchCerts GETs a bounded PEM bundle of at least one certificate.
func fetchCerts(ctx context.Context, hc *http.Client, base, path string) ([]*x509.Certificate, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return nil, fault.Wrap(err, fault.Malformed, fmt.Sprintf("the CA URL %q is not a URL", base), "give the CA's URL as http(s)://HOST:PORT")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, unreachable(base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fault.New(fault.NotFound, fmt.Sprintf("the CA at %s answered %s for %s", base, resp.Status, path),
			"give the CA's base URL (scheme, host and port, no path)")
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBundleBytes))
	if err != nil {
		return nil, fault.Wrap(err, fault.Unavailable, "cannot read "+base+path, "try again")
	}
	certs, err := pemutil.ParseCertificateBundle(b)
	if err != nil || len(certs) == 0 {
		return nil, fault.Wrap(err, fault.Malformed, base+path+" is not a PEM certificate bundle",
			"give the CA's base URL (scheme, host and port, no path)")
	}
	return certs, nil
}

// verifyIssued checks an issued chain (PEM, leaf first) against the
// client's roots for usage at now, and that the leaf certifies pub (the
// DER SubjectPublicKeyInfo of the CSR). It returns the parsed chain.
func (c *Client) verifyIssued(chainPEM string, pubDER []byte, usage x509.ExtKeyUsage, now time.Time) ([]*x509.Certificate, error) {
	const hint = "report this to the CA's operator"
	certs, err := pemutil.ParseCertificateBundle([]byte(chainPEM))
	if err != nil || len(certs) == 0 {
		return nil, fault.Wrap(err, fault.Malformed, "the CA returned no certificate chain", hint)
	}
	inter := x509.NewCertPool()
	for _, ic := range certs[1:] {
		inter.AddCert(ic)
	}
	opts := x509.VerifyOptions{Roots: c.roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}, CurrentTime: now}
	if _, err := certs[0].Verify(opts); err != nil {
		return nil, fault.Wrap(err, fault.Forbidden, "the issued certificate does not verify against the trusted root", hint)
	}
	if got, _ := x509.MarshalPKIXPublicKey(certs[0].PublicKey); !bytes.Equal(got, pubDER) {
		return nil, fault.New(fault.Forbidden, "the issued certificate is not for the key the CSR carried", hint)
	}
	return certs, nil
}
