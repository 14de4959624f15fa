package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
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
	tokens *tokenMinter
	seq    int
}

// make returns n jobs, generated on every core.
func (g *generator) make(ctx context.Context, n int) ([]job, error) {
	toks, err := g.tokens.take(ctx, n)
	if err != nil {
		return nil, err
	}
	jobs := make([]job, n)
	base := g.seq
	g.seq += n
	workers := runtime.GOMAXPROCS(0)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				if err := ctx.Err(); err != nil {
					errs[w] = err
					return
				}
				id := fmt.Sprintf("b-%08d", base+i+1)
				body, err := newCSR(id)
				if err != nil {
					errs[w] = err
					return
				}
				jobs[i] = job{id: id, token: toks[i], body: body}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("generate CSRs: %w", err)
	}
	return jobs, nil
}

// newCSR returns a PEM CSR for CN=id with a new P-256 key, as a device
// would make it.
func newCSR(id string) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// newClient returns the load client for conc workers. h1: HTTP/1.1 with
// keep-alive, at most conc connections, all kept idle between requests, so
// each worker keeps one TLS connection for the whole level. h2: HTTP/2,
// the requests multiplexed on one connection.
func newClient(roots *x509.CertPool, conc int, proto string) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConns:        conc,
		MaxIdleConnsPerHost: conc,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		Protocols:           new(http.Protocols),
	}
	if proto == "h2" {
		tr.Protocols.SetHTTP2(true)
	} else {
		tr.Protocols.SetHTTP1(true)
		tr.MaxConnsPerHost = conc
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// phaseResult is one timed run at one concurrency.
type phaseResult struct {
	ok, failed int
	elapsed    time.Duration
	server     cpuTimes        // the server process's CPU time over the phase
	client     cpuTimes        // this process's
	machine    time.Duration   // all CPUs' busy time, these two processes included
	steal      time.Duration   // CPU time the hypervisor gave to other guests
	lat        []time.Duration // of the successful requests
	errs       []string        // the first few failures
	exhausted  bool            // the phase ran out of jobs before its time
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
	o := p.machine - p.server.total() - p.client.total()
	return max(0, float64(o)/float64(p.elapsed)/float64(runtime.NumCPU()))
}

func (p phaseResult) serverCPUPerCert() time.Duration { return perCert(p.server.total(), p.ok) }

func (p phaseResult) clientCPUPerCert() time.Duration { return perCert(p.client.total(), p.ok) }

func perCert(d time.Duration, n int) time.Duration {
	if n == 0 {
		return 0
	}
	return d / time.Duration(n)
}

// maxErrs is how many failure messages a phase keeps.
const maxErrs = 5

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
		mu        sync.Mutex
		errs      []string
	)
	lats := make([][]time.Duration, conc)
	fails := make([]int, conc)
	srv0, err := procCPU(pid)
	if err != nil {
		return phaseResult{}, fmt.Errorf("read the server's CPU time: %w", err)
	}
	self0 := selfCPU()
	mach0, steal0, err := machineCPU()
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
				body, err := post(ctx, client, url, j, !checked.Load())
				if err == nil {
					lat = append(lat, time.Since(t0))
					if body != nil && checked.CompareAndSwap(false, true) {
						checkErr = checkResponse(body, j.id)
					}
					continue
				}
				if ctx.Err() != nil {
					break
				}
				fails[w]++
				mu.Lock()
				if len(errs) < maxErrs {
					errs = append(errs, fmt.Sprintf("%s: %v", j.id, err))
				}
				mu.Unlock()
			}
			lats[w] = lat
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	srv1, err := procCPU(pid)
	self1 := selfCPU()
	mach1, steal1, err2 := machineCPU()
	if err := errors.Join(err, err2); err != nil {
		return phaseResult{}, fmt.Errorf("read CPU times: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return phaseResult{}, err
	}
	if checkErr != nil {
		return phaseResult{}, fmt.Errorf("the server's answer is wrong: %w", checkErr)
	}
	p := phaseResult{elapsed: elapsed, server: srv1.sub(srv0), client: self1.sub(self0),
		machine: mach1 - mach0, steal: steal1 - steal0, errs: errs, exhausted: exhausted.Load()}
	for w := range conc {
		p.lat = append(p.lat, lats[w]...)
		p.ok += len(lats[w])
		p.failed += fails[w]
	}
	return p, nil
}

// maxAnswerBytes bounds what the client reads of an answer.
const maxAnswerBytes = 1 << 20

// post sends one enrollment. Anything but 201 is an error carrying the
// status and the start of the body. The body of a 201 is returned only if
// keep is set; otherwise it is read and dropped.
func post(ctx context.Context, client *http.Client, url string, j job, keep bool) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(j.body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+j.token)
	req.Header.Set("Content-Type", "application/x-pem-file")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	if !keep {
		_, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswerBytes))
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return nil, err
	}
	return b, nil
}

// checkResponse checks a 201 body: JSON whose certificate names device id.
func checkResponse(body []byte, id string) error {
	var r struct {
		DeviceID    string `json:"device_id"`
		Serial      string `json:"serial"`
		Certificate string `json:"certificate"`
		Chain       string `json:"chain"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("201 body is not the enrollment JSON: %w", err)
	}
	block, _ := pem.Decode([]byte(r.Certificate))
	if block == nil {
		return errors.New("201 body has no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("201 certificate: %w", err)
	}
	switch {
	case r.DeviceID != id || cert.Subject.CommonName != id:
		return fmt.Errorf("asked for %q, got device_id %q and CN %q", id, r.DeviceID, cert.Subject.CommonName)
	case r.Serial != cert.SerialNumber.Text(16):
		return fmt.Errorf("serial %q is not the certificate's %x", r.Serial, cert.SerialNumber)
	}
	return nil
}

// cpuTimes is user and system CPU time.
type cpuTimes struct{ user, sys time.Duration }

func (c cpuTimes) total() time.Duration { return c.user + c.sys }

func (c cpuTimes) sub(d cpuTimes) cpuTimes { return cpuTimes{c.user - d.user, c.sys - d.sys} }
