package ui

import (
	"net/http"
	"strings"

	"github.com/fleetca/fleetca/store"
)

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
