package ui

import (
	"fmt"
	"math/big"
	"net/http"
	"net/url"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/revocation"
	"github.com/fleetca/fleetca/store"
)

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
	// Trail is the device's newest audit events; TrailURL the audit
	// page for all of them.
	Trail    []auditRow
	TrailURL string
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
	trail, _, err := h.deps.Records.QueryAudit(r.Context(), store.AuditQuery{DeviceID: d.Device.ID, Limit: trailSize})
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	for _, e := range trail {
		d.Trail = append(d.Trail, link(e))
	}
	d.TrailURL = auditFilter{device: d.Device.ID}.url(0)
	switch r.URL.Query().Get("done") {
	case "revoked":
		v.Flash = "Revoked. OCSP and the revocation feed say so now; the next CRL follows within revocation.crl_publish_delay."
	case "reset":
		v.Flash = "Reset: the device may enroll again with a new token."
	case "renew-now":
		v.Flash = "Renew now: the device's renewal window starts now; it renews at its next check (renewal-info or its renew agent)."
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
