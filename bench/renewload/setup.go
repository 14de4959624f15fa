package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/bench/benchutil"
	"github.com/fleetca/fleetca/client"
)

// mode is one kind of request the benchmark times, with one way of using
// connections.
type mode struct {
	name      string // the row's name in the report
	renew     bool   // POST /v1/renew for devices enrolled beforehand; else POST /v1/enroll
	mtls      bool   // a renewal over mutual TLS; else with a renewal token
	keepAlive bool   // one connection per worker for the whole phase; else a new one per request
	desc      string // for the report's legend
}

// modes are what the benchmark measures, in the order of the report. A
// renewal over mutual TLS is bound to its connection's client certificate,
// so it is measured one connection per renewal, as a fleet of agents
// connects; the token form renews a device per request on kept-alive
// connections; each has the enrollment mode with the same connections
// beside it.
var modes = []mode{
	{name: "enroll-ka", keepAlive: true,
		desc: "POST /v1/enroll, a P-256 CSR and a pattern token; keep-alive, one connection per worker"},
	{name: "enroll-conn",
		desc: "the same, with a new connection (full TLS 1.3 handshake, no client certificate) per request"},
	{name: "renew-mtls-conn", renew: true, mtls: true,
		desc: "POST /v1/renew, empty body, over mutual TLS with the device's certificate: a new connection (full handshake) per renewal"},
	{name: "renew-token-ka", renew: true, keepAlive: true,
		desc: "POST /v1/renew, empty body, Authorization: Bearer <renewal token> (ES256, x5c, a device per request); keep-alive"},
}

// env is the server under load and what the phases share.
type env struct {
	srv      *benchutil.Server
	addr     string      // the HTTPS listener, host:port
	renewURL string      // a renewal token's aud
	pinned   []byte      // the server's certificate, DER
	tls      *tls.Config // the load's TLS client configuration, without a client certificate
	conc     int

	setup        *http.Client // enrolls the devices to renew, between the phases
	enrollTokens *benchutil.TokenMinter
	deviceTokens *benchutil.TokenMinter
	seqE, seqR   int // the last device number of each prefix used

	enrolled setupStats // the devices enrolled for renewal
}

// setupStats is what enrolling the devices to renew took, outside the
// timed phases.
type setupStats struct {
	n       int
	elapsed time.Duration
}

// Device IDs: e-00000001... are enrolled by the timed enrollment phases,
// r-00000001... before the renewal phases, to be renewed.
const (
	enrollPrefix = "e-"
	renewPrefix  = "r-"
)

// newEnv readies the phases against srv: the admin client, the pattern
// tokens, and the load's TLS configuration, which pins the certificate the
// server presents in a first, verified, handshake.
func newEnv(ctx context.Context, srv *benchutil.Server, conc int) (*env, error) {
	roots, err := srv.Roots()
	if err != nil {
		return nil, err
	}
	admin, err := srv.Client()
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(srv.HTTPSURL)
	if err != nil {
		return nil, err
	}
	leaf, err := serverLeaf(ctx, u.Host, roots)
	if err != nil {
		return nil, err
	}
	return &env{
		srv: srv, addr: u.Host, renewURL: srv.HTTPSURL + api.RenewPath, pinned: leaf, tls: clientTLS(nil, leaf), conc: conc,
		setup:        benchutil.NewClient(roots, conc, "h1"),
		enrollTokens: &benchutil.TokenMinter{Admin: admin, Pattern: enrollPrefix + "*"},
		deviceTokens: &benchutil.TokenMinter{Admin: admin, Pattern: renewPrefix + "*"},
	}, nil
}

func (e *env) close() { e.setup.CloseIdleConnections() }

// serverLeaf returns the certificate the server at addr presents, from a
// handshake that verifies it to roots.
func serverLeaf(ctx context.Context, addr string, roots []*x509.Certificate) ([]byte, error) {
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	d := tls.Dialer{Config: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to the server: %w", err)
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0].Raw, nil
}

// clientTLS is the load's TLS client configuration, with the client
// certificate cert if not nil: full handshakes, X25519 only, the server's
// certificate pinned (benchutil.PinnedTLS).
func clientTLS(cert *tls.Certificate, pinned []byte) *tls.Config {
	return benchutil.PinnedTLS(cert, pinned, "the certificate pinned at the start")
}

// phase prepares n requests of mode m, then times them for d.
func (e *env) phase(ctx context.Context, o options, m mode, n int, d time.Duration) (benchutil.Phase, error) {
	jobs, err := e.jobs(ctx, m, n)
	if err != nil {
		return benchutil.Phase{}, fmt.Errorf("prepare %s: %w", m.name, err)
	}
	runtime.GC() // the client's garbage from preparing, collected before timing
	p, err := runPhase(ctx, e.addr, e.tls, jobs, o.conc, m.keepAlive, d, e.srv.PID)
	if err != nil {
		return p, fmt.Errorf("%s: %w", m.name, err)
	}
	return p, nil
}

// jobs prepares n requests of mode m: for an enrollment, new CSRs; for a
// renewal, devices enrolled now (through the load client's fast path, not
// timed), then their TLS configurations or renewal tokens.
func (e *env) jobs(ctx context.Context, m mode, n int) ([]job, error) {
	if !m.renew {
		toks, err := e.enrollTokens.Take(ctx, n)
		if err != nil {
			return nil, err
		}
		csrs, err := benchutil.MakeCSRs(ctx, enrollPrefix, e.seqE+1, n)
		if err != nil {
			return nil, err
		}
		jobs := make([]job, n)
		for i := range jobs {
			jobs[i] = job{id: benchutil.DeviceID(enrollPrefix, e.seqE+i+1),
				req: buildPost(e.addr, api.EnrollPath, toks[i], "application/x-pem-file", csrs[i], !m.keepAlive)}
		}
		e.seqE += n
		return jobs, nil
	}
	devs, err := e.enrollDevices(ctx, n)
	if err != nil {
		return nil, err
	}
	jobs := make([]job, n)
	if m.mtls {
		for i, d := range devs {
			jobs[i] = job{id: d.id, parent: d.serial, tls: clientTLS(d.tlsCert(), e.pinned),
				req: buildPost(e.addr, api.RenewPath, "", "", nil, !m.keepAlive)}
		}
		return jobs, nil
	}
	err = benchutil.ForEach(ctx, runtime.GOMAXPROCS(0), n, func(i int) error {
		d := devs[i]
		tok, err := client.RenewalToken(d.certs, d.key, e.renewURL, time.Now())
		if err != nil {
			return fmt.Errorf("renewal token for %s: %w", d.id, err)
		}
		jobs[i] = job{id: d.id, parent: d.serial, req: buildPost(e.addr, api.RenewPath, tok, "", nil, !m.keepAlive)}
		return nil
	})
	return jobs, err
}

// device is a device enrolled to be renewed.
type device struct {
	id     string
	key    *ecdsa.PrivateKey
	certs  []*x509.Certificate // leaf first: the enrollment answer's chain, as the device keeps it
	serial string              // the leaf's, lowercase hex
}

// tlsCert is the device's certificate, chain and key for its TLS client.
func (d device) tlsCert() *tls.Certificate {
	c := &tls.Certificate{PrivateKey: d.key, Leaf: d.certs[0]}
	for _, cert := range d.certs {
		c.Certificate = append(c.Certificate, cert.Raw)
	}
	return c
}

// enrollDevices enrolls n new devices, each with a new P-256 key, through
// POST /v1/enroll at the benchmark's concurrency: pre-generated CSRs and
// pattern tokens sent by benchutil.PostCSR on the load's keep-alive
// client, each answer checked (benchutil.CheckEnrollment) without
// verifying its chain. It is setup, not timed with the phases.
func (e *env) enrollDevices(ctx context.Context, n int) ([]device, error) {
	toks, err := e.deviceTokens.Take(ctx, n)
	if err != nil {
		return nil, err
	}
	keys, csrs, err := benchutil.MakeKeysAndCSRs(ctx, renewPrefix, e.seqR+1, n)
	if err != nil {
		return nil, err
	}
	first := e.seqR + 1
	e.seqR += n
	devs := make([]device, n)
	url := e.srv.HTTPSURL + api.EnrollPath
	start := time.Now()
	err = benchutil.ForEach(ctx, e.conc, n, func(i int) error {
		id := benchutil.DeviceID(renewPrefix, first+i)
		body, err := benchutil.PostCSR(ctx, e.setup, url, toks[i], csrs[i], true)
		if err == nil {
			devs[i], err = parseDevice(body, id, keys[i])
		}
		if err != nil {
			return fmt.Errorf("enroll %s to renew it: %w", id, err)
		}
		return nil
	})
	e.setup.CloseIdleConnections()
	if err != nil {
		return nil, err
	}
	e.enrolled.n += n
	e.enrolled.elapsed += time.Since(start)
	return devs, nil
}

// parseDevice reads the answer to the enrollment of device id with key.
func parseDevice(body []byte, id string, key *ecdsa.PrivateKey) (device, error) {
	var r api.EnrollResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return device{}, fmt.Errorf("201 body is not the enrollment JSON: %w", err)
	}
	cert, err := benchutil.ParseCertPEM([]byte(r.Certificate))
	if err != nil {
		return device{}, err
	}
	if err := benchutil.CheckEnrollment(r, cert, id); err != nil {
		return device{}, err
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return device{}, errors.New("the certificate is not for the CSR's key")
	}
	var certs []*x509.Certificate
	for rest := []byte(r.Chain); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return device{}, fmt.Errorf("the chain: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) < 2 || !certs[0].Equal(cert) {
		return device{}, errors.New("the chain is not the certificate then its intermediate")
	}
	return device{id: id, key: key, certs: certs, serial: r.Serial}, nil
}
