package web

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
)

// getAndHead registers h for GET and for HEAD: a HEAD answers with the
// status and headers the GET would have, and no body (RFC 9110 §9.3.2).
// echo v4 routes HEAD only where it is registered.
func getAndHead(e *echo.Echo, path string, h echo.HandlerFunc) {
	e.GET(path, h)
	e.HEAD(path, h)
}

// headWithoutBody makes a HEAD request's answer the GET's without the body:
// it discards what the handler writes, counting it, and sends the header
// once the handler is done, with a Content-Length of what a GET would
// send when the handler set none. It must be the outermost middleware, so
// that the error handler's answer goes through it too.
func headWithoutBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if c.Request().Method != http.MethodHead {
			return next(c)
		}
		w := &headWriter{ResponseWriter: c.Response().Writer}
		c.Response().Writer = w
		if err := next(c); err != nil {
			c.Error(err) // does nothing if the request logger handled it
		}
		w.send()
		return nil
	}
}

// headWriter holds back the status of a HEAD answer and counts its body.
type headWriter struct {
	http.ResponseWriter
	status int
	n      int
}

func (w *headWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *headWriter) Write(b []byte) (int, error) {
	w.n += len(b)
	return len(b), nil
}

// send writes the header held back.
func (w *headWriter) send() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if h := w.Header(); h.Get("Content-Length") == "" && w.n > 0 {
		h.Set("Content-Length", strconv.Itoa(w.n))
	}
	w.ResponseWriter.WriteHeader(w.status)
}
