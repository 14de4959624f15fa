package client

import (
	"context"
	"net/url"

	"github.com/fleetca/fleetca/api"
)

// CreateAdmin makes a named admin with a role (POST /v1/admin/admins; an
// owner's call). The answer's Token is the new admin's token, shown only
// there.
func (c *Client) CreateAdmin(ctx context.Context, req api.AdminRequest) (api.Admin, error) {
	var a api.Admin
	err := c.admin(ctx, "POST", "/admins", req, &a)
	return a, err
}

// ListAdmins returns every admin, by name.
func (c *Client) ListAdmins(ctx context.Context) ([]api.Admin, error) {
	var l api.AdminList
	err := c.admin(ctx, "GET", "/admins", nil, &l)
	return l.Admins, err
}

// DisableAdmin disables an admin by name: its token is refused from then on.
func (c *Client) DisableAdmin(ctx context.Context, name string) (api.Admin, error) {
	var a api.Admin
	err := c.admin(ctx, "POST", "/admins/"+url.PathEscape(name)+"/disable", nil, &a)
	return a, err
}

// RotateAdmin gives an admin a new token (the answer's Token, shown only
// there) and refuses the old one from then on.
func (c *Client) RotateAdmin(ctx context.Context, name string) (api.Admin, error) {
	var a api.Admin
	err := c.admin(ctx, "POST", "/admins/"+url.PathEscape(name)+"/rotate", nil, &a)
	return a, err
}
