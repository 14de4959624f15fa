package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fleetca/fleetca/api"
)

func newAdminCmd(e env) *cobra.Command {
	var a adminFlags
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Create, list, disable and rotate named admins (an owner's commands)",
		Long: `admin manages the people who use the admin API and these commands. Each admin
has a name, a personal admin token and a role:

  viewer    reads: devices, certificates, tokens, the audit log, manufacturers
  operator  also mints and revokes tokens, revokes certificates and devices,
            resets devices and asks devices to renew now
  owner     also manages admins and manufacturers and issues server certificates

The token init writes (DIR/admin-token) is the first owner's, named admin.
Every audit row names the admin who acted (actor admin:NAME). A command
whose role is missing is refused: "this needs the operator role; alice is a
viewer". Give another admin's token with --admin-token-file or
FLEETCA_ADMIN_TOKEN.`,
	}
	a.register(cmd)
	cmd.AddCommand(newAdminCreateCmd(e, &a), newAdminListCmd(e, &a), newAdminDisableCmd(e, &a), newAdminRotateCmd(e, &a))
	return cmd
}

func newAdminCreateCmd(e env, a *adminFlags) *cobra.Command {
	var name, role string
	cmd := &cobra.Command{
		Use:   "create --name NAME --role viewer|operator|owner",
		Short: "Create an admin; prints its token on stdout",
		Long: `create makes an admin and prints its personal admin token on stdout (its name,
role and token ID on stderr), so that T=$(fleetca admin create ...) captures
it. The token is shown only this once: the CA keeps only its hash. Hand it to
the admin, who passes it with --admin-token-file FILE or FLEETCA_ADMIN_TOKEN.

A name is 1 to 64 lowercase letters, digits, '.', '_' or '-', starting with
a letter or digit.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" || role == "" {
				return usagef("give --name and --role")
			}
			c, err := a.client(e)
			if err != nil {
				return err
			}
			ad, err := c.CreateAdmin(cmd.Context(), api.AdminRequest{Name: name, Role: role})
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, ad.Token)
			fmt.Fprintf(e.stderr, "admin %s created, role %s, token %s\n", ad.Name, ad.Role, ad.TokenID)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "the admin's name, e.g. alice")
	f.StringVar(&role, "role", "", "viewer, operator or owner")
	return cmd
}

func newAdminListCmd(e env, a *adminFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List admins",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client(e)
			if err != nil {
				return err
			}
			all, err := c.ListAdmins(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(e.stdout).Encode(all)
			}
			w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tROLE\tSTATUS\tTOKEN ID\tCREATED\tROTATED")
			for _, ad := range all {
				status := "active"
				if ad.DisabledAt != "" {
					status = "disabled " + ad.DisabledAt
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", ad.Name, ad.Role, status, ad.TokenID, ad.CreatedAt, orDash(ad.RotatedAt))
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newAdminDisableCmd(e env, a *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "disable NAME",
		Short: "Disable an admin: its token is refused from now on (the last active owner stays)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(e)
			if err != nil {
				return err
			}
			ad, err := c.DisableAdmin(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "admin %s disabled\n", ad.Name)
			return nil
		},
	}
}

func newAdminRotateCmd(e env, a *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate NAME",
		Short: "Give an admin a new token; prints it on stdout (the old one is refused from now on)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(e)
			if err != nil {
				return err
			}
			ad, err := c.RotateAdmin(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, ad.Token)
			fmt.Fprintf(e.stderr, "admin %s has a new token %s; the old one is refused\n", ad.Name, ad.TokenID)
			return nil
		},
	}
}
