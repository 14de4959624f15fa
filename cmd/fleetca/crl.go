package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/internal/atomicfile"
	"github.com/fleetca/fleetca/revocation"
)

func newCRLCmd(e env) *cobra.Command {
	cmd := &cobra.Command{Use: "crl", Short: "Keep a verifier's CRL file fresh; sign the root CRL with an offline root key"}
	cmd.AddCommand(newCRLSyncCmd(e))
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
			if err := atomicfile.Write(out, der, 0o644); err != nil {
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
	return atomicfile.Write(filepath.Join(dir, rootCRLName), der, 0o644)
}
