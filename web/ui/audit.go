package ui

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/store"
)

// auditPageSize is how many events the audit page lists at once.
const auditPageSize = 50

// trailSize is how many events the device page's audit trail shows.
const trailSize = 20

// localTime is the format of an HTML datetime-local input (read as UTC).
const localTime = "2006-01-02T15:04"

// auditData is the audit page's.
type auditData struct {
	Actor, Action, Device, From, To string
	Events                          []auditRow
	// OlderURL is the next (older) page's address; "" when there is none.
	OlderURL string
	// Searched, when set, is how many events a scan examined before it
	// stopped with fewer than a page of matches.
	Searched int
}

// auditRow is one event and the links to what it names.
type auditRow struct {
	store.AuditEvent
	ActorURL, DeviceURL, SerialURL, TokenURL string
}

// link finds the pages an event names.
func link(e store.AuditEvent) auditRow {
	r := auditRow{AuditEvent: e}
	device := func(id string) string { return Prefix + "devices/" + url.PathEscape(id) }
	if e.DeviceID != "" {
		r.DeviceURL = device(e.DeviceID)
	}
	if e.Serial != "" {
		if e.DeviceID != "" {
			r.SerialURL = r.DeviceURL + "#cert-" + e.Serial
		} else {
			r.SerialURL = Prefix + "devices?" + url.Values{"q": {e.Serial}}.Encode()
		}
	}
	if e.TokenID != "" {
		r.TokenURL = Prefix + "tokens#token-" + url.PathEscape(e.TokenID)
	}
	kind, name, _ := strings.Cut(e.Actor, ":")
	switch kind {
	case "admin":
		r.ActorURL = Prefix + "admins#admin-" + url.PathEscape(name)
	case "device":
		r.ActorURL = device(name)
	case "token":
		r.ActorURL = Prefix + "tokens#token-" + url.PathEscape(name)
	}
	return r
}

// auditFilter is what the audit page's parameters ask for.
type auditFilter struct {
	actor, action, device, from, to string
}

func (f auditFilter) url(before uint64) string {
	v := url.Values{}
	for k, s := range map[string]string{"actor": f.actor, "action": f.action, "device": f.device, "from": f.from, "to": f.to} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if before != 0 {
		v.Set("before", strconv.FormatUint(before, 10))
	}
	if len(v) == 0 {
		return Prefix + "audit"
	}
	return Prefix + "audit?" + v.Encode()
}

// query checks f and turns it into a store query; a refusal is a sentence
// for the page.
func (f auditFilter) query(before string) (store.AuditQuery, string) {
	q := store.AuditQuery{Actor: f.actor, Action: f.action, Limit: auditPageSize}
	if q.Actor != "" && !strings.Contains(q.Actor, ":") {
		q.Actor = "admin:" + q.Actor // a bare name is an admin's
	}
	if len(f.actor) > 200 || len(f.action) > 100 {
		return q, "The admin or action filter is too long."
	}
	if f.device != "" {
		id, err := api.ParseDeviceID(f.device)
		if err != nil {
			return q, "The device filter is not a device ID: letters, digits, '.', '_' and '-'."
		}
		q.DeviceID = string(id)
	}
	var err error
	if q.Since, err = parseLocal(f.from); err != nil {
		return q, "The “from” time is not a date and time (YYYY-MM-DDTHH:MM, UTC)."
	}
	if q.Until, err = parseLocal(f.to); err != nil {
		return q, "The “to” time is not a date and time (YYYY-MM-DDTHH:MM, UTC)."
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return q, "The “from” time must be before the “to” time."
	}
	if before != "" {
		n, err := strconv.ParseUint(before, 10, 64)
		if err != nil || n == 0 {
			return q, "The page cursor is not an event number; start again from the newest."
		}
		q.BeforeSeq = n
	}
	return q, ""
}

// parseLocal reads a datetime-local value, with or without seconds, as
// UTC; "" is the zero time.
func parseLocal(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.ParseInLocation(localTime+":05", s, time.UTC); err == nil {
		return t, nil
	}
	return time.ParseInLocation(localTime, s, time.UTC)
}

// audit lists audit events, newest first, filtered, a page at a time.
func (h *Handler) audit(w http.ResponseWriter, r *http.Request, v view) {
	get := func(k string) string { return strings.TrimSpace(r.URL.Query().Get(k)) }
	f := auditFilter{actor: get("actor"), action: get("action"), device: get("device"), from: get("from"), to: get("to")}
	d := auditData{Actor: f.actor, Action: f.action, Device: f.device, From: f.from, To: f.to}
	v.Title, v.Nav, v.Data = "Audit log", "audit", d
	q, refusal := f.query(get("before"))
	if refusal != "" {
		v.Error = refusal
		h.render(w, http.StatusBadRequest, "audit", v)
		return
	}
	events, next, err := h.deps.Records.QueryAudit(r.Context(), q)
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	for _, e := range events {
		d.Events = append(d.Events, link(e))
	}
	if next != 0 {
		d.OlderURL = f.url(next)
		if len(events) < q.Limit {
			// The store stopped scanning (store.AuditScanLimit) before
			// it found a page of matches.
			d.Searched = store.AuditScanLimit
			if q.BeforeSeq != 0 && q.BeforeSeq-next < uint64(d.Searched) {
				d.Searched = int(q.BeforeSeq - next)
			}
		}
	}
	v.Data = d
	h.render(w, http.StatusOK, "audit", v)
}
