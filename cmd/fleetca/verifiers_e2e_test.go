package main

// End-to-end tests of the verifier kit as a service owner uses it: a real
// `fleetca serve`, `fleetca cert server` for the verifier's certificate,
// `fleetca export KIND`, the real nginx, HAProxy or Mosquitto (Debian's
// packages, installed by .ci/run) started on the exported configuration on
// a loopback port, devices enrolled with `fleetca enroll`, and curl or
// mosquitto_pub knocking. A revocation reaches the verifier through one
// `fleetca crl sync --once` with the reload the export's README.txt gives.

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetca/fleetca/internal/testenv"
)

// verifierFixture is a CA with two enrolled devices (good, bad), a device
// of another CA (other), a server certificate for the verifier, an
// upstream, and the verifier kit exported for one kind.
type verifierFixture struct {
	*fixture
	kind    string
	up      *upstream
	out     string // the export directory
	addr    string // where the verifier listens: 127.0.0.1:PORT
	serials map[string]string
}

func newVerifierFixture(t *testing.T, kind string) *verifierFixture {
	t.Helper()
	f := newFixture(t)
	v := &verifierFixture{fixture: f, kind: kind, up: newUpstream(t), out: filepath.Join(f.work, kind), serials: map[string]string{}}
	f.mustFleetca("cert", "server", "--dir", f.dataDir, "--dns", "localhost", "--ip", "127.0.0.1", "--key", "server.key", "--cert", "server.crt")
	for _, name := range []string{"good", "bad"} {
		v.serials[name] = f.fleetcaEnroll(f.plainToken("--device-id", name), name)
	}
	makeOtherCADevice(t, f, "good", "other")
	v.addr = "127.0.0.1:" + strconv.Itoa(freePort(t))
	args := []string{"export", kind, "--out", v.out, "--dir", f.dataDir, "--ca", f.srv.httpURL, "--listen", v.addr,
		"--server-cert", filepath.Join(f.work, "server.crt"), "--server-key", filepath.Join(f.work, "server.key")}
	if kind != "mosquitto" { // the broker is the service
		args = append(args, "--upstream", v.up.URL)
	}
	r := f.mustFleetca(args...)
	if !strings.Contains(r.stdout, "fleetca crl sync") {
		t.Errorf("fleetca export %s stdout = %q, want the crl sync command to run next", kind, r.stdout)
	}
	return v
}

// freePort returns a loopback TCP port for a server that takes no
// listener from us (nginx, HAProxy, Mosquitto). It is drawn from
// 20000..32767, below Linux's ephemeral range (32768..60999 by default),
// so that the ports the kernel hands to the other tests' listeners and
// connections never land on it; each is handed out once per test process,
// and checked free by binding it a moment.
func freePort(t *testing.T) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		port := 20000 + mrand.IntN(12768)
		if portsUsed[port] {
			continue
		}
		portsUsed[port] = true
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		ln.Close()
		return port
	}
	t.Fatal("no free loopback port in 20000..32767 after 100 tries")
	return 0
}

var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

// makeOtherCADevice writes NAME.crt and NAME.key in the work directory: a
// client certificate for device from a CA the fleet does not trust.
func makeOtherCADevice(t *testing.T, f *fixture, device, name string) {
	t.Helper()
	writeFile(t, filepath.Join(f.work, "client.ext"), "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n")
	f.mustTool("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", name+"-ca.key", "-subj", "/CN=Other CA", "-days", "1", "-out", name+"-ca.pem")
	f.mustTool("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", name+".key", "-subj", "/CN="+device, "-out", name+".csr")
	f.mustTool("openssl", "x509", "-req", "-in", name+".csr", "-CA", name+"-ca.pem", "-CAkey", name+"-ca.key",
		"-CAcreateserial", "-days", "1", "-extfile", "client.ext", "-out", name+".crt")
}

// file is a path in the export directory.
func (v *verifierFixture) file(name string) string { return filepath.Join(v.out, name) }

// daemon is a verifier's process, its output kept for failure messages.
type daemon struct {
	name string
	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan struct{}
}

// startDaemon runs bin with args and returns once addr accepts TCP
// connections (at once if addr is ""). It is stopped with SIGTERM (then
// killed) when the test ends.
func startDaemon(t *testing.T, name, addr string, bin string, args ...string) *daemon {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), serverTimeout)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = 5 * time.Second
	d := &daemon{name: name, cmd: cmd, log: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = d.log, d.log
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { cmd.Wait(); close(d.done) }() //nolint:errcheck // the exit is read through done
	t.Cleanup(func() {
		defer cancel()
		cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // it may have exited
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill() //nolint:errcheck
			<-d.done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, d.log.String())
		}
	})
	deadline := time.Now().Add(startTimeout)
	for addr != "" {
		select {
		case <-d.done:
			t.Fatalf("%s exited before it listened on %s: %v; output:\n%s", name, addr, cmd.ProcessState, d.log.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen on %s within %s; output:\n%s", name, addr, startTimeout, d.log.String())
		}
		time.Sleep(20 * time.Millisecond) // polling for a port another program opens
	}
	return d
}

// crlSyncOnce runs `fleetca crl sync --once` for the export with the
// reload flags the export's README.txt gives, once the CA's CRL lists
// serial (the CA publishes a new CRL within a second of a revocation), and
// checks that it installed the new CRL and reloaded the verifier.
func (v *verifierFixture) crlSyncOnce(t *testing.T, serial string, reload ...string) {
	t.Helper()
	v.waitCRLListing(t, serial)
	args := append([]string{"crl", "sync", "--url", v.srv.httpURL, "--issuer", v.file("ca.pem"), "--out", v.file("crl.pem"), "--once"}, reload...)
	r := v.mustFleetca(args...)
	if !strings.Contains(r.stdout, "device CRL: number") || !strings.Contains(r.stdout, ": installed") ||
		!strings.Contains(r.stdout, "updated; verifier reloaded") {
		t.Fatalf("fleetca %s stdout = %q, want the device CRL installed and the verifier reloaded", strings.Join(args, " "), r.stdout)
	}
	// Nothing new: a second run changes nothing and reloads nothing.
	r = v.mustFleetca(args...)
	if !strings.Contains(r.stdout, "unchanged") || strings.Contains(r.stdout, "reloaded") {
		t.Errorf("second fleetca crl sync --once stdout = %q, want the file unchanged and no reload", r.stdout)
	}
}

// waitCRLListing waits until the CA's device CRL lists serial.
func (v *verifierFixture) waitCRLListing(t *testing.T, serial string) {
	t.Helper()
	deadline := time.Now().Add(closeWait)
	for {
		l, err := v.getCRL(t.Context())
		if err == nil && lists(l, serial) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the CA's CRL does not list %s %s after the revocation (last: %v)", serial, closeWait, err)
		}
		time.Sleep(50 * time.Millisecond) // polling the CA's publication
	}
}

// waitUntil polls ok until it holds and returns how long that took from
// since; it fails the test after closeWait.
func waitUntil(t *testing.T, since time.Time, what string, ok func() bool) time.Duration {
	t.Helper()
	return waitWithin(t, since, closeWait, what, ok)
}

// waitWithin is waitUntil with a deadline of its own.
func waitWithin(t *testing.T, since time.Time, within time.Duration, what string, ok func() bool) time.Duration {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(10 * time.Millisecond) // polling a verifier that reloads on its own time
	}
	return time.Since(since)
}

// waitTwice is waitUntil for ok holding twice in a row: a verifier's
// reload may drop a connection or two for no reason of the test's.
func waitTwice(t *testing.T, since time.Time, within time.Duration, what string, ok func() bool) time.Duration {
	t.Helper()
	streak := 0
	return waitWithin(t, since, within, what+" twice in a row", func() bool {
		if ok() {
			streak++
		} else {
			streak = 0
		}
		return streak == 2
	})
}

// httpsAs GETs https://addr/echo through curl as the device name (none if
// ""), with extra curl arguments; it returns curl's exit code, the status
// and the body.
func (v *verifierFixture) httpsAs(name string, extra ...string) proxyResult {
	v.t.Helper()
	p := &proxyClient{f: v.fixture, up: v.up, url: "https://" + v.addr}
	return p.curl(name, extra...)
}

// wantThrough checks that the device name gets through to the upstream,
// which sees its ID and serial in the headers (and not the client's).
func (v *verifierFixture) wantThrough(t *testing.T, name string) {
	t.Helper()
	hits := v.up.hits.Load()
	// Spoofs: the headers themselves, the '_' spellings that CGI, WSGI and
	// PHP read as the same names, and a Connection header naming the real
	// one, so that a next hop would drop it.
	res := v.httpsAs(name, "-H", "X-Device-ID: admin", "-H", "X-Client-Cert-Serial: 01", "-H", "X_Device_ID: admin",
		"-H", "X_Client_Cert_Serial: 01", "-H", "X-Forwarded-Client-Cert: Hash=00;URI=spiffe://e2e-test/device/admin",
		"-H", "Connection: X-Device-ID")
	if res.code != 0 || res.status != 200 {
		t.Fatalf("curl through %s as %s: exit %d, status %d, want 0 and 200; stderr: %s; body: %s", v.kind, name, res.code, res.status, res.stderr, res.body)
	}
	if v.up.hits.Load() != hits+1 {
		t.Errorf("curl through %s as %s: upstream hits %d, want %d", v.kind, name, v.up.hits.Load(), hits+1)
	}
	seen := res.upstreamHeaders(t)
	if got := seen.Values("X-Device-Id"); len(got) != 1 || got[0] != name {
		t.Errorf("%s: upstream saw X-Device-ID %q, want [%s] only (the client's \"admin\" removed)", v.kind, got, name)
	}
	if got := seen.Values("X-Client-Cert-Serial"); len(got) != 1 || !strings.EqualFold(strings.TrimLeft(got[0], "0"), strings.TrimLeft(v.serials[name], "0")) {
		t.Errorf("%s: upstream saw X-Client-Cert-Serial %q, want [%s] only", v.kind, got, v.serials[name])
	}
	for key, vals := range seen {
		for _, val := range vals {
			if strings.Contains(val, "admin") || val == "01" || key == "Connection" && strings.Contains(strings.ToLower(val), "device") {
				t.Errorf("%s: upstream saw the client's %s: %q", v.kind, key, val)
			}
		}
	}
}

// refusedHTTPS reports whether the device name is kept from the upstream:
// nginx answers 400 after the handshake, HAProxy refuses the handshake.
func (v *verifierFixture) refusedHTTPS(name string) bool {
	v.t.Helper()
	hits := v.up.hits.Load()
	res := v.httpsAs(name)
	return v.up.hits.Load() == hits && (res.code != 0 || res.status == 400)
}

// revokedRefusals waits until the revoked device name is refused twice in
// a row (a reload may drop a connection or two without reason), and
// checks the reason the verifier gives: nginx logs it, HAProxy sends the
// TLS alert "certificate revoked". It returns how long that took from
// since.
func (v *verifierFixture) revokedRefusals(t *testing.T, since time.Time, within time.Duration, name, errorLog string) time.Duration {
	t.Helper()
	logged := 0
	if errorLog != "" {
		logged = len(readFile(t, errorLog))
	}
	took := waitTwice(t, since, within, v.kind+" refuses the revoked device", func() bool { return v.refusedHTTPS(name) })
	res := v.httpsAs(name)
	why := res.stderr
	if errorLog != "" {
		why = readFile(t, errorLog)[logged:] // what it logged of these refusals
	}
	if !strings.Contains(why, "certificate revoked") {
		t.Errorf("%s refused %s (exit %d, status %d), but not as revoked: %s", v.kind, name, res.code, res.status, why)
	}
	return took
}

// wantRefusedHTTPS checks that the device name is kept from the upstream.
func (v *verifierFixture) wantRefusedHTTPS(t *testing.T, name string) {
	t.Helper()
	if !v.refusedHTTPS(name) {
		t.Errorf("%s let %q through to the upstream", v.kind, name)
	}
}

func TestNginxVerifier(t *testing.T) {
	t.Parallel()
	testenv.Need(t, "openssl")
	testenv.Need(t, "curl")
	nginx := testenv.Need(t, "nginx")
	v := newVerifierFixture(t, "nginx")
	crlRun := startNginx(t, v, nginx, "nginx-crl", v.file("nginx.conf"), v.addr)

	// The OCSP variant, exported again for a second nginx on its own port.
	ocspAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	ocspOut := filepath.Join(v.work, "nginx-ocsp")
	v.mustFleetca("export", "nginx", "--out", ocspOut, "--dir", v.dataDir, "--ca", v.srv.httpURL, "--listen", ocspAddr,
		"--upstream", v.up.URL, "--server-cert", filepath.Join(v.work, "server.crt"), "--server-key", filepath.Join(v.work, "server.key"))
	startNginx(t, v, nginx, "nginx-ocsp", filepath.Join(ocspOut, "nginx-ocsp.conf"), ocspAddr)
	// One nginx in front of two services: two exports' files side by side.
	both := filepath.Join(v.work, "nginx-both.conf")
	writeFile(t, both, fmt.Sprintf("pid %[3]s/both.pid;\nerror_log %[3]s/both.log;\nevents {}\nhttp {\n    include %[1]s;\n    include %[2]s;\n}\n",
		v.file("nginx.conf"), filepath.Join(ocspOut, "nginx.conf"), v.work))
	if r := v.tool(nginx, "-t", "-q", "-p", v.work, "-c", both, "-e", filepath.Join(v.work, "both.log")); r.code != 0 {
		t.Errorf("nginx -t with two exports' nginx.conf included: %s", r.stderr)
	}
	ocsp := *v
	ocsp.addr, ocsp.kind = ocspAddr, "nginx (OCSP)"

	for _, n := range []*verifierFixture{v, &ocsp} {
		n.wantThrough(t, "good")
		n.wantThrough(t, "bad")
		for _, name := range []string{"", "other"} {
			n.wantRefusedHTTPS(t, name)
		}
	}

	v.mustFleetca("revoke", "--dir", v.dataDir, "--device-id", "bad")
	revoked := time.Now()
	// OCSP: the responder answers "revoked" as soon as revoke returns, and
	// nginx asks it at every full handshake.
	if !ocsp.refusedHTTPS("bad") {
		t.Error("nginx with ssl_ocsp let the revoked device through right after fleetca revoke returned")
	}
	if log := readFile(t, filepath.Join(v.work, "nginx-ocsp-run", "error.log")); !strings.Contains(log, "certificate revoked") {
		t.Errorf("nginx with ssl_ocsp refused the revoked device, but its error log does not say \"certificate revoked\":\n%s", log)
	}
	t.Logf("nginx with ssl_ocsp: revoke-to-deny %s (the first handshake after revoke)", time.Since(revoked).Round(time.Millisecond))
	ocsp.wantThrough(t, "good")

	// CRL: once the CA has published its CRL, one crl sync with nginx's reload.
	// The reload command export's README.txt gives, for this instance.
	opts := strings.Join(append([]string{nginx}, crlRun...), " ")
	v.crlSyncOnce(t, v.serials["bad"], "--exec", opts+" -t -q && "+opts+" -s reload")
	took := v.revokedRefusals(t, revoked, closeWait, "bad", filepath.Join(v.work, "nginx-crl-run", "error.log"))
	t.Logf("nginx with ssl_crl: revoke-to-deny %s (revoke, CA publishes its CRL, one crl sync --once with nginx -s reload)", took.Round(time.Millisecond))
	v.wantThrough(t, "good")

	// crl sync as a service, following the CA's revocation feed: with
	// --every 1h, only the feed can bring the next revocation within the
	// 20 s allowed below.
	v.serials["late"] = v.fleetcaEnroll(v.plainToken("--device-id", "late"), "late")
	v.wantThrough(t, "late")
	sync := startDaemon(t, "fleetca crl sync", "", v.bin, "crl", "sync", "--url", v.srv.httpURL, "--issuer", v.file("ca.pem"),
		"--out", v.file("crl.pem"), "--every", "1h", "--revocation-feed", v.srv.httpsURL, "--exec", opts+" -t -q && "+opts+" -s reload")
	waitUntil(t, time.Now(), "crl sync logs that it runs", func() bool { return strings.Contains(sync.log.String(), `"msg":"syncing CRLs"`) }) // JSON, as serve and proxy log
	v.mustFleetca("revoke", "--dir", v.dataDir, "--device-id", "late")
	revoked = time.Now()
	// 20 s: room for a loaded machine (publish, sync, nginx -t, reload),
	// and still far from --every 1h.
	took = v.revokedRefusals(t, revoked, 20*time.Second, "late", filepath.Join(v.work, "nginx-crl-run", "error.log"))
	t.Logf("nginx with ssl_crl and crl sync --revocation-feed: revoke-to-deny %s", took.Round(time.Millisecond))
	if log := sync.log.String(); !strings.Contains(log, "verifier reloaded") {
		t.Errorf("crl sync --revocation-feed did not log a reload:\n%s", log)
	}
	v.wantThrough(t, "good")
}

// startNginx runs nginx with the exported file include (a map and a
// server block) inside the http{} block a person writes, with a prefix
// of its own for its pid, logs and temporary files, and returns the
// options that name that instance (for nginx -s reload).
func startNginx(t *testing.T, v *verifierFixture, nginx, name, include, addr string) []string {
	t.Helper()
	run := filepath.Join(v.work, name+"-run")
	if err := os.MkdirAll(filepath.Join(run, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(run, "nginx.conf")
	writeFile(t, conf, fmt.Sprintf(`worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    include %[2]s;
}
`, run, include))
	base := []string{"-p", run, "-c", conf, "-e", filepath.Join(run, "error.log")}
	if r := v.tool(nginx, append(base, "-t")...); r.code != 0 {
		t.Fatalf("nginx -t refused the exported %s: %s", include, r.stderr)
	}
	startDaemon(t, name, addr, nginx, append(base, "-g", "daemon off;")...)
	return base
}

func TestHAProxyVerifier(t *testing.T) {
	t.Parallel()
	testenv.Need(t, "openssl")
	testenv.Need(t, "curl")
	haproxy := testenv.Need(t, "haproxy")
	v := newVerifierFixture(t, "haproxy")

	cfg := v.file("haproxy.cfg")
	if r := v.tool(haproxy, "-c", "-f", cfg); r.code != 0 {
		t.Fatalf("haproxy -c refused the exported configuration: %s%s", r.stdout, r.stderr)
	}
	// Master-worker mode, as Debian's unit runs it: SIGUSR2 to the master
	// (systemctl reload haproxy) starts workers on the new files.
	d := startDaemon(t, "haproxy", v.addr, haproxy, "-W", "-db", "-f", cfg)

	v.wantThrough(t, "good")
	v.wantThrough(t, "bad")
	// A WebSocket upgrade goes through: the rules that drop a client's
	// Connection header keep "Connection: upgrade".
	ws := (&proxyClient{f: v.fixture, up: v.up, url: "https://" + v.addr}).dialWebSocket("good")
	ws.echo(t, "hello over haproxy")
	ws.close()
	for _, name := range []string{"", "other"} {
		v.wantRefusedHTTPS(t, name)
	}

	v.mustFleetca("revoke", "--dir", v.dataDir, "--device-id", "bad")
	revoked := time.Now()
	v.crlSyncOnce(t, v.serials["bad"], "--exec", fmt.Sprintf("kill -USR2 %d", d.cmd.Process.Pid))
	took := v.revokedRefusals(t, revoked, closeWait, "bad", "")
	t.Logf("haproxy: revoke-to-deny %s (revoke, CA publishes its CRL, one crl sync --once with a master-worker reload)", took.Round(time.Millisecond))
	v.wantThrough(t, "good")
}

func TestMosquittoVerifier(t *testing.T) {
	t.Parallel()
	testenv.Need(t, "openssl")
	testenv.Need(t, "curl")
	mosquitto := testenv.Need(t, "mosquitto")
	testenv.Need(t, "mosquitto_pub")
	testenv.Need(t, "mosquitto_sub")
	v := newVerifierFixture(t, "mosquitto")

	// As root, Mosquitto drops to the user "mosquitto", who may not read a
	// test's temporary directory; a broker installed for real keeps its
	// files where that user can read them (README.txt says so).
	cfg := v.file("mosquitto.conf")
	if os.Geteuid() == 0 {
		cfg = filepath.Join(v.work, "mosquitto-root.conf")
		writeFile(t, cfg, "user root\n"+readFile(t, v.file("mosquitto.conf")))
	}
	d := startDaemon(t, "mosquitto", v.addr, mosquitto, "-c", cfg)
	_, port, _ := net.SplitHostPort(v.addr)
	client := func(tool, name string, args ...string) result {
		args = append([]string{"-h", "127.0.0.1", "-p", port, "--cafile", v.root}, args...)
		if name != "" {
			args = append(args, "--cert", name+".crt", "--key", name+".key")
		}
		return v.tool(tool, args...)
	}
	// A retained message, so that a subscriber that comes later gets it.
	pub := func(name string) result {
		return client("mosquitto_pub", name, "-t", "devices/"+name+"/hello", "-m", "hi from "+name, "-q", "1", "-r")
	}
	for _, name := range []string{"good", "bad"} {
		if r := pub(name); r.code != 0 {
			t.Fatalf("mosquitto_pub as %s: exit %d, want 0; stderr: %s", name, r.code, r.stderr)
		}
		// use_identity_as_username: the device ID is the MQTT username.
		waitUntil(t, time.Now(), "mosquitto logs the connection of "+name+" as its username", func() bool {
			return strings.Contains(d.log.String(), "u'"+name+"'")
		})
	}
	if r := client("mosquitto_sub", "bad", "-t", "devices/good/hello", "-C", "1", "-W", "10", "-v"); r.code != 0 || r.stdout != "devices/good/hello hi from good\n" {
		t.Errorf("mosquitto_sub as bad: exit %d, stdout %q, want good's message; stderr: %s", r.code, r.stdout, r.stderr)
	}
	for _, name := range []string{"", "other"} {
		if r := pub(name); r.code == 0 {
			t.Errorf("mosquitto_pub as %q: exit 0, want a refusal", name)
		}
		if r := client("mosquitto_sub", name, "-t", "devices/good/hello", "-C", "1", "-W", "10"); r.code == 0 || r.stdout != "" {
			t.Errorf("mosquitto_sub as %q: exit %d, stdout %q, want a refusal and no message", name, r.code, r.stdout)
		}
	}

	logged := len(d.log.String())
	v.mustFleetca("revoke", "--dir", v.dataDir, "--device-id", "bad")
	revoked := time.Now()
	v.crlSyncOnce(t, v.serials["bad"], "--exec", fmt.Sprintf("kill -HUP %d", d.cmd.Process.Pid))
	took := waitTwice(t, revoked, closeWait, "mosquitto refuses the revoked device", func() bool { return pub("bad").code != 0 })
	// Mosquitto logs no more than OpenSSL's verify failure: the refusal
	// since the revocation must be one.
	if log := d.log.String()[logged:]; !strings.Contains(log, "certificate verify failed") {
		t.Errorf("mosquitto refused the revoked device, but logged no \"certificate verify failed\" since the revocation:\n%s", log)
	}
	t.Logf("mosquitto: revoke-to-deny %s (revoke, CA publishes its CRL, one crl sync --once with kill -HUP)", took.Round(time.Millisecond))
	if r := pub("good"); r.code != 0 {
		t.Errorf("mosquitto_pub as good after the revocation of bad: exit %d, want 0; stderr: %s", r.code, r.stderr)
	}
}

// TestCRLSyncRefusals: crl sync's mistakes and failures are one line on
// stderr with the right exit code, and leave no file behind.
func TestCRLSyncRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	bundle := filepath.Join(f.work, "ca.pem")
	writeFile(t, bundle, string(f.curl(f.srv.httpURL+"/chain.pem").body)+string(f.curl(f.srv.httpURL+"/roots.pem").body))
	out := filepath.Join(f.work, "crl.pem")
	closed := "http://127.0.0.1:1" // nothing listens on port 1
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no url", []string{"--issuer", bundle, "--out", out, "--once"}, exitUsage, "needs --url"},
		{"no issuer", []string{"--url", f.srv.httpURL, "--out", out, "--once"}, exitUsage, "needs --issuer"},
		{"url names the CRL", []string{"--url", f.srv.httpURL + "/crl", "--issuer", bundle, "--out", out, "--once"}, exitUsage,
			"--url: " + f.srv.httpURL + "/crl is the URL of the CA's device CRL, not the base URL of its listener (give the base URL alone, here " + f.srv.httpURL},
		{"url not the CA", []string{"--url", f.srv.httpURL + "/elsewhere", "--issuer", bundle, "--out", out, "--once"}, exitError,
			"no device CRL could be had from " + f.srv.httpURL + "/elsewhere/crl"},
		{"every out of range", []string{"--url", f.srv.httpURL, "--issuer", bundle, "--out", out, "--every", "10ms"}, exitUsage, "outside 1s..24h"},
		{"issuer bundle missing", []string{"--url", f.srv.httpURL, "--issuer", "nope.pem", "--out", out, "--once"}, exitError, "cannot read the CA bundle"},
		{"CA unreachable", []string{"--url", closed, "--issuer", bundle, "--out", out, "--once"}, exitError, "no device CRL could be had"},
		{"reload fails", []string{"--url", f.srv.httpURL, "--issuer", bundle, "--out", out, "--once", "--exec", "echo nginx: bad config >&2; exit 3"}, exitError, "not reloaded"},
	} {
		r := f.fleetca(append([]string{"crl", "sync"}, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) || !strings.HasPrefix(r.stderr, "fleetca: ") && !strings.Contains(r.stderr, "\nfleetca: ") {
			t.Errorf("%s: exit %d, stderr %q; want exit %d and a fleetca: line saying %q", tc.name, r.code, r.stderr, tc.code, tc.want)
		}
		if tc.name != "reload fails" {
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: %s exists (%v); a failed sync must write nothing", tc.name, out, err)
			}
		}
	}
	// The failed reload is owed: the next run, with a working command,
	// runs it although the CRLs did not change.
	r := f.mustFleetca("crl", "sync", "--url", f.srv.httpURL, "--issuer", bundle, "--out", out, "--once", "--exec", "echo reloaded")
	if !strings.Contains(r.stdout, "unchanged; verifier reloaded") || !strings.Contains(r.stderr, "reloaded") {
		t.Errorf("crl sync after a failed reload: stdout %q stderr %q, want the reload retried", r.stdout, r.stderr)
	}
}
