package web

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/enroll"
	"github.com/fleetca/fleetca/internal/adminctx"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// requireAdmin admits requests bearing an active admin's token, and puts
// the admin in the request's context (adminctx) for requireRole and the
// audit rows.
//
// Failures are limited per client address (c.RealIP(), see
// clientIPExtractor; for IPv6, per /64, see limitKey): an address over Config.AuthFailureLimit within
// Config.AuthFailureWindow is answered 429 with Retry-After, its token not
// checked, so that a right token does not get through during the window
// either: refusing is the safe side, and the window is short. Failures and
// refusals reach the audit log as authLimiter decides, at most one row per
// address per window; a row that cannot be written fails the request.
func (s *Server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, addr := c.Request().Context(), limitKey(c.RealIP())
		if wait, rows := s.limiter.refuse(addr, s.now()); wait > 0 {
			if err := s.auditAuthFailures(ctx, rows); err != nil {
				return err
			}
			s.authRefused.Inc()
			return &fault.Error{Kind: fault.RateLimited, RetryAfter: wait,
				Detail: fmt.Sprintf("too many failed admin authentications from %s; its admin requests are refused for %s", addr, retryAfterSeconds(wait)+"s"),
				Hint:   "wait for Retry-After, then send the admin token in DATA_DIR/admin-token"}
		} else if err := s.auditAuthFailures(ctx, rows); err != nil {
			return err
		}
		token, _ := bearer(c.Request(), "admin token")
		a, err := s.deps.Enroll.CheckAdmin(ctx, token)
		var fe *fault.Error
		if errors.As(err, &fe) && fe.Kind == fault.Unauthorized {
			s.authFailed.Inc()
			if aerr := s.auditAuthFailures(ctx, s.limiter.fail(addr, s.now(), fe.Detail)); aerr != nil {
				return aerr
			}
		}
		if err != nil {
			return err
		}
		c.SetRequest(c.Request().WithContext(adminctx.With(ctx, a)))
		c.Set(ctxAdmin, a.Name)
		return next(c)
	}
}

// auditAuthFailures writes the audit rows the limiter made due.
func (s *Server) auditAuthFailures(ctx context.Context, rows []enroll.AdminAuthFailures) error {
	for _, r := range rows {
		if err := s.deps.Enroll.AuditAdminAuthFailures(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// FlushAuthFailures writes the audit rows of admin authentication failures
// still counted and not yet recorded. serve calls it when it stops, once
// the listeners are closed.
func (s *Server) FlushAuthFailures(ctx context.Context) error {
	return s.auditAuthFailures(ctx, s.limiter.flush(s.now()))
}

func toTokenJSON(t store.Token) api.Token {
	return api.Token{ID: t.ID, DeviceID: t.DeviceID, DevicePattern: t.DevicePattern, AnyDevice: enroll.AnyDevice(t.DevicePattern), Uses: t.Uses, Spent: t.Spent,
		CreatedAt: timeJSON(t.CreatedAt), ExpiresAt: timeJSON(t.ExpiresAt), RevokedAt: timeJSON(t.RevokedAt)}
}

// createToken handles POST /v1/admin/tokens
// {"device_id"|"device_pattern", "any_device": true, "ttl": "8h", "uses": 5000}.
// An absent or empty ttl is the default; any other passes to enroll, which
// refuses "0s" like any TTL out of range.
func (s *Server) createToken(c echo.Context) error {
	var req api.TokenRequest
	if err := s.decodeJSON(c, &req); err != nil {
		return err
	}
	ttl, err := parseTTL(req.TTL)
	if err != nil {
		return err
	}
	er := enroll.TokenRequest{DeviceID: req.DeviceID, DevicePattern: req.DevicePattern, AnyDevice: req.AnyDevice, TTL: ttl, Uses: req.Uses, Format: req.Format}
	if req.RevokeSerial != "" {
		if er.RevokeSerial, err = parseSerial(req.RevokeSerial); err != nil {
			return fault.WithField(err, "revoke_serial")
		}
	}
	secret, t, err := s.deps.Enroll.CreateToken(c.Request().Context(), er)
	if err != nil {
		return err
	}
	out := toTokenJSON(t)
	out.Token = string(secret)
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, out)
}

// createTokens handles POST /v1/admin/tokens/batch
// {"device_ids": [...], "ttl": "8h", "format": "step"}: one one-use token
// per device, stored in one transaction.
func (s *Server) createTokens(c echo.Context) error {
	var req api.TokenBatchRequest
	if err := s.decodeJSON(c, &req); err != nil {
		return err
	}
	ttl, err := parseTTL(req.TTL)
	if err != nil {
		return err
	}
	secrets, ts, err := s.deps.Enroll.CreateTokens(c.Request().Context(), enroll.TokenBatchRequest{DeviceIDs: req.DeviceIDs, TTL: ttl, Format: req.Format})
	if err != nil {
		return err
	}
	out := api.TokenBatch{Tokens: make([]api.Token, len(ts))}
	for i, t := range ts {
		out.Tokens[i] = toTokenJSON(t)
		out.Tokens[i].Token = string(secrets[i])
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, out)
}

// parseTTL reads a request's ttl: nil for "", the default.
func parseTTL(s string) (*time.Duration, error) {
	if s == "" {
		return nil, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return nil, fault.WithField(fault.Wrap(err, fault.Malformed, fmt.Sprintf("the ttl %q is not a duration", s), "write it like 24h or 90m"), "ttl")
	}
	return &d, nil
}

func (s *Server) listTokens(c echo.Context) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	ts, err := s.deps.Enroll.ListTokens(c.Request().Context(), p)
	if err != nil {
		return err
	}
	out := make([]api.Token, len(ts))
	for i, t := range ts {
		out[i] = toTokenJSON(t)
	}
	next := ""
	if len(ts) == p.PageLimit() {
		next = ts[len(ts)-1].ID
	}
	return c.JSON(http.StatusOK, api.TokenPage{Tokens: out, Next: next})
}

func (s *Server) revokeToken(c echo.Context) error {
	t, err := s.deps.Enroll.RevokeToken(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toTokenJSON(t))
}

func toDeviceJSON(d store.Device) api.Device {
	return api.Device{ID: d.ID, Status: string(d.Status), CreatedAt: timeJSON(d.CreatedAt), UpdatedAt: timeJSON(d.UpdatedAt)}
}

func toCertJSON(ct store.Certificate, withPEM bool) api.Certificate {
	out := api.Certificate{Serial: ct.Serial.Text(16), DeviceID: ct.DeviceID, NotBefore: timeJSON(ct.NotBefore),
		NotAfter: timeJSON(ct.NotAfter), IssuedAt: timeJSON(ct.IssuedAt), RevokedAt: timeJSON(ct.RevokedAt), Reason: ct.Reason}
	if ct.Parent != nil {
		out.ParentSerial = ct.Parent.Text(16)
	}
	if withPEM {
		out.Certificate = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ct.DER}))
	}
	return out
}

func (s *Server) listDevices(c echo.Context) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	ds, err := s.deps.Records.ListDevices(c.Request().Context(), p)
	if err != nil {
		return err
	}
	out := make([]api.Device, len(ds))
	for i, d := range ds {
		out[i] = toDeviceJSON(d)
	}
	next := ""
	if len(ds) == p.PageLimit() {
		next = ds[len(ds)-1].ID
	}
	return c.JSON(http.StatusOK, api.DevicePage{Devices: out, Next: next})
}

func (s *Server) getDevice(c echo.Context) error {
	id, err := deviceParam(c)
	if err != nil {
		return err
	}
	d, err := s.deps.Records.GetDevice(c.Request().Context(), string(id))
	if err != nil {
		return notFound(err, fmt.Sprintf("no device has ID %q", id), "list the devices (GET /v1/admin/devices) to find its ID")
	}
	certs, err := s.deps.Records.ListCertificates(c.Request().Context(), string(id), store.Page{Limit: store.MaxPageLimit})
	if err != nil {
		return err
	}
	out := toDeviceJSON(d)
	for _, ct := range certs {
		out.Certificates = append(out.Certificates, toCertJSON(ct, false))
	}
	c.Set(ctxDeviceID, string(id))
	return c.JSON(http.StatusOK, out)
}

func (s *Server) listCertificates(c echo.Context) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	if p.After != "" {
		after, err := parseSerial(p.After)
		if err != nil {
			return err
		}
		p.After = after.Text(16)
	}
	var device api.DeviceID // "": every device's
	if v := c.QueryParam("device_id"); v != "" {
		if device, err = api.ParseDeviceID(v); err != nil {
			return err
		}
	}
	certs, err := s.deps.Records.ListCertificates(c.Request().Context(), string(device), p)
	if err != nil {
		return err
	}
	out := make([]api.Certificate, len(certs))
	for i, ct := range certs {
		out[i] = toCertJSON(ct, false)
	}
	next := ""
	if len(certs) == p.PageLimit() {
		next = certs[len(certs)-1].Serial.Text(16)
	}
	return c.JSON(http.StatusOK, api.CertificatePage{Certificates: out, Next: next})
}

func (s *Server) getCertificate(c echo.Context) error {
	serial, err := parseSerial(c.Param("serial"))
	if err != nil {
		return err
	}
	ct, err := s.deps.Records.GetCertificate(c.Request().Context(), serial)
	if err != nil {
		return notFound(err, fmt.Sprintf("no certificate has serial %s", serial.Text(16)), "list the certificates (GET /v1/admin/certificates) to find its serial")
	}
	return c.JSON(http.StatusOK, toCertJSON(ct, true))
}

func (s *Server) listAudit(c echo.Context) error {
	var after uint64
	if a := c.QueryParam("after"); a != "" {
		var err error
		if after, err = strconv.ParseUint(a, 10, 64); err != nil {
			return fault.New(fault.Malformed, fmt.Sprintf("after=%q is not a sequence number", a), "pass the seq of the last event you have")
		}
	}
	p, err := page(c)
	if err != nil {
		return err
	}
	evs, err := s.deps.Records.ListAudit(c.Request().Context(), after, p.Limit)
	if err != nil {
		return err
	}
	if evs == nil {
		evs = []store.AuditEvent{}
	}
	return c.JSON(http.StatusOK, map[string]any{"events": evs})
}

// deviceParam parses the {id} of a device route: a device ID, or the
// Malformed fault of api.ParseDeviceID. The store is asked only for what
// could be a device.
func deviceParam(c echo.Context) (api.DeviceID, error) {
	return api.ParseDeviceID(c.Param("id"))
}

// page reads ?after=&limit=.
func page(c echo.Context) (store.Page, error) {
	p := store.Page{After: c.QueryParam("after")}
	if l := c.QueryParam("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > store.MaxPageLimit {
			return p, fault.New(fault.Malformed, fmt.Sprintf("limit=%q is not a number from 1 to %d", l, store.MaxPageLimit), "")
		}
		p.Limit = n
	}
	return p, nil
}

// parseSerial reads a serial in lowercase or uppercase hex, colons allowed.
func parseSerial(s string) (*big.Int, error) {
	clean := bytes.ReplaceAll([]byte(s), []byte(":"), nil)
	n, ok := new(big.Int).SetString(string(clean), 16)
	if !ok || n.Sign() <= 0 || len(clean) > 64 {
		return nil, fault.New(fault.Malformed, fmt.Sprintf("%q is not a certificate serial", s), "give the serial in hex, as the certificate listings show it")
	}
	return n, nil
}

// notFound turns store.ErrNotFound from a direct read into a fault that
// names what is missing; other errors pass through.
func notFound(err error, detail, hint string) error {
	if k, ok := fault.KindOf(err); ok && k == fault.NotFound {
		return err
	}
	if isNotFound(err) {
		return fault.Wrap(err, fault.NotFound, detail, hint)
	}
	return err
}

// adminJSONHint is the hint of every refused admin API body.
const adminJSONHint = "send one JSON object with the documented fields, with Content-Type: application/json"

// decodeJSON reads a bounded, strict JSON body into v: the request must say
// Content-Type: application/json (RFC 8259 §11; parameters such as charset
// are allowed), and the body must be one JSON object with nothing after it
// but white space. Anything else is fault.Malformed (400), before v is
// touched, so a refused request changes nothing.
//
// A wrong media type is answered 400 Malformed rather than 415: RFC 9110
// §15.5.1 allows 400 for any client error, and it is what the enrollment
// decoder (DecodeCSRBody) answers for a Content-Type it does not take,
// so that one problem type covers every undecodable body.
func (s *Server) decodeJSON(c echo.Context, v any) error {
	if err := requireJSON(c.Request().Header.Get(echo.HeaderContentType)); err != nil {
		return err
	}
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	return decodeStrict(body, v, adminJSONHint)
}

// requireJSON checks that a request's Content-Type is application/json.
func requireJSON(contentType string) error {
	if contentType == "" {
		return fault.New(fault.Malformed, "the request has no Content-Type; application/json was expected", adminJSONHint)
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fault.New(fault.Malformed, fmt.Sprintf("the Content-Type %q cannot be parsed; application/json was expected", contentType), adminJSONHint)
	}
	if mt != "application/json" {
		return fault.New(fault.Malformed, fmt.Sprintf("the Content-Type %q is not accepted here; application/json was expected", mt), adminJSONHint)
	}
	return nil
}
