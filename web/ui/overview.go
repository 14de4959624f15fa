package ui

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/http"
	"time"

	"github.com/fleetca/fleetca/store"
)

// overviewData is the overview page's.
type overviewData struct {
	Now time.Time
	// Since24h is the audit page's "from" for the last 24 hours.
	Since24h                  string
	Stats                     store.Stats
	Chart                     chart
	CRLNumber                 string
	CRLThis, CRLNext          time.Time
	CRLAge                    string
	CRLEntries                int
	RootSubject, RootSHA      string
	RootNotAfter              time.Time
	InterNotAfter, OCSPExpiry time.Time
}

func (h *Handler) overview(w http.ResponseWriter, r *http.Request, v view) {
	now := h.now()
	st, err := h.deps.Records.Stats(r.Context(), now)
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	d := overviewData{Now: now, Stats: st, Chart: enrollChart(st.Enrollments, now),
		Since24h: now.Add(-24 * time.Hour).UTC().Format(localTime)}
	if p := h.deps.Revocation.CRL(); p != nil {
		d.CRLNumber, d.CRLThis, d.CRLNext, d.CRLEntries = p.Number.String(), p.ThisUpdate, p.NextUpdate, p.Entries
		d.CRLAge = age(now.Sub(p.ThisUpdate))
	}
	root := h.deps.Root()
	sum := sha256.Sum256(root.Raw)
	d.RootSHA, d.RootSubject, d.RootNotAfter = hex.EncodeToString(sum[:]), root.Subject.String(), root.NotAfter
	d.InterNotAfter = notAfter(h.deps.Intermediate)
	d.OCSPExpiry = notAfter(h.deps.Responder)
	v.Title, v.Nav, v.Data = "Overview", "overview", d
	h.render(w, http.StatusOK, "overview", v)
}

func notAfter(f func() *x509.Certificate) time.Time {
	if f == nil {
		return time.Time{}
	}
	if c := f(); c != nil {
		return c.NotAfter
	}
	return time.Time{}
}

// age says how long ago, roughly: "42 s", "17 min", "5 h", "3 d".
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "in the future"
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d/time.Hour))
	}
	return fmt.Sprintf("%d d", int(d/(24*time.Hour)))
}

// chart is the enrollments-per-day bar chart, laid out by the server in
// SVG user units (no script, no inline style: CSP).
type chart struct {
	W, H, Left, Top, Bottom int
	Bars                    []bar
	// Ticks are the y axis's gridlines.
	Ticks []tick
	// Labels are the x axis's dates, one a week.
	Labels []tick
	Total  int
	Max    int
}

type bar struct {
	X, Y, W, H int
	Title      string
}

type tick struct {
	X, Y  int
	Label string
}

// enrollChart lays out days (days[29] is now's UTC day) as bars.
func enrollChart(days [30]int, now time.Time) chart {
	c := chart{W: 900, H: 170, Left: 36, Top: 8, Bottom: 22}
	for _, n := range days {
		c.Total += n
		c.Max = max(c.Max, n)
	}
	// A round scale: the top tick is a "nice" number at or above Max.
	top := 1
	for top < c.Max {
		switch {
		case top*2 >= c.Max:
			top *= 2
		case top*5 >= c.Max:
			top *= 5
		default:
			top *= 10
		}
	}
	plotH := c.H - c.Top - c.Bottom
	plotW := c.W - c.Left - 4
	slot := plotW / len(days)
	// Gridlines: every unit up to 5, else halves (top is 1, 2 or 5 times
	// a power of ten, so top/2 is whole but for 5).
	vals := []int{0, top / 2, top}
	if top <= 5 {
		vals = vals[:0]
		for v := range top + 1 {
			vals = append(vals, v)
		}
	}
	for _, v := range vals {
		c.Ticks = append(c.Ticks, tick{Y: c.Top + plotH - v*plotH/top, Label: fmt.Sprint(v)})
	}
	day0 := now.UTC().Truncate(24*time.Hour).AddDate(0, 0, -(len(days) - 1))
	for i, n := range days {
		day := day0.AddDate(0, 0, i)
		h := n * plotH / top
		if n > 0 && h < 2 {
			h = 2
		}
		x := c.Left + i*slot + 2
		word := "enrollments"
		if n == 1 {
			word = "enrollment"
		}
		c.Bars = append(c.Bars, bar{X: x, Y: c.Top + plotH - h, W: slot - 4, H: h,
			Title: fmt.Sprintf("%s: %d %s", day.Format("Mon 2 Jan"), n, word)})
		if (len(days)-1-i)%7 == 0 {
			c.Labels = append(c.Labels, tick{X: x + (slot-4)/2, Y: c.H - 6, Label: day.Format("2 Jan")})
		}
	}
	return c
}
