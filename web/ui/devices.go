package ui

import (
	"errors"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/fleetca/fleetca/store"
)

// Device filters the devices page offers (its status parameter).
const (
	filterAny     = ""
	filterActive  = "active"
	filterRevoked = "revoked"
	// filterStopped: active devices past their renew-by date.
	filterStopped = "stopped"
)

// devicesData is the devices page's.
type devicesData struct {
	Query, Status string
	Sort          store.DeviceSort
	Now           time.Time
	Devices       []store.Device
	// NextURL is the next page's address; "" on the last page.
	NextURL string
	// Sorts are the column headers' links.
	IDSort, RenewBySort, CreatedSort string
	Statuses                         []option
}

type option struct{ Value, Label string }

var statusOptions = []option{{filterAny, "any status"}, {filterActive, "active"}, {filterRevoked, "revoked"}, {filterStopped, "stopped renewing"}}

// deviceListing is what the devices page's parameters ask for.
type deviceListing struct {
	q      string
	status string
	sort   store.DeviceSort
	after  string
}

// url is the devices page's address for l.
func (l deviceListing) url() string {
	v := url.Values{}
	for k, s := range map[string]string{"q": l.q, "status": l.status, "sort": string(l.sort), "after": l.after} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if len(v) == 0 {
		return Prefix + "devices"
	}
	return Prefix + "devices?" + v.Encode()
}

// query checks l and turns it into a store query; a refusal is a sentence
// for the page.
func (l deviceListing) query(now time.Time) (store.DeviceQuery, string) {
	q := store.DeviceQuery{Prefix: l.q, Sort: l.sort, After: l.after, Limit: pageSize}
	switch l.sort {
	case "", store.SortID, store.SortIDDesc, store.SortRenewBy, store.SortCreatedDesc:
	default:
		return q, "Unknown order: sort by ID, renew-by or newest."
	}
	switch l.status {
	case filterAny:
	case filterActive:
		q.Status = store.DeviceActive
	case filterRevoked:
		q.Status = store.DeviceRevoked
		if l.sort == store.SortRenewBy {
			return q, "Revoked devices have no renew-by date to sort by: sort them by ID or newest."
		}
	case filterStopped:
		// Stopped renewing is a renew-by range: listed by renew-by.
		if l.sort != "" && l.sort != store.SortRenewBy {
			return q, "Devices that stopped renewing are listed by renew-by date, most overdue first."
		}
		q.Status, q.Sort, q.RenewByBefore = store.DeviceActive, store.SortRenewBy, now
	default:
		return q, "Unknown status: pick any, active, revoked or stopped renewing."
	}
	if l.q != "" {
		if l.status == filterStopped {
			return q, "Devices that stopped renewing are listed by renew-by date, not searched by ID: clear the search or the status."
		}
		if q.Sort != "" && q.Sort != store.SortID && q.Sort != store.SortIDDesc {
			return q, "A device ID search is listed by ID: clear the search or sort by ID."
		}
	}
	if q.Sort == store.SortRenewBy && q.Status == "" {
		q.Status = store.DeviceActive // renew-by lists active devices only
	}
	return q, ""
}

// devices lists devices, filtered and sorted, a page at a time; a search
// for a certificate serial goes to its device.
func (h *Handler) devices(w http.ResponseWriter, r *http.Request, v view) {
	get := r.URL.Query().Get
	l := deviceListing{q: strings.TrimSpace(get("q")), status: get("status"), sort: store.DeviceSort(get("sort")), after: get("after")}
	now := h.now()
	v.Title, v.Nav = "Devices", "devices"
	d := devicesData{Query: l.q, Status: l.status, Sort: l.sort, Now: now, Statuses: statusOptions}
	d.IDSort = deviceListing{q: l.q, status: l.status, sort: store.SortIDDesc}.url()
	if l.sort == store.SortIDDesc {
		d.IDSort = deviceListing{q: l.q, status: l.status}.url()
	}
	d.RenewBySort = deviceListing{status: l.status, sort: store.SortRenewBy}.url()
	d.CreatedSort = deviceListing{status: l.status, sort: store.SortCreatedDesc}.url()
	bad := func(msg string) {
		v.Error, v.Data = msg, d
		h.render(w, http.StatusBadRequest, "devices", v)
	}
	if serial, colon := serialOf(l.q); serial != nil {
		c, err := h.deps.Records.GetCertificate(r.Context(), serial)
		switch {
		case err == nil:
			http.Redirect(w, r, Prefix+"devices/"+url.PathEscape(c.DeviceID)+"#cert-"+serial.Text(16), http.StatusSeeOther)
			return
		case !errors.Is(err, store.ErrNotFound):
			h.failErr(w, r, err)
			return
		case colon:
			v.Data = d
			v.Error = "No certificate has serial " + serial.Text(16) + "."
			h.render(w, http.StatusNotFound, "devices", v)
			return
		}
		// Not a serial of ours: search it as a device ID prefix.
	}
	if l.q != "" && !validPrefix(l.q) {
		bad("Search for a device ID prefix (letters, digits, '.', '_' and '-') or a certificate serial (hex, colons allowed).")
		return
	}
	if len(l.after) > 512 {
		bad("The page cursor is too long; start again from the first page.")
		return
	}
	q, refusal := l.query(now)
	if refusal != "" {
		bad(refusal)
		return
	}
	d.Sort = q.Sort
	list, next, err := h.deps.Records.QueryDevices(r.Context(), q)
	if errors.Is(err, store.ErrBadQuery) {
		bad("This combination of search, status and order is not offered: search by ID, or filter by status, then sort.")
		return
	}
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	d.Devices = list
	if next != "" {
		nl := l
		nl.after = next
		d.NextURL = nl.url()
	}
	v.Data = d
	h.render(w, http.StatusOK, "devices", v)
}

// serialOf reads q as a certificate serial: hex, with or without colons
// (openssl prints them with). Without colons, q must be long enough not
// to be mistaken for a device ID prefix (our serials have at least 64
// bits); colon reports whether q had them (then it is certainly a serial).
func serialOf(q string) (serial *big.Int, colon bool) {
	colon = strings.Contains(q, ":")
	h := strings.ReplaceAll(q, ":", "")
	if h == "" || len(h) > 64 || (!colon && len(h) < 16) {
		return nil, false
	}
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return nil, false
		}
	}
	n, ok := new(big.Int).SetString(h, 16)
	if !ok || n.Sign() <= 0 {
		return nil, false
	}
	return n, colon
}

func validPrefix(q string) bool {
	for _, c := range q {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return len(q) <= 128
}
