package ui

import (
	"context"
	"crypto/x509"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/enroll"
	"github.com/fleetca/fleetca/internal/adminctx"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/revocation"
	"github.com/fleetca/fleetca/store"
)

//go:embed assets
var assets embed.FS

// Prefix is where the console is served.
const Prefix = "/ui/"

// IdleTimeout is how long a session lives without a request.
const IdleTimeout = 30 * time.Minute

// pageSize is how many devices the devices page lists at once.
const pageSize = 50

const (
	sessionCookie = "fleetca_ui_session"
	loginCookie   = "fleetca_ui_login"
	// csp allows nothing but this origin's files: no inline script or style.
	csp = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

// Admins checks admin tokens; *enroll.Service is one.
type Admins interface {
	CheckAdmin(ctx context.Context, presented string) (store.Admin, error)
}

// Records is the read side of the store the pages show; store.Store is
// one. Its methods answer as store.Store documents them.
type Records interface {
	GetDevice(ctx context.Context, id string) (store.Device, error)
	ListDevices(ctx context.Context, p store.Page) ([]store.Device, error)
	GetCertificate(ctx context.Context, serial *big.Int) (store.Certificate, error)
	ListCertificates(ctx context.Context, deviceID string, p store.Page) ([]store.Certificate, error)
	QueryDevices(ctx context.Context, q store.DeviceQuery) ([]store.Device, string, error)
	Stats(ctx context.Context, now time.Time) (store.Stats, error)
	QueryAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditEvent, uint64, error)
}

// Revoker revokes, resets revoked devices and publishes the CRL;
// *revocation.Service is one.
type Revoker interface {
	Revoke(ctx context.Context, req revocation.RevokeRequest) ([]store.Revocation, error)
	ResetDevice(ctx context.Context, id string) (store.Device, error)
	CRL() *revocation.Published
}

// Enroller is the registration authority's admin side, which the tokens
// and admins pages and the device page's renew-now call as the admin API
// does; *enroll.Service is one.
type Enroller interface {
	CreateToken(ctx context.Context, req enroll.TokenRequest) (enroll.Secret, store.Token, error)
	ListTokens(ctx context.Context, p store.Page) ([]store.Token, error)
	RevokeToken(ctx context.Context, id string) (store.Token, error)
	CreateAdmin(ctx context.Context, name, role string) (enroll.Secret, store.Admin, error)
	ListAdmins(ctx context.Context) ([]store.Admin, error)
	DisableAdmin(ctx context.Context, name string) (store.Admin, error)
	RotateAdmin(ctx context.Context, name string) (enroll.Secret, store.Admin, error)
	RenewNow(ctx context.Context, id api.DeviceID) (time.Time, error)
}

// Guard limits failed logins per client address: the admin API's limiter.
type Guard interface {
	// Refuse reports how long r's address must wait before it may try
	// again (0: it may try now).
	Refuse(r *http.Request) (time.Duration, error)
	// Fail counts a failed login of r's address, for reason.
	Fail(r *http.Request, reason string) error
}

// Deps are the console's collaborators.
type Deps struct {
	Admins     Admins
	Enroll     Enroller
	Records    Records
	Revocation Revoker
	Guard      Guard
	// Root is the CA's root certificate, whose fingerprint the overview shows.
	Root func() *x509.Certificate
	// Intermediate and Responder, when set, return the issuing
	// intermediate and the current OCSP responder certificate, whose
	// expiry the overview shows.
	Intermediate, Responder func() *x509.Certificate
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
}

// Handler serves the console under Prefix.
type Handler struct {
	deps  Deps
	now   func() time.Time
	log   *slog.Logger
	pages map[string]*template.Template
	mux   *http.ServeMux

	mu       sync.Mutex
	sessions map[string]*session
}

// session is a logged-in browser. The admin token is kept (in memory only)
// so that every request checks it again: a disabled or rotated admin's
// sessions end at their next request.
type session struct {
	token string
	csrf  string
	last  time.Time
}

// New builds the console.
func New(deps Deps) (*Handler, error) {
	if deps.Admins == nil || deps.Enroll == nil || deps.Records == nil || deps.Revocation == nil || deps.Guard == nil || deps.Root == nil {
		return nil, errors.New("ui.New: Admins, Enroll, Records, Revocation, Guard and Root are required")
	}
	h := &Handler{deps: deps, now: deps.Now, log: deps.Logger, sessions: make(map[string]*session), pages: make(map[string]*template.Template)}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	base, err := template.New("").Funcs(funcs).ParseFS(assets, "assets/layout.html")
	if err != nil {
		return nil, err
	}
	for _, p := range []string{"login", "overview", "devices", "device", "audit", "confirm", "error", "tokens", "admins", "ask", "secret"} {
		t, err := template.Must(base.Clone()).ParseFS(assets, "assets/"+p+".html")
		if err != nil {
			return nil, err
		}
		h.pages[p] = t
	}
	css, err := fs.Sub(assets, "assets")
	if err != nil {
		return nil, err
	}
	m := http.NewServeMux()
	m.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(css)))
	m.HandleFunc("GET /ui/login", h.loginForm)
	m.HandleFunc("POST /ui/login", h.login)
	m.HandleFunc("POST /ui/logout", h.admin(store.RoleViewer, h.logout))
	m.HandleFunc("GET /ui/{$}", h.admin(store.RoleViewer, h.overview))
	m.HandleFunc("GET /ui/devices", h.admin(store.RoleViewer, h.devices))
	m.HandleFunc("GET /ui/devices/{id}", h.admin(store.RoleViewer, h.device))
	m.HandleFunc("GET /ui/audit", h.admin(store.RoleViewer, h.audit))
	m.HandleFunc("GET /ui/devices/{id}/revoke", h.admin(store.RoleOperator, h.confirmRevoke))
	m.HandleFunc("POST /ui/devices/{id}/revoke", h.admin(store.RoleOperator, h.revoke))
	m.HandleFunc("POST /ui/devices/{id}/renew-now", h.admin(store.RoleOperator, h.renewNow))
	m.HandleFunc("GET /ui/devices/{id}/reset", h.admin(store.RoleOperator, h.confirmReset))
	m.HandleFunc("POST /ui/devices/{id}/reset", h.admin(store.RoleOperator, h.reset))
	m.HandleFunc("GET /ui/tokens", h.admin(store.RoleViewer, h.tokens))
	m.HandleFunc("POST /ui/tokens", h.admin(store.RoleOperator, h.mintToken))
	m.HandleFunc("GET /ui/tokens/{id}/revoke", h.admin(store.RoleOperator, h.confirmRevokeToken))
	m.HandleFunc("POST /ui/tokens/{id}/revoke", h.admin(store.RoleOperator, h.revokeToken))
	m.HandleFunc("GET /ui/admins", h.admin(store.RoleOwner, h.admins))
	m.HandleFunc("POST /ui/admins", h.admin(store.RoleOwner, h.createAdmin))
	m.HandleFunc("GET /ui/admins/{name}/{op}", h.admin(store.RoleOwner, h.confirmAdminOp))
	m.HandleFunc("POST /ui/admins/{name}/{op}", h.admin(store.RoleOwner, h.adminOp))
	m.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, http.StatusNotFound, "There is no such page.")
	})
	h.mux = m
	return h, nil
}

// ServeHTTP sets the headers every answer carries and routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	if !strings.HasPrefix(r.URL.Path, "/ui/static/") {
		hd.Set("Cache-Control", "no-store")
	}
	h.mux.ServeHTTP(w, r)
}

// view is what every page template gets.
type view struct {
	Title  string
	Nav    string
	Admin  store.Admin
	CSRF   string
	Flash  string
	Error  string
	Status int
	Data   any
}

var funcs = template.FuncMap{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	// stamp is an audit event's time, to the second; the column says UTC.
	"stamp": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
	"hex": func(n *big.Int) string {
		if n == nil {
			return ""
		}
		return n.Text(16)
	},
	"keyhash": func(k store.KeyHash) string { return hex.EncodeToString(k[:8]) },
	// before reports whether t is set and not after now (a renew-by
	// date that has passed).
	"before": func(t, now time.Time) bool { return !t.IsZero() && !now.Before(t) },
	"canOperate": func(a store.Admin) bool {
		return enroll.RequireRole(a, store.RoleOperator) == nil
	},
	"isOwner": func(a store.Admin) bool {
		return enroll.RequireRole(a, store.RoleOwner) == nil
	},
}

func (h *Handler) render(w http.ResponseWriter, status int, page string, v view) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := h.pages[page].ExecuteTemplate(w, "layout", v); err != nil {
		h.log.Error("ui: render", "page", page, "err", err)
	}
}

// fail answers an error page; it shows the session's nav when there is one.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	v := view{Title: http.StatusText(status), Error: msg, Status: status}
	if a, ok := adminctx.From(r.Context()); ok {
		v.Admin = a
	}
	h.render(w, status, "error", v)
}

// failErr answers err: a fault with its detail and hint, anything else as
// an internal error, logged and not shown.
func (h *Handler) failErr(w http.ResponseWriter, r *http.Request, err error) {
	var fe *fault.Error
	if errors.As(err, &fe) {
		status := http.StatusBadRequest
		switch fe.Kind {
		case fault.NotFound:
			status = http.StatusNotFound
		case fault.Forbidden:
			status = http.StatusForbidden
		case fault.Unauthorized:
			status = http.StatusUnauthorized
		case fault.Conflict, fault.AlreadyRevoked:
			status = http.StatusConflict
		case fault.RateLimited:
			status = http.StatusTooManyRequests
		case fault.Unavailable:
			status = http.StatusServiceUnavailable
		}
		msg := fe.Detail
		if fe.Hint != "" {
			msg += " (" + fe.Hint + ")"
		}
		h.fail(w, r, status, msg)
		return
	}
	if errors.Is(err, store.ErrNotFound) {
		h.fail(w, r, http.StatusNotFound, "Not found.")
		return
	}
	h.log.Error("ui", "path", r.URL.Path, "err", err)
	h.fail(w, r, http.StatusInternalServerError, "Internal error; the server log has it.")
}
