package ui

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/fleetca/fleetca/enroll"
	"github.com/fleetca/fleetca/store"
)

// adminsData is the admins page's.
type adminsData struct {
	Admins []store.Admin
	// Name and Role are the create form's values, kept when refused.
	Name, Role string
	Roles      []store.Role
}

var roles = []store.Role{store.RoleViewer, store.RoleOperator, store.RoleOwner}

// admins lists the admins, with the create form; owners only.
func (h *Handler) admins(w http.ResponseWriter, r *http.Request, v view) {
	q := r.URL.Query()
	if name := q.Get("name"); enroll.ParseAdminName(name) == nil {
		switch q.Get("done") {
		case "disabled":
			v.Flash = "Disabled " + name + ": its token is refused from now on, and its sessions have ended."
		}
	}
	h.renderAdmins(w, r, http.StatusOK, v, adminsData{Role: string(store.RoleViewer)})
}

func (h *Handler) renderAdmins(w http.ResponseWriter, r *http.Request, status int, v view, d adminsData) {
	list, err := h.deps.Enroll.ListAdmins(r.Context())
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	d.Admins, d.Roles = list, roles
	v.Title, v.Nav, v.Data = "Admins", "admins", d
	h.render(w, status, "admins", v)
}

// createAdmin makes an admin and shows its token once (see mintToken).
func (h *Handler) createAdmin(w http.ResponseWriter, r *http.Request, v view) {
	name, role := strings.TrimSpace(r.PostFormValue("name")), r.PostFormValue("role")
	secret, a, err := h.deps.Enroll.CreateAdmin(r.Context(), name, role)
	if err != nil {
		msg, status, ok := userError(err)
		if !ok {
			h.failErr(w, r, err)
			return
		}
		v.Error = msg
		h.renderAdmins(w, r, status, v, adminsData{Name: truncate(name), Role: role})
		return
	}
	v.Title, v.Nav = "Admin "+a.Name, "admins"
	v.Data = adminSecret(a, string(secret), "created with role "+string(a.Role))
	h.render(w, http.StatusCreated, "secret", v)
}

func adminSecret(a store.Admin, secret, what string) secretData {
	return secretData{Heading: "Admin " + a.Name, What: a.Name + " " + what + ". Hand this token to " + a.Name +
		" over a private channel: it logs in to this console and calls the admin API (Authorization: Bearer).",
		Secret: secret, Back: Prefix + "admins", BackTo: "Back to the admins"}
}

// adminOps are what the admins page does to one admin.
var adminOps = map[string]struct{ question, text, button string }{
	"disable": {"Disable %s?", "Its token is refused from now on and its sessions end at their next request. A disabled admin cannot be enabled again; create a new one instead.", "Yes, disable"},
	"rotate":  {"Rotate the token of %s?", "A new token replaces the old one, which is refused from now on; its sessions end at their next request. The new token is shown once.", "Yes, rotate"},
}

// adminTarget reads the admin's name and the operation from the path.
func adminTarget(w http.ResponseWriter, r *http.Request, h *Handler) (name, op string, ok bool) {
	name, op = r.PathValue("name"), r.PathValue("op")
	if _, known := adminOps[op]; !known {
		h.fail(w, r, http.StatusNotFound, "There is no such page.")
		return "", "", false
	}
	if err := enroll.ParseAdminName(name); err != nil {
		h.failErr(w, r, err)
		return "", "", false
	}
	return name, op, true
}

func (h *Handler) confirmAdminOp(w http.ResponseWriter, r *http.Request, v view) {
	name, op, ok := adminTarget(w, r, h)
	if !ok {
		return
	}
	o := adminOps[op]
	text := o.text
	if name == v.Admin.Name {
		text = "This is you: your own session ends with it, and you log in again with the new token if there is one. " + text
	}
	v.Title, v.Nav = strings.Replace(o.question, "%s", name, 1), "admins"
	v.Data = askData{Heading: v.Title, Text: text, Action: Prefix + "admins/" + url.PathEscape(name) + "/" + op,
		Button: o.button, Danger: true, Cancel: Prefix + "admins", Test: op + "-admin"}
	h.render(w, http.StatusOK, "ask", v)
}

// adminOp disables an admin (then back to the list) or rotates its token
// (shown once). The last active owner's refusal is enroll's.
func (h *Handler) adminOp(w http.ResponseWriter, r *http.Request, v view) {
	name, op, ok := adminTarget(w, r, h)
	if !ok {
		return
	}
	var err error
	switch op {
	case "disable":
		if _, err = h.deps.Enroll.DisableAdmin(r.Context(), name); err == nil {
			http.Redirect(w, r, Prefix+"admins?done=disabled&name="+url.QueryEscape(name), http.StatusSeeOther)
			return
		}
	case "rotate":
		var secret enroll.Secret
		var a store.Admin
		if secret, a, err = h.deps.Enroll.RotateAdmin(r.Context(), name); err == nil {
			v.Title, v.Nav = "Admin "+a.Name, "admins"
			v.Data = adminSecret(a, string(secret), "has a new token; the old one is refused from now on")
			h.render(w, http.StatusOK, "secret", v)
			return
		}
	}
	msg, status, ok := userError(err)
	if !ok {
		h.failErr(w, r, err)
		return
	}
	v.Error = msg
	h.renderAdmins(w, r, status, v, adminsData{Role: string(store.RoleViewer)})
}
