package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fleetca/fleetca/api"
)

func newDevicesCmd(e env) *cobra.Command {
	var a adminFlags
	var asJSON bool
	cmd := &cobra.Command{Use: "devices", Short: "List, show and reset enrolled devices; make them renew now"}
	a.register(cmd)
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List devices",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client(e)
			if err != nil {
				return err
			}
			all, err := c.ListDevices(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(e.stdout).Encode(all)
			}
			w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "DEVICE\tSTATUS\tENROLLED\tUPDATED")
			for _, d := range all {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", d.ID, d.Status, d.CreatedAt, d.UpdatedAt)
			}
			return w.Flush()
		},
	}, &cobra.Command{
		Use:   "show ID",
		Short: "Show a device and its certificates",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(e)
			if err != nil {
				return err
			}
			d, err := c.Device(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(e.stdout).Encode(d)
			}
			fmt.Fprintf(e.stdout, "device:   %s\nstatus:   %s\nenrolled: %s\nupdated:  %s\n", d.ID, d.Status, d.CreatedAt, d.UpdatedAt)
			return printCerts(e, d.Certificates)
		},
	}, &cobra.Command{
		Use:   "reset ID",
		Short: "Let a revoked device enroll again (its revoked certificates stay revoked)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(e)
			if err != nil {
				return err
			}
			d, err := c.ResetDevice(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "device %s is %s again; it may enroll with a new token\n", d.ID, d.Status)
			return nil
		},
	}, newRenewNowCmd(e, &a, &asJSON))
	return cmd
}

// newRenewNowCmd is `devices renew-now (ID | --all)`.
func newRenewNowCmd(e env, a *adminFlags, asJSON *bool) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "renew-now (ID | --all)",
		Short: "Make a device, or every device, renew its certificate at its next check",
		Long: `renew-now moves the renewal window of a device's certificates (or, with
--all, of every device's) to now: GET /v1/renewal-info/{serial} then
suggests renewing at once, and renewal agents (fleetca renew --daemon)
renew at their next check, within a few hours. Use it after a new
intermediate, or an incident. Certificates issued after it are not
affected.`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case all && len(args) > 0:
				return usagef("give a device ID or --all, not both")
			case !all && len(args) != 1:
				return usagef("give one device ID, or --all for every device")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(e)
			if err != nil {
				return err
			}
			var out api.RenewNowResponse
			if all {
				out, err = c.RenewNowFleet(cmd.Context())
			} else {
				out, err = c.RenewNow(cmd.Context(), args[0])
			}
			if err != nil {
				return err
			}
			if *asJSON {
				return json.NewEncoder(e.stdout).Encode(out)
			}
			if all {
				fmt.Fprintf(e.stdout, "every device is asked to renew, as of %s\n", out.At)
			} else {
				fmt.Fprintf(e.stdout, "device %s is asked to renew, as of %s\n", out.DeviceID, out.At)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "ask every device")
	return cmd
}

func newCertsCmd(e env) *cobra.Command {
	var a adminFlags
	cmd := &cobra.Command{Use: "certs", Short: "List issued certificates"}
	a.register(cmd)
	var deviceID string
	var asJSON bool
	list := &cobra.Command{
		Use:   "list [--device-id ID]",
		Short: "List certificates, of one device or all, with the certificate each renewed (PARENT)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client(e)
			if err != nil {
				return err
			}
			all, err := c.ListCertificates(cmd.Context(), deviceID)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(e.stdout).Encode(all)
			}
			return printCerts(e, all)
		},
	}
	list.Flags().StringVar(&deviceID, "device-id", "", "only this device's certificates")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(list)
	return cmd
}

func printCerts(e env, certs []api.Certificate) error {
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SERIAL\tDEVICE\tNOT AFTER\tREVOKED\tPARENT")
	for _, ct := range certs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", ct.Serial, ct.DeviceID, ct.NotAfter, orDash(ct.RevokedAt), orDash(ct.ParentSerial))
	}
	return w.Flush()
}
