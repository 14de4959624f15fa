package client

import (
	"context"
	"net/url"

	"github.com/fleetca/fleetca/api"
)

// AddManufacturer registers a manufacturer CA (POST
// /v1/admin/manufacturers): devices with a certificate it issued may enroll
// without a token.
func (c *Client) AddManufacturer(ctx context.Context, req api.ManufacturerRequest) (api.Manufacturer, error) {
	var m api.Manufacturer
	err := c.admin(ctx, "POST", "/manufacturers", req, &m)
	return m, err
}

// ListManufacturers returns every manufacturer, by name.
func (c *Client) ListManufacturers(ctx context.Context) ([]api.Manufacturer, error) {
	var l api.ManufacturerList
	err := c.admin(ctx, "GET", "/manufacturers", nil, &l)
	return l.Manufacturers, err
}

// RemoveManufacturer removes a manufacturer by name: its certificates
// enroll no more.
func (c *Client) RemoveManufacturer(ctx context.Context, name string) error {
	return c.admin(ctx, "DELETE", "/manufacturers/"+url.PathEscape(name), nil, nil)
}
