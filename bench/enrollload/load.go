package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetca/fleetca/bench/benchutil"
)

// job is one enrollment, ready to send.
type job struct {
	id    string // the device ID, the CSR's CN
	token string
	body  []byte // the CSR, PEM
}

// generator makes jobs with device IDs b-00000001, b-00000002, ... that
// are unique over the run, each with a new P-256 key.
type generator struct {
	tokens *benchutil.TokenMinter
	seq    int
}

// devicePrefix starts every device ID; tokenPattern matches them all.
const (
	devicePrefix = "b-"
	tokenPattern = devicePrefix + "*"
)

// make returns n jobs, their CSRs generated on every core.
func (g *generator) make(ctx context.Context, n int) ([]job, error) {
	toks, err := g.tokens.Take(ctx, n)
	if err != nil {
		return nil, err
	}
	csrs, err := benchutil.MakeCSRs(ctx, devicePrefix, g.seq+1, n)
	if err != nil {
		return nil, err
	}
	jobs := make([]job, n)
	for i := range jobs {
		jobs[i] = job{id: benchutil.DeviceID(devicePrefix, g.seq+i+1), token: toks[i], body: csrs[i]}
	}
	g.seq += n
	return jobs, nil
}

// phaseResult is one timed run at one concurrency.
type phaseResult struct {
	ok, failed int
	elapsed    time.Duration
	server     benchutil.CPUTimes // the server process's CPU time over the phase
	client     benchutil.CPUTimes // this process's
	machine    time.Duration      // all CPUs' busy time, these two processes included
	steal      time.Duration      // CPU time the hypervisor gave to other guests
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

// other is the share of the machine's CPU time that processes other than
// the server and this one used: load that makes the figures unreliable.
func (p phaseResult) other() float64 {
	o := p.machine - p.server.Total() - p.client.Total()
	return max(0, float64(o)/float64(p.elapsed)/float64(runtime.NumCPU()))
}

func (p phaseResult) serverCPUPerCert() time.Duration { return perCert(p.server.Total(), p.ok) }

func (p phaseResult) clientCPUPerCert() time.Duration { return perCert(p.client.Total(), p.ok) }

func perCert(d time.Duration, n int) time.Duration {
	if n == 0 {
		return 0
	}
	return d / time.Duration(n)
}

// runPhase runs conc workers that send jobs, in order, until d has passed
// (requests under way then are finished and counted) or the jobs run out.
// It reads the server's CPU time (pid) and its own just before the first
// request and just after the last answer. The first 201 of the phase is
// checked: a certificate for the device the CSR named.
func runPhase(ctx context.Context, client *http.Client, url string, jobs []job, conc int, d time.Duration, pid int) (phaseResult, error) {
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
				body, err := benchutil.PostCSR(ctx, client, url, j.token, j.body, !checked.Load())
				if err == nil {
					lat = append(lat, time.Since(t0))
					if body != nil && checked.CompareAndSwap(false, true) {
						_, checkErr = benchutil.ParseEnrollment(body, j.id)
					}
					continue
				}
				if ctx.Err() != nil {
					break
				}
				fails.Addf("%s: %v", j.id, err)
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
	}
	return p, nil
}
