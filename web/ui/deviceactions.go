package ui

import (
	"net/http"
	"net/url"

	"github.com/fleetca/fleetca/api"
)

// The device page's actions besides revocation: reset a revoked device so
// that it may enroll again, and ask an active one to renew now. Both go
// through the services the admin API calls, as the admin in the context.

func (h *Handler) confirmReset(w http.ResponseWriter, r *http.Request, v view) {
	id, err := api.ParseDeviceID(r.PathValue("id"))
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	page := Prefix + "devices/" + url.PathEscape(string(id))
	v.Title, v.Nav = "Reset "+string(id)+"?", "devices"
	v.Data = askData{Heading: v.Title, Text: "The device may then enroll again, with a new token, under the same ID. Its revoked certificates stay revoked.",
		Action: page + "/reset", Button: "Yes, reset", Cancel: page, Test: "reset"}
	h.render(w, http.StatusOK, "ask", v)
}

func (h *Handler) reset(w http.ResponseWriter, r *http.Request, _ view) {
	id, err := api.ParseDeviceID(r.PathValue("id"))
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	if _, err := h.deps.Revocation.ResetDevice(r.Context(), string(id)); err != nil {
		h.failErr(w, r, err)
		return
	}
	http.Redirect(w, r, Prefix+"devices/"+url.PathEscape(string(id))+"?done=reset", http.StatusSeeOther)
}

func (h *Handler) renewNow(w http.ResponseWriter, r *http.Request, _ view) {
	id, err := api.ParseDeviceID(r.PathValue("id"))
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	if _, err := h.deps.Enroll.RenewNow(r.Context(), id); err != nil {
		h.failErr(w, r, err)
		return
	}
	http.Redirect(w, r, Prefix+"devices/"+url.PathEscape(string(id))+"?done=renew-now", http.StatusSeeOther)
}
