package web

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/enroll"
	"github.com/fleetca/fleetca/internal/adminctx"
	"github.com/fleetca/fleetca/store"
)

// adminRoute is one route of the admin API (under api.AdminPrefix) and the
// least role that may call it.
type adminRoute struct {
	method, path string
	role         store.Role
	handler      func(s *Server) echo.HandlerFunc
}

// adminRoutes is the admin API: every route and its least role, in one
// table, so that no route is without one. A viewer reads; an operator
// also mints tokens, revokes, resets devices and asks for renewals; an
// owner also manages admins and manufacturers, and issues server
// certificates.
var adminRoutes = []adminRoute{
	{"POST", "/tokens", store.RoleOperator, func(s *Server) echo.HandlerFunc { return s.createToken }},
	{"POST", "/tokens/batch", store.RoleOperator, func(s *Server) echo.HandlerFunc { return s.createTokens }},
	{"GET", "/tokens", store.RoleViewer, func(s *Server) echo.HandlerFunc { return s.listTokens }},
	{"POST", "/tokens/:id/revoke", store.RoleOperator, func(s *Server) echo.HandlerFunc { return s.revokeToken }},
	{"GET", "/devices", store.RoleViewer, func(s *Server) echo.HandlerFunc { return s.listDevices }},
	{"GET", "/devices/:id", store.RoleViewer, func(s *Server) echo.HandlerFunc { return s.getDevice }},
	{"GET", "/certificates", store.RoleViewer, func(s *Server) echo.HandlerFunc { return s.listCertificates }},
	{"GET", "/certificates/:serial", store.RoleViewer, func(s *Server) echo.HandlerFunc { return s.getCertificate }},
	{"GET", "/audit", store.RoleViewer, func(s *Server) echo.HandlerFunc { return s.listAudit }},
	{"GET", "/audit/tree", store.RoleViewer, func(s *Server) echo.HandlerFunc { return s.auditTree }},
	{"GET", "/audit/hashes", store.RoleViewer, func(s *Server) echo.HandlerFunc { return s.auditHashes }},
	{"GET", "/audit/checkpoints", store.RoleViewer, func(s *Server) echo.HandlerFunc { return s.auditCheckpoints }},
	{"POST", "/certificates/server", store.RoleOwner, func(s *Server) echo.HandlerFunc { return s.issueServerCert }},
	{"POST", "/certificates/:serial/revoke", store.RoleOperator, func(s *Server) echo.HandlerFunc { return s.revoke }},
	{"POST", "/devices/:id/revoke", store.RoleOperator, func(s *Server) echo.HandlerFunc { return s.revoke }},
	{"POST", "/devices/:id/reset", store.RoleOperator, func(s *Server) echo.HandlerFunc { return s.resetDevice }},
	{"POST", "/devices/:id/renew-now", store.RoleOperator, func(s *Server) echo.HandlerFunc { return s.renewNow }},
	{"POST", "/devices/renew-now", store.RoleOperator, func(s *Server) echo.HandlerFunc { return s.fleetRenewNow }},
	{"POST", "/manufacturers", store.RoleOwner, func(s *Server) echo.HandlerFunc { return s.addManufacturer }},
	{"GET", "/manufacturers", store.RoleViewer, func(s *Server) echo.HandlerFunc { return s.listManufacturers }},
	{"DELETE", "/manufacturers/:name", store.RoleOwner, func(s *Server) echo.HandlerFunc { return s.removeManufacturer }},
	{"POST", "/admins", store.RoleOwner, func(s *Server) echo.HandlerFunc { return s.createAdmin }},
	{"GET", "/admins", store.RoleOwner, func(s *Server) echo.HandlerFunc { return s.listAdmins }},
	{"POST", "/admins/:name/disable", store.RoleOwner, func(s *Server) echo.HandlerFunc { return s.disableAdmin }},
	{"POST", "/admins/:name/rotate", store.RoleOwner, func(s *Server) echo.HandlerFunc { return s.rotateAdmin }},
}

// routeRoles maps "METHOD path" (the path as routed, with its
// parameters, under api.AdminPrefix) to the least role of the route.
var routeRoles = func() map[string]store.Role {
	m := make(map[string]store.Role, len(adminRoutes))
	for _, r := range adminRoutes {
		m[r.method+" "+r.path] = r.role
	}
	return m
}()

// requireRole admits an authenticated admin (requireAdmin ran before it)
// whose role is at least the route's, and refuses the others with 403
// naming the role missing. A route missing from adminRoutes is refused to
// everyone, so a route added without a role fails closed (and its test).
func (s *Server) requireRole(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		a, ok := adminctx.From(c.Request().Context())
		if !ok {
			return echo.NewHTTPError(http.StatusInternalServerError, "no admin authenticated")
		}
		min, ok := roleOf(c.Request().Method, c.Path())
		switch {
		case !ok && (c.Path() == api.AdminPrefix || c.Path() == api.AdminPrefix+"/*"):
			// echo's catch-all of the group, for a path or method no
			// admin route takes: its handler answers 404.
			return next(c)
		case !ok:
			return fmt.Errorf("admin route %s %s has no role", c.Request().Method, c.Path())
		}
		if err := enroll.RequireRole(a, min); err != nil {
			return err
		}
		return next(c)
	}
}

// roleOf returns the least role of an admin route, by its method and its
// full routed path.
func roleOf(method, fullPath string) (store.Role, bool) {
	path, ok := strings.CutPrefix(fullPath, api.AdminPrefix)
	if !ok {
		return "", false
	}
	r, ok := routeRoles[method+" "+path]
	return r, ok
}
