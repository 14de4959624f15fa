package ui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fleetca/fleetca/enroll"
	"github.com/fleetca/fleetca/internal/adminctx"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

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
