package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/bench/benchutil"
)

// revokeResults is the sustained-revocation phase.
type revokeResults struct {
	conc   int
	reason string
	reps   []revokeRep
}

// revokeRep is one timed run of concurrent revocations.
type revokeRep struct {
	ok, failed int
	elapsed    time.Duration
	server     benchutil.CPUTimes
	lat        []time.Duration
	errs       []string
	exhausted  bool // the rep's share of the pool ran out before its time

	// The monitors, during the run.
	ocspChecks, ocspNotRevoked int           // OCSP asked about the latest revocation
	crlFetches                 int           // GET /crl
	crlStaleMax                time.Duration // oldest acknowledged revocation missing from a CRL served after it
	crlStaleFetch              int           // fetches that missed a revocation acknowledged over a second before

	// After the run.
	lastOCSPRevoked bool          // the last revocation read revoked on the very next OCSP request
	crlSettle       time.Duration // from the last acknowledgement to a CRL listing all of the run's
	crlSettled      bool
	crlEntries      int
}

func (r revokeRep) rate() float64 { return benchutil.Rate(r.ok, r.elapsed) }

func (r revokeRep) cpuPerRevocation() time.Duration { return benchutil.PerOp(r.server.Total(), r.ok) }

// ack is an acknowledged revocation: the device's index and when the
// revoke call returned.
type ack struct {
	i int
	t time.Time
}

// clients are the phase's HTTP clients: HTTPS (admin API) and plain HTTP
// (OCSP, CRL).
type clients struct {
	admin, plain *http.Client
}

// runRevokePhase revokes the pool's certificates through the admin API,
// o.revokeConc at a time, in o.revokeReps runs of o.revokeDur, each with
// its own share of the pool.
func runRevokePhase(ctx context.Context, o options, env *serverEnv, pool []device, logf func(string, ...any)) (*revokeResults, error) {
	cl := clients{admin: benchutil.NewClient(env.roots, o.revokeConc, "h1"), plain: benchutil.NewClient(nil, 4, "h1")}
	defer cl.admin.CloseIdleConnections()
	defer cl.plain.CloseIdleConnections()
	// Open the connections (TLS handshakes) before timing.
	if err := warmConnections(ctx, cl.admin, env.srv.HTTPSURL+"/healthz", o.revokeConc); err != nil {
		return nil, err
	}
	res := &revokeResults{conc: o.revokeConc, reason: o.reason}
	share := len(pool) / o.revokeReps
	for rep := range o.revokeReps {
		devs := pool[rep*share : (rep+1)*share]
		gcQuiet()
		r, err := runRevokeRep(ctx, o, env, cl, devs)
		if err != nil {
			return nil, err
		}
		res.reps = append(res.reps, r)
		note := ""
		if r.exhausted {
			note = fmt.Sprintf(" (used all %d certificates of its share in %v: raise -revoke-pool)", len(devs), r.elapsed.Round(time.Millisecond))
		}
		if r.failed > 0 {
			note += fmt.Sprintf(", %d FAILED, first: %s", r.failed, r.errs[0])
		}
		logf("revoke rep %d/%d: %.0f/s, p99 %.1f ms, server %.0f µs/revocation; OCSP monitor %d/%d revoked; CRL staleness max %v over %d fetches; after: OCSP %v, CRL complete in %v%s",
			rep+1, o.revokeReps, r.rate(), benchutil.Millis(benchutil.Percentile(r.lat, 99)), benchutil.Micros(r.cpuPerRevocation()),
			r.ocspChecks-r.ocspNotRevoked, r.ocspChecks, r.crlStaleMax.Round(time.Millisecond), r.crlFetches,
			r.lastOCSPRevoked, r.crlSettle.Round(time.Millisecond), note)
	}
	return res, nil
}

// warmConnections opens n keep-alive connections to url.
func warmConnections(ctx context.Context, client *http.Client, url string, n int) error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for w := range n {
		wg.Go(func() {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				errs[w] = err
				return
			}
			resp, err := client.Do(req)
			if err != nil {
				errs[w] = err
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// runRevokeRep is one run: o.revokeConc workers revoke devs in order until
// o.revokeDur has passed or devs run out, while two monitors ask OCSP
// about the latest acknowledged revocation and fetch /crl. Afterwards it
// checks that the last revocation reads revoked at once and waits for a
// CRL that lists every revocation of the run.
func runRevokeRep(ctx context.Context, o options, env *serverEnv, cl clients, devs []device) (revokeRep, error) {
	var (
		next      atomic.Int64
		latest    atomic.Int64 // index+1 of the latest acknowledged revocation
		exhausted atomic.Bool
		fails     benchutil.Failures
	)
	conc := o.revokeConc
	lats := make([][]time.Duration, conc)
	acks := make([][]ack, conc)
	body, err := revokeBody(o.reason)
	if err != nil {
		return revokeRep{}, err
	}

	// The monitors.
	mctx, stopMonitors := context.WithCancel(ctx)
	var mwg sync.WaitGroup
	var ocspChecks, ocspBad int
	var ocspErrs []string
	mwg.Go(func() {
		t := time.NewTicker(o.monitorEvery)
		defer t.Stop()
		for {
			select {
			case <-mctx.Done():
				return
			case <-t.C:
			}
			i := latest.Load() - 1
			if i < 0 {
				continue
			}
			der, err := postOCSP(mctx, cl.plain, env.srv.HTTPURL+"/ocsp", devs[i].ocspReq)
			if mctx.Err() != nil {
				return
			}
			status := -1
			if err == nil {
				status, err = ocspStatus(der)
			}
			ocspChecks++
			if status != ocsp.Revoked {
				ocspBad++
				if len(ocspErrs) < benchutil.MaxFailures {
					ocspErrs = append(ocspErrs, fmt.Sprintf("OCSP about just-revoked %s: status %d, err %v", devs[i].id, status, err))
				}
			}
		}
	})
	type snapshot struct {
		start time.Time
		der   []byte
	}
	var snaps []snapshot
	var crlErr error
	mwg.Go(func() {
		t := time.NewTicker(o.crlEvery)
		defer t.Stop()
		for {
			select {
			case <-mctx.Done():
				return
			case <-t.C:
			}
			start := time.Now()
			der, _, err := getCRL(mctx, cl.plain, env.srv.HTTPURL, "")
			if mctx.Err() != nil {
				return
			}
			if err != nil {
				crlErr = err
				return
			}
			snaps = append(snaps, snapshot{start, der})
		}
	})

	srv0, err := benchutil.ProcCPU(env.srv.PID)
	if err != nil {
		stopMonitors()
		return revokeRep{}, err
	}
	start := time.Now()
	deadline := start.Add(o.revokeDur)
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(deadline) {
					return
				}
				i := next.Add(1) - 1
				if i >= int64(len(devs)) {
					exhausted.Store(true)
					return
				}
				err := revokeOne(ctx, cl.admin, env, devs[i], body)
				t1 := time.Now()
				if err == nil {
					lats[w] = append(lats[w], t1.Sub(t0))
					acks[w] = append(acks[w], ack{int(i), t1})
					for {
						cur := latest.Load()
						if cur >= i+1 || latest.CompareAndSwap(cur, i+1) {
							break
						}
					}
					continue
				}
				if ctx.Err() != nil {
					return
				}
				fails.Addf("%s: %v", devs[i].id, err)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	srv1, err := benchutil.ProcCPU(env.srv.PID)
	stopMonitors()
	mwg.Wait()
	if err := errors.Join(err, ctx.Err(), crlErr); err != nil {
		return revokeRep{}, err
	}
	failed, errs := fails.Result()
	r := revokeRep{elapsed: elapsed, server: srv1.Sub(srv0), failed: failed, errs: append(errs, ocspErrs...), exhausted: exhausted.Load(),
		ocspChecks: ocspChecks, ocspNotRevoked: ocspBad, crlFetches: len(snaps)}
	var all []ack
	for w := range conc {
		r.lat = append(r.lat, lats[w]...)
		all = append(all, acks[w]...)
		r.ok += len(lats[w])
	}
	if len(all) == 0 {
		return r, nil
	}

	// After: the last revocation reads revoked on the very next request.
	last := all[0]
	for _, a := range all {
		if a.t.After(last.t) {
			last = a
		}
	}
	der, err := postOCSP(ctx, cl.plain, env.srv.HTTPURL+"/ocsp", devs[last.i].ocspReq)
	if err != nil {
		return r, err
	}
	r.lastOCSPRevoked = checkOCSP(der, devs[last.i], env, ocsp.Revoked) == nil

	// After: a CRL lists every revocation of the run.
	want := make([][]byte, len(all))
	for k, a := range all {
		want[k] = devs[a.i].cert.SerialNumber.Bytes()
	}
	settle, n, ok, err := waitCRLListsAll(ctx, cl.plain, env, want, o.settleTimeout)
	if err != nil {
		return r, err
	}
	r.crlSettle, r.crlSettled, r.crlEntries = settle.Sub(last.t), ok, n

	// During: how stale was each CRL served? A revocation acknowledged
	// before the fetch started and missing from the CRL counts from its
	// acknowledgement to the fetch.
	for _, s := range snaps {
		set, err := crlSerials(s.der, env.inter)
		if err != nil {
			return r, err
		}
		var stale time.Duration
		for _, a := range all {
			if a.t.Before(s.start) {
				if _, listed := set[string(devs[a.i].cert.SerialNumber.Bytes())]; !listed {
					stale = max(stale, s.start.Sub(a.t))
				}
			}
		}
		r.crlStaleMax = max(r.crlStaleMax, stale)
		if stale > time.Second {
			r.crlStaleFetch++
		}
	}
	return r, nil
}

// revokeBody is the body of every timed revocation: api.RevokeRequest,
// encoded once before the clock starts.
func revokeBody(reason string) ([]byte, error) {
	return json.Marshal(api.RevokeRequest{Reason: reason})
}

// revokeOne revokes d's certificate through the admin API and checks the
// answer names it. It is the load of the revocation phases, so it sends
// the request itself rather than through package client: on the phase's
// own HTTP/1.1 client, one warmed connection per worker, with a body
// encoded once (revokeBody). The answer is read as api.RevokeResponse.
func revokeOne(ctx context.Context, client *http.Client, env *serverEnv, d device, body []byte) error {
	serial := d.cert.SerialNumber.Text(16)
	path := api.AdminPrefix + "/certificates/" + serial + "/revoke"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, env.srv.HTTPSURL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+env.adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, benchutil.FirstBytes(b))
	}
	var out api.RevokeResponse
	if err := json.Unmarshal(b, &out); err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	if len(out.Revoked) != 1 || out.Revoked[0].Serial != serial {
		return fmt.Errorf("answer names %+v, want serial %s", out.Revoked, serial)
	}
	return nil
}

// getCRL fetches /crl, conditionally if etag is set; der is nil when the
// CRL has not changed (304).
func getCRL(ctx context.Context, client *http.Client, httpURL, etag string) (der []byte, newETag string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, httpURL+"/crl", nil)
	if err != nil {
		return nil, "", err
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, etag, nil
	case http.StatusOK:
	default:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, "", fmt.Errorf("GET /crl: status %d: %s", resp.StatusCode, benchutil.FirstBytes(b))
	}
	der, err = io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return nil, "", err
	}
	return der, resp.Header.Get("ETag"), nil
}

// crlSerials parses a CRL, checks it is the intermediate's, and returns
// its serials (big-endian magnitudes) as a set.
func crlSerials(der []byte, issuer *x509.Certificate) (map[string]struct{}, error) {
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("parse /crl: %w", err)
	}
	if err := rl.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("/crl signature: %w", err)
	}
	set := make(map[string]struct{}, len(rl.RevokedCertificateEntries))
	for _, e := range rl.RevokedCertificateEntries {
		set[string(e.SerialNumber.Bytes())] = struct{}{}
	}
	return set, nil
}

// crlPollEvery is how often the waits below fetch /crl (conditionally).
const crlPollEvery = 10 * time.Millisecond

// waitCRLListsAll polls /crl until a CRL lists every serial of want, or
// timeout passes. It returns when that CRL's fetch ended, its number of
// entries, and whether it got there.
func waitCRLListsAll(ctx context.Context, client *http.Client, env *serverEnv, want [][]byte, timeout time.Duration) (time.Time, int, bool, error) {
	deadline := time.Now().Add(timeout)
	etag := ""
	for {
		der, tag, err := getCRL(ctx, client, env.srv.HTTPURL, etag)
		if err != nil {
			return time.Time{}, 0, false, err
		}
		got := time.Now()
		if der != nil {
			etag = tag
			set, err := crlSerials(der, env.inter)
			if err != nil {
				return time.Time{}, 0, false, err
			}
			missing := 0
			for _, s := range want {
				if _, ok := set[string(s)]; !ok {
					missing++
				}
			}
			if missing == 0 {
				return got, len(set), true, nil
			}
		}
		if got.After(deadline) {
			return got, 0, false, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, 0, false, ctx.Err()
		case <-time.After(crlPollEvery):
		}
	}
}

// latencyResults is the one-at-a-time phase.
type latencyResults struct {
	n            int
	revokeLat    []time.Duration // the revoke call
	ocspFirst    int             // revocations whose very next OCSP request answered revoked
	ocspLat      []time.Duration // revoke returned -> OCSP answered revoked
	crlLat       []time.Duration // revoke returned -> GET /crl listed it
	crlMissed    int             // not listed within the settle timeout
	errs         []string
	publishSum   float64 // fleetca_revocation_crl_build_seconds over the phase
	publishCount float64
	crlEntries   int // the CRL's size over the phase
}

// runLatencyPhase revokes devs one at a time and times how soon OCSP and
// the CRL say so.
func runLatencyPhase(ctx context.Context, o options, env *serverEnv, devs []device, logf func(string, ...any)) (*latencyResults, error) {
	admin, plain := benchutil.NewClient(env.roots, 1, "h1"), benchutil.NewClient(nil, 1, "h1")
	defer admin.CloseIdleConnections()
	defer plain.CloseIdleConnections()
	if err := warmConnections(ctx, admin, env.srv.HTTPSURL+"/healthz", 1); err != nil {
		return nil, err
	}
	// Let the CRL catch up with earlier phases, so that the first timing
	// is not a publication already under way.
	time.Sleep(time.Second)
	m0, err := scrapeMetrics(ctx, plain, env.srv.MetricsURL)
	if err != nil {
		return nil, err
	}
	res := &latencyResults{n: len(devs)}
	body, err := revokeBody(o.reason)
	if err != nil {
		return nil, err
	}
	ocspURL := env.srv.HTTPURL + "/ocsp"
	for _, d := range devs {
		t0 := time.Now()
		if err := revokeOne(ctx, admin, env, d, body); err != nil {
			return nil, fmt.Errorf("revoke %s: %w", d.id, err)
		}
		acked := time.Now()
		res.revokeLat = append(res.revokeLat, acked.Sub(t0))

		// OCSP: the very next request must say revoked.
		for try := 1; ; try++ {
			der, err := postOCSP(ctx, plain, ocspURL, d.ocspReq)
			if err != nil {
				return nil, err
			}
			if err := checkOCSP(der, d, env, ocsp.Revoked); err == nil {
				res.ocspLat = append(res.ocspLat, time.Since(acked))
				if try == 1 {
					res.ocspFirst++
				}
				break
			} else if try == 1 && len(res.errs) < benchutil.MaxFailures {
				res.errs = append(res.errs, err.Error())
			}
			if time.Since(acked) > o.settleTimeout {
				return nil, fmt.Errorf("OCSP still does not say %s is revoked %v after the revocation", d.id, o.settleTimeout)
			}
		}

		// CRL: poll until it lists the serial.
		etag, listed := "", false
		for time.Since(acked) < o.settleTimeout {
			der, tag, err := getCRL(ctx, plain, env.srv.HTTPURL, etag)
			if err != nil {
				return nil, err
			}
			if der != nil {
				etag = tag
				if bytes.Contains(der, d.serialDER) {
					res.crlLat = append(res.crlLat, time.Since(acked))
					listed = true
					break
				}
			}
			time.Sleep(crlPollEvery)
		}
		if !listed {
			res.crlMissed++
		}
	}
	m1, err := scrapeMetrics(ctx, plain, env.srv.MetricsURL)
	if err != nil {
		return nil, err
	}
	res.publishSum = m1["fleetca_revocation_crl_build_seconds_sum"] - m0["fleetca_revocation_crl_build_seconds_sum"]
	res.publishCount = m1["fleetca_revocation_crl_build_seconds_count"] - m0["fleetca_revocation_crl_build_seconds_count"]
	res.crlEntries = int(m1["fleetca_revocation_crl_entries"])
	logf("latency: %d revocations; OCSP said revoked on the next request %d times; CRL p50 %v, max %v; %v CRLs published, mean build %.1f ms at %d entries",
		res.n, res.ocspFirst, benchutil.Percentile(res.crlLat, 50).Round(time.Millisecond), benchutil.Percentile(res.crlLat, 100).Round(time.Millisecond),
		res.publishCount, 1000*res.publishSum/max(res.publishCount, 1), res.crlEntries)
	return res, nil
}

// scrapeMetrics reads serve's metrics listener (metricsURL, its /metrics
// URL): the unlabelled samples, by name.
func scrapeMetrics(ctx context.Context, client *http.Client, metricsURL string) (map[string]float64, error) {
	if metricsURL == "" {
		return nil, fmt.Errorf("fleetca serve logged no metrics listener (server.metrics_addr)")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: status %d", resp.StatusCode)
	}
	return parseMetrics(io.LimitReader(resp.Body, 16<<20))
}

// parseMetrics reads the Prometheus text format's unlabelled samples
// ("name value"); comments and labelled samples are skipped.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || strings.Contains(line, "{") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		out[f[0]] = v
	}
	return out, sc.Err()
}
