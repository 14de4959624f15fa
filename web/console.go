package web

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fleetca/fleetca/web/ui"
)

// consoleGuard is the console's login limiter: the admin API's, so that
// wrong tokens count against one budget per address whichever door they
// knock on.
type consoleGuard struct{ s *Server }

func (g consoleGuard) Refuse(r *http.Request) (time.Duration, error) {
	wait, rows := g.s.limiter.refuse(limitKey(g.s.clientIP(r)), g.s.now())
	if wait > 0 {
		g.s.authRefused.Inc()
	}
	return wait, g.s.auditAuthFailures(r.Context(), rows)
}

func (g consoleGuard) Fail(r *http.Request, reason string) error {
	g.s.authFailed.Inc()
	return g.s.auditAuthFailures(r.Context(), g.s.limiter.fail(limitKey(g.s.clientIP(r)), g.s.now(), reason))
}

// consoleRoutes mounts the admin console (package ui) at /ui/ on the HTTPS
// listener.
func (s *Server) consoleRoutes() error {
	h, err := ui.New(ui.Deps{Admins: s.deps.Enroll, Enroll: s.deps.Enroll, Records: s.deps.Records, Revocation: s.deps.Revocation,
		Guard: consoleGuard{s}, Root: s.deps.CA.Root, Intermediate: s.deps.CA.Intermediate,
		Responder: s.deps.Revocation.ResponderCertificate, Now: s.now, Logger: s.log})
	if err != nil {
		return err
	}
	s.https.Any("/ui", func(c echo.Context) error { return c.Redirect(http.StatusMovedPermanently, ui.Prefix) })
	s.https.Any(ui.Prefix+"*", echo.WrapHandler(h))
	return nil
}
