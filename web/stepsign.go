package web

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/enroll"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/revocation"
)

// stepSignHint is the hint of a malformed /sign or /revoke body.
const stepSignHint = "send the JSON the step CLI sends (step ca certificate --token, step ca revoke)"

// decodeStepJSON reads a step request body. Unknown members are ignored, as
// step-ca ignores them: newer step CLIs add fields.
func (s *Server) decodeStepJSON(c echo.Context, v any) error {
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fault.Wrap(err, fault.Malformed, "the request body is not the JSON object step sends", stepSignHint)
	}
	return nil
}

// stepSign handles POST /sign: a CSR and a step token that fleetca minted
// (token create with format step) for a device certificate, 201. Without a
// token (ott empty), a TLS client certificate is taken for a manufacturer
// certificate, as on POST /v1/enroll.
func (s *Server) stepSign(c echo.Context) error {
	var req api.StepSignRequest
	if err := s.decodeStepJSON(c, &req); err != nil {
		return err
	}
	csr, err := decodeCSRPEM([]byte(req.CSR))
	if err != nil {
		return fault.WithField(err, "csr")
	}
	sr := enroll.StepSignRequest{Token: req.OTT, CSR: csr, NotBefore: req.NotBefore, NotAfter: req.NotAfter}
	if r := c.Request(); r.TLS != nil {
		sr.PeerCertificates = r.TLS.PeerCertificates
	}
	res, err := s.deps.Enroll.EnrollStep(c.Request().Context(), sr)
	if err != nil {
		return err
	}
	c.Set(ctxDeviceID, string(res.DeviceID))
	if c.Request().URL.RawQuery != "" {
		return c.JSON(http.StatusCreated, s.stepSigned(res.Certificate.Raw))
	}
	return c.JSONBlob(http.StatusCreated, s.appendStepSigned(make([]byte, 0, 4096), res.Certificate.Raw))
}

// stepSigned is the answer to a /sign: the leaf, its issuer, and the chain.
func (s *Server) stepSigned(leafDER []byte) api.StepSignResponse {
	leaf, issuer := pemCert(leafDER), pemCert(s.deps.CA.IntermediateDER())
	return api.StepSignResponse{ServerPEM: leaf, CaPEM: issuer, CertChainPEM: []string{leaf, issuer}}
}

// appendStepSigned appends to b what json.Encoder.Encode writes for
// s.stepSigned(leafDER), newline included, as appendIssued does for
// POST /v1/enroll: a PEM certificate holds no character JSON escapes but
// the newline.
func (s *Server) appendStepSigned(b, leafDER []byte) []byte {
	issuer := s.deps.CA.IntermediateDER()
	b = append(b, `{"crt":"`...)
	b = appendPEMCertificateJSON(b, leafDER)
	b = append(b, `","ca":"`...)
	b = appendPEMCertificateJSON(b, issuer)
	b = append(b, `","certChain":["`...)
	b = appendPEMCertificateJSON(b, leafDER)
	b = append(b, `","`...)
	b = appendPEMCertificateJSON(b, issuer)
	return append(b, "\"]}\n"...)
}

// stepRevoke handles POST /revoke: a device revokes its own certificate
// over mutual TLS, the one it authenticated with, whose serial (decimal,
// as step sends it) the body names; or a one-use step revocation token
// (ott, minted by an admin: token create with format step and
// revoke_serial) revokes the certificate its sub names, which must be the
// body's serial. The token is spent in the revocation's transaction.
func (s *Server) stepRevoke(c echo.Context) error {
	var req api.StepRevokeRequest
	if err := s.decodeStepJSON(c, &req); err != nil {
		return err
	}
	r := c.Request()
	if req.OTT != "" {
		return s.stepRevokeToken(c, req)
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return fault.New(fault.Unauthorized, "revoking needs the certificate to revoke as the TLS client certificate, or a revocation token (ott)",
			"revoke over mutual TLS with the certificate and its key (step ca revoke --cert --key), or with a revocation token from an admin")
	}
	leaf := r.TLS.PeerCertificates[0]
	if err := s.verifyDeviceCert(leaf); err != nil {
		return err
	}
	serial, err := stepSerial(req.Serial)
	if err != nil {
		return err
	}
	if serial.Cmp(leaf.SerialNumber) != 0 {
		return fault.WithField(fault.New(fault.Forbidden, "a certificate may revoke only itself: the serial is not the client certificate's",
			"give the client certificate's own serial, or ask an admin to revoke another one"), "serial")
	}
	reason := api.Reason(req.ReasonCode)
	id := leaf.Subject.CommonName
	c.Set(ctxDeviceID, id)
	_, err = s.deps.Revocation.Revoke(r.Context(), revocation.RevokeRequest{Serial: serial, Reason: reason, Actor: "device:" + id})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.StepHealthResponse{Status: "ok"})
}

// stepRevokeToken is stepRevoke with a revocation token.
func (s *Server) stepRevokeToken(c echo.Context, req api.StepRevokeRequest) error {
	ctx := c.Request().Context()
	tokSerial, h, tokenID, err := s.deps.Enroll.ParseStepRevokeToken(req.OTT)
	if err != nil {
		return err
	}
	serial, err := stepSerial(req.Serial)
	if err != nil {
		return err
	}
	if serial.Cmp(tokSerial) != 0 {
		return fault.WithField(fault.New(fault.Forbidden, fmt.Sprintf("the revocation token revokes certificate %s, not %s", tokSerial, serial),
			"give the serial the token names (its sub)"), "serial")
	}
	_, err = s.deps.Revocation.Revoke(ctx, revocation.RevokeRequest{Serial: serial, Reason: api.Reason(req.ReasonCode), Actor: "token:" + tokenID, Token: h})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.StepHealthResponse{Status: "ok"})
}

// stepSerial reads a serial as step sends it: decimal.
func stepSerial(s string) (*big.Int, error) {
	serial, ok := new(big.Int).SetString(s, 10)
	if !ok || serial.Sign() <= 0 {
		return nil, fault.WithField(fault.New(fault.Malformed, fmt.Sprintf("the serial %q is not a decimal number", truncateParam(s)),
			"give the certificate's serial in decimal, as step does"), "serial")
	}
	return serial, nil
}

// verifyDeviceCert checks that leaf is a current device certificate of
// this CA (the TLS layer checked it too when it verified the handshake;
// this holds whatever listener the request came through).
func (s *Server) verifyDeviceCert(leaf *x509.Certificate) error {
	inter, err := x509.ParseCertificate(s.deps.CA.IntermediateDER())
	if err != nil {
		return fmt.Errorf("parse intermediate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(inter)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: s.now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fault.Wrap(err, fault.Unauthorized, "the client certificate is not a current device certificate of this CA",
			"revoke over mutual TLS with the certificate and its key, before it expires, or ask an admin")
	}
	return nil
}
