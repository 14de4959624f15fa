package web

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/enroll"
	"github.com/fleetca/fleetca/store"
)

// addManufacturer handles POST /v1/admin/manufacturers.
func (s *Server) addManufacturer(c echo.Context) error {
	var req api.ManufacturerRequest
	if err := s.decodeJSON(c, &req); err != nil {
		return err
	}
	m, err := s.deps.Enroll.AddManufacturer(c.Request().Context(), enroll.ManufacturerRequest{
		Name: req.Name, CAPEM: req.CA, DeviceIDFrom: req.DeviceIDFrom, DevicePattern: req.DevicePattern})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toManufacturerJSON(m))
}

// listManufacturers handles GET /v1/admin/manufacturers.
func (s *Server) listManufacturers(c echo.Context) error {
	ms, err := s.deps.Enroll.ListManufacturers(c.Request().Context())
	if err != nil {
		return err
	}
	out := api.ManufacturerList{Manufacturers: make([]api.Manufacturer, len(ms))}
	for i, m := range ms {
		out.Manufacturers[i] = toManufacturerJSON(m)
	}
	return c.JSON(http.StatusOK, out)
}

// removeManufacturer handles DELETE /v1/admin/manufacturers/{name}.
func (s *Server) removeManufacturer(c echo.Context) error {
	if err := s.deps.Enroll.RemoveManufacturer(c.Request().Context(), c.Param("name")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func toManufacturerJSON(m store.Manufacturer) api.Manufacturer {
	out := api.Manufacturer{Name: m.Name, DeviceIDFrom: m.DeviceIDFrom, DevicePattern: m.DevicePattern, CA: m.CAPEM,
		CASHA256: []string{}, CreatedAt: m.CreatedAt.UTC().Format(time.RFC3339)}
	for rest := []byte(m.CAPEM); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		sum := sha256.Sum256(b.Bytes)
		out.CASHA256 = append(out.CASHA256, hex.EncodeToString(sum[:]))
	}
	return out
}
