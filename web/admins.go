package web

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/enroll"
	"github.com/fleetca/fleetca/store"
)

func toAdminJSON(a store.Admin) api.Admin {
	return api.Admin{Name: a.Name, Role: string(a.Role), CreatedAt: timeJSON(a.CreatedAt), DisabledAt: timeJSON(a.DisabledAt),
		RotatedAt: timeJSON(a.RotatedAt), TokenID: enroll.TokenID(a.TokenHash)}
}

// createAdmin handles POST /v1/admin/admins {"name": "alice", "role":
// "viewer"}; the answer holds the new admin's token, once.
func (s *Server) createAdmin(c echo.Context) error {
	var req api.AdminRequest
	if err := s.decodeJSON(c, &req); err != nil {
		return err
	}
	secret, a, err := s.deps.Enroll.CreateAdmin(c.Request().Context(), req.Name, req.Role)
	if err != nil {
		return err
	}
	out := toAdminJSON(a)
	out.Token = string(secret)
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, out)
}

// listAdmins handles GET /v1/admin/admins.
func (s *Server) listAdmins(c echo.Context) error {
	as, err := s.deps.Enroll.ListAdmins(c.Request().Context())
	if err != nil {
		return err
	}
	out := api.AdminList{Admins: make([]api.Admin, len(as))}
	for i, a := range as {
		out.Admins[i] = toAdminJSON(a)
	}
	return c.JSON(http.StatusOK, out)
}

// disableAdmin handles POST /v1/admin/admins/{name}/disable.
func (s *Server) disableAdmin(c echo.Context) error {
	a, err := s.deps.Enroll.DisableAdmin(c.Request().Context(), c.Param("name"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toAdminJSON(a))
}

// rotateAdmin handles POST /v1/admin/admins/{name}/rotate; the answer
// holds the admin's new token, once.
func (s *Server) rotateAdmin(c echo.Context) error {
	secret, a, err := s.deps.Enroll.RotateAdmin(c.Request().Context(), c.Param("name"))
	if err != nil {
		return err
	}
	out := toAdminJSON(a)
	out.Token = string(secret)
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, out)
}
