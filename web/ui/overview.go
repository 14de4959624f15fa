package ui

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"time"
)

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
