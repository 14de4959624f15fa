package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/client"
)

// The step and renewal paths beside BenchmarkEnrollHTTPS, through the same
// serve wiring and load (HTTP/1.1 keep-alive, 32 requests in flight), for
// issue 19's profiles of what each path pays beyond native enrollment:
//
//	go test ./cmd/fleetca -run '^$' -bench 'StepSignHTTPS|RenewTokenHTTPS|EnrollHTTPS/h1/c=32' -benchtime 10000x -hotprofile /tmp/hot
//	go tool pprof -top -tagignore side=client,setup /tmp/hot-StepSignHTTPS.pprof
//
// Their set-up (minting step tokens through the admin API, enrolling the
// devices to renew) goes through the server too, so -cpuprofile, which
// covers it, mixes it into the server's samples: -hotprofile profiles the
// timed part alone, one file per benchmark (do not give both).
var hotProfile = flag.String("hotprofile", "", "write a CPU profile of each hot-path benchmark's timed part to PREFIX-NAME.pprof")

// benchProfile starts a CPU profile of the timed part of benchmark b if
// -hotprofile is set, and returns the function that stops it.
func benchProfile(b *testing.B) func() {
	if *hotProfile == "" {
		return func() {}
	}
	name := strings.NewReplacer("/", "-", "=", "").Replace(strings.TrimPrefix(b.Name(), "Benchmark"))
	f, err := os.Create(*hotProfile + "-" + name + ".pprof")
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Error(err)
		}
	}
}

// benchHotConc is the requests in flight of the hot-path benchmarks, as
// enrollload's and renewload's headline level.
const benchHotConc = 32

// BenchmarkStepSignHTTPS measures step's POST /1.0/sign (a one-time step
// token minted by fleetca, through the admin API's batch, and a P-256
// CSR) through serve's real wiring, as BenchmarkEnrollHTTPS measures
// POST /v1/enroll.
func BenchmarkStepSignHTTPS(b *testing.B) {
	bs := benchStartServe(b)
	admin := bs.admin(b)
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = fmt.Sprintf("s-%08d", i+1)
	}
	toks := make([]string, b.N)
	for lo := 0; lo < b.N; lo += api.MaxTokenBatch {
		hi := min(lo+api.MaxTokenBatch, b.N)
		got, err := admin.CreateTokens(b.Context(), api.TokenBatchRequest{DeviceIDs: ids[lo:hi], Format: "step", TTL: "1h"})
		if err != nil {
			b.Fatal(err)
		}
		for i, t := range got {
			toks[lo+i] = t.Token
		}
	}
	jobs := make([]benchJob, b.N)
	benchParallel(b.N, func(i int) {
		pemCSR := benchStepCSR(b, ids[i])
		body, err := json.Marshal(api.StepSignRequest{CSR: string(pemCSR), OTT: toks[i]})
		if err != nil {
			b.Error(err)
		}
		jobs[i] = benchJob{body: body}
	})
	client := benchClient(bs.roots, benchHotConc, "h1")
	defer client.CloseIdleConnections()
	benchOpenConns(b, client, bs.httpsURL, benchHotConc)
	url := bs.httpsURL + api.StepPrefix + api.StepSignPath
	b.ReportAllocs()
	b.ResetTimer()
	stop := benchProfile(b)
	start := time.Now()
	benchDrive(b, "client", benchHotConc, jobs, func(j benchJob) error {
		return benchSend(b.Context(), client, url, "", "application/json", j.body, http.StatusCreated)
	})
	stop()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "enrollments/s")
}

// BenchmarkRenewTokenHTTPS measures POST /v1/renew with a renewal token
// (ES256, the device's certificate and the intermediate as x5c, a new
// device per request), no body, through serve's real wiring. The devices
// are enrolled, and their tokens minted, before the timer starts.
func BenchmarkRenewTokenHTTPS(b *testing.B) {
	bs := benchStartServe(b)
	devs := bs.enrollDevices(b, b.N)
	aud := bs.httpsURL + api.RenewPath
	now := time.Now()
	jobs := make([]benchJob, b.N)
	benchParallel(b.N, func(i int) {
		tok, err := client.RenewalToken(devs[i].chain, devs[i].key, aud, now)
		if err != nil {
			b.Error(err)
		}
		jobs[i] = benchJob{token: tok}
	})
	hc := benchClient(bs.roots, benchHotConc, "h1")
	defer hc.CloseIdleConnections()
	benchOpenConns(b, hc, bs.httpsURL, benchHotConc)
	b.ReportAllocs()
	b.ResetTimer()
	stop := benchProfile(b)
	start := time.Now()
	benchDrive(b, "client", benchHotConc, jobs, func(j benchJob) error {
		return benchSend(b.Context(), hc, aud, j.token, "", nil, http.StatusCreated)
	})
	stop()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "renewals/s")
}

// benchStepCSR returns a PEM CSR as the step CLI makes it for a token
// whose sans name the device: CN and a DNS SAN, the device ID.
func benchStepCSR(b *testing.B, id string) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Error(err)
		return nil
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}, DNSNames: []string{id}}, key)
	if err != nil {
		b.Error(err)
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// benchDevice is a device enrolled for a renewal benchmark.
type benchDevice struct {
	key   *ecdsa.PrivateKey
	chain []*x509.Certificate // leaf, then the intermediate
}

// admin returns a client of bs's admin API, with the admin token init
// wrote.
func (bs *benchServe) admin(b *testing.B) *client.Client {
	b.Helper()
	tok, err := os.ReadFile(filepath.Join(bs.dir, "admin-token"))
	if err != nil {
		b.Fatal(err)
	}
	pemBytes, err := os.ReadFile(filepath.Join(bs.dir, "root.pem"))
	if err != nil {
		b.Fatal(err)
	}
	blk, _ := pem.Decode(pemBytes)
	root, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		b.Fatal(err)
	}
	c, err := client.New(client.Config{URL: bs.httpsURL, Roots: []*x509.Certificate{root}, AdminToken: strings.TrimSpace(string(tok))})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// enrollDevices enrolls n new devices (r-00000001...) with a pattern
// token, before the timer, and returns their keys and chains.
func (bs *benchServe) enrollDevices(b *testing.B, n int) []benchDevice {
	b.Helper()
	c := bs.admin(b)
	out := benchCLI(b, map[string]string{"FLEETCA_URL": bs.httpsURL}, "token", "create", "--dir", bs.dir,
		"--device-pattern", "r-*", "--uses", fmt.Sprint(max(n, 1)), "--ttl", "1h")
	token := strings.TrimSpace(out)
	devs := make([]benchDevice, n)
	benchParallel(n, func(i int) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			b.Error(err)
			return
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: fmt.Sprintf("r-%08d", i+1)}}, key)
		if err != nil {
			b.Error(err)
			return
		}
		en, err := c.Enroll(context.Background(), token, der)
		if err != nil {
			b.Error(err)
			return
		}
		devs[i] = benchDevice{key: key, chain: en.Certs}
	})
	if b.Failed() {
		b.FailNow()
	}
	return devs
}

// benchSend posts body (Content-Type ctype, a bearer token if not empty)
// and wants the status.
func benchSend(ctx context.Context, hc *http.Client, url, token, ctype string, body []byte, want int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("status %d: %s", resp.StatusCode, got)
	}
	return nil
}
