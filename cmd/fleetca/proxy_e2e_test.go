package main

// End-to-end test of the reference proxy as a service owner runs it: a real
// `fleetca serve`, `fleetca cert server` for the proxy's certificate,
// `fleetca proxy` in HTTP and TCP mode as subprocesses in front of upstreams
// this test runs, devices enrolled with `fleetca enroll`, and curl, openssl
// and Go TLS clients knocking. The harness is in e2e_helpers_test.go.

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // RFC 6455 §4.2.2 Sec-WebSocket-Accept, not security
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fleetca/fleetca/internal/testenv"
)

// closeWait bounds the wait for anything the test expects to happen: a
// guard against a hung test, never a measure of speed (revoke-to-deny and
// revoke-to-close are logged, and measured by bench/proxyload). It stays
// well under the proxy's one-minute CRL refresh, so that a revocation
// acted on within it came by the revocation feed.
const closeWait = 20 * time.Second

func TestProxyEndToEnd(t *testing.T) {
	t.Parallel()
	testenv.Need(t, "openssl")
	testenv.Need(t, "curl")
	began := time.Now()
	f := newFixture(t)
	D := f.dataDir

	// The proxy's server certificate, and its trust bundle built as the
	// README says: the CA's roots.pem then chain.pem.
	r := f.mustFleetca("cert", "server", "--dir", D, "--dns", "localhost", "--ip", "127.0.0.1", "--key", "proxy.key", "--cert", "proxy.crt")
	if !strings.HasPrefix(r.stdout, "server certificate for localhost, 127.0.0.1: serial ") {
		t.Errorf("fleetca cert server stdout = %q, want \"server certificate for localhost, 127.0.0.1: serial ...\"", r.stdout)
	}
	firstSerial := readCerts(t, filepath.Join(f.work, "proxy.crt"))[0].SerialNumber.Text(16)
	bundle := filepath.Join(f.work, "fleet-ca.pem")
	writeFile(t, bundle, string(f.curl(f.srv.httpURL+"/roots.pem").body)+string(f.curl(f.srv.httpURL+"/chain.pem").body))

	up := newUpstream(t)
	tcpUp := newTCPUpstream(t)
	common := []string{"--ca", bundle, "--cert", "proxy.crt", "--key", "proxy.key",
		"--crl-url", f.srv.httpURL, "--revocation-feed", f.srv.httpsURL}
	hp := startProxy(t, f, append([]string{"--listen", "127.0.0.1:0", "--upstream", up.URL, "--metrics-addr", "127.0.0.1:0"}, common...)...)
	tp := startProxy(t, f, append([]string{"--listen", "127.0.0.1:0", "--upstream", "tcp://" + tcpUp.addr, "--proxy-protocol"}, common...)...)
	base := "https://" + hp.addr

	serials := map[string]string{}
	for _, name := range []string{"good", "bad", "bad2"} {
		serials[name] = f.fleetcaEnroll(f.plainToken("--device-id", name), name)
	}
	p := &proxyClient{f: f, up: up, url: base, proc: hp}

	t.Run("good device gets through with the proxy's headers", func(t *testing.T) {
		p := p.with(t)
		leaf := readCerts(t, filepath.Join(f.work, "good.crt"))[0]
		sum := sha256.Sum256(leaf.Raw)
		for _, proto := range []string{"--http2", "--http1.1"} {
			res := p.curl("good", proto, "-H", "X-Device-ID: admin", "-H", "x-client-cert-serial: 01",
				"-H", "X-Forwarded-Client-Cert: Hash=00;URI=spiffe://e2e-test/device/admin")
			if res.code != 0 || res.status != 200 {
				t.Fatalf("curl %s as good: exit %d, status %d, want 0 and 200; stderr: %s", proto, res.code, res.status, res.stderr)
			}
			seen := res.upstreamHeaders(t)
			if got := seen.Values("X-Device-Id"); len(got) != 1 || got[0] != "good" {
				t.Errorf("%s: upstream saw X-Device-ID %q, want [good] only (the client's \"admin\" removed)", proto, got)
			}
			if got := seen.Values("X-Client-Cert-Serial"); len(got) != 1 || got[0] != serials["good"] {
				t.Errorf("%s: upstream saw X-Client-Cert-Serial %q, want [%s] only", proto, got, serials["good"])
			}
			xfcc := seen.Values("X-Forwarded-Client-Cert")
			if len(xfcc) != 1 || !strings.Contains(xfcc[0], "Hash="+hex.EncodeToString(sum[:])) ||
				!strings.Contains(xfcc[0], "URI=spiffe://e2e-test/device/good") || strings.Contains(xfcc[0], "admin") {
				t.Errorf("%s: upstream saw X-Forwarded-Client-Cert %q, want one value with Hash=%x and URI=spiffe://e2e-test/device/good, nothing of the client's",
					proto, xfcc, sum)
			}
		}
	})

	t.Run("refused handshakes never reach the upstream", func(t *testing.T) {
		p := p.with(t)
		// Another CA's certificate for a device of the same name.
		writeFile(t, filepath.Join(f.work, "client.ext"), "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n")
		f.mustTool("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
			"-keyout", "other-ca.key", "-subj", "/CN=Other CA", "-days", "1", "-out", "other-ca.pem")
		f.mustTool("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
			"-keyout", "other.key", "-subj", "/CN=good", "-out", "other.csr")
		f.mustTool("openssl", "x509", "-req", "-in", "other.csr", "-CA", "other-ca.pem", "-CAkey", "other-ca.key",
			"-CAcreateserial", "-days", "1", "-extfile", "client.ext", "-out", "other.crt")
		// An expired certificate of the fleet's intermediate for "good".
		mintExpired(t, f, "good", "expired")
		for _, tc := range []struct{ name, cert, reason string }{
			{"no client certificate", "", "no_cert"},
			{"another CA's certificate", "other", "chain"},
			{"an expired certificate", "expired", "expired"},
			{"a server-profile certificate of the fleet (EKU serverAuth)", "proxy", "wrong_eku"},
		} {
			p.wantRefused(tc.name, tc.cert, tc.reason)
		}
	})

	// Long-lived connections of bad2, open before its revocation: HTTP/1.1
	// keep-alive, a WebSocket upgrade, and TCP mode.
	keep := p.dialHTTP("bad2")
	ws := p.dialWebSocket("bad2")
	tcp := dialTCP(t, f, tp.addr, "bad2", tcpUp)

	t.Run("revoked certificate is refused", func(t *testing.T) {
		p := p.with(t)
		f := f.with(t)
		// A Go client handshakes as bad in a loop meanwhile, to time the
		// first refusal more finely than a curl process can.
		probe := p.startProbe("bad")
		f.mustFleetca("revoke", "--dir", D, "--serial", serials["bad"])
		revoked := time.Now()
		if at, err := probe.firstRefusal(revoked.Add(closeWait)); err != nil {
			t.Errorf("Go client as bad: %v", err)
		} else {
			t.Logf("revoke-to-deny (fleetca revoke returned -> a Go client's handshake refused, %d handshakes before): %+.1f ms (negative: before the command returned)",
				probe.ok.Load(), float64(at.Sub(revoked).Microseconds())/1000)
		}
		tries := 0
		for {
			tries++
			res := p.curl("bad")
			if res.code != 0 {
				break
			}
			if time.Since(revoked) > closeWait {
				t.Fatalf("curl as bad still got through %s after the revocation (%d tries)", closeWait, tries)
			}
		}
		t.Logf("revoke-to-deny (fleetca revoke returned -> a new curl handshake refused): %d ms (%d curl tries)", time.Since(revoked).Milliseconds(), tries)
		p.wantRefused("the revoked certificate again", "bad", "revoked")
		if res := p.curl("good"); res.code != 0 || res.status != 200 {
			t.Errorf("curl as good after bad's revocation: exit %d, status %d, want 0 and 200; stderr: %s", res.code, res.status, res.stderr)
		}
	})

	t.Run("revoking a device closes its open connections", func(t *testing.T) {
		f := f.with(t)
		keep.roundTrip(t, "/before")
		ws.echo(t, "ping")
		tcp.echo(t, "ping")
		f.mustFleetca("revoke", "--dir", D, "--device-id", "bad2")
		revoked := time.Now()
		var wg sync.WaitGroup
		for _, c := range []interface {
			waitClosed(deadline time.Time) error
			name() string
		}{keep, ws, tcp} {
			wg.Go(func() {
				if err := c.waitClosed(revoked.Add(closeWait)); err != nil {
					t.Errorf("%s of bad2: %v", c.name(), err)
					return
				}
				t.Logf("revoke-to-close of bad2's %s: %d ms", c.name(), time.Since(revoked).Milliseconds())
			})
		}
		wg.Wait()
	})

	t.Run("SIGHUP swaps the server certificate and keeps connections", func(t *testing.T) {
		p := p.with(t)
		f := f.with(t)
		k := p.dialHTTP("good")
		defer k.close()
		k.roundTrip(t, "/before-reload")
		if got := k.serverSerial(); got != firstSerial {
			t.Fatalf("server certificate serial = %s, want %s (proxy.crt as started)", got, firstSerial)
		}
		f.mustFleetca("cert", "server", "--dir", D, "--dns", "localhost", "--ip", "127.0.0.1", "--key", "proxy.key", "--cert", "proxy.crt", "--force")
		newSerial := readCerts(t, filepath.Join(f.work, "proxy.crt"))[0].SerialNumber.Text(16)
		if newSerial == firstSerial {
			t.Fatalf("fleetca cert server --force kept serial %s", newSerial)
		}
		hp.signal(t, syscall.SIGHUP)
		hp.waitLog(t, `"msg":"reloaded"`)
		n := p.dialHTTP("good")
		defer n.close()
		if got := n.serverSerial(); got != newSerial {
			t.Errorf("after SIGHUP, a new connection sees server certificate %s, want %s (the new proxy.crt)", got, newSerial)
		}
		n.roundTrip(t, "/after-reload")
		k.roundTrip(t, "/kept-across-reload")
		if res := p.curl("good"); res.code != 0 || res.status != 200 {
			t.Errorf("curl as good after SIGHUP: exit %d, status %d, want 0 and 200; stderr: %s", res.code, res.status, res.stderr)
		}
	})

	t.Run("fails closed until a CRL loads", func(t *testing.T) {
		f := f.with(t)
		// A CRL source that does not exist yet: the proxy starts, refuses
		// everyone, and serves once the CRL appears (Run retries after 1 s).
		later := filepath.Join(f.work, "later.crl")
		lp := startProxy(t, f, "--listen", "127.0.0.1:0", "--upstream", up.URL, "--ca", bundle, "--cert", "proxy.crt", "--key", "proxy.key", "--crl-url", later)
		if !strings.Contains(lp.log.String(), "no CRL could be loaded") {
			t.Errorf("proxy with no CRL logged\n%s\nwant it to say no CRL could be loaded", lp.log.String())
		}
		q := &proxyClient{f: f, up: up, url: "https://" + lp.addr, proc: lp}
		q.wantRefused("a good certificate before any CRL", "good", "no_data")
		// The CA publishes a CRL revocation.crl_publish_delay (200 ms)
		// after a revocation; the feed told the other proxies at once.
		published := f.pollCRL(func(l *x509.RevocationList) bool { return lists(l, serials["bad"]) })
		if published.err != nil {
			t.Fatalf("device CRL: %v", published.err)
		}
		writeFile(t, later+".tmp", string(published.crl.Raw))
		if err := os.Rename(later+".tmp", later); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(closeWait)
		for res := q.curl("good"); res.code != 0 || res.status != 200; res = q.curl("good") {
			if time.Now().After(deadline) {
				t.Fatalf("curl as good still refused %s after the CRL file appeared: exit %d, status %d", closeWait, res.code, res.status)
			}
			time.Sleep(50 * time.Millisecond)
		}
		q.wantRefused("the revoked certificate, from the CRL", "bad", "revoked")
		lp.stop(t)
	})

	t.Run("metrics", func(t *testing.T) {
		if hp.metrics == "" {
			t.Fatalf("the proxy's listening line has no metrics URL; stderr:\n%s", hp.log.String())
		}
		resp, err := f.client.Get(hp.metrics)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %v", hp.metrics, resp.StatusCode, err)
		}
		for _, want := range []string{"fleetca_proxy_crl_age_seconds ", "fleetca_proxy_open_connections ",
			`fleetca_proxy_handshakes_total{outcome="accepted"`, `fleetca_proxy_handshakes_total{outcome="refused",reason="revoked"}`,
			"fleetca_proxy_revoked_connections_closed_total ", "fleetca_proxy_fast_path_requests_total "} {
			if !strings.Contains(string(b), want) {
				t.Errorf("GET %s lacks %s", hp.metrics, want)
			}
		}
		// The HTTP/1.1 requests above took the fast path.
		if strings.Contains(string(b), "\nfleetca_proxy_fast_path_requests_total 0\n") {
			t.Errorf("GET %s: fleetca_proxy_fast_path_requests_total is 0, want the HTTP/1.1 requests counted", hp.metrics)
		}
	})

	t.Run("the HTTP/1.1 fast path switched off", func(t *testing.T) {
		f := f.with(t)
		op := startProxy(t, f, append([]string{"--listen", "127.0.0.1:0", "--upstream", up.URL, "--http1-fast-path=false"}, common...)...)
		op.waitLog(t, `"http1_fast_path":false`)
		q := &proxyClient{f: f, up: up, url: "https://" + op.addr, proc: op}
		res := q.curl("good", "--http1.1")
		if res.code != 0 || res.status != 200 {
			t.Fatalf("curl --http1.1 as good: exit %d, status %d, want 0 and 200; stderr: %s", res.code, res.status, res.stderr)
		}
		if got := res.upstreamHeaders(t).Values("X-Device-Id"); len(got) != 1 || got[0] != "good" {
			t.Errorf("upstream saw X-Device-ID %q, want [good]", got)
		}
		op.stop(t)
	})

	t.Run("keeps serving while the CA is down", func(t *testing.T) {
		p := p.with(t)
		f.client.CloseIdleConnections()
		f.srv.stop(t)
		if res := p.curl("good"); res.code != 0 || res.status != 200 {
			t.Errorf("curl as good with the CA stopped: exit %d, status %d, want 0 and 200; stderr: %s", res.code, res.status, res.stderr)
		}
		p.wantRefused("the revoked certificate with the CA stopped", "bad", "revoked")
		c := dialTCP(t, f, tp.addr, "good", tcpUp)
		c.echo(t, "still here")
		c.close()
	})

	for _, c := range []interface{ close() }{keep, ws, tcp} {
		c.close()
	}
	hp.stop(t)
	tp.stop(t)
	t.Logf("TestProxyEndToEnd took %s", time.Since(began).Round(time.Millisecond))
}

// mintExpired writes NAME.crt and NAME.key in the work directory: a device
// certificate for device, signed by the fleet's intermediate (its key read
// from the data directory, unencrypted in these tests), that expired an
// hour ago.
func mintExpired(t *testing.T, f *fixture, device, name string) {
	t.Helper()
	inter := readCerts(t, filepath.Join(f.dataDir, "intermediate.pem"))[0]
	interKey := readKey(t, filepath.Join(f.dataDir, "secrets", "intermediate.key"))
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse("spiffe://e2e-test/device/" + device)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: device}, URIs: []*url.URL{u},
		NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, inter, key.Public(), interKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(f.work, name+".crt"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))+
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: inter.Raw})))
	writeFile(t, filepath.Join(f.work, name+".key"), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
}

// proxyProc is a running `fleetca proxy` process.
type proxyProc struct {
	cmd     *exec.Cmd
	cancel  context.CancelFunc
	addr    string // where it listens
	metrics string // its metrics URL, if any
	log     *lockedBuffer
	eof     chan struct{}
	stopped bool
}

// startProxy runs `fleetca proxy args...` in f's work directory and returns
// once it logged "listening". It is stopped with SIGTERM when the test ends.
func startProxy(t *testing.T, f *fixture, args ...string) *proxyProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), serverTimeout)
	cmd := exec.CommandContext(ctx, f.bin, append([]string{"proxy"}, args...)...)
	cmd.Dir, cmd.Env = f.work, baseEnv()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start fleetca proxy: %v", err)
	}
	p := &proxyProc{cmd: cmd, cancel: cancel, log: &lockedBuffer{}, eof: make(chan struct{})}
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("fleetca proxy %s stderr:\n%s", strings.Join(args, " "), p.log.String())
		}
	})
	type listening struct{ addr, metrics string }
	ready := make(chan listening, 1)
	go func() {
		defer close(p.eof)
		sent := false
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(p.log, line)
			var ev struct{ Msg, Addr, Metrics string }
			if !sent && json.Unmarshal([]byte(line), &ev) == nil && ev.Msg == "listening" && ev.Addr != "" {
				ready <- listening{ev.Addr, ev.Metrics}
				sent = true
			}
		}
	}()
	select {
	case l := <-ready:
		p.addr, p.metrics = l.addr, l.metrics
	case <-p.eof:
		t.Fatalf("fleetca proxy exited before it listened; stderr:\n%s", p.log.String())
	case <-time.After(startTimeout):
		t.Fatalf("fleetca proxy did not log \"listening\" within %s; stderr:\n%s", startTimeout, p.log.String())
	}
	return p
}

func (p *proxyProc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("send %v to fleetca proxy: %v", sig, err)
	}
}

// waitLog waits until the proxy's stderr has a line containing s.
func (p *proxyProc) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(closeWait)
	for !strings.Contains(p.log.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("fleetca proxy did not log %s within %s; stderr:\n%s", s, closeWait, p.log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop sends SIGTERM and checks a graceful end: exit 0 after "stopped".
func (p *proxyProc) stop(t *testing.T) {
	t.Helper()
	if p.stopped {
		return
	}
	p.stopped = true
	defer p.cancel()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("send SIGTERM to fleetca proxy: %v", err)
	}
	<-p.eof
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("fleetca proxy after SIGTERM: %v, want exit status 0", err)
	}
	if !strings.Contains(p.log.String(), `"msg":"stopped"`) {
		t.Errorf("fleetca proxy stderr has no \"stopped\" log line after SIGTERM")
	}
}

// upstream is the HTTP service behind the proxy: it answers every request
// with the headers it received, as JSON, and switches /ws to an echo of
// raw bytes (a WebSocket stand-in).
type upstream struct {
	*httptest.Server
	hits atomic.Int64
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "want a WebSocket upgrade", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")) //nolint:gosec // RFC 6455
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
			base64.StdEncoding.EncodeToString(sum[:]))
		if brw.Flush() != nil {
			return
		}
		io.Copy(conn, brw) //nolint:errcheck // ends when either side closes
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(r.Header) //nolint:errcheck // the test reads what arrives
	})
	u.Server = httptest.NewServer(mux)
	t.Cleanup(u.Close)
	return u
}

// tcpUpstream is the TCP service behind the proxy in TCP mode: it reads the
// PROXY protocol v2 header, remembers the client address it carries, and
// echoes the bytes that follow.
type tcpUpstream struct {
	addr  string
	hits  atomic.Int64
	mu    sync.Mutex
	peers map[string]bool // client addresses from PROXY headers
}

func newTCPUpstream(t *testing.T) *tcpUpstream {
	t.Helper()
	ln := testenv.Listen(t)
	u := &tcpUpstream{addr: ln.Addr().String(), peers: map[string]bool{}}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.hits.Add(1)
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(serverTimeout)) //nolint:errcheck
				br := bufio.NewReader(c)
				src, err := readProxyV2(br)
				if err != nil {
					fmt.Fprintf(c, "bad PROXY header: %v\n", err)
					return
				}
				u.mu.Lock()
				u.peers[src] = true
				u.mu.Unlock()
				io.Copy(c, br) //nolint:errcheck // ends when either side closes
			})
		}
	})
	return u
}

func (u *tcpUpstream) saw(peer string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.peers[peer]
}

// readProxyV2 reads a PROXY protocol v2 header (the HAProxy spec, §2.2)
// for TCP over IPv4 or IPv6 and returns the source address.
func readProxyV2(r *bufio.Reader) (string, error) {
	hdr := make([]byte, 16)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return "", err
	}
	if string(hdr[:12]) != "\r\n\r\n\x00\r\nQUIT\n" {
		return "", errors.New("no v2 signature")
	}
	if hdr[12] != 0x21 {
		return "", fmt.Errorf("version/command byte %#x, want 0x21 (v2 PROXY)", hdr[12])
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[14:16]))
	if _, err := io.ReadFull(r, body); err != nil {
		return "", err
	}
	switch hdr[13] {
	case 0x11: // TCP over IPv4
		if len(body) < 12 {
			return "", errors.New("short IPv4 addresses")
		}
		return net.JoinHostPort(net.IP(body[0:4]).String(), strconv.Itoa(int(binary.BigEndian.Uint16(body[8:10])))), nil
	case 0x21: // TCP over IPv6
		if len(body) < 36 {
			return "", errors.New("short IPv6 addresses")
		}
		return net.JoinHostPort(net.IP(body[0:16]).String(), strconv.Itoa(int(binary.BigEndian.Uint16(body[32:34])))), nil
	}
	return "", fmt.Errorf("family byte %#x, want TCP over IPv4 or IPv6", hdr[13])
}

// proxyClient knocks on the HTTP-mode proxy as a device would.
type proxyClient struct {
	f    *fixture
	up   *upstream
	url  string
	proc *proxyProc
}

func (p *proxyClient) with(t *testing.T) *proxyClient {
	q := *p
	q.f = p.f.with(t)
	return &q
}

// proxyResult is what one curl through the proxy left.
type proxyResult struct {
	code   int // curl's exit code
	status int
	body   []byte
	stderr string
}

// upstreamHeaders decodes the upstream's echo of the request headers.
func (r proxyResult) upstreamHeaders(t *testing.T) http.Header {
	t.Helper()
	var h http.Header
	if err := json.Unmarshal(r.body, &h); err != nil {
		t.Fatalf("upstream answer %q is not its JSON echo of the headers: %v", r.body, err)
	}
	return h
}

// curl GETs the proxy's /echo with the certificate NAME.crt and key
// NAME.key of the work directory (none if name is ""), trusting the root.
func (p *proxyClient) curl(name string, args ...string) proxyResult {
	p.f.t.Helper()
	body := filepath.Join(p.f.work, "proxy-body")
	os.Remove(body)
	a := []string{"-sS", "--max-time", "10", "--cacert", p.f.root, "-o", body, "-w", "%{http_code}"}
	if name != "" {
		a = append(a, "--cert", name+".crt", "--key", name+".key")
	}
	r := p.f.tool("curl", append(append(a, args...), p.url+"/echo")...)
	res := proxyResult{code: r.code, stderr: r.stderr}
	res.status, _ = strconv.Atoi(strings.TrimSpace(r.stdout))
	res.body, _ = os.ReadFile(body)
	return res
}

// wantRefused checks that curl with the certificate name fails its
// handshake (a nonzero exit, no HTTP status: curl's exit code depends on
// when the TLS 1.3 alert arrives), that the proxy logged the refusal with
// reason, and that the upstream saw nothing of it.
func (p *proxyClient) wantRefused(what, name, reason string) {
	p.f.t.Helper()
	hits := p.up.hits.Load()
	logged := len(p.proc.log.String())
	res := p.curl(name)
	if res.code == 0 || res.status != 0 {
		p.f.t.Errorf("curl with %s: exit %d, status %d, want a refused handshake (nonzero exit, no status); body: %s", what, res.code, res.status, res.body)
	}
	want := `"reason":"` + reason + `"`
	deadline := time.Now().Add(closeWait)
	for {
		var found bool
		for line := range strings.Lines(p.proc.log.String()[logged:]) {
			found = found || strings.Contains(line, `"msg":"client refused"`) && strings.Contains(line, want)
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			p.f.t.Errorf("curl with %s (exit %d, %s): the proxy logged no \"client refused\" line with %s; it logged:\n%s",
				what, res.code, strings.TrimSpace(res.stderr), want, p.proc.log.String()[logged:])
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := p.up.hits.Load(); got != hits {
		p.f.t.Errorf("curl with %s reached the upstream (%d requests, want %d)", what, got, hits)
	}
}

// probe handshakes with the proxy as one device, sending GET /probe on each
// connection, until a handshake is refused.
type probe struct {
	ok      atomic.Int64 // requests that got through
	refused chan time.Time
	stop    chan struct{}
}

func (p *proxyClient) startProbe(name string) *probe {
	t := p.f.t
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(p.f.work, name+".crt"), filepath.Join(p.f.work, name+".key"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(readCerts(t, p.f.root)[0])
	cfg := &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12}
	addr := strings.TrimPrefix(p.url, "https://")
	pr := &probe{refused: make(chan time.Time, 1), stop: make(chan struct{})}
	var wg sync.WaitGroup
	t.Cleanup(func() { close(pr.stop); wg.Wait() })
	wg.Go(func() {
		for {
			select {
			case <-pr.stop:
				return
			default:
			}
			if err := probeOnce(addr, cfg); err != nil {
				pr.refused <- time.Now()
				return
			}
			pr.ok.Add(1)
		}
	})
	return pr
}

// probeOnce makes one connection and one request; with TLS 1.3 a refusal
// of the client certificate shows when the response is read.
func probeOnce(addr string, cfg *tls.Config) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: closeWait}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(closeWait)) //nolint:errcheck
	if _, err := io.WriteString(conn, "GET /probe HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// firstRefusal returns when the probe was first refused.
func (pr *probe) firstRefusal(deadline time.Time) (time.Time, error) {
	select {
	case at := <-pr.refused:
		return at, nil
	case <-time.After(time.Until(deadline)):
		return time.Time{}, fmt.Errorf("still got through %s after the revocation (%d requests)", closeWait, pr.ok.Load())
	}
}

// tlsConn is a Go TLS client connection to a proxy with a device's
// certificate, HTTP/1.1 over it.
type tlsConn struct {
	t    *testing.T
	what string
	conn *tls.Conn
	br   *bufio.Reader
}

// dialTLS connects to addr as the device name (NAME.crt, NAME.key).
func dialTLS(t *testing.T, f *fixture, addr, name, what string) *tlsConn {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(f.work, name+".crt"), filepath.Join(f.work, name+".key"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(readCerts(t, f.root)[0])
	d := &net.Dialer{Timeout: closeWait}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert},
		NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS to the proxy at %s as %s: %v", addr, name, err)
	}
	c := &tlsConn{t: t, what: what, conn: conn, br: bufio.NewReader(conn)}
	t.Cleanup(c.close)
	return c
}

func (c *tlsConn) name() string { return c.what }

func (c *tlsConn) close() { c.conn.Close() }

func (c *tlsConn) serverSerial() string {
	return c.conn.ConnectionState().PeerCertificates[0].SerialNumber.Text(16)
}

func (p *proxyClient) dialHTTP(name string) *tlsConn {
	return dialTLS(p.f.t, p.f, strings.TrimPrefix(p.url, "https://"), name, "HTTP/1.1 keep-alive connection")
}

// roundTrip sends GET path on the connection and wants a 200.
func (c *tlsConn) roundTrip(t *testing.T, path string) {
	t.Helper()
	c.conn.SetDeadline(time.Now().Add(closeWait)) //nolint:errcheck
	defer c.conn.SetDeadline(time.Time{})         //nolint:errcheck
	if _, err := fmt.Fprintf(c.conn, "GET %s HTTP/1.1\r\nHost: proxy\r\n\r\n", path); err != nil {
		t.Fatalf("%s: write GET %s: %v", c.what, path, err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("%s: GET %s: %v", c.what, path, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body) //nolint:errcheck
	if resp.StatusCode != 200 || resp.Close {
		t.Fatalf("%s: GET %s: status %d (close %v), want 200 on a kept-alive connection", c.what, path, resp.StatusCode, resp.Close)
	}
}

// dialWebSocket opens /ws and completes the upgrade.
func (p *proxyClient) dialWebSocket(name string) *tlsConn {
	t := p.f.t
	t.Helper()
	c := dialTLS(t, p.f, strings.TrimPrefix(p.url, "https://"), name, "WebSocket connection")
	c.conn.SetDeadline(time.Now().Add(closeWait)) //nolint:errcheck
	defer c.conn.SetDeadline(time.Time{})         //nolint:errcheck
	fmt.Fprintf(c.conn, "GET /ws HTTP/1.1\r\nHost: proxy\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("WebSocket upgrade through the proxy: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		t.Fatalf("WebSocket upgrade through the proxy: status %d, Upgrade %q, want 101 and websocket", resp.StatusCode, resp.Header.Get("Upgrade"))
	}
	return c
}

// dialTCP connects to the TCP-mode proxy at addr as the device name.
func dialTCP(t *testing.T, f *fixture, addr, name string, up *tcpUpstream) *tlsConn {
	t.Helper()
	c := dialTLS(t, f, addr, name, "TCP-mode connection")
	c.echo(t, "hello")
	if local := c.conn.LocalAddr().String(); !up.saw(local) {
		t.Errorf("the TCP upstream's PROXY headers name %v, want the client's address %s", up.peers, local)
	}
	return c
}

// echo sends a line on an upgraded or TCP connection and wants it back.
func (c *tlsConn) echo(t *testing.T, msg string) {
	t.Helper()
	c.conn.SetDeadline(time.Now().Add(closeWait)) //nolint:errcheck
	defer c.conn.SetDeadline(time.Time{})         //nolint:errcheck
	if _, err := io.WriteString(c.conn, msg+"\n"); err != nil {
		t.Fatalf("%s: write: %v", c.what, err)
	}
	line, err := c.br.ReadString('\n')
	if err != nil || line != msg+"\n" {
		t.Fatalf("%s: echo of %q = %q, %v", c.what, msg, line, err)
	}
}

// waitClosed waits until the proxy closes the connection: a read that
// ends in EOF or another error than our deadline.
func (c *tlsConn) waitClosed(deadline time.Time) error {
	c.conn.SetReadDeadline(deadline) //nolint:errcheck
	n, err := c.br.Read(make([]byte, 1))
	var ne net.Error
	switch {
	case err == nil:
		return fmt.Errorf("read %d bytes, want the connection closed", n)
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("still open %s after the revocation", closeWait)
	}
	return nil
}

// TestProxyHTTPSUpstreamCA: an https upstream whose certificate comes from
// a private CA is reached with --upstream-ca, and refused (502) without it,
// as the system roots do not know that CA.
func TestProxyHTTPSUpstreamCA(t *testing.T) {
	t.Parallel()
	testenv.Need(t, "curl")
	f := newFixture(t)
	f.mustFleetca("cert", "server", "--dir", f.dataDir, "--dns", "localhost", "--ip", "127.0.0.1", "--key", "proxy.key", "--cert", "proxy.crt")
	bundle := filepath.Join(f.work, "fleet-ca.pem")
	writeFile(t, bundle, string(f.curl(f.srv.httpURL+"/roots.pem").body)+string(f.curl(f.srv.httpURL+"/chain.pem").body))
	f.fleetcaEnroll(f.plainToken("--device-id", "good"), "good")

	var hits atomic.Int64
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprintf(w, "device %s over %s", r.Header.Get("X-Device-ID"), r.Proto)
	})
	// One upstream with httptest's own CA, one with a certificate from
	// fleetca cert server (the proxy's, for 127.0.0.1), trusted through
	// the fleet's root.
	up := httptest.NewTLSServer(handler)
	t.Cleanup(up.Close)
	upCA := filepath.Join(f.work, "upstream-ca.pem")
	writeFile(t, upCA, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: up.Certificate().Raw})))
	fleetCert, err := tls.LoadX509KeyPair(filepath.Join(f.work, "proxy.crt"), filepath.Join(f.work, "proxy.key"))
	if err != nil {
		t.Fatal(err)
	}
	fleetUp := httptest.NewUnstartedServer(handler)
	fleetUp.TLS = &tls.Config{Certificates: []tls.Certificate{fleetCert}}
	fleetUp.StartTLS()
	t.Cleanup(fleetUp.Close)

	common := []string{"--listen", "127.0.0.1:0", "--ca", bundle, "--cert", "proxy.crt", "--key", "proxy.key",
		"--crl-url", f.srv.httpURL}
	for _, tc := range []struct {
		name     string
		upstream string
		extra    []string
		status   int
		body     string
	}{
		{"private CA with --upstream-ca", up.URL, []string{"--upstream-ca", upCA}, 200, "device good over HTTP/"},
		{"private CA, system roots only", up.URL, nil, 502, ""},
		{"fleetca cert server upstream with --upstream-ca root.pem", fleetUp.URL, []string{"--upstream-ca", f.root}, 200, "device good over HTTP/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startProxy(t, f.with(t), append(append(common, "--upstream", tc.upstream), tc.extra...)...)
			c := &proxyClient{f: f.with(t), url: "https://" + p.addr, proc: p}
			before := hits.Load()
			res := c.curl("good")
			if res.code != 0 || res.status != tc.status || !strings.HasPrefix(string(res.body), tc.body) {
				t.Errorf("curl through the proxy: exit %d, status %d, body %q; want status %d and %q", res.code, res.status, res.body, tc.status, tc.body)
			}
			if got, want := hits.Load()-before, int64(0); tc.status == 200 {
				if got != 1 {
					t.Errorf("upstream hits = %d, want 1", got)
				}
			} else if got != want {
				t.Errorf("upstream hits = %d, want 0 (the proxy must not trust an unknown upstream)", got)
			}
		})
	}
	if r := f.fleetca(append(append([]string{"proxy"}, common...), "--upstream", "http://127.0.0.1:1", "--upstream-ca", upCA)...); r.code != exitUsage || !strings.Contains(r.stderr, "https:// upstream") {
		t.Errorf("--upstream-ca with an http upstream: exit %d, stderr %q; want a usage error", r.code, r.stderr)
	}
}
