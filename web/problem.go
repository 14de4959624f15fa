package web

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// problemKinds gives each fault kind its status and title. A test checks
// every fault.Kinds entry has a row.
var problemKinds = map[fault.Kind]struct {
	status int
	title  string
}{
	fault.Malformed:      {http.StatusBadRequest, "Malformed request"},
	fault.BadCSR:         {http.StatusBadRequest, "Unacceptable certificate signing request"},
	fault.BadKey:         {http.StatusBadRequest, "Unacceptable public key"},
	fault.Unauthorized:   {http.StatusUnauthorized, "Unauthorized"},
	fault.Forbidden:      {http.StatusForbidden, "Forbidden"},
	fault.NotFound:       {http.StatusNotFound, "Not found"},
	fault.Conflict:       {http.StatusConflict, "Conflict"},
	fault.AlreadyRevoked: {http.StatusConflict, "Already revoked"},
	fault.TooLarge:       {http.StatusRequestEntityTooLarge, "Request too large"},
	fault.Unavailable:    {http.StatusServiceUnavailable, "Service unavailable"},
	fault.RateLimited:    {http.StatusTooManyRequests, "Too many requests"},
}

// problemFor maps any error to the problem to send, and reports whether it
// is internal (to be logged at Error).
func problemFor(err error) (api.Problem, bool) {
	var fe *fault.Error
	if errors.As(err, &fe) {
		row, ok := problemKinds[fe.Kind]
		if !ok {
			panic("web: fault kind without a problem row: " + fe.Kind.String())
		}
		return api.Problem{Type: api.ProblemTypePrefix + fe.Kind.String(), Title: row.title, Status: row.status,
			Detail: fe.Detail, Hint: fe.Hint, Pointer: api.FieldPointer(fe.Field)}, false
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return echoProblem(he), he.Code >= 500
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return api.Problem{Type: api.ProblemTypePrefix + fault.NotFound.String(), Title: "Not found", Status: http.StatusNotFound,
			Detail: "the requested record does not exist"}, false
	case errors.Is(err, store.ErrConflict):
		return api.Problem{Type: api.ProblemTypePrefix + fault.Conflict.String(), Title: "Conflict", Status: http.StatusConflict,
			Detail: "the request conflicts with a concurrent change", Hint: "retry the request"}, false
	}
	return api.Problem{Type: api.ProblemTypePrefix + "internal", Title: "Internal error", Status: http.StatusInternalServerError,
		Detail: "the CA failed to handle this request", Hint: "retry later; report the request_id to the CA's operator"}, true
}

// echoProblem maps echo's own errors: unknown routes, wrong methods, and
// body limits.
func echoProblem(he *echo.HTTPError) api.Problem {
	p := api.Problem{Status: he.Code, Title: http.StatusText(he.Code), Type: api.ProblemTypePrefix + "http"}
	switch he.Code {
	case http.StatusNotFound:
		p.Type, p.Detail, p.Hint = api.ProblemTypePrefix+fault.NotFound.String(), "no such endpoint", "see the HTTP API in the README"
	case http.StatusMethodNotAllowed:
		p.Type, p.Detail, p.Hint = api.ProblemTypePrefix+"methodNotAllowed", "this endpoint does not take that method", "see the HTTP API in the README"
	case http.StatusRequestEntityTooLarge:
		p.Type, p.Detail = api.ProblemTypePrefix+fault.TooLarge.String(), "the request body is too large"
	case http.StatusUnauthorized:
		p.Type, p.Detail = api.ProblemTypePrefix+fault.Unauthorized.String(), "credentials are missing or wrong"
	}
	return p
}

// statusClientClosedRequest is the status the request log and metrics
// record for a request whose client went away before the answer (nginx's
// 499). Nothing reaches the client.
const statusClientClosedRequest = 499

// handleError is echo's HTTPErrorHandler: every error response is written here.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	if clientGone(err, c) {
		// Normal (a verifier stopped during its feed long-poll, say): no
		// problem to write, no internal error to log. The request log
		// line, at Info, records the 499 and the error.
		c.Response().WriteHeader(statusClientClosedRequest)
		return
	}
	p, internal := problemFor(err)
	p.RequestID = c.Response().Header().Get(echo.HeaderXRequestID)
	if internal {
		s.log.ErrorContext(c.Request().Context(), "internal error", "request_id", p.RequestID, "route", c.Path(), "err", err)
	}
	if p.Status == http.StatusUnauthorized {
		if est, _ := c.Get(ctxEST).(bool); est {
			c.Response().Header().Set("WWW-Authenticate", `Basic realm="`+api.ESTRealm+`"`)
		} else {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="fleetca"`)
		}
	}
	if d := retryAfter(err); d > 0 {
		c.Response().Header().Set("Retry-After", retryAfterSeconds(d))
	}
	var body any = p
	if step, _ := c.Get(ctxStepErrors).(bool); step {
		// The step CLI reads {"status","message"} and prints message.
		body = stepError(p)
		c.Response().Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	} else {
		c.Response().Header().Set(echo.HeaderContentType, api.ProblemContentType)
	}
	c.Response().WriteHeader(p.Status)
	if c.Request().Method == http.MethodHead {
		return
	}
	if err := jsonEncode(c.Response(), body); err != nil {
		s.log.DebugContext(c.Request().Context(), "write problem", "request_id", p.RequestID, "err", err)
	}
}

// retryAfter returns the RetryAfter of the first *fault.Error in err's
// chain, 0 if there is none.
func retryAfter(err error) time.Duration {
	var fe *fault.Error
	if errors.As(err, &fe) {
		return fe.RetryAfter
	}
	return 0
}

// retryAfterSeconds renders a wait as Retry-After's delay-seconds (RFC 9110
// §10.2.3), rounded up so that a client that waits that long is not early.
func retryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}

// clientGone reports whether err is the end of a request whose client went
// away: the request's context was canceled, and err says so.
func clientGone(err error, c echo.Context) bool {
	return errors.Is(err, context.Canceled) && errors.Is(c.Request().Context().Err(), context.Canceled)
}

// logAttrErr is what the request log says of an error: the fault kind, or
// the internal error's text (which never carries secrets).
func logAttrErr(err error) slog.Attr {
	if k, ok := fault.KindOf(err); ok {
		return slog.String("kind", k.String())
	}
	return slog.Any("err", err)
}

// isNotFound reports whether err is the store's ErrNotFound.
func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
