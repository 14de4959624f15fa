package ui

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetca/fleetca/store"
)

func TestOverview(t *testing.T) {
	r := newRig(t)
	r.recs.stats = store.Stats{Active: 1234, Revoked: 56, Expiring7d: 3, Expiring30d: 9, Expired: 2, StoppedRenewing: 4, Revoked24h: 5}
	r.recs.stats.Enrollments[29] = 7
	r.recs.stats.Enrollments[0] = 1
	b, _ := r.login("viewer-token")
	a := b.do("GET", "/ui/", nil)
	if a.code != http.StatusOK {
		t.Fatalf("GET /ui/: %d", a.code)
	}
	for _, want := range []string{
		`data-test-stat="active"><span class="n">1234<`,
		`data-test-stat="revoked"><span class="n">56<`,
		`data-test-stat="expiring-7d"><span class="n">3<`,
		`data-test-stat="expiring-30d"><span class="n">9<`,
		`data-test-stat="expired"><span class="n">2<`,
		`href="/ui/devices?status=stopped" data-test-stat="stopped"><span class="n">4<`,
		`href="/ui/audit?from=2026-12-04T12%3a00" data-test-stat="revoked-24h"><span class="n">5<`,
		`<title>Sat 5 Dec: 7 enrollments</title>`,
		`<title>Fri 6 Nov: 1 enrollment</title>`,
		`data-test-crl-number>7<`,
		`id="root-fingerprint" data-test-root-fingerprint>` + r.rootSHA + `<`,
		`data-copy="root-fingerprint" data-test-copy="root-fingerprint" hidden`,
		`data-test-ocsp-expiry>2026-12-06 12:00 UTC<`,
		`data-test-intermediate-expiry>2027-12-05 12:00 UTC<`,
		`role="img" aria-labelledby="chart-title"`,
	} {
		if !strings.Contains(a.body, want) {
			t.Errorf("overview lacks %s", want)
		}
	}
	if n := strings.Count(a.body, "data-test-bar"); n != 30 {
		t.Errorf("chart has %d bars, want 30", n)
	}
}

func TestEnrollChartScale(t *testing.T) {
	for _, tc := range []struct {
		name      string
		max       int
		wantTop   string
		wantTicks int
	}{
		{"empty", 0, "1", 2},
		{"one", 1, "1", 2},
		{"three", 3, "5", 6},
		{"forty", 40, "50", 3},
		{"hundred", 100, "100", 3},
		{"hundred and one", 101, "200", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var days [30]int
			days[3] = tc.max
			c := enrollChart(days, t0)
			if top := c.Ticks[len(c.Ticks)-1].Label; top != tc.wantTop {
				t.Errorf("top tick %s, want %s", top, tc.wantTop)
			}
			if len(c.Ticks) != tc.wantTicks {
				t.Errorf("%d gridlines, want %d", len(c.Ticks), tc.wantTicks)
			}
			b := c.Bars[3]
			if b.Y < c.Top || b.Y+b.H != c.H-c.Bottom || (tc.max > 0) != (b.H > 0) {
				t.Errorf("bar %+v outside the plot %+v", b, c)
			}
		})
	}
}

func TestDevicesPage(t *testing.T) {
	r := newRig(t)
	b, _ := r.login("viewer-token")
	for _, tc := range []struct {
		name     string
		query    string
		want     int
		wantQ    store.DeviceQuery
		wantRows []string
		wantText string
	}{
		{"all", "", http.StatusOK, store.DeviceQuery{Limit: pageSize}, []string{"cam-1", "dev-1", "dev-2"}, ""},
		{"prefix", "q=dev", http.StatusOK, store.DeviceQuery{Prefix: "dev", Limit: pageSize}, []string{"dev-1", "dev-2"}, ""},
		{"prefix descending", "q=dev&sort=-id", http.StatusOK, store.DeviceQuery{Prefix: "dev", Sort: store.SortIDDesc, Limit: pageSize}, []string{"dev-2", "dev-1"}, ""},
		{"active", "status=active", http.StatusOK, store.DeviceQuery{Status: store.DeviceActive, Limit: pageSize}, []string{"cam-1", "dev-1"}, ""},
		{"revoked newest", "status=revoked&sort=-created", http.StatusOK, store.DeviceQuery{Status: store.DeviceRevoked, Sort: store.SortCreatedDesc, Limit: pageSize}, []string{"dev-2"}, ""},
		{"stopped renewing", "status=stopped", http.StatusOK, store.DeviceQuery{Status: store.DeviceActive, Sort: store.SortRenewBy, RenewByBefore: t0, Limit: pageSize}, []string{"dev-1"}, `data-test-overdue="dev-1"`},
		{"renew-by", "sort=renew_by", http.StatusOK, store.DeviceQuery{Status: store.DeviceActive, Sort: store.SortRenewBy, Limit: pageSize}, []string{"cam-1", "dev-1"}, ""},
		{"prefix by renew-by", "q=dev&sort=renew_by", http.StatusBadRequest, store.DeviceQuery{}, nil, "A device ID search is listed by ID"},
		{"prefix by newest", "q=dev&sort=-created", http.StatusBadRequest, store.DeviceQuery{}, nil, "A device ID search is listed by ID"},
		{"stopped by prefix", "q=dev&status=stopped", http.StatusBadRequest, store.DeviceQuery{}, nil, "not searched by ID"},
		{"stopped by ID", "status=stopped&sort=id", http.StatusBadRequest, store.DeviceQuery{}, nil, "listed by renew-by date"},
		{"revoked by renew-by", "status=revoked&sort=renew_by", http.StatusBadRequest, store.DeviceQuery{}, nil, "no renew-by date"},
		{"unknown status", "status=lost", http.StatusBadRequest, store.DeviceQuery{}, nil, "Unknown status"},
		{"unknown sort", "sort=colour", http.StatusBadRequest, store.DeviceQuery{}, nil, "Unknown order"},
		{"bad search", "q=%3Cscript%3E", http.StatusBadRequest, store.DeviceQuery{}, nil, "device ID prefix"},
		{"long cursor", "after=" + strings.Repeat("a", 600), http.StatusBadRequest, store.DeviceQuery{}, nil, "cursor is too long"},
		{"long hex is a prefix when no serial has it", "q=00112233445566778899", http.StatusOK, store.DeviceQuery{Prefix: "00112233445566778899", Limit: pageSize}, nil, "data-test-devices-empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r.recs.lastDevice = store.DeviceQuery{}
			a := b.do("GET", "/ui/devices?"+tc.query, nil)
			if a.code != tc.want {
				t.Fatalf("GET /ui/devices?%s: %d, want %d\n%s", tc.query, a.code, tc.want, a.body)
			}
			if diff := cmp.Diff(tc.wantQ, r.recs.lastDevice); diff != "" {
				t.Errorf("query (-want +got):\n%s", diff)
			}
			var rows []string
			for _, part := range strings.Split(a.body, `data-test-device-row="`)[1:] {
				rows = append(rows, part[:strings.IndexByte(part, '"')])
			}
			if diff := cmp.Diff(tc.wantRows, rows); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
			if !strings.Contains(a.body, tc.wantText) {
				t.Errorf("page lacks %q:\n%s", tc.wantText, a.body)
			}
			if tc.want == http.StatusBadRequest && !strings.Contains(a.body, "data-test-error") {
				t.Errorf("a refused query shows no message")
			}
		})
	}
}

func TestDevicesSortLinks(t *testing.T) {
	r := newRig(t)
	b, _ := r.login("viewer-token")
	a := b.do("GET", "/ui/devices?q=dev&status=active", nil)
	for _, want := range []string{
		`href="/ui/devices?q=dev&amp;sort=-id&amp;status=active" data-test-sort="id"`,
		`href="/ui/devices?sort=renew_by&amp;status=active" data-test-sort="renew_by"`,
		`href="/ui/devices?sort=-created&amp;status=active" data-test-sort="-created"`,
	} {
		if !strings.Contains(a.body, want) {
			t.Errorf("devices page lacks the link %s", want)
		}
	}
	a = b.do("GET", "/ui/devices?sort=-id", nil)
	if !strings.Contains(a.body, `href="/ui/devices" data-test-sort="id"`) {
		t.Errorf("descending ID order: the ID header does not link back to ascending")
	}
}

func TestDevicesPaging(t *testing.T) {
	r := newRig(t)
	r.recs.devices = nil
	for i := range pageSize + 5 {
		r.recs.devices = append(r.recs.devices, store.Device{ID: fmt.Sprintf("d-%03d", i), Status: store.DeviceActive})
	}
	b, _ := r.login("viewer-token")
	a := b.do("GET", "/ui/devices?q=d-", nil)
	last := fmt.Sprintf("d-%03d", pageSize-1)
	next := `href="/ui/devices?after=` + last + `&amp;q=d-" data-test-next-page`
	if strings.Count(a.body, "data-test-device-row=") != pageSize || !strings.Contains(a.body, next) {
		t.Fatalf("first page: want %d rows and %s:\n%s", pageSize, next, a.body)
	}
	a = b.do("GET", "/ui/devices?after="+last+"&q=d-", nil)
	if r.recs.lastDevice.After != last || strings.Count(a.body, "data-test-device-row=") != 5 || strings.Contains(a.body, "data-test-next-page") {
		t.Errorf("second page: after %q, %d rows, want after %s, 5 rows, no next link", r.recs.lastDevice.After, strings.Count(a.body, "data-test-device-row="), last)
	}
}

func TestDevicesSerialSearch(t *testing.T) {
	r := newRig(t)
	b, _ := r.login("viewer-token")
	hex := fakeSerial.Text(16)
	var colons []string
	for i := 0; i < len(hex); i += 2 {
		colons = append(colons, strings.ToUpper(hex[i:i+2]))
	}
	for _, q := range []string{hex, strings.ToUpper(hex), strings.Join(colons, ":"), " " + hex + " "} {
		a := b.do("GET", "/ui/devices?"+url.Values{"q": {q}}.Encode(), nil)
		if want := "/ui/devices/dev-2#cert-" + hex; a.code != http.StatusSeeOther || a.hdr.Get("Location") != want {
			t.Errorf("search %q: %d to %q, want 303 to %s", q, a.code, a.hdr.Get("Location"), want)
		}
	}
	a := b.do("GET", "/ui/devices?q=01:02:03", nil)
	if a.code != http.StatusNotFound || !strings.Contains(a.body, "No certificate has serial 10203") {
		t.Errorf("search for an unknown serial: %d, want 404 saying so", a.code)
	}
}

func TestSerialOf(t *testing.T) {
	for _, tc := range []struct {
		q         string
		want      string
		wantColon bool
	}{
		{"7f3a9c0e1d2b4a59", "7f3a9c0e1d2b4a59", false},
		{"7F:3A:9C", "7f3a9c", true},
		{"dev-1", "", false},
		{"abc", "", false}, // short: a device ID prefix
		{"00:00", "", false},
		{"zz:zz", "", false},
		{":", "", false},
		{strings.Repeat("a", 65), "", false},
	} {
		t.Run(tc.q, func(t *testing.T) {
			n, colon := serialOf(tc.q)
			got := ""
			if n != nil {
				got = n.Text(16)
			}
			if got != tc.want || colon != tc.wantColon {
				t.Errorf("serialOf(%q) = %q, %v, want %q, %v", tc.q, got, colon, tc.want, tc.wantColon)
			}
		})
	}
}

// FuzzSerialOf: a search box's text never panics the serial reader, and
// what it accepts is a positive serial of at most 256 bits.
func FuzzSerialOf(f *testing.F) {
	f.Add("7F:3A:9C")
	f.Add("7f3a9c0e1d2b4a5968778695a4b3c2d1")
	f.Add("dev-1")
	f.Fuzz(func(t *testing.T, q string) {
		n, _ := serialOf(q)
		if n != nil && (n.Sign() <= 0 || n.BitLen() > 256) {
			t.Errorf("serialOf(%q) = %v", q, n)
		}
	})
}

func auditRig(t *testing.T) *rig {
	r := newRig(t)
	r.recs.audit = []store.AuditEvent{
		{Seq: 1, Time: t0, Action: "token.create", Actor: "admin:otto", DeviceID: "dev-1", TokenID: "tk1"},
		{Seq: 2, Time: t0.Add(time.Minute), Action: "certificate.issue", Actor: "token:tk1", DeviceID: "dev-1", Serial: "abc", TokenID: "tk1"},
		{Seq: 3, Time: t0.Add(2 * time.Minute), Action: "device.revoke", Actor: "admin:otto", DeviceID: "dev-1", Detail: "reason keyCompromise"},
		{Seq: 4, Time: t0.Add(3 * time.Minute), Action: "admin.auth_failed", Actor: "remote:192.0.2.1"},
		{Seq: 5, Time: t0.Add(4 * time.Minute), Action: "certificate.revoke", Actor: "admin:otto", Serial: "def"},
	}
	return r
}

func TestAuditPage(t *testing.T) {
	r := auditRig(t)
	b, _ := r.login("viewer-token")
	for _, tc := range []struct {
		name     string
		query    string
		want     int
		wantQ    store.AuditQuery
		wantRows int
		wantText []string
	}{
		{"all", "", http.StatusOK, store.AuditQuery{Limit: auditPageSize}, 5, []string{
			`<a href="/ui/admins#admin-otto">admin:otto</a>`,
			`<a href="/ui/devices/dev-1" data-test-audit-device-link="dev-1">dev-1</a>`,
			`<a href="/ui/devices/dev-1#cert-abc" title="abc">`,
			`<a href="/ui/devices?q=def" title="def">`,
			`<a href="/ui/tokens#token-tk1"><code class="token">tk1</code></a>`,
			`<a href="/ui/tokens#token-tk1">token:tk1</a>`,
		}},
		{"device", "device=dev-1", http.StatusOK, store.AuditQuery{DeviceID: "dev-1", Limit: auditPageSize}, 3, []string{`data-test-audit-row="3"`, `value="dev-1"`}},
		{"actor and action", "actor=admin:otto&action=device.revoke", http.StatusOK, store.AuditQuery{Actor: "admin:otto", Action: "device.revoke", Limit: auditPageSize}, 1, []string{"reason keyCompromise"}},
		{"admin by name", "actor=otto", http.StatusOK, store.AuditQuery{Actor: "admin:otto", Limit: auditPageSize}, 3, []string{`value="otto"`}},
		{"times", "from=2026-12-05T12:01&to=2026-12-05T12:03:30", http.StatusOK,
			store.AuditQuery{Since: t0.Add(time.Minute), Until: t0.Add(3*time.Minute + 30*time.Second), Limit: auditPageSize}, 5, nil},
		{"older", "before=3", http.StatusOK, store.AuditQuery{BeforeSeq: 3, Limit: auditPageSize}, 2, nil},
		{"bad device", "device=a%20b", http.StatusBadRequest, store.AuditQuery{}, 0, []string{"not a device ID"}},
		{"bad from", "from=yesterday", http.StatusBadRequest, store.AuditQuery{}, 0, []string{"“from” time"}},
		{"bad to", "to=2026-13-01T00:00", http.StatusBadRequest, store.AuditQuery{}, 0, []string{"“to” time"}},
		{"from after to", "from=2026-12-05T12:00&to=2026-12-05T11:00", http.StatusBadRequest, store.AuditQuery{}, 0, []string{"must be before"}},
		{"bad cursor", "before=-1", http.StatusBadRequest, store.AuditQuery{}, 0, []string{"not an event number"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r.recs.lastAudit = store.AuditQuery{}
			a := b.do("GET", "/ui/audit?"+tc.query, nil)
			if a.code != tc.want {
				t.Fatalf("GET /ui/audit?%s: %d, want %d\n%s", tc.query, a.code, tc.want, a.body)
			}
			if diff := cmp.Diff(tc.wantQ, r.recs.lastAudit); diff != "" {
				t.Errorf("query (-want +got):\n%s", diff)
			}
			if n := strings.Count(a.body, "data-test-audit-row="); n != tc.wantRows {
				t.Errorf("%d rows, want %d", n, tc.wantRows)
			}
			for _, want := range tc.wantText {
				if !strings.Contains(a.body, want) {
					t.Errorf("page lacks %s", want)
				}
			}
		})
	}
}

func TestAuditPaging(t *testing.T) {
	r := newRig(t)
	for i := range auditPageSize + 3 {
		r.recs.audit = append(r.recs.audit, store.AuditEvent{Seq: uint64(i + 1), Time: t0, Action: "certificate.issue", Actor: "token:x", DeviceID: "dev-1"})
	}
	b, _ := r.login("viewer-token")
	a := b.do("GET", "/ui/audit?device=dev-1", nil)
	if !strings.Contains(a.body, `href="/ui/audit?before=4&amp;device=dev-1" data-test-audit-older`) || strings.Contains(a.body, "data-test-audit-searched") {
		t.Errorf("a full page links to the older events, before the last one shown:\n%s", a.body)
	}
	// A scan that stopped early: fewer rows than a page, and a cursor.
	r.recs.audit, r.recs.auditNext = r.recs.audit[:2], 1
	a = b.do("GET", "/ui/audit?action=certificate.issue&before=30000", nil)
	if !strings.Contains(a.body, fmt.Sprintf("Searched %d events and found 2 that match", store.AuditScanLimit)) ||
		!strings.Contains(a.body, `href="/ui/audit?action=certificate.issue&amp;before=1" data-test-audit-continue`) {
		t.Errorf("a scan that stopped early does not say so:\n%s", a.body)
	}
	a = b.do("GET", "/ui/audit?action=certificate.issue&before=101", nil)
	if !strings.Contains(a.body, "Searched 100 events") {
		t.Errorf("a scan over 100 events says otherwise:\n%s", a.body)
	}
}

func TestDeviceAuditTrail(t *testing.T) {
	r := auditRig(t)
	b, _ := r.login("viewer-token")
	a := b.do("GET", "/ui/devices/dev-1", nil)
	if diff := cmp.Diff(store.AuditQuery{DeviceID: "dev-1", Limit: trailSize}, r.recs.lastAudit); diff != "" {
		t.Errorf("trail query (-want +got):\n%s", diff)
	}
	for _, want := range []string{`data-test-trail-row="3"`, `data-test-trail-row="1"`, `href="/ui/audit?device=dev-1" data-test-audit-more`, `id="cert-abc"`, `<a href="#cert-abc" title="abc">`} {
		if !strings.Contains(a.body, want) {
			t.Errorf("device page lacks %s", want)
		}
	}
	if strings.Index(a.body, `data-test-trail-row="3"`) > strings.Index(a.body, `data-test-trail-row="1"`) {
		t.Errorf("trail is not newest first")
	}
}

// TestViewerSeesNoOperatorControls: a viewer's read pages hold no form
// that changes anything (the only POST form is log out).
func TestViewerSeesNoOperatorControls(t *testing.T) {
	r := auditRig(t)
	b, _ := r.login("viewer-token")
	for _, p := range []string{"/ui/", "/ui/devices", "/ui/devices?status=stopped", "/ui/devices/dev-1", "/ui/audit"} {
		a := b.do("GET", p, nil)
		if a.code != http.StatusOK {
			t.Errorf("GET %s: %d", p, a.code)
		}
		if n := strings.Count(a.body, `method="post"`); n != 1 || strings.Contains(a.body, "data-test-revoke") {
			t.Errorf("GET %s as a viewer: %d POST forms or a revoke control, want only log out", p, n)
		}
		if inlineCode(a.body) {
			t.Errorf("GET %s: inline script, handler or style", p)
		}
	}
}

// FuzzAuditFilter: the audit page's parameters never panic the parser,
// and what it accepts is a valid device, an ordered time range and a
// positive cursor.
func FuzzAuditFilter(f *testing.F) {
	f.Add("admin:otto", "device.revoke", "dev-1", "2026-12-05T12:00", "2026-12-05T13:00:30", "17")
	f.Add("", "", "a b", "yesterday", "", "-1")
	f.Fuzz(func(t *testing.T, actor, action, device, from, to, before string) {
		q, refusal := auditFilter{actor: actor, action: action, device: device, from: from, to: to}.query(before)
		if refusal != "" {
			return
		}
		if q.DeviceID != device || (!q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until)) || (before != "" && q.BeforeSeq == 0) {
			t.Errorf("accepted %+v", q)
		}
	})
}
