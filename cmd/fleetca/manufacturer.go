package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
)

func newManufacturerCmd(e env) *cobra.Command {
	var a adminFlags
	cmd := &cobra.Command{Use: "manufacturer", Short: "Add, list and remove manufacturer CAs: their devices enroll without a token"}
	a.register(cmd)
	cmd.AddCommand(newManufacturerAddCmd(e, &a), newManufacturerListCmd(e, &a), newManufacturerRemoveCmd(e, &a))
	return cmd
}

func newManufacturerAddCmd(e env, a *adminFlags) *cobra.Command {
	var name, caFile, idFrom, pattern string
	cmd := &cobra.Command{
		Use:   "add --name N --ca FILE --device-id-from cn|serialNumber [--device-pattern GLOB]",
		Short: "Let devices with a certificate from a manufacturer's CA enroll without a token",
		Long: `add registers a manufacturer's CA. A device whose factory certificate (IDevID)
chains to it may then enroll by presenting that certificate over mutual TLS
on POST /v1/enroll, without an Authorization header, e.g.

  curl --cacert root.pem --cert idevid.crt --key idevid.key \
       --data-binary @device.csr https://ca.example.com:8443/v1/enroll

The device ID is the certificate's subject CN (--device-id-from cn) or its
subject serialNumber attribute (--device-id-from serialNumber); it must be a
valid device ID and match --device-pattern if one is given, and the CSR must
name that device. Each manufacturer certificate enrolls one device once: a
second enrollment is refused (409) until an admin revokes and resets the
device. The certificate's extended key usage is not checked (clientAuth is
not required); its chain and validity are.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" || caFile == "" || idFrom == "" {
				return usagef("give --name, --ca and --device-id-from")
			}
			caPEM, err := os.ReadFile(caFile)
			if err != nil {
				return fault.Wrap(err, fault.Malformed, fmt.Sprintf("cannot read the CA file %s", caFile), "give the manufacturer's CA certificate as a PEM file")
			}
			c, err := a.client(e)
			if err != nil {
				return err
			}
			m, err := c.AddManufacturer(cmd.Context(), api.ManufacturerRequest{Name: name, CA: string(caPEM), DeviceIDFrom: idFrom, DevicePattern: pattern})
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "manufacturer %s added (device ID from %s%s)\n", m.Name, m.DeviceIDFrom, patternNote(m.DevicePattern))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "the manufacturer's name, e.g. acme")
	f.StringVar(&caFile, "ca", "", "PEM file of the manufacturer's CA certificate(s)")
	f.StringVar(&idFrom, "device-id-from", "", "where the device ID is read: cn or serialNumber (of the certificate's subject)")
	f.StringVar(&pattern, "device-pattern", "", "glob every device ID must match, e.g. 'acme-*'")
	return cmd
}

func patternNote(p string) string {
	if p == "" {
		return ""
	}
	return ", pattern " + p
}

func newManufacturerListCmd(e env, a *adminFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List manufacturers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client(e)
			if err != nil {
				return err
			}
			all, err := c.ListManufacturers(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(e.stdout).Encode(all)
			}
			w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tDEVICE ID FROM\tPATTERN\tCA SHA-256\tCREATED")
			for _, m := range all {
				sum := "-"
				if len(m.CASHA256) > 0 {
					sum = m.CASHA256[0]
					if len(m.CASHA256) > 1 {
						sum += fmt.Sprintf(" (+%d)", len(m.CASHA256)-1)
					}
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", m.Name, m.DeviceIDFrom, orDash(m.DevicePattern), sum, m.CreatedAt)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newManufacturerRemoveCmd(e env, a *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a manufacturer: its certificates enroll no more (enrolled devices keep theirs)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(e)
			if err != nil {
				return err
			}
			if err := c.RemoveManufacturer(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "manufacturer %s removed\n", args[0])
			return nil
		},
	}
}
