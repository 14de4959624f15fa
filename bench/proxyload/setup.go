package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/bench/benchutil"
	"github.com/fleetca/fleetca/client"
)

// device is an enrolled device, ready to connect.
type device struct {
	id   string
	cert *x509.Certificate
	// tls is its client configuration: full handshakes only (no session
	// cache, no tickets), X25519, the proxies' certificate pinned.
	tls *tls.Config
	// key is its private key; jwt what it needs for the jwt phase (nil
	// unless that phase runs).
	key *ecdsa.PrivateKey
	jwt *jwtDevice
}

// target is something the client sends requests to.
type target struct {
	name string
	addr string
	tls  bool // false: plain HTTP (the upstream itself)
	jwt  bool // fleetca proxy --auth jwt: no client certificate, a Bearer token per request
	// cpu is the CPU time of the target's own processes (a proxy's; the
	// upstream is counted apart); nil for the upstream.
	cpu func() (benchutil.CPUTimes, error)
}

// setupInfo is what the report says about the setup.
type setupInfo struct {
	enrolled     int
	enrollTime   time.Duration
	nginxVersion string
	nginxSkip    string // why nginx did not run, or ""
	nginxWorkers int
	fleetPID     int
	jwtPID       int // the jwt phase's proxy
	nginxPID     int
	upstreamPID  int
	caPID        int
	fleetLog     string
	elapsed      time.Duration
}

// env is the running setup.
type env struct {
	o          options
	bin, tmp   string
	srv        *benchutil.Server
	ca         *client.Client // the CA's API: tokens, enrollment, server certificate, revocation
	plain      *http.Client   // the CA's plain-HTTP listener: CRLs
	inter      *x509.Certificate
	bundle     string // root + intermediate, PEM
	certPath   string // the proxies' certificate and chain
	keyPath    string
	serverLeaf []byte // its DER, which the client pins
	smallCRL   []byte // the CA's device CRL and root CRL, PEM, as nginx reads them
	rootCRL    []byte // the root CRL alone, PEM
	nginxBin   string

	devices []*device // the load's
	canary  *device   // listed on the big CRL only
	victims []*device // revoked one by one in the revoke phase

	upstream     *child
	upstreamAddr string
	fleetProc    *child
	nginxProc    *nginxInstance
	direct       *target
	fleet        *target
	nginx        *target
	jwtTarget    *target // the jwt phase's fleetca proxy --auth jwt

	mu      sync.Mutex
	stops   []func() error // processes to stop, last started first
	cpuOfUs []func() (benchutil.CPUTimes, error)

	info setupInfo
}

// Device IDs are p-00000001, ...; the enrollment token's pattern matches them.
const (
	devicePrefix  = "p-"
	devicePattern = "p-*"
)

// ioTimeout bounds every network step of the client.
const ioTimeout = 10 * time.Second

// setUp starts the CA, the upstream and the proxies and enrolls the
// devices. The env it returns, even with an error, must be closed.
func setUp(ctx context.Context, o options, tmp, bin string, logf func(string, ...any)) (*env, error) {
	e := &env{o: o, bin: bin, tmp: tmp}
	dataDir := filepath.Join(tmp, "ca")
	srv, err := benchutil.StartServer(ctx, bin, dataDir, filepath.Join(tmp, "serve.log"), o.ServerEnv)
	if err != nil {
		return e, err
	}
	e.srv = srv
	e.addStop(srv.Stop, func() (benchutil.CPUTimes, error) { return benchutil.ProcCPU(srv.PID) })
	e.info.caPID = srv.PID
	logf("fleetca serve is pid %d at %s and %s", srv.PID, srv.HTTPSURL, srv.HTTPURL)

	if err := e.readCA(dataDir); err != nil {
		return e, err
	}
	if e.ca, err = srv.Client(); err != nil {
		return e, err
	}
	e.plain = benchutil.NewClient(nil, 8, "h1")
	if err := e.issueServerCert(ctx); err != nil {
		return e, err
	}
	if err := e.enrollAll(ctx, logf); err != nil {
		return e, err
	}
	if err := e.fetchCRLs(ctx); err != nil {
		return e, err
	}

	exe, err := os.Executable()
	if err != nil {
		return e, err
	}
	up, err := startChild("upstream", filepath.Join(tmp, "upstream.log"), nil, exe, upstreamArg)
	if err != nil {
		return e, err
	}
	e.upstream = up
	e.addStop(func() error { return up.stop(5 * time.Second) }, func() (benchutil.CPUTimes, error) { return benchutil.ProcCPU(up.pid()) })
	if e.upstreamAddr, err = up.waitForLog(ctx, 10*time.Second, "its address", parseUpstreamLine); err != nil {
		return e, err
	}
	e.info.upstreamPID = up.pid()
	e.direct = &target{name: "direct to upstream", addr: e.upstreamAddr}

	crlURL := srv.HTTPURL // the CA's HTTP listener: the proxy fetches /crl under it
	fp, addr, err := e.startFleet(ctx, "fleetca proxy", filepath.Join(tmp, "fleetca-proxy.log"), crlURL)
	if err != nil {
		return e, err
	}
	e.fleetProc, e.info.fleetPID, e.info.fleetLog = fp, fp.pid(), fp.logPath
	e.fleet = &target{name: "fleetca proxy", addr: addr, tls: true, cpu: func() (benchutil.CPUTimes, error) { return benchutil.ProcCPU(fp.pid()) }}
	logf("fleetca proxy is pid %d on %s, upstream pid %d on %s", fp.pid(), addr, up.pid(), e.upstreamAddr)

	path, version, skip := findNginx(ctx, o.nginx, o.install, logf)
	e.info.nginxVersion, e.info.nginxSkip, e.info.nginxWorkers = version, skip, o.workers
	if skip != "" {
		logf("nginx SKIPPED: %s", skip)
	} else {
		e.nginxBin = path
		n, err := e.startNginx(ctx, "nginx", e.smallCRL)
		if err != nil {
			return e, err
		}
		e.nginxProc, e.info.nginxPID = n, n.pid()
		e.nginx = &target{name: "nginx", addr: n.addr, tls: true, cpu: func() (benchutil.CPUTimes, error) { return benchutil.TreeCPU(n.pid()) }}
		logf("%s is pid %d on %s with %d workers", version, n.pid(), n.addr, o.workers)
	}
	for _, t := range []*target{e.direct, e.fleet, e.nginx} {
		if t != nil {
			if err := checkIdentity(ctx, t, e.devices[0]); err != nil {
				return e, err
			}
		}
	}
	if o.phases["jwt"] {
		if err := e.setUpJWT(ctx, logf); err != nil {
			return e, err
		}
	}
	return e, nil
}

// addStop registers a process to stop at the end, and its CPU time as the
// benchmark's own.
func (e *env) addStop(stop func() error, cpu func() (benchutil.CPUTimes, error)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stops = append(e.stops, stop)
	e.cpuOfUs = append(e.cpuOfUs, cpu)
}

// close stops every process, last started first.
func (e *env) close(logf func(string, ...any)) {
	if e.plain != nil {
		e.plain.CloseIdleConnections()
	}
	for i := len(e.stops) - 1; i >= 0; i-- {
		if err := e.stops[i](); err != nil {
			logf("%v", err)
		}
	}
}

// alive returns an error if a long-running process has exited.
func (e *env) alive() error {
	errs := []error{e.srv.Alive(), e.upstream.alive(), e.fleetProc.alive()}
	if e.nginxProc != nil {
		errs = append(errs, e.nginxProc.alive())
	}
	return errors.Join(errs...)
}

// ourCPU is the CPU time of every process of the benchmark: this one, the
// CA, the upstream and every proxy. Processes that have ended count zero.
func (e *env) ourCPU() time.Duration {
	e.mu.Lock()
	fns := e.cpuOfUs
	e.mu.Unlock()
	total := benchutil.SelfCPU().Total()
	for _, f := range fns {
		if t, err := f(); err == nil {
			total += t.Total()
		}
	}
	return total
}

// readCA reads the data directory's root and intermediate and writes the
// trust bundle both proxies use.
func (e *env) readCA(dir string) error {
	rootPEM, err := os.ReadFile(filepath.Join(dir, "root.pem"))
	if err != nil {
		return err
	}
	interPEM, err := os.ReadFile(filepath.Join(dir, "intermediate.pem"))
	if err != nil {
		return err
	}
	if e.inter, err = benchutil.ParseCertPEM(interPEM); err != nil {
		return fmt.Errorf("intermediate.pem: %w", err)
	}
	e.bundle = filepath.Join(e.tmp, "fleet-ca.pem")
	return os.WriteFile(e.bundle, append(append(rootPEM, '\n'), interPEM...), 0o644)
}

// issueServerCert has the CA issue the proxies' certificate
// (client.IssueServerCert, as `fleetca cert server` does) for a new P-256
// key, and writes the key and the chain for both proxies.
func (e *env) issueServerCert(ctx context.Context) error {
	e.certPath, e.keyPath = filepath.Join(e.tmp, "proxy.crt"), filepath.Join(e.tmp, "proxy.key")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	// The request names the server; the CSR only proves possession of the key.
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return err
	}
	out, err := e.ca.IssueServerCert(ctx, csrDER, []string{"localhost"}, []string{"127.0.0.1"})
	if err != nil {
		return fmt.Errorf("issue the proxies' certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(e.keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(e.certPath, []byte(out.Chain), 0o644); err != nil {
		return err
	}
	e.serverLeaf = out.Certs[0].Raw
	return nil
}

// enrollAll enrolls the load's devices, the canary and the victims through
// POST /v1/enroll, with a pattern token from the admin API.
func (e *env) enrollAll(ctx context.Context, logf func(string, ...any)) error {
	n := e.o.devices + 1 + e.o.revocations
	tok, err := e.ca.CreateToken(ctx, api.TokenRequest{DevicePattern: devicePattern, TTL: "2h", Uses: n})
	if err != nil {
		return fmt.Errorf("create an enrollment token: %w", err)
	}
	start := time.Now()
	devs := make([]*device, n)
	const conc = 8
	err = benchutil.ForEach(ctx, conc, n, func(i int) error {
		d, err := e.enroll(ctx, benchutil.DeviceID(devicePrefix, i+1), tok.Token)
		if err != nil {
			return err
		}
		devs[i] = d
		return nil
	})
	if err != nil {
		return err
	}
	e.devices, e.canary, e.victims = devs[:e.o.devices], devs[e.o.devices], devs[e.o.devices+1:]
	e.info.enrolled, e.info.enrollTime = n, time.Since(start)
	logf("enrolled %d devices in %v", n, e.info.enrollTime.Round(time.Millisecond))
	return nil
}

// enroll enrolls one device with a new P-256 key (client.Enroll, which
// verifies the chain it gets; this is setup, not load).
func (e *env) enroll(ctx context.Context, id, token string) (*device, error) {
	key, csr, err := benchutil.NewKeyAndCSR(id)
	if err != nil {
		return nil, err
	}
	out, err := e.ca.Enroll(ctx, token, csr)
	if err != nil {
		return nil, fmt.Errorf("enroll %s: %w", id, err)
	}
	cert := out.Certs[0]
	if err := benchutil.CheckEnrollment(out.EnrollResponse, cert, id); err != nil {
		return nil, fmt.Errorf("enroll %s: %w", id, err)
	}
	return &device{id: id, cert: cert, tls: clientTLS(cert, e.inter, key, e.serverLeaf), key: key}, nil
}

// clientTLS is a device's client configuration (benchutil.PinnedTLS):
// full handshakes only, X25519 only (nginx 1.22, OpenSSL 3.0, has no
// ML-KEM), the proxies' certificate pinned.
func clientTLS(leaf, inter *x509.Certificate, key *ecdsa.PrivateKey, serverLeaf []byte) *tls.Config {
	cert := &tls.Certificate{Certificate: [][]byte{leaf.Raw, inter.Raw}, PrivateKey: key, Leaf: leaf}
	return benchutil.PinnedTLS(cert, serverLeaf, "the proxies' certificate")
}

// get fetches a URL of the CA's HTTP listener.
func (e *env) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.HTTPURL+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := e.plain.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", path, resp.StatusCode)
	}
	return b, nil
}

// fetchCRLs reads the CA's device CRL and root CRL into e.smallCRL, one
// PEM file's contents, as nginx's ssl_crl wants them: with CRL_CHECK_ALL
// it refuses a chain with a CA that has no CRL.
func (e *env) fetchCRLs(ctx context.Context) error {
	device, err := e.get(ctx, "/crl.pem")
	if err != nil {
		return err
	}
	root, err := e.get(ctx, "/root.crl")
	if err != nil {
		return err
	}
	e.rootCRL = pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: root})
	e.smallCRL = append(append(bytes.TrimRight(device, "\n"), '\n'), e.rootCRL...)
	return nil
}

// startFleet starts a fleetca proxy in front of the upstream, with crlURL
// and the CA's revocation feed, and returns it with the address it
// listens on.
func (e *env) startFleet(ctx context.Context, name, logPath, crlURL string) (*child, string, error) {
	c, err := startChild(name, logPath, e.o.proxyEnv, e.bin, "proxy", "--listen", "127.0.0.1:0", "--upstream", "http://"+e.upstreamAddr,
		"--ca", e.bundle, "--cert", e.certPath, "--key", e.keyPath, "--crl-url", crlURL, "--revocation-feed", e.srv.HTTPSURL)
	if err != nil {
		return nil, "", err
	}
	e.addStop(func() error { return c.stop(15 * time.Second) }, func() (benchutil.CPUTimes, error) { return benchutil.ProcCPU(c.pid()) })
	addr, err := c.waitForLog(ctx, 30*time.Second, `"listening"`, parseProxyListening)
	if err != nil {
		return nil, "", err
	}
	return c, addr, nil
}

// parseProxyListening finds fleetca proxy's JSON log line
// {"msg":"listening","addr":"HOST:PORT",...} and returns the address, or "".
func parseProxyListening(b []byte) string {
	for line := range strings.Lines(string(b)) {
		if !strings.HasPrefix(line, "{") || !strings.HasSuffix(line, "\n") {
			continue
		}
		var rec struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" && rec.Addr != "" {
			return rec.Addr
		}
	}
	return ""
}

// startNginx starts an nginx in its own directory under tmp, with crls
// (PEM) as its ssl_crl file.
func (e *env) startNginx(ctx context.Context, name string, crls []byte) (*nginxInstance, error) {
	dir := filepath.Join(e.tmp, strings.ReplaceAll(name, " ", "-"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	crlPath := filepath.Join(dir, "crl.pem")
	if err := os.WriteFile(crlPath, crls, 0o644); err != nil {
		return nil, err
	}
	listen, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := nginxConfig{Dir: dir, Listen: listen, Workers: e.o.workers, Cert: e.certPath, Key: e.keyPath,
		ClientCA: e.bundle, CRL: crlPath, Upstream: e.upstreamAddr}
	n, err := startNginx(ctx, e.nginxBin, cfg)
	if err != nil {
		return nil, err
	}
	e.addStop(func() error { return n.stop(10 * time.Second) }, func() (benchutil.CPUTimes, error) { return benchutil.TreeCPU(n.pid()) })
	return n, nil
}

// checkIdentity makes one request through t as dev and checks that the
// upstream answered, and, through a proxy, that it was told the device's
// ID: that the proxies do the same work.
func checkIdentity(ctx context.Context, t *target, dev *device) error {
	tr := &http.Transport{TLSClientConfig: dev.tls.Clone(), DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	scheme := "http"
	if t.tls {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+t.addr+"/", nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Device-Id", "spoofed")
	resp, err := (&http.Client{Transport: tr, Timeout: ioTimeout}).Do(req)
	if err != nil {
		return fmt.Errorf("%s: first request: %w", t.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	want := dev.id
	if !t.tls {
		want = "spoofed" // the upstream itself: nobody replaced it
	}
	if resp.StatusCode != http.StatusOK || string(b) != upstreamBody || resp.Header.Get(headerSeenDevice) != want {
		return fmt.Errorf("%s: first request: status %d, body %q, upstream saw device %q; want 200, %q, %q",
			t.name, resp.StatusCode, b, resp.Header.Get(headerSeenDevice), upstreamBody, want)
	}
	return nil
}
