package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fleetca/fleetca/web"
)

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
			all, err := listAll[web.DeviceJSON](cmd.Context(), c, "/v1/admin/devices", nil, "devices")
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
			var d web.DeviceJSON
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
			var d web.DeviceJSON
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
			all, err := listAll[web.CertificateJSON](cmd.Context(), c, "/v1/admin/certificates", url.Values{"device_id": {deviceID}}, "certificates")
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

func printCerts(e env, certs []web.CertificateJSON) error {
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SERIAL\tDEVICE\tNOT AFTER\tREVOKED")
	for _, ct := range certs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", ct.Serial, ct.DeviceID, ct.NotAfter, orDash(ct.RevokedAt))
	}
	return w.Flush()
}

// listAll fetches every page of an admin listing: the items under key,
// following "next" until it is empty.
func listAll[T any](ctx context.Context, c *adminClient, path string, q url.Values, key string) ([]T, error) {
	if q == nil {
		q = url.Values{}
	}
	q.Set("limit", "1000")
	var all []T
	for after := ""; ; {
		q.Set("after", after)
		var page map[string]json.RawMessage
		if err := c.do(ctx, "GET", path+"?"+q.Encode(), nil, &page); err != nil {
			return nil, err
		}
		var items []T
		if err := json.Unmarshal(page[key], &items); err != nil {
			return nil, fmt.Errorf("decode %s: %w", key, err)
		}
		all = append(all, items...)
		if err := json.Unmarshal(page["next"], &after); err != nil || after == "" {
			return all, nil
		}
	}
}
