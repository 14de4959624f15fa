package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.step.sm/crypto/pemutil"

	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/internal/atomicfile"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/web"
)

type enrollOptions struct {
	caURL, fingerprint, root, token, tokenFile string
	keyOut, certOut, chainOut, csrIn           string
	keyType, deviceID                          string
	force                                      bool
}

func newEnrollCmd(e env) *cobra.Command {
	var o enrollOptions
	cmd := &cobra.Command{
		Use:   "enroll --ca URL (--fingerprint SHA256 | --root FILE) --token T --key OUT --cert OUT",
		Short: "On a device: make a key, send a CSR with an enrollment token, save the certificate",
		Long: `enroll makes the device's key pair locally (the private key never leaves),
sends a CSR to the CA with the enrollment token, and writes the key (mode 0600)
and the certificate followed by its chain (leaf first, root excluded).

The CA is trusted only once its root matches --fingerprint (the SHA-256 that
'fleetca serve' prints), or is the --root file. With --csr an existing CSR is
sent instead and no key is made (a key kept in a secure element).

The token may come from --token, --token-file or FLEETCA_TOKEN.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.token == "" && o.tokenFile == "" {
				o.token = e.getenv("FLEETCA_TOKEN")
			}
			return runEnroll(cmd.Context(), e, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.caURL, "ca", "", "the CA's HTTPS URL, e.g. https://ca.example.com:8443")
	f.StringVar(&o.fingerprint, "fingerprint", "", "SHA-256 fingerprint of the CA's root (hex)")
	f.StringVar(&o.root, "root", "", "root certificate file to trust instead of --fingerprint")
	f.StringVar(&o.token, "token", "", "enrollment token (or --token-file, or FLEETCA_TOKEN)")
	f.StringVar(&o.tokenFile, "token-file", "", "file holding the enrollment token")
	f.StringVar(&o.keyOut, "key", "", "where to write the new private key (mode 0600)")
	f.StringVar(&o.certOut, "cert", "", "where to write the certificate and its chain")
	f.StringVar(&o.chainOut, "chain", "", "also write the chain alone (leaf first, root excluded) here")
	f.StringVar(&o.csrIn, "csr", "", "send this CSR (PEM) instead of making a key")
	f.StringVar(&o.keyType, "key-type", string(ca.KeyECP256), "key type: ec-p256, ec-p384, rsa-3072 or ed25519")
	f.StringVar(&o.deviceID, "device-id", "", "device ID for the CSR's CN (needed with a pattern token)")
	f.BoolVar(&o.force, "force", false, "overwrite existing key and certificate files")
	return cmd
}

func runEnroll(ctx context.Context, e env, o enrollOptions) error {
	switch {
	case o.caURL == "":
		return usagef("enroll needs --ca https://HOST:PORT")
	case (o.fingerprint == "") == (o.root == ""):
		return usagef("give exactly one of --fingerprint SHA256 and --root FILE")
	case o.certOut == "":
		return usagef("enroll needs --cert FILE")
	case o.csrIn == "" && o.keyOut == "":
		return usagef("enroll needs --key FILE (or --csr FILE with a key kept elsewhere)")
	case o.csrIn != "" && o.keyOut != "":
		return usagef("--csr sends a CSR whose key is kept elsewhere; drop --key")
	}
	token, err := enrollToken(o)
	if err != nil {
		return err
	}
	for _, out := range []string{o.keyOut, o.certOut, o.chainOut} {
		if out == "" || o.force {
			continue
		}
		if _, err := os.Stat(out); err == nil {
			return fault.New(fault.Conflict, out+" exists", "remove it or pass --force to overwrite it")
		}
	}
	base := strings.TrimRight(o.caURL, "/")
	var pool *x509.CertPool
	if o.root != "" {
		if pool, err = readRoots(o.root); err != nil {
			return err
		}
	} else if pool, err = bootstrapRoot(ctx, base, o.fingerprint); err != nil {
		return err
	}

	var key crypto.Signer
	var csrDER []byte
	if o.csrIn != "" {
		b, err := os.ReadFile(o.csrIn)
		if err != nil {
			return fault.Wrap(err, fault.NotFound, "cannot read the CSR "+o.csrIn, "check the path")
		}
		block, _ := pem.Decode(b)
		if block == nil {
			return fault.New(fault.Malformed, o.csrIn+" is not a PEM CSR", "pass a CSR made by openssl req or similar")
		}
		csrDER = block.Bytes
	} else {
		if key, err = ca.GenerateKey(ca.KeyType(o.keyType)); err != nil {
			return err
		}
		tmpl := &x509.CertificateRequest{}
		if o.deviceID != "" {
			tmpl.Subject = pkix.Name{CommonName: o.deviceID}
		}
		if csrDER, err = x509.CreateCertificateRequest(nil, tmpl, key); err != nil {
			return fmt.Errorf("make CSR: %w", err)
		}
	}

	client := httpsClient(pool)
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/v1/enroll",
		bytes.NewReader(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})))
	if err != nil {
		return fault.Wrap(err, fault.Malformed, "bad CA URL "+base, "pass --ca https://HOST:PORT")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/x-pem-file")
	resp, err := client.Do(req)
	if err != nil {
		return fault.Wrap(err, fault.Unavailable, "cannot reach the CA at "+base+": "+err.Error(), "check --ca and the network")
	}
	defer resp.Body.Close()
	var out web.EnrollResponse
	if err := decodeResponse(resp, &out); err != nil {
		return err
	}
	if err := checkIssued(out.Chain, pool, key, x509.ExtKeyUsageClientAuth); err != nil {
		return err
	}
	if key != nil {
		block, err := pemutil.Serialize(key, pemutil.WithPKCS8(true))
		if err != nil {
			return fmt.Errorf("encode key: %w", err)
		}
		if err := atomicfile.Write(o.keyOut, pem.EncodeToMemory(block), 0o600); err != nil {
			return err
		}
	}
	if err := atomicfile.Write(o.certOut, []byte(out.Chain), 0o644); err != nil {
		return err
	}
	if o.chainOut != "" {
		if err := atomicfile.Write(o.chainOut, []byte(out.Chain), 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stdout, "enrolled device %s: serial %s, valid until %s\n", out.DeviceID, out.Serial, out.NotAfter)
	return nil
}

// enrollToken reads the token from --token or --token-file.
func enrollToken(o enrollOptions) (string, error) {
	if o.token != "" {
		return o.token, nil
	}
	if o.tokenFile != "" {
		b, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return "", fault.Wrap(err, fault.NotFound, "cannot read the token file "+o.tokenFile, "check the path")
		}
		return strings.TrimSpace(string(b)), nil
	}
	return "", usagef("enroll needs --token T, --token-file FILE or FLEETCA_TOKEN")
}

// parseFingerprint reads --fingerprint: a root's SHA-256 in hex, with or
// without colons, in either case.
func parseFingerprint(s string) ([]byte, error) {
	fp, err := hex.DecodeString(strings.ToLower(strings.ReplaceAll(s, ":", "")))
	if err != nil || len(fp) != sha256.Size {
		return nil, usagef("--fingerprint must be the 64 hex digits of the root's SHA-256 (fleetca serve prints it)")
	}
	return fp, nil
}

// bootstrapRoot fetches the CA's roots without trusting the connection,
// then keeps only the root whose SHA-256 is fingerprint: the connection
// proves nothing, the fingerprint proves the root. Every later request
// verifies the server against that root.
func bootstrapRoot(ctx context.Context, base, fingerprint string) (*x509.CertPool, error) {
	want, err := parseFingerprint(fingerprint)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		//nolint:gosec // the answer is checked against the fingerprint below, never trusted as such
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12},
	}}
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/roots.pem", nil)
	if err != nil {
		return nil, fault.Wrap(err, fault.Malformed, "bad CA URL "+base, "pass --ca https://HOST:PORT")
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fault.Wrap(err, fault.Unavailable, "cannot reach the CA at "+base+": "+err.Error(), "check --ca and the network")
	}
	defer resp.Body.Close()
	certs, err := readPEMCerts(resp)
	if err != nil {
		return nil, err
	}
	for _, c := range certs {
		if sum := sha256.Sum256(c.Raw); bytes.Equal(sum[:], want) {
			pool := x509.NewCertPool()
			pool.AddCert(c)
			return pool, nil
		}
	}
	return nil, fault.New(fault.Forbidden, "the CA at "+base+" has no root with fingerprint "+hex.EncodeToString(want),
		"check the fingerprint that 'fleetca serve' printed; if it is right, this is not your CA")
}

// readPEMCerts reads a bounded PEM bundle from resp.
func readPEMCerts(resp *http.Response) ([]*x509.Certificate, error) {
	if resp.StatusCode != http.StatusOK {
		return nil, fault.New(fault.Unavailable, "the CA answered "+resp.Status+" for its roots", "check --ca")
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read roots: %w", err)
	}
	certs, err := pemutil.ParseCertificateBundle(b)
	if err != nil {
		return nil, fault.Wrap(err, fault.Malformed, "the CA's roots.pem is not a PEM bundle", "check --ca")
	}
	return certs, nil
}

// checkIssued verifies the returned chain against the root for usage, and
// that the leaf certifies our key.
func checkIssued(chainPEM string, pool *x509.CertPool, key crypto.Signer, usage x509.ExtKeyUsage) error {
	certs, err := pemutil.ParseCertificateBundle([]byte(chainPEM))
	if err != nil || len(certs) == 0 {
		return fault.New(fault.Malformed, "the CA returned no certificate chain", "report this to the CA's operator")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return fault.Wrap(err, fault.Forbidden, "the issued certificate does not verify against the root: "+err.Error(), "report this to the CA's operator")
	}
	if key != nil {
		want, _ := x509.MarshalPKIXPublicKey(key.Public())
		got, _ := x509.MarshalPKIXPublicKey(certs[0].PublicKey)
		if !bytes.Equal(want, got) {
			return fault.New(fault.Forbidden, "the issued certificate is not for this device's key", "report this to the CA's operator")
		}
	}
	return nil
}
