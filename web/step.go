package web

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/enroll"
	"github.com/fleetca/fleetca/internal/fault"
)

// The step CLI's routes (api.StepPrefix and the api.Step*Path constants):
// the shapes of smallstep/certificates' api package, on fleetca's own
// services. Errors on them are step's {"status","message"} (see
// writeStepError), which the step CLI prints.

// ctxStepErrors marks a request whose errors take step's shape.
const ctxStepErrors = "step_errors"

// stepRoutes registers the step routes on the HTTPS listener, at the root
// and under api.StepPrefix. A request for one of their paths, or for
// anything under api.StepPrefix, gets step's error body, whichever handler
// fails it (a wrong method, an unknown path under /1.0/ included).
func (s *Server) stepRoutes() {
	s.https.Pre(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if isStepPath(c.Request().URL.Path) {
				c.Set(ctxStepErrors, true)
			}
			return next(c)
		}
	})
	for _, prefix := range []string{"", api.StepPrefix} {
		getAndHead(s.https, prefix+api.StepHealthPath, s.stepHealth)
		getAndHead(s.https, prefix+api.StepVersionPath, s.stepVersion)
		getAndHead(s.https, prefix+api.StepRootsPath, s.stepRoots)
		getAndHead(s.https, prefix+api.StepRootPath+":sha", s.stepRoot)
		s.https.POST(prefix+api.StepRenewPath, s.stepRenew)
		s.https.POST(prefix+api.StepRekeyPath, s.stepRekey)
		s.https.POST(prefix+api.StepSignPath, s.stepSign)
		s.https.POST(prefix+api.StepRevokePath, s.stepRevoke)
	}
}

// isStepPath reports whether a request path is one of the step routes', or
// under api.StepPrefix.
func isStepPath(p string) bool {
	if strings.HasPrefix(p, api.StepPrefix+"/") {
		return true
	}
	switch p {
	case api.StepHealthPath, api.StepVersionPath, api.StepRootsPath, api.StepRenewPath, api.StepRekeyPath, api.StepSignPath, api.StepRevokePath:
		return true
	}
	return strings.HasPrefix(p, api.StepRootPath)
}

// stepHealth answers 200 {"status":"ok"} while the service can work.
func (s *Server) stepHealth(c echo.Context) error {
	if s.deps.Ready != nil {
		if err := s.deps.Ready(c.Request().Context()); err != nil {
			return fault.Wrap(err, fault.Unavailable, "the CA is not ready", "check the server log")
		}
	}
	return c.JSON(http.StatusOK, api.StepHealthResponse{Status: "ok"})
}

// stepVersion answers 200 {"version": Deps.Version}.
func (s *Server) stepVersion(c echo.Context) error {
	return c.JSON(http.StatusOK, api.StepVersionResponse{Version: s.deps.Version})
}

// stepRoots answers 201 (step-ca's status) with every root, PEM.
func (s *Server) stepRoots(c echo.Context) error {
	var out api.StepRootsResponse
	for _, der := range s.rootsDER() {
		out.Certificates = append(out.Certificates, pemCert(der))
	}
	return c.JSON(http.StatusCreated, out)
}

// stepRoot answers the root whose DER has the SHA-256 in the path (hex,
// any case, dashes ignored as step-ca does), or 404.
func (s *Server) stepRoot(c echo.Context) error {
	want := strings.ToLower(strings.ReplaceAll(c.Param("sha"), "-", ""))
	for _, der := range s.rootsDER() {
		sum := sha256.Sum256(der)
		if hex.EncodeToString(sum[:]) == want {
			return c.JSON(http.StatusOK, api.StepRootResponse{RootPEM: pemCert(der)})
		}
	}
	return fault.New(fault.NotFound, "this CA has no root with the fingerprint "+truncateParam(want),
		"give the SHA-256 fingerprint of the fleet's root (fleetca cert fingerprint of root.crt)")
}

// stepRenew renews over mutual TLS (empty body) or with a bearer renewal
// token. A retry answers 201 too: step takes nothing else as success.
func (s *Server) stepRenew(c echo.Context) error {
	req, err := renewProof(c.Request())
	if err != nil {
		return err
	}
	return s.stepIssue(c, req)
}

// stepRekey renews over mutual TLS with the new key of {"csr": PEM}.
func (s *Server) stepRekey(c echo.Context) error {
	var req enroll.RenewRequest
	r := c.Request()
	if r.TLS != nil {
		req.PeerCertificates = r.TLS.PeerCertificates
	}
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	if req.CSR, err = DecodeCSRBody("application/json", body); err != nil {
		return err
	}
	return s.stepIssue(c, req)
}

// stepIssue runs a renewal and answers it in step's shape, 201.
func (s *Server) stepIssue(c echo.Context, req enroll.RenewRequest) error {
	res, err := s.deps.Enroll.Renew(c.Request().Context(), req)
	if err != nil {
		return err
	}
	c.Set(ctxDeviceID, string(res.DeviceID))
	leaf, issuer := pemCert(res.Certificate.Raw), pemCert(s.deps.CA.IntermediateDER())
	return c.JSON(http.StatusCreated, api.StepSignResponse{ServerPEM: leaf, CaPEM: issuer, CertChainPEM: []string{leaf, issuer}})
}

// rootsDER returns the DER of every root in the CA's RootPEM.
func (s *Server) rootsDER() [][]byte {
	var out [][]byte
	rest := s.deps.CA.RootPEM()
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return out
		}
		if b.Type == "CERTIFICATE" {
			out = append(out, b.Bytes)
		}
	}
}

func pemCert(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// truncateParam shortens a path parameter for an error detail.
func truncateParam(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// stepError is the step shape of a problem: the CLI prints message, so it
// carries fleetca's detail and hint.
func stepError(p api.Problem) api.StepError {
	msg := p.Detail
	if msg == "" {
		msg = p.Title
	}
	if p.Hint != "" {
		msg += " (" + p.Hint + ")"
	}
	return api.StepError{Status: p.Status, Message: msg}
}
