package web

import (
	"bytes"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"mime"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/fleetca/fleetca/enroll"
	"github.com/fleetca/fleetca/internal/fault"
)

// enroll handles POST /v1/enroll: Authorization: Bearer <enrollment token>,
// or, without an Authorization header, a manufacturer certificate
// presented over mutual TLS (enroll.Service.EnrollWithManufacturer); a CSR
// as PEM, base64 DER (application/pkcs10) or JSON {"csr": PEM}.
func (s *Server) enroll(c echo.Context) error {
	r := c.Request()
	var token string
	mfr := r.Header.Get("Authorization") == "" && r.TLS != nil && len(r.TLS.PeerCertificates) > 0
	if !mfr {
		var err error
		if token, err = bearer(r, "enrollment token"); err != nil {
			return err
		}
	}
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	der, err := DecodeCSRBody(c.Request().Header.Get(echo.HeaderContentType), body)
	if err != nil {
		return err
	}
	var res *enroll.Result
	if mfr {
		res, err = s.deps.Enroll.EnrollWithManufacturer(r.Context(), r.TLS.PeerCertificates, der)
	} else {
		res, err = s.deps.Enroll.Enroll(r.Context(), token, der)
	}
	if err != nil {
		return err
	}
	c.Set(ctxDeviceID, string(res.DeviceID))
	return s.sendIssued(c, http.StatusCreated, res)
}

// bearer returns the credential of an "Authorization: Bearer" header.
func bearer(r *http.Request, what string) (string, error) {
	h := r.Header.Get("Authorization")
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(cred) == "" {
		return "", fault.New(fault.Unauthorized, "the request has no bearer "+what,
			"send the header Authorization: Bearer <"+what+">")
	}
	return strings.TrimSpace(cred), nil
}

const csrBodyHint = "send the CSR as PEM (Content-Type: application/x-pem-file), base64 DER (application/pkcs10) or JSON {\"csr\": \"<PEM>\"}"

// DecodeCSRBody turns an enrollment body into CSR DER, by its media type:
//   - application/x-pem-file, text/plain, application/pem-certificate-chain:
//     one PEM block of type CERTIFICATE REQUEST (or NEW CERTIFICATE REQUEST);
//   - application/pkcs10: base64 DER, whitespace allowed (RFC 7030 §4.2.1);
//   - application/json: {"csr": "<PEM>"};
//   - no type, or application/x-www-form-urlencoded (what curl --data-binary
//     sends by default): accepted only if the body is PEM.
//
// Anything else is fault.Malformed, naming what was wrong. The DER is not
// parsed here: package enroll does that.
func DecodeCSRBody(contentType string, body []byte) ([]byte, error) {
	mt := ""
	if contentType != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(contentType); err != nil {
			return nil, fault.New(fault.Malformed, fmt.Sprintf("the Content-Type %q cannot be parsed", contentType), csrBodyHint)
		}
	}
	switch mt {
	case "application/x-pem-file", "text/plain", "application/pem-certificate-chain", "application/x-pem":
		return decodeCSRPEM(body)
	case "application/pkcs10":
		return decodeBase64Body(body, csrBodyHint)
	case "application/json":
		var req struct {
			CSR string `json:"csr"`
		}
		if err := decodeStrict(body, &req, csrBodyHint); err != nil {
			return nil, err
		}
		return decodeCSRPEM([]byte(req.CSR))
	case "", "application/x-www-form-urlencoded":
		if bytes.HasPrefix(bytes.TrimSpace(body), []byte("-----BEGIN ")) {
			return decodeCSRPEM(body)
		}
		return nil, fault.New(fault.Malformed, "the request body is not a PEM CSR and has no CSR Content-Type", csrBodyHint)
	}
	return nil, fault.New(fault.Malformed, fmt.Sprintf("the Content-Type %q is not accepted for a CSR", mt), csrBodyHint)
}

// decodeCSRPEM returns the DER of the one CSR PEM block in b.
func decodeCSRPEM(b []byte) ([]byte, error) {
	block, rest := pem.Decode(b)
	switch {
	case block == nil:
		return nil, fault.New(fault.Malformed, "the request body is not PEM", csrBodyHint)
	case block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST":
		return nil, fault.New(fault.Malformed, fmt.Sprintf("the PEM block is a %s, not a CERTIFICATE REQUEST", block.Type), csrBodyHint)
	case len(bytes.TrimSpace(rest)) != 0:
		return nil, fault.New(fault.Malformed, "the request body has more than one PEM block", "send exactly one CSR")
	}
	return block.Bytes, nil
}

// estBodyHint is the hint of a refused EST request body.
const estBodyHint = "send the DER PKCS #10 CSR as base64 (Content-Type: application/pkcs10), as RFC 7030 §4.2.1 says"

// DecodeESTBody turns the body of an EST simpleenroll or simplereenroll
// into CSR DER. The body is base64 of DER whatever Content-Transfer-Encoding
// says (RFC 8951 §3), and spaces, tabs, CR and LF anywhere in it are
// ignored. The DER is not parsed here: package enroll does that.
func DecodeESTBody(body []byte) ([]byte, error) {
	return decodeBase64Body(body, estBodyHint)
}

// decodeBase64Body decodes base64 after removing all whitespace, which
// base64.StdEncoding would only partly skip (CR and LF, not spaces or tabs).
func decodeBase64Body(body []byte, hint string) ([]byte, error) {
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(body)), ""))
	if err != nil {
		return nil, fault.New(fault.Malformed, "the request body is not base64", hint)
	}
	if len(der) == 0 {
		return nil, fault.New(fault.Malformed, "the request body is empty", hint)
	}
	return der, nil
}
