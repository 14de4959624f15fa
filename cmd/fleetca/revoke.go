package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/revocation"
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

REASON is one of the RFC 5280 reason names (default unspecified):
  ` + strings.Join(revocation.ReasonNames(), ", ") + `.
keyCompromise also blocks the public key: no later CSR with it is accepted,
for any device. (removeFromCRL is no reason to revoke: RFC 5280 keeps it
for delta CRLs.)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (serial == "") == (deviceID == "") {
				return usagef("give exactly one of --serial HEX and --device-id ID")
			}
			if _, err := revocation.ParseReason(reas); err != nil {
				return usage(err)
			}
			c, err := a.client(e)
			if err != nil {
				return err
			}
			var revoked []api.RevokedCertificate
			if deviceID != "" {
				revoked, err = c.RevokeDevice(cmd.Context(), deviceID, reas)
			} else {
				revoked, err = c.RevokeCertificate(cmd.Context(), serial, reas)
			}
			if err != nil {
				return err
			}
			if deviceID != "" {
				fmt.Fprintf(e.stdout, "device %s revoked (%d live certificate(s))\n", deviceID, len(revoked))
			}
			for _, r := range revoked {
				fmt.Fprintf(e.stdout, "revoked %s (device %s) at %s: %s\n", r.Serial, r.DeviceID, r.RevokedAt, r.Reason)
			}
			return nil
		},
	}
	a.register(cmd)
	f := cmd.Flags()
	f.StringVar(&serial, "serial", "", "serial of the certificate to revoke (hex)")
	f.StringVar(&deviceID, "device-id", "", "device to revoke, with all its live certificates")
	f.StringVar(&reas, "reason", "unspecified", "RFC 5280 reason name: "+strings.Join(revocation.ReasonNames(), ", "))
	return cmd
}
