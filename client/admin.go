package client

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
)

// pageLimit is how many items one listing request asks for.
const pageLimit = 1000

// admin calls an admin API path (under api.AdminPrefix) with the admin
// token.
func (c *Client) admin(ctx context.Context, method, path string, in, out any) error {
	if c.token == "" {
		return fault.New(fault.Unauthorized, "no admin token to call the admin API with",
			"read it from the CA's data directory (admin-token)")
	}
	return c.do(ctx, method, api.AdminPrefix+path, c.token, in, "", out)
}

// CreateToken mints an enrollment token (POST /v1/admin/tokens). The
// answer is the only place its secret appears.
func (c *Client) CreateToken(ctx context.Context, req api.TokenRequest) (api.Token, error) {
	var t api.Token
	err := c.admin(ctx, "POST", "/tokens", req, &t)
	return t, err
}

// CreateTokens mints one one-use token per device ID (POST
// /v1/admin/tokens/batch, at most api.MaxTokenBatch IDs), all in one
// transaction: it returns all of them, in order, or none.
func (c *Client) CreateTokens(ctx context.Context, req api.TokenBatchRequest) ([]api.Token, error) {
	var b api.TokenBatch
	if err := c.admin(ctx, "POST", "/tokens/batch", req, &b); err != nil {
		return nil, err
	}
	if len(b.Tokens) != len(req.DeviceIDs) {
		return nil, fmt.Errorf("the CA answered %d tokens for %d device IDs", len(b.Tokens), len(req.DeviceIDs))
	}
	return b.Tokens, nil
}

// ListTokens returns every enrollment token, following the pages.
func (c *Client) ListTokens(ctx context.Context) ([]api.Token, error) {
	return listAll(ctx, c, "/tokens", nil, func(p *api.TokenPage) ([]api.Token, string) { return p.Tokens, p.Next })
}

// RevokeToken revokes an enrollment token by its ID.
func (c *Client) RevokeToken(ctx context.Context, id string) (api.Token, error) {
	var t api.Token
	err := c.admin(ctx, "POST", "/tokens/"+url.PathEscape(id)+"/revoke", nil, &t)
	return t, err
}

// ListDevices returns every device, following the pages.
func (c *Client) ListDevices(ctx context.Context) ([]api.Device, error) {
	return listAll(ctx, c, "/devices", nil, func(p *api.DevicePage) ([]api.Device, string) { return p.Devices, p.Next })
}

// Device returns a device with its certificates.
func (c *Client) Device(ctx context.Context, id string) (api.Device, error) {
	var d api.Device
	err := c.admin(ctx, "GET", "/devices/"+url.PathEscape(id), nil, &d)
	return d, err
}

// ResetDevice lets a revoked device enroll again with a new token.
func (c *Client) ResetDevice(ctx context.Context, id string) (api.Device, error) {
	var d api.Device
	err := c.admin(ctx, "POST", "/devices/"+url.PathEscape(id)+"/reset", nil, &d)
	return d, err
}

// RenewNow asks a device to renew now (POST
// /v1/admin/devices/{id}/renew-now): the renewal window of its
// certificates starts at once, and its agent renews at its next check. An
// empty id is Malformed: RenewNowFleet asks every device.
func (c *Client) RenewNow(ctx context.Context, id string) (api.RenewNowResponse, error) {
	var out api.RenewNowResponse
	if id == "" {
		return out, fault.New(fault.Malformed, "no device ID to ask to renew now", "name the device, or ask the whole fleet")
	}
	err := c.admin(ctx, "POST", "/devices/"+url.PathEscape(id)+"/renew-now", nil, &out)
	return out, err
}

// RenewNowFleet asks every device to renew now (POST
// /v1/admin/devices/renew-now), after an intermediate rotation or an
// incident.
func (c *Client) RenewNowFleet(ctx context.Context) (api.RenewNowResponse, error) {
	var out api.RenewNowResponse
	err := c.admin(ctx, "POST", "/devices/renew-now", nil, &out)
	return out, err
}

// RevokeDevice revokes a device and every live certificate of it, for an
// RFC 5280 reason name (empty: unspecified).
func (c *Client) RevokeDevice(ctx context.Context, id, reason string) ([]api.RevokedCertificate, error) {
	var out api.RevokeResponse
	err := c.admin(ctx, "POST", "/devices/"+url.PathEscape(id)+"/revoke", api.RevokeRequest{Reason: reason}, &out)
	return out.Revoked, err
}

// RevokeCertificate revokes one certificate by its serial (hex).
func (c *Client) RevokeCertificate(ctx context.Context, serial, reason string) ([]api.RevokedCertificate, error) {
	var out api.RevokeResponse
	err := c.admin(ctx, "POST", "/certificates/"+url.PathEscape(serial)+"/revoke", api.RevokeRequest{Reason: reason}, &out)
	return out.Revoked, err
}

// ListCertificates returns every certificate, or a device's (deviceID not
// empty), following the pages.
func (c *Client) ListCertificates(ctx context.Context, deviceID string) ([]api.Certificate, error) {
	q := url.Values{}
	if deviceID != "" {
		q.Set("device_id", deviceID)
	}
	return listAll(ctx, c, "/certificates", q, func(p *api.CertificatePage) ([]api.Certificate, string) { return p.Certificates, p.Next })
}

// ServerCert is the answer to IssueServerCert.
type ServerCert struct {
	api.ServerCertResponse
	// Certs is Chain parsed: the leaf, then the intermediate(s).
	Certs []*x509.Certificate
}

// IssueServerCert asks for a TLS server certificate for a verifier (POST
// /v1/admin/certificates/server) for the key of csrDER (a DER PKCS #10
// request; only its key is certified), naming the DNS names dns and the IP
// addresses ips, and checks it like Enroll does, for serverAuth.
func (c *Client) IssueServerCert(ctx context.Context, csrDER []byte, dns, ips []string) (*ServerCert, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fault.Wrap(err, fault.Malformed, "the CSR is not a DER PKCS #10 request", "")
	}
	req := api.ServerCertRequest{CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})), DNS: dns, IPs: ips}
	var out ServerCert
	if err := c.admin(ctx, "POST", "/certificates/server", req, &out.ServerCertResponse); err != nil {
		return nil, err
	}
	if out.Certs, err = c.verifyIssued(out.Chain, csr.RawSubjectPublicKeyInfo, x509.ExtKeyUsageServerAuth, c.now()); err != nil {
		return nil, err
	}
	return &out, nil
}

// listAll fetches every page of an admin listing at path, with the query
// q, reading each page of type P with items.
func listAll[P, T any](ctx context.Context, c *Client, path string, q url.Values, items func(*P) ([]T, string)) ([]T, error) {
	if q == nil {
		q = url.Values{}
	}
	q.Set("limit", fmt.Sprint(pageLimit))
	var all []T
	for after := ""; ; {
		q.Set("after", after)
		var page P
		if err := c.admin(ctx, "GET", path+"?"+q.Encode(), nil, &page); err != nil {
			return nil, err
		}
		got, next := items(&page)
		all = append(all, got...)
		if next == "" || len(got) == 0 {
			return all, nil
		}
		after = next
	}
}
