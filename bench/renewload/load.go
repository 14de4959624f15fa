package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/bench/benchutil"
)

// job is one request, ready to send.
type job struct {
	id     string      // the device ID
	parent string      // a renewal's: the serial of the certificate renewed
	req    []byte      // the serialized HTTP/1.1 request
	tls    *tls.Config // a renewal over mutual TLS: the device's; else nil, the worker's
}

// ioTimeout bounds each connection's handshake and each request's answer.
const ioTimeout = 30 * time.Second

// maxBody bounds an answer's body (an enrollment answer is about 3 KB).
const maxBody = 64 << 10

// conn is a lean HTTP/1.1-over-TLS client connection for one worker, in
// the manner of wrk (and of proxyload's and revocationload's): requests
// serialized up front, answers read just enough to check them (status
// and body, chunked or not), one connection kept while the server keeps it
// open. net/http's client would cost the shared cores more, and could not
// present a different client certificate on each connection.
type conn struct {
	addr  string
	nc    *tls.Conn
	br    *bufio.Reader
	body  []byte
	dials int // connections opened
}

func newConn(addr string) *conn {
	return &conn{addr: addr, br: bufio.NewReaderSize(nil, 16<<10)}
}

// open connects with cfg and completes the TLS handshake.
func (c *conn) open(cfg *tls.Config) error {
	nc, err := net.DialTimeout("tcp", c.addr, ioTimeout)
	if err != nil {
		return err
	}
	c.dials++
	tc := tls.Client(nc, cfg)
	_ = tc.SetDeadline(time.Now().Add(ioTimeout))
	if err := tc.Handshake(); err != nil {
		nc.Close()
		return err
	}
	c.nc = tc
	c.br.Reset(tc)
	return nil
}

func (c *conn) close() {
	if c.nc != nil {
		c.nc.Close()
		c.nc = nil
	}
}

// do sends one serialized request, first opening a connection with cfg if
// none is open, and reads the answer: its status and body (valid until the
// next call). err is a failure to get an answer. The connection is closed
// after an error, or when the server closes it (Connection: close).
func (c *conn) do(req []byte, cfg *tls.Config) (status int, body []byte, err error) {
	var keep bool
	if c.nc == nil {
		if err := c.open(cfg); err != nil {
			return 0, nil, err
		}
	}
	_ = c.nc.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := c.nc.Write(req); err != nil {
		c.close()
		return 0, nil, err
	}
	status, c.body, keep, err = benchutil.ReadAnswer(c.br, c.body, maxBody)
	if err != nil || !keep {
		c.close()
	}
	if err != nil {
		return 0, nil, err
	}
	return status, c.body, nil
}

// phaseResult is one timed run of one mode.
type phaseResult struct {
	ok, failed int
	elapsed    time.Duration
	server     benchutil.CPUTimes // the server process's CPU time over the phase
	client     benchutil.CPUTimes // this process's
	machine    time.Duration      // all CPUs' busy time, these two processes included
	steal      time.Duration      // CPU time the hypervisor gave to other guests
	dials      int                // connections opened during the phase
	lat        []time.Duration    // of the successful requests
	errs       []string           // the first few failures
	exhausted  bool               // the phase ran out of jobs before its time
}

func (p phaseResult) rate() float64 {
	if p.elapsed <= 0 {
		return 0
	}
	return float64(p.ok) / p.elapsed.Seconds()
}

// perOp is d per successful request.
func (p phaseResult) perOp(d time.Duration) time.Duration {
	if p.ok == 0 {
		return 0
	}
	return d / time.Duration(p.ok)
}

// other is the share of the machine's CPU time that processes other than
// the server and this one used, and the hypervisor stole: load that makes
// the figures unreliable.
func (p phaseResult) other() float64 {
	if p.elapsed <= 0 {
		return 0
	}
	o := p.machine - p.server.Total() - p.client.Total() + p.steal
	return max(0, float64(o)/float64(p.elapsed)/float64(runtime.NumCPU()))
}

// busy is the share of the machine's CPU time the server and this process
// used.
func (p phaseResult) busy() float64 {
	if p.elapsed <= 0 {
		return 0
	}
	return float64(p.server.Total()+p.client.Total()) / float64(p.elapsed) / float64(runtime.NumCPU())
}

// runPhase runs conc workers that send jobs, in order, to the TLS server
// at addr until d has passed (requests under way then are finished and
// counted) or the jobs run out. With keepAlive each worker opens one
// connection with base before timing starts and sends every request on it
// (reopening it only if the server closes it); without, each request gets
// a new connection with the job's TLS configuration, or base, and a full
// handshake. Only 201 Created counts as a success: any other status, a
// 200 retry of a renewal included, is a failure. The first 201 of the
// phase is checked (checkAnswer). It reads the server's CPU time (pid)
// and its own just before the first request and just after the last
// answer.
func runPhase(ctx context.Context, addr string, base *tls.Config, jobs []job, conc int, keepAlive bool, d time.Duration, pid int) (phaseResult, error) {
	conns := make([]*conn, conc)
	for w := range conns {
		conns[w] = newConn(addr)
		if keepAlive {
			if err := conns[w].open(base); err != nil {
				return phaseResult{}, fmt.Errorf("open connection %d: %w", w+1, err)
			}
		}
	}
	defer func() {
		for _, c := range conns {
			c.close()
		}
	}()
	var (
		next      atomic.Int64
		exhausted atomic.Bool
		checked   atomic.Bool
		checkErr  error // written once, by the worker that wins checked
		fails     benchutil.Failures
	)
	lats := make([][]time.Duration, conc)
	srv0, err := benchutil.ProcCPU(pid)
	if err != nil {
		return phaseResult{}, fmt.Errorf("read the server's CPU time: %w", err)
	}
	self0 := benchutil.SelfCPU()
	mach0, steal0, err := benchutil.MachineCPU()
	if err != nil {
		return phaseResult{}, err
	}
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			c := conns[w]
			lat := make([]time.Duration, 0, len(jobs)/conc+1)
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				i := next.Add(1) - 1
				if i >= int64(len(jobs)) {
					exhausted.Store(true)
					break
				}
				j := jobs[i]
				cfg := base
				if !keepAlive {
					c.close()
					if j.tls != nil {
						cfg = j.tls
					}
				}
				status, body, err := c.do(j.req, cfg)
				switch {
				case err == nil && status == 201:
					lat = append(lat, time.Since(t0))
					if checked.CompareAndSwap(false, true) {
						checkErr = checkAnswer(body, j)
					}
				case ctx.Err() != nil:
				case err != nil:
					fails.Addf("%s: %v", j.id, err)
				default:
					fails.Addf("%s: status %d: %s", j.id, status, firstBytes(body))
				}
				if !keepAlive {
					c.close()
				}
			}
			lats[w] = lat
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	srv1, err := benchutil.ProcCPU(pid)
	self1 := benchutil.SelfCPU()
	mach1, steal1, err2 := benchutil.MachineCPU()
	if err := errors.Join(err, err2); err != nil {
		return phaseResult{}, fmt.Errorf("read CPU times: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return phaseResult{}, err
	}
	if checkErr != nil {
		return phaseResult{}, fmt.Errorf("the server's answer is wrong: %w", checkErr)
	}
	p := phaseResult{elapsed: elapsed, server: srv1.Sub(srv0), client: self1.Sub(self0),
		machine: mach1 - mach0, steal: steal1 - steal0, exhausted: exhausted.Load()}
	p.failed, p.errs = fails.Result()
	for w := range conc {
		p.lat = append(p.lat, lats[w]...)
		p.ok += len(lats[w])
		p.dials += conns[w].dials
	}
	if keepAlive {
		p.dials -= conc // the connections opened before timing
	}
	return p, nil
}

// checkAnswer checks a 201 to job j: the enrollment JSON
// (api.EnrollResponse), for j's device (benchutil.CheckEnrollment), and
// for a renewal a new certificate whose parent is the one renewed. It
// verifies no chain: that would take CPU from the server.
func checkAnswer(body []byte, j job) error {
	var r api.EnrollResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("201 body is not the enrollment JSON: %w", err)
	}
	cert, err := benchutil.ParseCertPEM([]byte(r.Certificate))
	if err != nil {
		return fmt.Errorf("201 certificate: %w", err)
	}
	if err := benchutil.CheckEnrollment(r, cert, j.id); err != nil {
		return err
	}
	switch {
	case j.parent == "" && r.ParentSerial != "":
		return fmt.Errorf("an enrollment answered with parent_serial %q", r.ParentSerial)
	case j.parent != "" && r.ParentSerial != j.parent:
		return fmt.Errorf("renewed %s, got parent_serial %q", j.parent, r.ParentSerial)
	case j.parent != "" && r.Serial == j.parent:
		return fmt.Errorf("renewing %s answered the same certificate", j.parent)
	}
	return nil
}

// firstBytes is the start of an answer, for error messages.
func firstBytes(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}
