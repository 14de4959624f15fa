package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"go.step.sm/crypto/pemutil"

	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/client"
	"github.com/fleetca/fleetca/internal/atomicfile"
	"github.com/fleetca/fleetca/internal/fault"
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
	c, err := enrollClient(ctx, o.caURL, o.root, o.fingerprint)
	if err != nil {
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

	out, err := c.Enroll(ctx, token, csrDER)
	if err != nil {
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

// enrollClient returns a client of the CA at caURL (its HTTPS listener),
// trusting the roots in rootFile, or else the root whose SHA-256 is
// fingerprint, fetched from the CA.
func enrollClient(ctx context.Context, caURL, rootFile, fingerprint string) (*client.Client, error) {
	var roots []*x509.Certificate
	if rootFile != "" {
		var err error
		if roots, err = client.ReadRoots(rootFile); err != nil {
			return nil, err
		}
	} else {
		fp, err := parseFingerprint(fingerprint)
		if err != nil {
			return nil, err
		}
		root, err := client.Bootstrap(ctx, caURL, fp)
		if err != nil {
			return nil, err
		}
		roots = []*x509.Certificate{root}
	}
	return client.New(client.Config{URL: caURL, Roots: roots})
}

// parseFingerprint reads --fingerprint; a bad one is a usage error.
func parseFingerprint(s string) ([]byte, error) {
	fp, err := client.ParseFingerprint(s)
	if err != nil {
		return nil, usagef("--fingerprint must be the 64 hex digits of the root's SHA-256 (fleetca serve prints it)")
	}
	return fp, nil
}
