package main

import (
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/revocation"
	"github.com/fleetca/fleetca/web"
)

func newRevokeCmd(e env) *cobra.Command {
	var (
		a                      adminFlags
		serial, deviceID, reas string
	)
	cmd := &cobra.Command{
		Use:   "revoke --serial HEX | --device-id ID [--reason REASON]",
		Short: "Revoke a certificate, or a device and all its live certificates",
		Long: `revoke revokes one certificate by serial, or a device: every live certificate
of it, and the device itself, which may not enroll again until
'fleetca devices reset ID'. The revocation is durable and audited when the
command returns; OCSP answers 'revoked' from the next request, and a new CRL
is published within a second.

REASON is an RFC 5280 reason name: unspecified (default), keyCompromise,
cACompromise, affiliationChanged, superseded, cessationOfOperation,
certificateHold, privilegeWithdrawn or aACompromise. keyCompromise also blocks
the public key: no later CSR with it is accepted, for any device.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (serial == "") == (deviceID == "") {
				return usagef("give exactly one of --serial HEX and --device-id ID")
			}
			if _, err := revocation.ParseReason(reas); err != nil {
				return usagef("%s", oneLine(err))
			}
			c, err := a.client(e)
			if err != nil {
				return err
			}
			path := "/v1/admin/certificates/" + url.PathEscape(serial) + "/revoke"
			if deviceID != "" {
				path = "/v1/admin/devices/" + url.PathEscape(deviceID) + "/revoke"
			}
			var out struct {
				Revoked []web.RevocationJSON `json:"revoked"`
			}
			if err := c.do(cmd.Context(), "POST", path, map[string]string{"reason": reas}, &out); err != nil {
				return err
			}
			if deviceID != "" {
				fmt.Fprintf(e.stdout, "device %s revoked (%d live certificate(s))\n", deviceID, len(out.Revoked))
			}
			for _, r := range out.Revoked {
				fmt.Fprintf(e.stdout, "revoked %s (device %s) at %s: %s\n", r.Serial, r.DeviceID, r.RevokedAt, r.Reason)
			}
			return nil
		},
	}
	a.register(cmd)
	f := cmd.Flags()
	f.StringVar(&serial, "serial", "", "serial of the certificate to revoke (hex)")
	f.StringVar(&deviceID, "device-id", "", "device to revoke, with all its live certificates")
	f.StringVar(&reas, "reason", "unspecified", "RFC 5280 reason name")
	return cmd
}

func newCRLCmd(e env) *cobra.Command {
	cmd := &cobra.Command{Use: "crl", Short: "Root CRL signing for a CA whose root key is kept offline"}
	var (
		dir, out, passwordFile string
		validity               time.Duration
	)
	sign := &cobra.Command{
		Use:   "sign-root --dir DIR [--validity 720h] [--out FILE]",
		Short: "Sign the root's CRL over intermediates with the root key",
		Long: `sign-root signs a new root CRL with the root key found in DIR (run it where
the root key is kept) and writes it to --out (default DIR/root.crl). Copy the
file into the serving CA's data directory: the server picks it up within a
minute and serves it at /root.crl. The server warns when its root CRL has a
quarter of its validity left.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := dataDir(dir, e.getenv)
			if err != nil {
				return err
			}
			cfg, err := loadConfig(d)
			if err != nil {
				return err
			}
			pw, err := readPassword(passwordFile, cfg.PasswordFile, e.getenv)
			if err != nil {
				return err
			}
			authority, err := ca.New(cmd.Context(), cfg.CA, ca.Deps{Dir: d, Password: pw, PublicURL: cfg.Server.PublicURL, TrustDomain: cfg.TrustDomain})
			if err != nil {
				return err
			}
			defer authority.Close()
			if validity == 0 {
				validity = cfg.Revocation.RootCRLValidity
			}
			der, err := revocation.SignRootCRL(cmd.Context(), authority, time.Now(), validity)
			if err != nil {
				return err
			}
			if out == "" {
				out = filepath.Join(d, rootCRLName)
			}
			if err := writeFileAtomic(out, der, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "root CRL written to %s, valid until %s\n", out, time.Now().Add(validity).UTC().Format(time.RFC3339))
			return nil
		},
	}
	sign.Flags().StringVar(&dir, "dir", "", "data directory with the root certificate and key")
	sign.Flags().StringVar(&out, "out", "", "where to write the CRL (default DIR/root.crl)")
	sign.Flags().StringVar(&passwordFile, "password-file", "", "file with the CA keys' password")
	sign.Flags().DurationVar(&validity, "validity", 0, "how long the CRL is valid (default revocation.root_crl_validity, 720h)")
	cmd.AddCommand(sign)
	return cmd
}

// rootCRLName is the root CRL's file in the data directory.
const rootCRLName = "root.crl"

// writeRootCRL signs the first root CRL at init.
func writeRootCRL(cmd *cobra.Command, dir string, authority *ca.Authority, validity time.Duration) error {
	der, err := revocation.SignRootCRL(cmd.Context(), authority, time.Now(), validity)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, rootCRLName), der, 0o644)
}
