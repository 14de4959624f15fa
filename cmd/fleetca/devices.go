package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

type deviceJSON struct {
	ID           string     `json:"id"`
	Status       string     `json:"status"`
	CreatedAt    string     `json:"created_at"`
	UpdatedAt    string     `json:"updated_at"`
	Certificates []certJSON `json:"certificates,omitempty"`
}

type certJSON struct {
	Serial    string `json:"serial"`
	DeviceID  string `json:"device_id"`
	NotBefore string `json:"not_before"`
	NotAfter  string `json:"not_after"`
	IssuedAt  string `json:"issued_at"`
	RevokedAt string `json:"revoked_at,omitempty"`
	Reason    int    `json:"reason,omitempty"`
}

func newDevicesCmd(e env) *cobra.Command {
	var a adminFlags
	var asJSON bool
	cmd := &cobra.Command{Use: "devices", Short: "List, show and reset enrolled devices"}
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
			var all []deviceJSON
			for after := ""; ; {
				var page struct {
					Devices []deviceJSON `json:"devices"`
					Next    string       `json:"next"`
				}
				if err := c.do(cmd.Context(), "GET", "/v1/admin/devices?limit=1000&after="+url.QueryEscape(after), nil, &page); err != nil {
					return err
				}
				all = append(all, page.Devices...)
				if after = page.Next; after == "" {
					break
				}
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
			var d deviceJSON
			if err := c.do(cmd.Context(), "GET", "/v1/admin/devices/"+url.PathEscape(args[0]), nil, &d); err != nil {
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
			var d deviceJSON
			if err := c.do(cmd.Context(), "POST", "/v1/admin/devices/"+url.PathEscape(args[0])+"/reset", nil, &d); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "device %s is %s again; it may enroll with a new token\n", d.ID, d.Status)
			return nil
		},
	})
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
		Short: "List certificates, of one device or all",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client(e)
			if err != nil {
				return err
			}
			var all []certJSON
			for after := ""; ; {
				var page struct {
					Certificates []certJSON `json:"certificates"`
					Next         string     `json:"next"`
				}
				q := url.Values{"limit": {"1000"}, "after": {after}, "device_id": {deviceID}}
				if err := c.do(cmd.Context(), "GET", "/v1/admin/certificates?"+q.Encode(), nil, &page); err != nil {
					return err
				}
				all = append(all, page.Certificates...)
				if after = page.Next; after == "" {
					break
				}
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

func printCerts(e env, certs []certJSON) error {
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SERIAL\tDEVICE\tNOT AFTER\tREVOKED")
	for _, ct := range certs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", ct.Serial, ct.DeviceID, ct.NotAfter, orDash(ct.RevokedAt))
	}
	return w.Flush()
}
