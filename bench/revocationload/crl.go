package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/bench/benchutil"
	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/revocation"
	"github.com/fleetca/fleetca/store"
)

// crlResults is the in-process CRL build phase.
type crlResults struct {
	sigAlg string
	rows   []crlRow
}

// crlRow is one CRL size: the medians of its runs.
type crlRow struct {
	entries, runs       int
	fromServer          bool // the size the server's CRL had in the latency phase
	bare, sign, service time.Duration
	bareSize, signSize  int
	serviceSize         int
}

// runCRLPhase times, for each size, a bare x509.CreateRevocationList,
// ca.Authority.SignCRL and the revocation.Service publish path over the
// same entries, with the data directory's intermediate, runs alternating.
// serverN, if not 0, adds a row at the size of the server's CRL.
func runCRLPhase(ctx context.Context, o options, dir string, serverN int, logf func(string, ...any)) (*crlResults, error) {
	cfg, err := readBenchConfig(dir)
	if err != nil {
		return nil, err
	}
	td := cfg.TrustDomain
	if td == "" {
		td = "bench.invalid"
	}
	auth, err := ca.New(ctx, cfg.CA, ca.Deps{Dir: dir, PublicURL: "http://127.0.0.1:1", TrustDomain: api.TrustDomain(td)})
	if err != nil {
		return nil, fmt.Errorf("load the CA: %w", err)
	}
	defer auth.Close()
	key, err := loadIntermediateKey(dir)
	if err != nil {
		return nil, err
	}
	inter := auth.Intermediate()
	res := &crlResults{sigAlg: inter.SignatureAlgorithm.String()}
	sizes := append([]int(nil), o.crlSizes...)
	if serverN > 0 {
		sizes = append(sizes, serverN)
	}
	for k, n := range sizes {
		runs := o.crlRuns
		if n >= 1_000_000 {
			runs = o.crlRunsLarge
		}
		row, err := timeCRL(ctx, auth, inter, key, n, runs)
		if err != nil {
			return nil, err
		}
		row.fromServer = serverN > 0 && k == len(sizes)-1
		res.rows = append(res.rows, row)
		logf("CRL of %d entries: bare %v, SignCRL %v (%.2fx), Service publish %v (%.2fx), %d bytes",
			n, row.bare.Round(time.Microsecond), row.sign.Round(time.Microsecond), benchutil.Ratio(row.sign, row.bare),
			row.service.Round(time.Microsecond), benchutil.Ratio(row.service, row.bare), row.signSize)
	}
	return res, nil
}

// timeCRL times the three ways to a CRL of n entries, runs times each,
// alternating, and returns the medians.
func timeCRL(ctx context.Context, auth *ca.Authority, inter *x509.Certificate, key crypto.Signer, n, runs int) (crlRow, error) {
	row := crlRow{entries: n, runs: runs}
	now := time.Now().UTC().Truncate(time.Second)
	entries, revs := crlEntries(n, now)
	var bare, sign, service []time.Duration
	number := int64(1)
	methods := []func() error{
		func() error {
			tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: now, NextUpdate: now.Add(24 * time.Hour),
				RevokedCertificateEntries: entries}
			gcQuiet()
			t0 := time.Now()
			der, err := x509.CreateRevocationList(rand.Reader, tmpl, inter, key)
			bare = append(bare, time.Since(t0))
			row.bareSize = len(der)
			return err
		},
		func() error {
			tmpl := ca.CRLTemplate{Number: big.NewInt(number), ThisUpdate: now, NextUpdate: now.Add(24 * time.Hour), Entries: entries}
			gcQuiet()
			t0 := time.Now()
			der, err := auth.SignCRL(ctx, tmpl)
			sign = append(sign, time.Since(t0))
			row.signSize = len(der)
			return err
		},
		func() error {
			d, size, err := timeServicePublish(ctx, auth, revs)
			service = append(service, d)
			row.serviceSize = size
			return err
		},
	}
	if n < 1_000_000 {
		// One untimed round first: the heap grows to the size's needs.
		for _, m := range methods {
			if err := m(); err != nil {
				return row, fmt.Errorf("CRL of %d entries: %w", n, err)
			}
			number++
		}
		bare, sign, service = nil, nil, nil
	}
	for r := range runs {
		for m := range methods {
			// Rotate the order from run to run, so that drift hits all alike.
			if err := methods[(m+r)%len(methods)](); err != nil {
				return row, fmt.Errorf("CRL of %d entries: %w", n, err)
			}
			number++
		}
	}
	row.bare, row.sign, row.service = benchutil.Median(bare), benchutil.Median(sign), benchutil.Median(service)
	return row, nil
}

// crlEntries makes n revoked entries as a CA would have them: random
// 20-octet positive serials, revocation times within the last 30 days
// (whole seconds), a mix of reasons (unspecified writes no extension); and
// the same as store revocations for a revocation.Service.
func crlEntries(n int, now time.Time) ([]x509.RevocationListEntry, []store.Revocation) {
	reasons := []int{0, 1, 3, 4, 5}
	entries := make([]x509.RevocationListEntry, n)
	revs := make([]store.Revocation, n)
	buf := make([]byte, 20)
	for i := range entries {
		_, _ = rand.Read(buf)
		buf[0] = buf[0]&0x7f | 0x01 // positive, 20 octets
		serial := new(big.Int).SetBytes(buf)
		at := now.Add(-time.Duration(mrand.Int64N(int64(30 * 24 * time.Hour)))).Truncate(time.Second)
		reason := reasons[i%len(reasons)]
		entries[i] = x509.RevocationListEntry{SerialNumber: serial, RevocationTime: at, ReasonCode: reason}
		revs[i] = store.Revocation{Seq: uint64(i + 1), Serial: serial, DeviceID: fmt.Sprintf("d-%d", i), RevokedAt: at,
			Reason: reason, NotAfter: now.Add(90 * 24 * time.Hour)}
	}
	return entries, revs
}

// timeServicePublish builds a revocation.Service over revs (New loads
// them and publishes a first CRL), then, with the heap collected as
// before the other methods' runs, revokes one more certificate and returns
// how long the publication that follows took, as the Service's own
// fleetca_revocation_crl_build_seconds recorded it: the whole publish path
// (expiry sweep and copy under its lock, CRL number, SignCRL, PEM), with a
// store that answers from memory (no fsync for the CRL number). The first
// publication is not timed: it runs while the collector is still busy with
// the index New just built, which a running server only does once.
func timeServicePublish(ctx context.Context, auth *ca.Authority, revs []store.Revocation) (time.Duration, int, error) {
	reg := prometheus.NewRegistry()
	st := &listStore{revs: revs}
	svc, err := revocation.New(ctx, revocation.Config{CRLPublishDelay: time.Nanosecond}, revocation.Deps{Store: st, CA: auth, Metrics: reg})
	if err != nil {
		return 0, 0, err
	}
	first, err := crlBuildSeconds(reg)
	if err != nil {
		return 0, 0, err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(rctx) }()
	defer func() {
		cancel()
		<-done
	}()
	number := svc.CRL().Number
	gcQuiet()
	if _, err := svc.Revoke(ctx, revocation.RevokeRequest{Serial: big.NewInt(1), Reason: api.ReasonSuperseded}); err != nil {
		return 0, 0, err
	}
	for svc.CRL().Number.Cmp(number) == 0 {
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case err := <-done:
			return 0, 0, fmt.Errorf("the Service stopped: %w", err)
		case <-time.After(time.Millisecond):
		}
	}
	both, err := crlBuildSeconds(reg)
	if err != nil {
		return 0, 0, err
	}
	return both - first, len(svc.CRL().DER), nil
}

// crlBuildSeconds is the sum of the Service's fleetca_revocation_crl_build_seconds.
func crlBuildSeconds(reg *prometheus.Registry) (time.Duration, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() == "fleetca_revocation_crl_build_seconds" && len(mf.GetMetric()) == 1 {
			return time.Duration(mf.GetMetric()[0].GetHistogram().GetSampleSum() * float64(time.Second)), nil
		}
	}
	return 0, errors.New("the Service registered no fleetca_revocation_crl_build_seconds")
}

// listStore is the part of a store a revocation.Service uses here,
// answered from memory: it lists revs, and Revoke revokes a certificate
// that is not among them.
type listStore struct {
	mu      sync.Mutex
	revs    []store.Revocation // Seq i+1 at i
	counter uint64
}

var errNotHere = errors.New("not used by the benchmark")

func (s *listStore) Revoke(_ context.Context, r store.RevokeRequest) ([]store.Revocation, error) {
	if r.Serial == nil {
		return nil, errNotHere
	}
	return []store.Revocation{{Seq: uint64(len(s.revs) + 1), Serial: r.Serial, DeviceID: "d-extra", RevokedAt: r.At,
		Reason: r.Reason, NotAfter: r.At.Add(90 * 24 * time.Hour)}}, nil
}

func (s *listStore) ResetDevice(context.Context, string, time.Time, store.AuditEvent) (store.Device, error) {
	return store.Device{}, errNotHere
}

func (s *listStore) ListRevocations(_ context.Context, afterSeq uint64, limit int) ([]store.Revocation, error) {
	if afterSeq >= uint64(len(s.revs)) {
		return nil, nil
	}
	return s.revs[afterSeq:min(int(afterSeq)+limit, len(s.revs))], nil
}

func (s *listStore) GetCertificate(context.Context, *big.Int) (store.Certificate, error) {
	return store.Certificate{}, store.ErrNotFound
}

func (s *listStore) NextCounter(context.Context, string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counter++
	return s.counter, nil
}

// LeaseCRL, PutCRL, LatestCRL and Changes are store.Replication for one
// Service alone: the lease is always its, and no other replica records a
// CRL or signals a change.
func (s *listStore) LeaseCRL(context.Context, string, time.Time, time.Time) (bool, error) {
	return true, nil
}

func (s *listStore) PutCRL(context.Context, string, time.Time, store.CRL) error { return nil }

func (s *listStore) LatestCRL(context.Context, uint64) (store.CRL, error) {
	return store.CRL{}, store.ErrNotFound
}

// The partition methods, ListCertificates and the meta are unused: the
// load runs with one full CRL (crl_partitions 1).
func (s *listStore) LeasePartitionCRL(context.Context, int, string, time.Time, time.Time) (bool, error) {
	return true, nil
}

func (s *listStore) PutPartitionCRL(context.Context, int, string, time.Time, store.CRL) error {
	return nil
}

func (s *listStore) LatestPartitionCRL(context.Context, int, uint64) (store.CRL, error) {
	return store.CRL{}, store.ErrNotFound
}

func (s *listStore) ListCertificates(context.Context, string, store.Page) ([]store.Certificate, error) {
	return nil, nil
}

func (s *listStore) GetMeta(context.Context, string) ([]byte, error) { return nil, store.ErrNotFound }

func (s *listStore) PutMeta(context.Context, string, []byte) error { return nil }

func (s *listStore) Changes(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{})
	context.AfterFunc(ctx, func() { close(ch) })
	return ch
}
