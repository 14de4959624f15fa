package web

import (
	"encoding/base64"
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/fleetca/fleetca/enroll"
)

// sendIssued answers an enrollment or a renewal with status and the JSON of
// s.issued(res). Without a query string (no ?pretty) it writes the bytes
// that c.JSON would, appended directly (appendIssued), which spares the
// PEM copies and the reflection of encoding/json on every certificate
// issued; with one it is c.JSON.
func (s *Server) sendIssued(c echo.Context, status int, res *enroll.Result) error {
	if c.Request().URL.RawQuery != "" {
		return c.JSON(status, s.issued(res))
	}
	b, err := s.appendIssued(make([]byte, 0, 4096), res)
	if err != nil {
		return err
	}
	return c.JSONBlob(status, b)
}

// appendIssued appends to b what json.Encoder.Encode writes for
// s.issued(res), newline included: api.EnrollResponse's fields in order,
// the omitempty ones left out when empty, strings escaped as encoding/json
// escapes them (HTML characters included).
func (s *Server) appendIssued(b []byte, res *enroll.Result) ([]byte, error) {
	cert := res.Certificate
	b = append(b, `{"device_id":`...)
	b = appendJSONString(b, string(res.DeviceID))
	b = append(b, `,"serial":"`...)
	b = cert.SerialNumber.Append(b, 16)
	b = append(b, `","not_after":`...)
	b = appendJSONString(b, cert.NotAfter.UTC().Format(time.RFC3339))
	b = append(b, `,"certificate":"`...)
	b = appendPEMCertificateJSON(b, cert.Raw)
	b = append(b, `","chain":"`...)
	b = appendPEMCertificateJSON(b, cert.Raw)
	b = appendJSONStringBody(b, string(s.deps.CA.ChainPEM()))
	b = append(b, '"')
	if ra := timeJSON(res.RenewAfter); ra != "" {
		b = append(b, `,"renew_after":`...)
		b = appendJSONString(b, ra)
	}
	info, err := json.Marshal(res.RenewalInfo)
	if err != nil {
		return nil, err
	}
	b = append(b, `,"renewal_info":`...)
	b = append(b, info...)
	if res.Parent != nil {
		b = append(b, `,"parent_serial":"`...)
		b = res.Parent.Append(b, 16)
		b = append(b, '"')
	}
	return append(b, "}\n"...), nil
}

// pemLine is the DER bytes of one 64-character line of base64 in PEM
// (RFC 7468 §2).
const pemLine = 48

// appendPEMCertificateJSON appends the PEM of a certificate, as
// pem.EncodeToMemory writes it, inside a JSON string: the newlines as \n.
func appendPEMCertificateJSON(b, der []byte) []byte {
	b = append(b, `-----BEGIN CERTIFICATE-----\n`...)
	for len(der) > 0 {
		n := min(len(der), pemLine)
		b = base64.StdEncoding.AppendEncode(b, der[:n])
		b = append(b, `\n`...)
		der = der[n:]
	}
	return append(b, `-----END CERTIFICATE-----\n`...)
}

// appendJSONString appends s as a JSON string, quoted.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendJSONStringBody(b, s)
	return append(b, '"')
}

// appendJSONStringBody appends s escaped as encoding/json escapes it,
// without the quotes. ASCII that needs no escape and newlines take a
// quick path; any other string is escaped by encoding/json itself.
func appendJSONStringBody(b []byte, s string) []byte {
	plain := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 && c != '\n' || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			plain = false
			break
		}
	}
	if !plain {
		q, _ := json.Marshal(s) // a string always marshals
		return append(b, q[1:len(q)-1]...)
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			b = append(b, `\n`...)
			continue
		}
		b = append(b, s[i])
	}
	return b
}
