package benchutil

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Phase is one timed run of a load (RunPhase): workers sending prepared
// requests to one server process, and what they cost.
type Phase struct {
	OK, Failed int
	Elapsed    time.Duration
	Server     CPUTimes        // the server process's CPU time over the phase
	Client     CPUTimes        // this process's
	Machine    time.Duration   // all CPUs' busy time, these two processes included
	Steal      time.Duration   // CPU time the hypervisor gave to other guests
	Dials      int             // connections opened during the phase, for a tool that counts them
	Lat        []time.Duration // of the successful requests
	Errs       []string        // the first MaxFailures failures
	Exhausted  bool            // the phase ran out of jobs before its time
}

// Rate is the successful requests per second.
func (p Phase) Rate() float64 { return Rate(p.OK, p.Elapsed) }

// PerOp is d per successful request.
func (p Phase) PerOp(d time.Duration) time.Duration { return PerOp(d, p.OK) }

// Busy is the share of the machine's CPU time the server and this process
// used.
func (p Phase) Busy() float64 { return Share(p.Server.Total()+p.Client.Total(), p.Elapsed) }

// Other is the share of the machine's CPU time that processes other than
// the server and this one used, and the hypervisor stole: load that makes
// the figures unreliable.
func (p Phase) Other() float64 {
	return max(0, Share(p.Machine-p.Server.Total()-p.Client.Total()+p.Steal, p.Elapsed))
}

// Failure says how many of p's requests failed, and what the first
// failure was; nil when none failed.
func (p Phase) Failure() error {
	if p.Failed == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d requests failed, first: %s", p.Failed, p.OK+p.Failed, p.Errs[0])
}

// Note is what a progress line adds about p: that it ran out of prepared
// what (the flag that raises how many), then its failures; "" when
// neither.
func (p Phase) Note(what, flag string) string {
	note := ""
	if p.Exhausted {
		note = fmt.Sprintf(" (ran out of %s after %v; raise %s)", what, p.Elapsed.Round(time.Millisecond), flag)
	}
	if p.Failed > 0 {
		note += fmt.Sprintf(" %d FAILED, first: %s", p.Failed, p.Errs[0])
	}
	return note
}

// Rate is n per second of d, or 0 when d is not positive.
func Rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// PerOp is d divided among n operations, or 0 for none.
func PerOp(d time.Duration, n int) time.Duration {
	if n == 0 {
		return 0
	}
	return d / time.Duration(n)
}

// Share is cpu as a share of the machine's CPU time over elapsed (every
// CPU's), or 0 when elapsed is not positive.
func Share(cpu, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return float64(cpu) / float64(elapsed) / float64(runtime.NumCPU())
}

// Load is the work of a phase for RunPhase: Jobs requests, numbered from
// 0 and taken in order by Conc workers.
type Load struct {
	Conc, Jobs int
	// Do sends job i on worker w's connection and returns nil for a
	// success, or the failure, which the report shows (naming the job).
	// When keep is set, the answer to a success is wanted for Check:
	// Do returns it (a nil answer is not checked); otherwise it may drop
	// it. The answer need only stay valid until Check returns.
	Do func(w, i int, keep bool) (answer []byte, err error)
	// Check checks the answer to the first success of the phase, if not
	// nil; a wrong answer fails the phase.
	Check func(i int, answer []byte) error
}

// RunPhase runs l until d has passed (requests under way then are
// finished and counted) or its jobs run out, and measures it: a success's
// latency (Do's time, not Check's), the failures (the first MaxFailures
// kept; one once ctx has ended is not counted), and the CPU time of the
// server process pid, of this process and of the machine, read just
// before the first request and just after the last answer. It returns
// ctx's error if ctx ended, and an error if the answer checked is wrong.
// Dials is left to the caller.
func RunPhase(ctx context.Context, pid int, d time.Duration, l Load) (Phase, error) {
	var (
		next      atomic.Int64
		exhausted atomic.Bool
		checked   atomic.Bool
		checkErr  error // written once, by the worker that wins checked
		fails     Failures
	)
	lats := make([][]time.Duration, l.Conc)
	srv0, err := ProcCPU(pid)
	if err != nil {
		return Phase{}, fmt.Errorf("read the server's CPU time: %w", err)
	}
	self0 := SelfCPU()
	mach0, steal0, err := MachineCPU()
	if err != nil {
		return Phase{}, err
	}
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range l.Conc {
		wg.Go(func() {
			lat := make([]time.Duration, 0, l.Jobs/l.Conc+1)
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				i := int(next.Add(1) - 1)
				if i >= l.Jobs {
					exhausted.Store(true)
					break
				}
				answer, err := l.Do(w, i, l.Check != nil && !checked.Load())
				switch {
				case err == nil:
					lat = append(lat, time.Since(t0))
					if l.Check != nil && answer != nil && checked.CompareAndSwap(false, true) {
						checkErr = l.Check(i, answer)
					}
				case ctx.Err() != nil:
				default:
					fails.Addf("%v", err)
				}
			}
			lats[w] = lat
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	srv1, err := ProcCPU(pid)
	self1 := SelfCPU()
	mach1, steal1, err2 := MachineCPU()
	if err := errors.Join(err, err2); err != nil {
		return Phase{}, fmt.Errorf("read CPU times: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return Phase{}, err
	}
	if checkErr != nil {
		return Phase{}, fmt.Errorf("the server's answer is wrong: %w", checkErr)
	}
	p := Phase{Elapsed: elapsed, Server: srv1.Sub(srv0), Client: self1.Sub(self0),
		Machine: mach1 - mach0, Steal: steal1 - steal0, Exhausted: exhausted.Load()}
	p.Failed, p.Errs = fails.Result()
	for _, lat := range lats {
		p.Lat = append(p.Lat, lat...)
		p.OK += len(lat)
	}
	return p, nil
}

// SizeFor is how many requests a phase of length d needs at rate, with a
// margin, and at most most.
func SizeFor(rate float64, d time.Duration, most int) int {
	n := int(rate*d.Seconds()*1.5) + 256
	return min(n, most)
}

// ForEach calls f(i) for each i from 0 to n-1 on conc workers, each taking
// the next i, until they are done or ctx ends; a worker whose f fails
// stops. It returns the failures and ctx's error, joined.
func ForEach(ctx context.Context, conc, n int, f func(i int) error) error {
	var next atomic.Int64
	errs := make([]error, conc)
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(append(errs, ctx.Err())...)
}

// Summary is what a report's row shows of a set of phases: medians over
// them, latency percentiles over all their requests.
type Summary struct {
	Rate, RateMin, RateMax float64
	P50, P99               time.Duration
	Server, User, Sys      time.Duration // server CPU per successful request
	Client                 time.Duration // client CPU per successful request
	Conns                  float64       // connections opened per request (Phase.Dials)
	Busy, Other            float64       // Phase.Busy, Phase.Other
	OK, Failed             int
	Exhausted              int      // phases that ran out of jobs
	Errs                   []string // the first MaxFailures failures
}

// Summarize summarizes phases.
func Summarize(phases []Phase) Summary {
	s := Summary{RateMin: -1}
	var rates, conns, busy, other []float64
	var server, user, sys, client, lat []time.Duration
	for _, p := range phases {
		rate := p.Rate()
		rates = append(rates, rate)
		if s.RateMin < 0 || rate < s.RateMin {
			s.RateMin = rate
		}
		s.RateMax = max(s.RateMax, rate)
		server = append(server, p.PerOp(p.Server.Total()))
		user = append(user, p.PerOp(p.Server.User))
		sys = append(sys, p.PerOp(p.Server.Sys))
		client = append(client, p.PerOp(p.Client.Total()))
		if n := p.OK + p.Failed; n > 0 {
			conns = append(conns, float64(p.Dials)/float64(n))
		}
		busy = append(busy, p.Busy())
		other = append(other, p.Other())
		lat = append(lat, p.Lat...)
		s.OK += p.OK
		s.Failed += p.Failed
		if p.Exhausted {
			s.Exhausted++
		}
		for _, e := range p.Errs {
			if len(s.Errs) < MaxFailures {
				s.Errs = append(s.Errs, e)
			}
		}
	}
	s.RateMin = max(s.RateMin, 0)
	s.Rate = Median(rates)
	s.Server, s.User, s.Sys, s.Client = Median(server), Median(user), Median(sys), Median(client)
	s.Conns, s.Busy, s.Other = Median(conns), Median(busy), Median(other)
	s.P50, s.P99 = Percentile(lat, 50), Percentile(lat, 99)
	return s
}
