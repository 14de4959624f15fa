package ui

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
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

// Records is the read side of the store the pages show.
type Records interface {
	GetDevice(ctx context.Context, id string) (store.Device, error)
	ListDevices(ctx context.Context, p store.Page) ([]store.Device, error)
	ListCertificates(ctx context.Context, deviceID string, p store.Page) ([]store.Certificate, error)
}

// Revoker revokes and publishes the CRL; *revocation.Service is one.
type Revoker interface {
	Revoke(ctx context.Context, req revocation.RevokeRequest) ([]store.Revocation, error)
	CRL() *revocation.Published
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
	Records    Records
	Revocation Revoker
	Guard      Guard
	// Root is the CA's root certificate, whose fingerprint the overview shows.
	Root func() *x509.Certificate
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
	if deps.Admins == nil || deps.Records == nil || deps.Revocation == nil || deps.Guard == nil || deps.Root == nil {
		return nil, errors.New("ui.New: Admins, Records, Revocation, Guard and Root are required")
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
	for _, p := range []string{"login", "overview", "devices", "device", "confirm", "error"} {
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
	m.HandleFunc("GET /ui/devices/{id}/revoke", h.admin(store.RoleOperator, h.confirmRevoke))
	m.HandleFunc("POST /ui/devices/{id}/revoke", h.admin(store.RoleOperator, h.revoke))
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
	"hex": func(n *big.Int) string {
		if n == nil {
			return ""
		}
		return n.Text(16)
	},
	"keyhash": func(k store.KeyHash) string { return hex.EncodeToString(k[:8]) },
	"canOperate": func(a store.Admin) bool {
		return enroll.RequireRole(a, store.RoleOperator) == nil
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

func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func equal(a, b string) bool { return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: Prefix, MaxAge: maxAge,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

// sessionOf returns r's live session and its ID, touching it.
func (h *Handler) sessionOf(r *http.Request) (string, *session) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return "", nil
	}
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, s := range h.sessions { // expire idle sessions
		if now.Sub(s.last) > IdleTimeout {
			delete(h.sessions, id)
		}
	}
	s, ok := h.sessions[c.Value]
	if !ok {
		return "", nil
	}
	s.last = now
	return c.Value, s
}

// admin wraps a page: it needs a session whose admin holds min, and, for a
// POST, the session's CSRF token in the form.
func (h *Handler) admin(min store.Role, next func(http.ResponseWriter, *http.Request, view)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, s := h.sessionOf(r)
		if s == nil {
			if r.Method == http.MethodPost {
				h.fail(w, r, http.StatusForbidden, "Your session has ended; log in again.")
				return
			}
			http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
			return
		}
		a, err := h.deps.Admins.CheckAdmin(r.Context(), s.token)
		if err != nil {
			h.drop(id)
			var fe *fault.Error
			if errors.As(err, &fe) && fe.Kind == fault.Unauthorized {
				http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
				return
			}
			h.failErr(w, r, err)
			return
		}
		r = r.WithContext(adminctx.With(r.Context(), a))
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
			if !equal(r.PostFormValue("csrf"), s.csrf) {
				h.fail(w, r, http.StatusForbidden, "The form's CSRF token is missing or wrong; reload the page and try again.")
				return
			}
		}
		if err := enroll.RequireRole(a, min); err != nil {
			h.failErr(w, r, err)
			return
		}
		next(w, r, view{Admin: a, CSRF: s.csrf})
	}
}

func (h *Handler) drop(id string) {
	h.mu.Lock()
	delete(h.sessions, id)
	h.mu.Unlock()
}

// loginForm shows the login page with a fresh login CSRF token, set in a
// cookie too (double submit: there is no session yet to bind it to).
func (h *Handler) loginForm(w http.ResponseWriter, r *http.Request) {
	if _, s := h.sessionOf(r); s != nil {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	tok := randomID()
	setCookie(w, loginCookie, tok, 600)
	h.render(w, http.StatusOK, "login", view{Title: "Log in", CSRF: tok})
}

// login exchanges an admin token for a session.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	c, err := r.Cookie(loginCookie)
	if err != nil || !equal(r.PostFormValue("csrf"), c.Value) {
		h.fail(w, r, http.StatusForbidden, "The login form's CSRF token is missing or wrong; reload the login page.")
		return
	}
	again := func(status int, msg string) {
		tok := randomID()
		setCookie(w, loginCookie, tok, 600)
		h.render(w, status, "login", view{Title: "Log in", CSRF: tok, Error: msg})
	}
	wait, err := h.deps.Guard.Refuse(r)
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	if wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		again(http.StatusTooManyRequests, fmt.Sprintf("Too many failed logins from your address; try again in %s.", wait.Round(time.Second)))
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	a, err := h.deps.Admins.CheckAdmin(r.Context(), token)
	var fe *fault.Error
	if errors.As(err, &fe) && fe.Kind == fault.Unauthorized {
		if gerr := h.deps.Guard.Fail(r, fe.Detail); gerr != nil {
			h.failErr(w, r, gerr)
			return
		}
		again(http.StatusUnauthorized, "That is not an active admin token of this CA.")
		return
	}
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	id := randomID()
	h.mu.Lock()
	h.sessions[id] = &session{token: token, csrf: randomID(), last: h.now()}
	h.mu.Unlock()
	setCookie(w, loginCookie, "", -1)
	setCookie(w, sessionCookie, id, 0)
	h.log.Info("ui: login", "admin", a.Name)
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request, _ view) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		h.drop(c.Value)
	}
	setCookie(w, sessionCookie, "", -1)
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

// overviewData is the overview page's.
type overviewData struct {
	CRLNumber            string
	CRLThis, CRLNext     time.Time
	CRLEntries           int
	RootSubject, RootSHA string
	RootNotAfter         time.Time
}

func (h *Handler) overview(w http.ResponseWriter, r *http.Request, v view) {
	d := overviewData{}
	if p := h.deps.Revocation.CRL(); p != nil {
		d.CRLNumber, d.CRLThis, d.CRLNext, d.CRLEntries = p.Number.String(), p.ThisUpdate, p.NextUpdate, p.Entries
	}
	root := h.deps.Root()
	sum := sha256.Sum256(root.Raw)
	d.RootSHA, d.RootSubject, d.RootNotAfter = hex.EncodeToString(sum[:]), root.Subject.String(), root.NotAfter
	v.Title, v.Nav, v.Data = "Overview", "overview", d
	h.render(w, http.StatusOK, "overview", v)
}

// devicesData is the devices page's.
type devicesData struct {
	Query   string
	Devices []store.Device
	Next    string
}

// devices lists devices whose ID starts with q, a page at a time.
func (h *Handler) devices(w http.ResponseWriter, r *http.Request, v view) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	after := r.URL.Query().Get("after")
	v.Title, v.Nav = "Devices", "devices"
	d := devicesData{Query: q}
	if q != "" && !validPrefix(q) {
		v.Error = "A device ID has only letters, digits, '.', '_' and '-'."
		v.Data = d
		h.render(w, http.StatusBadRequest, "devices", v)
		return
	}
	// Device IDs sort in byte order, so the prefix's devices start just
	// after the largest ID below it.
	if after == "" && q != "" {
		after = prefixStart(q)
	}
	list, err := h.deps.Records.ListDevices(r.Context(), store.Page{After: after, Limit: pageSize + 1})
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	for i, dev := range list {
		if !strings.HasPrefix(dev.ID, q) {
			list = list[:i]
			break
		}
	}
	if len(list) > pageSize {
		list = list[:pageSize]
		d.Next = list[pageSize-1].ID
	}
	d.Devices = list
	v.Data = d
	h.render(w, http.StatusOK, "devices", v)
}

func validPrefix(q string) bool {
	for _, c := range q {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return len(q) <= 128
}

// prefixStart is a cursor just before the first ID that starts with q: q
// with its last byte decremented, then '~', which sorts after every byte a
// device ID may hold (and keeps the cursor ASCII, valid text for any
// store).
func prefixStart(q string) string {
	b := []byte(q)
	b[len(b)-1]--
	return string(b) + "~"
}

// certRow is one certificate of a device's lineage.
type certRow struct {
	store.Certificate
	Status string
}

// deviceData is the device page's.
type deviceData struct {
	Device  store.Device
	Certs   []certRow
	Reasons []string
}

func (h *Handler) loadDevice(w http.ResponseWriter, r *http.Request) (deviceData, bool) {
	id, err := api.ParseDeviceID(r.PathValue("id"))
	if err != nil {
		h.failErr(w, r, err)
		return deviceData{}, false
	}
	dev, err := h.deps.Records.GetDevice(r.Context(), string(id))
	if err != nil {
		h.failErr(w, r, err)
		return deviceData{}, false
	}
	certs, err := h.deps.Records.ListCertificates(r.Context(), dev.ID, store.Page{Limit: store.MaxPageLimit})
	if err != nil {
		h.failErr(w, r, err)
		return deviceData{}, false
	}
	now := h.now()
	d := deviceData{Device: dev, Reasons: revocation.ReasonNames()}
	for i := len(certs) - 1; i >= 0; i-- { // newest first
		c := certs[i]
		st := "valid"
		switch {
		case !c.RevokedAt.IsZero():
			st = "revoked (" + api.Reason(c.Reason).String() + ")"
		case !now.Before(c.NotAfter):
			st = "expired"
		}
		d.Certs = append(d.Certs, certRow{Certificate: c, Status: st})
	}
	return d, true
}

func (h *Handler) device(w http.ResponseWriter, r *http.Request, v view) {
	d, ok := h.loadDevice(w, r)
	if !ok {
		return
	}
	switch r.URL.Query().Get("done") {
	case "revoked":
		v.Flash = "Revoked. OCSP and the revocation feed say so now; the next CRL follows within revocation.crl_publish_delay."
	}
	v.Title, v.Nav, v.Data = "Device "+d.Device.ID, "devices", d
	h.render(w, http.StatusOK, "device", v)
}

// confirmData is the confirmation page's.
type confirmData struct {
	Device string
	Serial string
	Reason string
}

// revokeForm reads and checks the revocation's target and reason.
func revokeForm(r *http.Request, get func(string) string) (confirmData, *big.Int, api.Reason, error) {
	id, err := api.ParseDeviceID(r.PathValue("id"))
	if err != nil {
		return confirmData{}, nil, 0, err
	}
	d := confirmData{Device: string(id), Serial: get("serial"), Reason: get("reason")}
	reason, err := revocation.ParseReason(d.Reason)
	if err != nil {
		return d, nil, 0, err
	}
	var serial *big.Int
	if d.Serial != "" {
		n, ok := new(big.Int).SetString(d.Serial, 16)
		if !ok || n.Sign() <= 0 {
			return d, nil, 0, fault.New(fault.Malformed, fmt.Sprintf("serial %q is not a hexadecimal serial number", d.Serial), "pick a certificate from the device page")
		}
		serial = n
	}
	return d, serial, reason, nil
}

// confirmRevoke shows what will be revoked, and the form that does it.
func (h *Handler) confirmRevoke(w http.ResponseWriter, r *http.Request, v view) {
	d, _, _, err := revokeForm(r, r.URL.Query().Get)
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	v.Title, v.Nav, v.Data = "Revoke "+d.Device+"?", "devices", d
	h.render(w, http.StatusOK, "confirm", v)
}

// revoke revokes the device, or one of its certificates, then goes back to
// the device page.
func (h *Handler) revoke(w http.ResponseWriter, r *http.Request, _ view) {
	d, serial, reason, err := revokeForm(r, r.PostFormValue)
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	req := revocation.RevokeRequest{Reason: reason}
	if serial != nil {
		req.Serial = serial
	} else {
		req.DeviceID = d.Device
	}
	if _, err := h.deps.Revocation.Revoke(r.Context(), req); err != nil {
		h.failErr(w, r, err)
		return
	}
	http.Redirect(w, r, Prefix+"devices/"+url.PathEscape(d.Device)+"?done=revoked", http.StatusSeeOther)
}
