package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/fleetca/fleetca/bench/benchutil"
)

// responder is an OCSP responder under test.
type responder struct {
	name string
	url  string
	// cpu reads the responder's CPU time (its processes'), or fails.
	cpu    func() (benchutil.CPUTimes, error)
	client *http.Client // for the checks
	raw    [][]byte     // the load's requests, serialized for url
	reps   []loadResult
}

// ocspResults is the OCSP phase.
type ocspResults struct {
	conc       int
	certs      int
	responders []*responder
}

// loadResult is one timed run of the OCSP client.
type loadResult struct {
	ok, failed int
	elapsed    time.Duration
	server     benchutil.CPUTimes
	cpuErr     error
	client     benchutil.CPUTimes
	lat        []time.Duration
	errs       []string
	dials      int // connections opened
}

func (r loadResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ok) / r.elapsed.Seconds()
}

// runOCSPPhase measures fleetca's OCSP responder from its cache and, with
// the same client, openssl ocsp over the same certificates.
func runOCSPPhase(ctx context.Context, o options, env *serverEnv, devs []device, tmp string, logf func(string, ...any)) (*ocspResults, error) {
	reqs := make([][]byte, len(devs))
	for i, d := range devs {
		reqs[i] = d.ocspReq
	}
	res := &ocspResults{conc: o.ocspConc, certs: len(devs)}
	fleet := &responder{name: "fleetca serve (from its cache)", url: env.srv.HTTPURL + "/ocsp",
		cpu: func() (benchutil.CPUTimes, error) { return benchutil.ProcCPU(env.srv.PID) }, client: benchutil.NewClient(nil, 1, "h1")}
	res.responders = append(res.responders, fleet)

	if o.openssl != "none" {
		files, err := writeOpenSSLFiles(env, devs, tmp)
		if err != nil {
			return nil, err
		}
		multis := []int{1}
		if o.opensslMulti > 1 {
			multis = append(multis, o.opensslMulti)
		}
		for _, m := range multis {
			p, err := startOpenSSL(ctx, o.openssl, files, m, tmp)
			if err != nil {
				return nil, err
			}
			defer p.stop()
			name := "openssl ocsp (one process)"
			if m > 1 {
				name = fmt.Sprintf("openssl ocsp -multi %d", m)
			}
			logf("%s is pid %d at %s", name, p.pid, p.url)
			cpu := func() (benchutil.CPUTimes, error) { return benchutil.ProcCPU(p.pid) }
			if m > 1 {
				cpu = func() (benchutil.CPUTimes, error) { return benchutil.TreeCPU(p.pid) }
			}
			res.responders = append(res.responders, &responder{name: name, url: p.url, cpu: cpu, client: benchutil.NewClient(nil, 1, "h1")})
		}
	}
	defer func() {
		for _, r := range res.responders {
			r.client.CloseIdleConnections()
		}
	}()

	// Check one answer of each responder (signature, CertID, status good),
	// then warm up: fleetca signs and caches every certificate's answer.
	for _, r := range res.responders {
		for _, i := range []int{0, len(devs) - 1} {
			der, err := postOCSP(ctx, r.client, r.url, devs[i].ocspReq)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", r.name, err)
			}
			if err := checkOCSP(der, devs[i], env, ocsp.Good); err != nil {
				return nil, fmt.Errorf("%s: %w", r.name, err)
			}
		}
		u, err := url.Parse(r.url)
		if err != nil {
			return nil, err
		}
		r.raw = make([][]byte, len(reqs))
		for i, body := range reqs {
			r.raw[i] = buildPost(u, "application/ocsp-request", body)
		}
		warm, err := runOCSPLoad(ctx, u.Host, r.raw, o.ocspConc, 0, len(reqs), r.cpu)
		if err != nil {
			return nil, err
		}
		if warm.failed > 0 {
			return nil, fmt.Errorf("%s: warm-up: %d of %d requests failed, first: %s", r.name, warm.failed, warm.ok+warm.failed, warm.errs[0])
		}
		logf("%s: warm-up pass over %d certificates: %.0f/s", r.name, len(reqs), warm.rate())
	}
	// The repetitions, interleaved so that noise hits every responder alike.
	for rep := range o.ocspReps {
		for _, r := range res.responders {
			gcQuiet()
			lr, err := runOCSPLoad(ctx, hostOf(r.url), r.raw, o.ocspConc, o.ocspDuration, 0, r.cpu)
			if err != nil {
				return nil, err
			}
			r.reps = append(r.reps, lr)
			note := ""
			if lr.failed > 0 {
				note = fmt.Sprintf(", %d FAILED, first: %s", lr.failed, lr.errs[0])
			}
			logf("OCSP rep %d/%d, %s: %.0f/s, p99 %.2f ms%s", rep+1, o.ocspReps, r.name, lr.rate(), benchutil.Millis(benchutil.Percentile(lr.lat, 99)), note)
		}
	}
	return res, nil
}

// runOCSPLoad runs conc workers, each with its own lean connection, that send
// the serialized requests reqs to addr round robin (each worker starting
// at its own offset), until d has passed or, if d is 0, until count
// requests were sent in all.
func runOCSPLoad(ctx context.Context, addr string, reqs [][]byte, conc int, d time.Duration, count int,
	cpu func() (benchutil.CPUTimes, error)) (loadResult, error) {
	var (
		sent  atomic.Int64
		fails benchutil.Failures
	)
	lats := make([][]time.Duration, conc)
	dials := make([]int, conc)
	cpu0, cpuErr := cpu()
	self0 := benchutil.SelfCPU()
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			p := benchutil.NewConn(addr, nil, 10*time.Second, maxOCSPAnswer)
			defer p.Close()
			lat := make([]time.Duration, 0, 1<<14)
			i := w * len(reqs) / conc
			for ctx.Err() == nil {
				t0 := time.Now()
				if d > 0 && !t0.Before(deadline) {
					break
				}
				if d == 0 && sent.Add(1) > int64(count) {
					break
				}
				der, err := post200(p, reqs[i%len(reqs)])
				i++
				if err == nil && !ocspSuccessful(der) {
					err = fmt.Errorf("OCSP response status is not successful: % x", der[:min(len(der), 8)])
				}
				if err == nil {
					lat = append(lat, time.Since(t0))
					continue
				}
				if ctx.Err() != nil {
					break
				}
				fails.Addf("%v", err)
			}
			lats[w] = lat
			dials[w] = p.Dials
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, err := cpu()
	self1 := benchutil.SelfCPU()
	if err := ctx.Err(); err != nil {
		return loadResult{}, err
	}
	r := loadResult{elapsed: elapsed, client: self1.Sub(self0), cpuErr: errors.Join(cpuErr, err)}
	if r.cpuErr == nil {
		r.server = cpu1.Sub(cpu0)
	}
	r.failed, r.errs = fails.Result()
	for w := range conc {
		r.lat = append(r.lat, lats[w]...)
		r.ok += len(lats[w])
		r.dials += dials[w]
	}
	return r, nil
}

// hostOf is the host:port of a URL that url.Parse accepted before.
func hostOf(s string) string {
	u, _ := url.Parse(s)
	return u.Host
}

// maxOCSPAnswer bounds an OCSP answer the client reads.
const maxOCSPAnswer = 64 << 10

// postOCSP sends one OCSP request (RFC 6960 Appendix A.1) and returns the
// answer's body; anything but 200 is an error.
func postOCSP(ctx context.Context, client *http.Client, url string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/ocsp-request")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxOCSPAnswer))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, benchutil.FirstBytes(b))
	}
	return b, nil
}

// ocspSuccessful is a cheap check that an OCSPResponse (RFC 6960 §4.2.1)
// has responseStatus successful: SEQUENCE, then ENUMERATED 0.
func ocspSuccessful(der []byte) bool {
	if len(der) < 5 || der[0] != 0x30 {
		return false
	}
	i := 2
	if der[1]&0x80 != 0 {
		i += int(der[1] & 0x7f)
	}
	return len(der) >= i+3 && bytes.Equal(der[i:i+3], []byte{0x0a, 0x01, 0x00})
}

// checkOCSP verifies an OCSP answer about d fully: signed by the
// intermediate or a responder it certified, for d's serial, with status want.
func checkOCSP(der []byte, d device, env *serverEnv, want int) error {
	r, err := ocsp.ParseResponseForCert(der, d.cert, env.inter)
	if err != nil {
		return fmt.Errorf("OCSP answer about %s: %w", d.id, err)
	}
	if r.Status != want {
		return fmt.Errorf("OCSP answer about %s: status %d, want %d", d.id, r.Status, want)
	}
	return nil
}

// ocspStatus parses an OCSP answer without verifying its signature (the
// monitors' cheap check) and returns its status.
func ocspStatus(der []byte) (int, error) {
	r, err := ocsp.ParseResponse(der, nil)
	if err != nil {
		return -1, err
	}
	return r.Status, nil
}
