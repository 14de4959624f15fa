package main

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fleetca/fleetca/api"
)

func newTokenCmd(e env) *cobra.Command {
	var a adminFlags
	cmd := &cobra.Command{Use: "token", Short: "Create, list and revoke enrollment tokens"}
	a.register(cmd)
	cmd.AddCommand(newTokenCreateCmd(e, &a), newTokenListCmd(e, &a), newTokenRevokeCmd(e, &a))
	return cmd
}

func newTokenCreateCmd(e env, a *adminFlags) *cobra.Command {
	var (
		deviceID, pattern string
		ttl               time.Duration
		uses              int
		asJSON, anyDevice bool
		format            string
		batch             tokenBatch
		revokeSerial      string
	)
	cmd := &cobra.Command{
		Use:   "create --device-id ID | --device-pattern GLOB | --device-ids-file F --out CSV | --format step --revoke SERIAL",
		Short: "Mint an enrollment token; prints the token on stdout",
		Long: `create mints an enrollment token and prints it on stdout (its ID and expiry on
stderr), so that T=$(fleetca token create ...) captures it. The token is shown
once: the CA keeps only its hash.

--device-id ID enrolls that one device. --device-pattern GLOB lets a factory
station enroll new devices whose CSR CN matches the glob, --uses times. A glob
that matches every device ID ('*', '?*', '[A-Za-z0-9]*', ...) mints a token
for any new device: it is refused unless --any-device says that is meant.

--ttl is from 1m to enroll.max_token_ttl (720h by default); without it the
token lives enroll.default_token_ttl (24h by default). --ttl 0s is refused.

--format step mints a one-time token for the step CLI instead (one
--device-id, one use): a JWT signed by the CA's step provisioner key
(ca.step_provisioner_key) that carries the CA's sign URL and root
fingerprint, so that on the device

  step ca certificate ID ID.crt ID.key --token "$T"

needs no --ca-url or --root.

--format step --revoke SERIAL mints a one-time revocation token for the
certificate with that serial (hex, as certs list shows it): on the device,
or wherever the certificate's key is lost,

  step ca revoke DECIMAL-SERIAL --token "$T"

revokes it with no --ca-url and no --root (the command, with the serial in
decimal as step wants it, is printed on stderr). The token is spent with
the revocation, once; the certificate must be known and not revoked.

--device-ids-file F --out CSV mints one one-use token for each device ID in
F (one a line; blank lines and lines starting with # are skipped), for a
factory station. A bad or repeated ID refuses the whole file, naming its
line, before anything is minted. Tokens are minted in chunks of 500, each
one request and one transaction on the CA, and written to CSV (mode 0600,
through a temporary file and a rename; an existing CSV only with --force)
with the header device_id,token_id,token,expires_at. On a terminal a
progress bar shows on stderr; a summary line ends the run. If a chunk
fails, CSV holds exactly the tokens minted before it, and the error says
how many, so that the station can mint the rest.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			batch.format = format
			if batch.idsFile != "" {
				if err := batch.checkFlags(cmd, deviceID, pattern, asJSON, anyDevice); err != nil {
					return err
				}
				if cmd.Flags().Changed("ttl") {
					batch.ttl = ttl.String()
				}
				c, err := a.client(e)
				if err != nil {
					return err
				}
				return batch.run(cmd.Context(), e, c)
			}
			if batch.out != "" || batch.force {
				return usagef("--out and --force go with --device-ids-file")
			}
			if revokeSerial != "" {
				return createRevokeToken(cmd, e, a, revokeSerial, format, deviceID != "" || pattern != "" || anyDevice, ttl, asJSON)
			}
			if (deviceID == "") == (pattern == "") {
				return usagef("give exactly one of --device-id ID, --device-pattern GLOB and --device-ids-file F")
			}
			c, err := a.client(e)
			if err != nil {
				return err
			}
			req := api.TokenRequest{DeviceID: deviceID, DevicePattern: pattern, AnyDevice: anyDevice, Uses: uses, Format: format}
			// A --ttl the user typed goes to the CA even when it is 0s,
			// which the CA refuses: only an absent --ttl means the default.
			if cmd.Flags().Changed("ttl") {
				req.TTL = ttl.String()
			}
			t, err := c.CreateToken(cmd.Context(), req)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(e.stdout).Encode(t)
			}
			fmt.Fprintln(e.stdout, t.Token)
			fmt.Fprintf(e.stderr, "token %s: %d use(s), expires %s\n", t.ID, t.Uses, t.ExpiresAt)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&deviceID, "device-id", "", "the one device this token enrolls")
	f.StringVar(&pattern, "device-pattern", "", "glob of new device IDs this token enrolls, e.g. 'line3-*'")
	f.BoolVar(&anyDevice, "any-device", false, "allow a --device-pattern that matches every device ID (the token enrolls any new device)")
	f.DurationVar(&ttl, "ttl", 0, "how long the token is valid, 1m to enroll.max_token_ttl (default enroll.default_token_ttl, 24h)")
	f.IntVar(&uses, "uses", 1, "how many devices the token may enroll")
	f.BoolVar(&asJSON, "json", false, "print the token and its details as JSON")
	f.StringVar(&format, "format", "", `"step" for a step CLI token (step ca certificate --token); default a fleetca token`)
	f.StringVar(&revokeSerial, "revoke", "", "with --format step: mint a revocation token for the certificate with this serial (hex)")
	f.StringVar(&batch.idsFile, "device-ids-file", "", "a file of device IDs, one a line: one one-use token each, into --out")
	f.StringVar(&batch.out, "out", "", "the CSV to write the tokens of --device-ids-file to")
	f.BoolVar(&batch.force, "force", false, "replace an existing --out")
	return cmd
}

func newTokenListCmd(e env, a *adminFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List enrollment tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client(e)
			if err != nil {
				return err
			}
			all, err := c.ListTokens(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(e.stdout).Encode(all)
			}
			w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tFOR\tUSES\tEXPIRES\tREVOKED")
			for _, t := range all {
				who := t.DeviceID
				switch {
				case t.AnyDevice:
					who = "ANY DEVICE (pattern " + t.DevicePattern + ")"
				case who == "":
					who = "pattern " + t.DevicePattern
				}
				fmt.Fprintf(w, "%s\t%s\t%d/%d\t%s\t%s\n", t.ID, who, t.Spent, t.Uses, t.ExpiresAt, orDash(t.RevokedAt))
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newTokenRevokeCmd(e env, a *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an enrollment token by its ID",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(e)
			if err != nil {
				return err
			}
			t, err := c.RevokeToken(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "token %s revoked at %s\n", t.ID, t.RevokedAt)
			return nil
		},
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// createRevokeToken is token create --format step --revoke SERIAL.
func createRevokeToken(cmd *cobra.Command, e env, a *adminFlags, serial, format string, forDevice bool, ttl time.Duration, asJSON bool) error {
	switch {
	case format != "step":
		return usagef("--revoke mints a step token: give --format step")
	case forDevice:
		return usagef("--revoke names a certificate: leave out --device-id, --device-pattern and --any-device")
	case cmd.Flags().Changed("uses"):
		return usagef("a revocation token has one use: leave out --uses")
	}
	n, ok := new(big.Int).SetString(strings.ReplaceAll(serial, ":", ""), 16)
	if !ok || n.Sign() <= 0 {
		return flagUsage("--revoke", fmt.Errorf("%q is not a certificate serial in hex", serial))
	}
	c, err := a.client(e)
	if err != nil {
		return err
	}
	req := api.TokenRequest{Format: format, RevokeSerial: n.Text(16)}
	if cmd.Flags().Changed("ttl") {
		req.TTL = ttl.String()
	}
	t, err := c.CreateToken(cmd.Context(), req)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(e.stdout).Encode(t)
	}
	fmt.Fprintln(e.stdout, t.Token)
	fmt.Fprintf(e.stderr, "token %s revokes certificate %s of %s once, until %s: step ca revoke %s --token \"$T\"\n",
		t.ID, n.Text(16), t.DeviceID, t.ExpiresAt, n.String())
	return nil
}
