package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetca/fleetca/bench/benchutil"
)

// The requests, serialized once: with keep-alive, and with Connection:
// close for one request per connection.
var (
	reqKeepAlive = []byte("GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: proxyload\r\n\r\n")
	reqClose     = []byte("GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: proxyload\r\nConnection: close\r\n\r\n")
)

// maxBody bounds an answer's body.
const maxBody = 64 << 10

// conn is a worker's lean HTTP/1.1 client connection to a target
// (benchutil.Conn): plain HTTP for the upstream, TLS with a device's
// certificate for a proxy. net/http's client costs the shared cores more
// than the proxies' per-request work does.
type conn struct {
	*benchutil.Conn
	t *target
}

func newConn(t *target, cfg *tls.Config) *conn {
	c := &conn{Conn: benchutil.NewConn(t.addr, nil, ioTimeout, maxBody), t: t}
	c.setTLS(cfg)
	return c
}

// setTLS sets the TLS configuration of the connections to come, which
// only a TLS target uses.
func (c *conn) setTLS(cfg *tls.Config) {
	if c.t.tls {
		c.TLS = cfg
	}
}

// do sends one serialized request, opening the connection first if there
// is none, and reads the answer. It returns the status; err is a failure
// to get one, or a 200 that is not the upstream's answer. The connection
// is closed after an error or when the server closes it.
func (c *conn) do(req []byte) (status int, err error) {
	status, body, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	if status == 200 && string(body) != upstreamBody {
		return status, fmt.Errorf("status 200 with body %q, want %q", body, upstreamBody)
	}
	return status, nil
}

// oneShot is a connection for one request: a full handshake, the request
// with Connection: close, the answer, close.
func (c *conn) oneShot() (int, error) {
	c.Close()
	status, err := c.do(reqClose)
	c.Close()
	return status, err
}

// refusal reports whether the outcome of an attempt is a verifier's
// refusal of the client certificate: a TLS alert from the server
// (fleetca proxy; crypto/tls reports it as a *net.OpError whose Op is
// "remote error"), or a 4xx answer (nginx's 400 page, "The SSL
// certificate error").
func refusal(status int, err error) bool {
	if err != nil {
		oe, ok := errors.AsType[*net.OpError](err)
		return ok && oe.Op == "remote error"
	}
	return status >= 400 && status < 500
}

// mode is what a run measures.
type mode int

const (
	modeHandshake mode = iota + 1 // one request per connection, full handshake each
	modeKeepAlive                 // requests on one kept-alive connection per worker
)

// runResult is one timed run against one target.
type runResult struct {
	target       string
	ok, failed   int
	elapsed      time.Duration
	lat          []time.Duration // of the successful operations
	proxy        benchutil.CPUTimes
	upstream     benchutil.CPUTimes
	client       benchutil.CPUTimes
	ours         time.Duration // CPU of every process of the benchmark
	machine      time.Duration // all CPUs' busy time
	steal        time.Duration
	dials        int
	errs         []string
	proxyCPURead bool
}

func (r runResult) rate() float64 { return benchutil.Rate(r.ok, r.elapsed) }

// perOp is d per successful operation.
func (r runResult) perOp(d time.Duration) time.Duration { return benchutil.PerOp(d, r.ok) }

// other is the share of the machine that processes outside the benchmark
// took, stolen time included.
func (r runResult) other() float64 {
	return max(0, benchutil.Share(r.machine-r.ours+r.steal, r.elapsed))
}

// runLoad runs conc workers against t for d and measures them. In
// keep-alive mode each worker opens its connection before timing starts.
func runLoad(ctx context.Context, e *env, t *target, m mode, conc int, d time.Duration, devs []*device) (runResult, error) {
	res := runResult{target: t.name}
	conns := make([]*conn, conc)
	for w := range conns {
		cfg := devs[w%len(devs)].tls
		if t.jwt {
			cfg = devs[w%len(devs)].jwt.tls
		}
		conns[w] = newConn(t, cfg)
		if m == modeKeepAlive {
			if err := conns[w].Open(); err != nil {
				return res, fmt.Errorf("%s: open connection %d: %w", t.name, w+1, err)
			}
		}
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	runtime.GC() // the client's garbage, collected before timing
	var fails benchutil.Failures
	var next atomic.Int64
	lats := make([][]time.Duration, conc)
	before := snapshot(e, t)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			c := conns[w]
			lat := make([]time.Duration, 0, 4096)
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				var status int
				var err error
				switch {
				case m == modeHandshake && t.jwt:
					// A new connection without a client certificate, and
					// a token signed for it: the proxy has never seen it.
					var tok string
					if tok, err = devs[int(next.Add(1))%len(devs)].signJWT(t0); err == nil {
						c.Close()
						status, err = c.do(bearerRequest(tok, true))
						c.Close()
					}
				case m == modeHandshake:
					c.setTLS(devs[int(next.Add(1))%len(devs)].tls)
					status, err = c.oneShot()
				case t.jwt:
					status, err = c.do(devs[w%len(devs)].jwt.kaReq)
				default:
					status, err = c.do(reqKeepAlive)
				}
				switch {
				case err == nil && status == 200:
					lat = append(lat, time.Since(t0))
				case ctx.Err() != nil:
				case err != nil:
					fails.Addf("%s: %v", t.name, err)
				default:
					fails.Addf("%s: status %d", t.name, status)
				}
			}
			lats[w] = lat
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	after := snapshot(e, t)
	if err := ctx.Err(); err != nil {
		return res, err
	}
	res.proxy, res.proxyCPURead = after.proxy.Sub(before.proxy), before.proxyOK && after.proxyOK
	res.client = after.self.Sub(before.self)
	res.upstream = after.upstream.Sub(before.upstream)
	res.ours = after.ours - before.ours
	res.machine, res.steal = after.machine-before.machine, after.steal-before.steal
	res.failed, res.errs = fails.Result()
	for w := range conc {
		res.lat = append(res.lat, lats[w]...)
		res.ok += len(lats[w])
		res.dials += conns[w].Dials
	}
	if m == modeKeepAlive {
		res.dials -= conc // the connections opened before timing
	}
	return res, nil
}

// cpuSnapshot is the CPU times read around a run.
type cpuSnapshot struct {
	proxy          benchutil.CPUTimes
	proxyOK        bool
	upstream       benchutil.CPUTimes
	self           benchutil.CPUTimes
	ours           time.Duration
	machine, steal time.Duration
}

func snapshot(e *env, t *target) cpuSnapshot {
	var s cpuSnapshot
	if t.cpu != nil {
		var err error
		s.proxy, err = t.cpu()
		s.proxyOK = err == nil
	}
	s.upstream, _ = benchutil.ProcCPU(e.upstream.pid())
	s.self = benchutil.SelfCPU()
	s.ours = e.ourCPU()
	s.machine, s.steal, _ = benchutil.MachineCPU()
	return s
}

// levelResult is one concurrency of a phase: each target's runs.
type levelResult struct {
	conc    int
	mode    mode
	targets []string // in the order of the first repetition
	runs    map[string][]runResult
}

// warmUp runs each target for o.warmup (if any) at concurrency conc, and
// fails if a request fails.
func warmUp(ctx context.Context, o options, e *env, targets []*target, m mode, conc int) error {
	if o.warmup <= 0 {
		return nil
	}
	for _, t := range targets {
		w, err := runLoad(ctx, e, t, m, conc, o.warmup, e.devices)
		if err != nil {
			return err
		}
		if w.failed > 0 {
			return fmt.Errorf("warm-up of %s at concurrency %d: %d failed, first: %s", t.name, conc, w.failed, w.errs[0])
		}
	}
	return nil
}

// runLevels measures targets at each concurrency, o.reps times each,
// interleaved: repetition r starts with target r (mod the count), so
// that drift on the machine hits all alike. Each target is warmed up first.
func runLevels(ctx context.Context, o options, e *env, targets []*target, levels []int, m mode, logf func(string, ...any)) ([]levelResult, error) {
	var out []levelResult
	for _, conc := range levels {
		lr := levelResult{conc: conc, mode: m, runs: map[string][]runResult{}}
		for _, t := range targets {
			lr.targets = append(lr.targets, t.name)
		}
		if err := warmUp(ctx, o, e, targets, m, conc); err != nil {
			return nil, err
		}
		for r := range o.reps {
			for i := range targets {
				t := targets[(i+r)%len(targets)]
				res, err := runLoad(ctx, e, t, m, conc, o.duration, e.devices)
				if err != nil {
					return nil, err
				}
				lr.runs[t.name] = append(lr.runs[t.name], res)
				note := ""
				if res.failed > 0 {
					note = fmt.Sprintf(", %d FAILED, first: %s", res.failed, res.errs[0])
				}
				logf("c=%d rep %d/%d %-22s %7.0f/s  proxy %5.0f µs/op  upstream %4.0f µs/op  client %5.0f µs/op  other %3.0f%%%s",
					conc, r+1, o.reps, t.name, res.rate(), benchutil.Micros(res.perOp(res.proxy.Total())), benchutil.Micros(res.perOp(res.upstream.Total())),
					benchutil.Micros(res.perOp(res.client.Total())), 100*res.other(), note)
			}
		}
		out = append(out, lr)
	}
	return out, nil
}

// latencyResult is the latency phase: each target's latencies, one
// request at a time on a kept-alive connection.
type latencyResult struct {
	targets []string
	lat     map[string][]time.Duration
	failed  map[string]int
	errs    []string
}

// runLatency sends o.latencyN requests to each target, one at a time, in
// o.reps interleaved blocks.
func runLatency(ctx context.Context, o options, e *env, targets []*target) (*latencyResult, error) {
	res := &latencyResult{lat: map[string][]time.Duration{}, failed: map[string]int{}}
	for _, t := range targets {
		res.targets = append(res.targets, t.name)
	}
	per := max(1, o.latencyN/o.reps)
	for r := range o.reps {
		for i := range targets {
			t := targets[(i+r)%len(targets)]
			c := newConn(t, e.devices[0].tls)
			if err := c.Open(); err != nil {
				return nil, fmt.Errorf("%s: %w", t.name, err)
			}
			for range 50 { // warm the connection, the upstream's and the proxy's
				c.do(reqKeepAlive)
			}
			runtime.GC()
			for range per {
				if ctx.Err() != nil {
					c.Close()
					return nil, ctx.Err()
				}
				t0 := time.Now()
				status, err := c.do(reqKeepAlive)
				d := time.Since(t0)
				if err != nil || status != 200 {
					res.failed[t.name]++
					if len(res.errs) < benchutil.MaxFailures {
						res.errs = append(res.errs, fmt.Sprintf("%s: status %d, %v", t.name, status, err))
					}
					continue
				}
				res.lat[t.name] = append(res.lat[t.name], d)
			}
			c.Close()
		}
	}
	return res, nil
}
