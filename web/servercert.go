package web

import (
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/enroll"
	"github.com/fleetca/fleetca/internal/fault"
)

// issueServerCert handles POST /v1/admin/certificates/server
// {"csr": PEM, "dns": [...], "ips": [...]}: a TLS server certificate (EKU
// serverAuth) from the intermediate, for fleetca proxy or another service
// that devices connect to. It is audited, not recorded as a device
// certificate.
func (s *Server) issueServerCert(c echo.Context) error {
	var req api.ServerCertRequest
	if err := s.decodeJSON(c, &req); err != nil {
		return err
	}
	der, err := decodeCSRPEM([]byte(req.CSR))
	if err != nil {
		return err
	}
	ips := make([]net.IP, len(req.IPs))
	for i, v := range req.IPs {
		if ips[i] = net.ParseIP(v); ips[i] == nil {
			return fault.New(fault.Malformed, fmt.Sprintf("%q is not an IP address", v), "write IPv4 like 192.0.2.1 or IPv6 like 2001:db8::1")
		}
	}
	cert, err := s.deps.Enroll.IssueServer(c.Request().Context(), enroll.ServerRequest{CSR: der, DNSNames: req.DNS, IPs: ips})
	if err != nil {
		return err
	}
	leaf := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	return c.JSON(http.StatusCreated, api.ServerCertResponse{
		Serial:      enroll.SerialHex(cert),
		NotAfter:    cert.NotAfter.UTC().Format(time.RFC3339),
		Certificate: string(leaf),
		Chain:       string(leaf) + string(s.deps.CA.ChainPEM()),
	})
}
