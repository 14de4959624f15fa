package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/bench/benchutil"
)

// listPage is the page size timed: the admin API's default.
const listPage = 100

// bulkPrefix starts the IDs of the devices loaded in SQL.
const bulkPrefix = "m-"

// listResult is the device-listing measurement.
type listResult struct {
	before      int             // devices in the database before the bulk load
	beforeCalls []time.Duration // one page with those
	devices     int             // after the bulk load
	load        time.Duration   // the INSERT ... SELECT and VACUUM ANALYZE
	calls       []time.Duration // one page of a random place, through the API
	first       []time.Duration // the first page (no cursor)
	sql         []time.Duration // the statement alone, from this tool
}

// bulkInsert adds devices m-00000001 ... m-<n> (IDs of benchutil.DeviceID)
// to pgstore's devices table in one statement, active, created now.
const bulkInsert = `INSERT INTO devices (id, status, created_at, updated_at)
	SELECT $1 || lpad(g::text, 8, '0'), 'active', now(), now() FROM generate_series(1, $2::int) AS g`

// listQuery is the statement behind a page of GET /v1/admin/devices
// (pgstore's ListDevices), timed alone.
const listQuery = `SELECT * FROM devices WHERE id > $1 ORDER BY id LIMIT $2`

// measureList times GET /v1/admin/devices?limit=100 on set's first
// replica: o.lists calls after a random device among those enrolled so
// far, then loads o.devices devices in SQL (not through the API) and
// times o.lists calls after a random one of them, the first page, and
// the SQL statement alone.
func measureList(ctx context.Context, o options, set *replicaSet, logf func(string, ...any)) (listResult, error) {
	var res listResult
	srv := set.servers[0]
	conn, err := pgx.Connect(ctx, set.dsn)
	if err != nil {
		return res, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM devices").Scan(&res.before); err != nil {
		return res, err
	}
	roots, err := srv.Roots()
	if err != nil {
		return res, err
	}
	adminToken, err := srv.AdminToken()
	if err != nil {
		return res, err
	}
	hc := benchutil.NewClient(roots, 1, "h1")
	defer hc.CloseIdleConnections()
	rng := rand.New(rand.NewPCG(14, 100))
	page := func(after string) (time.Duration, error) {
		return timeListing(ctx, hc, srv.HTTPSURL, adminToken, after)
	}
	if _, err := page(""); err != nil { // opens the connection
		return res, err
	}
	for range o.lists {
		d, err := page(benchutil.DeviceID(devicePrefix, 1+rng.IntN(max(1, res.before-listPage))))
		if err != nil {
			return res, err
		}
		res.beforeCalls = append(res.beforeCalls, d)
	}

	logf("list: loading %s devices in SQL (INSERT ... SELECT generate_series, then VACUUM ANALYZE)", benchutil.FormatCount(o.devices))
	start := time.Now()
	if _, err := conn.Exec(ctx, bulkInsert, bulkPrefix, o.devices); err != nil {
		return res, fmt.Errorf("load %d devices: %w", o.devices, err)
	}
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE devices"); err != nil {
		return res, err
	}
	res.load = time.Since(start)
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM devices").Scan(&res.devices); err != nil {
		return res, err
	}
	logf("list: %d devices in the database after %v", res.devices, res.load.Round(time.Millisecond))
	for range o.lists {
		d, err := page(benchutil.DeviceID(bulkPrefix, 1+rng.IntN(o.devices-listPage)))
		if err != nil {
			return res, err
		}
		res.calls = append(res.calls, d)
		if d, err = page(""); err != nil {
			return res, err
		}
		res.first = append(res.first, d)
		after := benchutil.DeviceID(bulkPrefix, 1+rng.IntN(o.devices-listPage))
		t0 := time.Now()
		rows, err := conn.Query(ctx, listQuery, after, listPage)
		if err != nil {
			return res, err
		}
		got := 0
		for rows.Next() {
			got++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return res, err
		}
		res.sql = append(res.sql, time.Since(t0))
		if got != listPage {
			return res, fmt.Errorf("the list statement after %s gave %d rows, want %d", after, got, listPage)
		}
	}
	return res, nil
}

// timeListing times one GET /v1/admin/devices?limit=100&after=after and
// checks its answer: a page of 100 devices (fewer only at the end) after
// the cursor.
func timeListing(ctx context.Context, hc *http.Client, base, adminToken, after string) (time.Duration, error) {
	u := fmt.Sprintf("%s%s/devices?limit=%d&after=%s", base, api.AdminPrefix, listPage, url.QueryEscape(after))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	t0 := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	resp.Body.Close()
	d := time.Since(t0)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: status %d: %.300s", u, resp.StatusCode, body)
	}
	var p api.DevicePage
	if err := json.Unmarshal(body, &p); err != nil {
		return 0, fmt.Errorf("GET %s: %w", u, err)
	}
	if err := checkPage(p, after); err != nil {
		return 0, fmt.Errorf("GET %s: %w", u, err)
	}
	return d, nil
}

// checkPage checks a page of devices: ordered, after the cursor, and full
// unless it is the last.
func checkPage(p api.DevicePage, after string) error {
	if len(p.Devices) != listPage && p.Next != "" {
		return fmt.Errorf("%d devices and a next cursor, want %d", len(p.Devices), listPage)
	}
	prev := after
	for _, d := range p.Devices {
		if d.ID <= prev {
			return fmt.Errorf("device %q comes after %q in the page, want byte order after the cursor", d.ID, prev)
		}
		prev = d.ID
	}
	return nil
}
