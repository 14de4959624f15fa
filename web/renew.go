package web

import (
	"bytes"
	"encoding/pem"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/enroll"
)

// renew handles POST /v1/renew (api.RenewPath). The device proves it holds
// its certificate over mutual TLS (the listener asks for a client
// certificate and verifies it to the fleet's intermediate, which is what
// lets enroll take the chain as proof), or with "Authorization: Bearer
// <renewal token>" once the certificate has expired. An empty body renews
// the same key; a CSR in any encoding POST /v1/enroll takes rekeys. The
// answer is the enrollment's JSON: 201 for a new certificate, 200 for a
// retry that returns the one issued before.
func (s *Server) renew(c echo.Context) error {
	r := c.Request()
	req, err := renewProof(r)
	if err != nil {
		return err
	}
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if req.CSR, err = DecodeCSRBody(r.Header.Get(echo.HeaderContentType), body); err != nil {
			return err
		}
	}
	res, err := s.deps.Enroll.Renew(r.Context(), req)
	if err != nil {
		return err
	}
	c.Set(ctxDeviceID, string(res.DeviceID))
	status := http.StatusCreated
	if res.Replayed {
		status = http.StatusOK
	}
	return s.sendIssued(c, status, res)
}

// renewProof reads how a renewal request proves its certificate: a bearer
// renewal token if it carries one, else the TLS peer chain (which the
// listener verified; enroll.Service.Renew relies on that). Used by POST
// /v1/renew and step's /renew.
func renewProof(r *http.Request) (enroll.RenewRequest, error) {
	var req enroll.RenewRequest
	if r.Header.Get("Authorization") != "" {
		tok, err := bearer(r, "renewal token")
		if err != nil {
			return req, err
		}
		req.Token = tok
	} else if r.TLS != nil {
		req.PeerCertificates = r.TLS.PeerCertificates
	}
	return req, nil
}

// issued is the answer to an enrollment or a renewal.
func (s *Server) issued(res *enroll.Result) api.EnrollResponse {
	leaf := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: res.Certificate.Raw})
	info := res.RenewalInfo
	out := api.EnrollResponse{
		DeviceID:    string(res.DeviceID),
		Serial:      enroll.SerialHex(res.Certificate),
		NotAfter:    res.Certificate.NotAfter.UTC().Format(time.RFC3339),
		Certificate: string(leaf),
		Chain:       string(leaf) + string(s.deps.CA.ChainPEM()),
		RenewAfter:  timeJSON(res.RenewAfter),
		RenewalInfo: &info,
	}
	if res.Parent != nil {
		out.ParentSerial = res.Parent.Text(16)
	}
	return out
}

// renewalInfo handles GET /v1/renewal-info/{serial} (api.RenewalInfoPath),
// in the manner of ACME ARI (RFC 9773 §4.2): the suggested window as JSON,
// and Retry-After in seconds. Anyone may ask.
func (s *Server) renewalInfo(c echo.Context) error {
	serial, err := parseSerial(c.Param("serial"))
	if err != nil {
		return err
	}
	info, err := s.deps.Enroll.RenewalInfo(c.Request().Context(), serial)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Retry-After", retryAfterSeconds(info.RetryAfter))
	return c.JSON(http.StatusOK, info.Info)
}

// renewNow handles POST /v1/admin/devices/{id}/renew-now: the device's
// renewal window starts now.
func (s *Server) renewNow(c echo.Context) error {
	id, err := deviceParam(c)
	if err != nil {
		return err
	}
	at, err := s.deps.Enroll.RenewNow(c.Request().Context(), id)
	if err != nil {
		return err
	}
	c.Set(ctxDeviceID, string(id))
	return c.JSON(http.StatusOK, api.RenewNowResponse{DeviceID: string(id), At: timeJSON(at)})
}

// fleetRenewNow handles POST /v1/admin/devices/renew-now: every device's
// renewal window starts now.
func (s *Server) fleetRenewNow(c echo.Context) error {
	at, err := s.deps.Enroll.FleetRenewNow(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.RenewNowResponse{At: timeJSON(at)})
}
