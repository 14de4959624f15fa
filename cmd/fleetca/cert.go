package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"go.step.sm/crypto/pemutil"

	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/internal/atomicfile"
	"github.com/fleetca/fleetca/internal/fault"
)

func newCertCmd(e env) *cobra.Command {
	cmd := &cobra.Command{Use: "cert", Short: "Issue certificates other than devices' (a TLS server certificate for a proxy)"}
	cmd.AddCommand(newCertServerCmd(e))
	return cmd
}

// certServerOptions are the inputs of `fleetca cert server`.
type certServerOptions struct {
	a               adminFlags
	dns, ips        []string
	keyOut, certOut string
	force           bool
}

func newCertServerCmd(e env) *cobra.Command {
	var o certServerOptions
	cmd := &cobra.Command{
		Use:   "server --dns HOST[,HOST...] [--ip IP,...] --key OUT --cert OUT",
		Short: "Issue a TLS server certificate from the intermediate, for fleetca proxy or another verifier",
		Long: `cert server makes a P-256 key here (the private key never leaves), asks the
CA for a TLS server certificate for the --dns names and --ip addresses
(EKU serverAuth, valid ca.server_validity, default 7 days), and writes the
key (mode 0600) and the certificate followed by its chain (leaf first, root
excluded), each through a temporary file and a rename.

Devices that trust the fleet root then trust this server: use it as
'fleetca proxy --cert OUT --key OUT'. Renew it before it expires by running
the command again and sending the proxy SIGHUP.

Server certificates are audited (certificate.server_issue) but are not
device certificates: 'fleetca certs list' does not show them and
'fleetca revoke' cannot revoke them. Keep their lifetime short instead.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCertServer(cmd, e, o)
		},
	}
	o.a.register(cmd)
	f := cmd.Flags()
	f.StringSliceVar(&o.dns, "dns", nil, "DNS names of the server (comma-separated or repeated)")
	f.StringSliceVar(&o.ips, "ip", nil, "IP addresses of the server (comma-separated or repeated)")
	f.StringVar(&o.keyOut, "key", "", "where to write the new private key (mode 0600)")
	f.StringVar(&o.certOut, "cert", "", "where to write the certificate and its chain")
	f.BoolVar(&o.force, "force", false, "overwrite existing key and certificate files")
	return cmd
}

func runCertServer(cmd *cobra.Command, e env, o certServerOptions) error {
	switch {
	case len(o.dns) == 0 && len(o.ips) == 0:
		return usagef("cert server needs --dns HOST or --ip IP")
	case o.keyOut == "" || o.certOut == "":
		return usagef("cert server needs --key FILE and --cert FILE")
	case o.keyOut == o.certOut:
		return usagef("--key and --cert must be different files")
	}
	for _, ip := range o.ips {
		if net.ParseIP(ip) == nil {
			return usagef("--ip %q is not an IP address", ip)
		}
	}
	if !o.force {
		for _, out := range []string{o.keyOut, o.certOut} {
			if _, err := os.Stat(out); err == nil {
				return fault.New(fault.Conflict, out+" exists", "remove it or pass --force to overwrite it")
			}
		}
	}
	c, err := o.a.client(e)
	if err != nil {
		return err
	}
	key, err := ca.GenerateKey(ca.KeyECP256)
	if err != nil {
		return err
	}
	// No subject and no SANs: the request names the server, the CSR only
	// proves possession of the key.
	csrDER, err := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{}, key)
	if err != nil {
		return fmt.Errorf("make CSR: %w", err)
	}
	out, err := c.IssueServerCert(cmd.Context(), csrDER, o.dns, o.ips)
	if err != nil {
		return err
	}
	block, err := pemutil.Serialize(key, pemutil.WithPKCS8(true))
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	if err := atomicfile.Write(o.keyOut, pem.EncodeToMemory(block), 0o600); err != nil {
		return err
	}
	if err := atomicfile.Write(o.certOut, []byte(out.Chain), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "server certificate for %s: serial %s, valid until %s\n",
		strings.Join(append(append([]string{}, o.dns...), o.ips...), ", "), out.Serial, out.NotAfter)
	return nil
}
