package main

// Helpers of the end-to-end tests: building the binary, running it and the
// server, curl, and reading certificates.

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetca/fleetca/internal/pgtest"
)

const (
	// cmdTimeout bounds every short-lived subprocess (fleetca, openssl, curl).
	cmdTimeout = 30 * time.Second
	// serverTimeout bounds a whole fleetca serve process; startTimeout its
	// start-up, in or out of process (generous: the race detector is slow).
	serverTimeout = 2 * time.Minute
	startTimeout  = time.Minute
)

var (
	// binDir holds the fleetca binary the tests share; TestMain makes and removes it.
	binDir    string
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fleetca-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "make a directory for the fleetca binary:", err)
		os.Exit(1)
	}
	binDir = dir
	// The PostgreSQL tests' server (pgtest) starts on first use, with an
	// empty template: init and serve create the schema.
	code := pgtest.Run(m, nil)
	os.RemoveAll(dir)
	os.Exit(code)
}

// fleetcaBinary builds ./cmd/fleetca once per test binary and returns its path.
func fleetcaBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
		defer cancel()
		bin := filepath.Join(binDir, "fleetca")
		cmd := exec.CommandContext(ctx, goTool, "build", "-o", bin, "./cmd/fleetca")
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/fleetca: %w\n%s", err, out)
			return
		}
		binPath = bin
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// result is what a finished subprocess left.
type result struct {
	stdout, stderr string
	code           int
}

// execIn runs name with args in dir, with env, under cmdTimeout. A process
// that could not run, or was killed, fails the test; an exit code is returned.
func execIn(t *testing.T, dir string, env []string, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = dir, env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		r.code = ee.ExitCode()
	default:
		t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", filepath.Base(name), strings.Join(args, " "), err, r.stdout, r.stderr)
	}
	return r
}

// baseEnv is the environment of the subprocesses: ours, without FLEETCA_*
// variables that would change what the commands do.
func baseEnv(extra ...string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "FLEETCA_") })
	return append(env, extra...)
}

// oneLineError matches the CLI's error output: one line, "fleetca: detail (hint)".
var oneLineError = regexp.MustCompile(`\Afleetca: [^\n]+ \([^\n]+\)\n\z`)

// server is a running `fleetca serve` process.
type server struct {
	cmd               *exec.Cmd
	cancel            context.CancelFunc
	httpsURL, httpURL string
	metricsURL        string // http://host:port/metrics
	fingerprint       string
	log               *lockedBuffer
	eof               chan struct{} // closed when the process's stderr ends
	stopped           bool
}

// lockedBuffer collects a server's stderr for failure messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startServer runs `fleetca serve --dir dir` and returns once it printed
// its "listening" log line (with the kernel-chosen ports) and its banner's
// root fingerprint. The process is stopped with SIGTERM when the test ends.
func startServer(t *testing.T, bin, dir string, env []string) *server {
	t.Helper()
	// Not t.Context(): it ends before the cleanup below sends SIGTERM.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), serverTimeout)
	cmd := exec.CommandContext(ctx, bin, "serve", "--dir", dir)
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		cancel()
		t.Fatalf("stderr pipe: %v", err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start fleetca serve: %v", err)
	}
	s := &server{cmd: cmd, cancel: cancel, log: &lockedBuffer{}, eof: make(chan struct{})}
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			t.Logf("fleetca serve --dir %s stderr:\n%s", dir, s.log.String())
		}
	})

	type urls struct{ https, http, metrics, fingerprint string }
	ready := make(chan urls, 1)
	go func() {
		defer close(s.eof)
		var u urls
		sent := false
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(s.log, line)
			if sent {
				continue
			}
			var ev struct{ Msg, HTTPS, HTTP, Metrics string }
			if json.Unmarshal([]byte(line), &ev) == nil && ev.Msg == "listening" {
				u.https, u.http, u.metrics = ev.HTTPS, ev.HTTP, ev.Metrics
			}
			if _, fp, ok := strings.Cut(line, "root SHA-256 fingerprint:"); ok {
				u.fingerprint = strings.TrimSpace(fp)
			}
			if u.https != "" && u.http != "" && u.fingerprint != "" {
				ready <- u
				sent = true
			}
		}
		// Keep reading to EOF so that the server never blocks on a full pipe.
	}()
	startCtx, cancelStart := context.WithTimeout(t.Context(), startTimeout)
	defer cancelStart()
	select {
	case u := <-ready:
		s.httpsURL, s.httpURL, s.metricsURL, s.fingerprint = u.https, u.http, u.metrics, u.fingerprint
		// Start-up issues one OCSP responder certificate, and says so once.
		if n := strings.Count(s.log.String(), `"msg":"OCSP responder certificate issued"`); n != 1 {
			t.Errorf("fleetca serve logged \"OCSP responder certificate issued\" %d times at start-up, want 1", n)
		}
	case <-s.eof:
		t.Fatalf("fleetca serve exited before it listened; stderr:\n%s", s.log.String())
	case <-startCtx.Done():
		t.Fatalf("fleetca serve did not log \"listening\" and its fingerprint within %s; stderr:\n%s", startTimeout, s.log.String())
	}
	return s
}

// stop sends SIGTERM and checks the server shut down gracefully: exit 0,
// after logging "stopped".
func (s *server) stop(t *testing.T) {
	t.Helper()
	if s.stopped {
		return
	}
	s.stopped = true
	defer s.cancel()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("send SIGTERM to fleetca serve: %v", err)
	}
	<-s.eof // serverTimeout kills the process if SIGTERM does not end it
	if err := s.cmd.Wait(); err != nil {
		t.Errorf("fleetca serve after SIGTERM: %v, want exit status 0", err)
	}
	if !strings.Contains(s.log.String(), `"msg":"stopped"`) {
		t.Errorf("fleetca serve stderr has no \"stopped\" log line after SIGTERM")
	}
}

// fixture is one CA in a data directory, its server, and a working
// directory where the "user" types commands.
type fixture struct {
	t       *testing.T
	bin     string
	dataDir string // D
	work    string // the user's current directory
	root    string // D/root.pem
	srv     *server
	client  *http.Client // trusts only the root
	// extraEnv is added to the environment of every fleetca the fixture
	// runs, servers included (PGPASSWORD).
	extraEnv []string
}

// newFixture inits a CA named "E2E Test" with ports 0 and starts its server.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := initFixture(t)
	f.start()
	return f
}

// initFixture inits a CA named "E2E Test" with ports 0, and starts no
// server: the test may change the data directory first, then call start.
func initFixture(t *testing.T) *fixture {
	t.Helper()
	return initFixtureWith(t)
}

// initFixtureWith is initFixture with more init flags (--store DSN).
func initFixtureWith(t *testing.T, initFlags ...string) *fixture {
	t.Helper()
	bin := fleetcaBinary(t)
	base := t.TempDir()
	f := &fixture{t: t, bin: bin, dataDir: filepath.Join(base, "D"), work: filepath.Join(base, "work")}
	f.root = filepath.Join(f.dataDir, "root.pem")
	if err := os.Mkdir(f.work, 0o755); err != nil {
		t.Fatal(err)
	}
	r := f.fleetca(append([]string{"init", "--dir", f.dataDir, "--name", "E2E Test", "--no-password",
		"--https-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"}, initFlags...)...)
	if r.code != 0 {
		t.Fatalf("fleetca init: exit %d, want 0; stderr: %s", r.code, r.stderr)
	}
	wantFP := fileFingerprint(t, f.root)
	if !strings.Contains(r.stdout, "SHA-256 fingerprint "+wantFP) {
		t.Errorf("fleetca init stdout = %q, want it to give the root fingerprint %s", r.stdout, wantFP)
	}
	pool := x509.NewCertPool()
	pool.AddCert(readCerts(t, f.root)[0])
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	f.client = &http.Client{Transport: tr, Timeout: cmdTimeout}
	return f
}

// start runs the server on f's data directory (again).
func (f *fixture) start() {
	f.t.Helper()
	f.srv = startServer(f.t, f.bin, f.dataDir, baseEnv(f.extraEnv...))
	// Registered after startServer's cleanup, so it runs before the
	// server's stop, which then need not wait for our idle connections.
	f.t.Cleanup(f.client.CloseIdleConnections)
	if want := fileFingerprint(f.t, f.root); f.srv.fingerprint != want {
		f.t.Errorf("serve banner fingerprint = %s, want %s (SHA-256 of root.pem)", f.srv.fingerprint, want)
	}
}

// env is the admin commands' environment: the server's HTTPS URL is not in
// fleetca.yaml (its port was 0), so FLEETCA_URL gives it.
func (f *fixture) env() []string {
	return baseEnv(append([]string{"FLEETCA_URL=" + f.srv.httpsURL}, f.extraEnv...)...)
}

// fleetca runs the binary in the work directory.
func (f *fixture) fleetca(args ...string) result {
	f.t.Helper()
	env := baseEnv(f.extraEnv...)
	if f.srv != nil {
		env = f.env()
	}
	return execIn(f.t, f.work, env, f.bin, args...)
}

// mustFleetca runs the binary and fails the test unless it exits 0.
func (f *fixture) mustFleetca(args ...string) result {
	f.t.Helper()
	r := f.fleetca(args...)
	if r.code != 0 {
		f.t.Fatalf("fleetca %s: exit %d, want 0; stderr: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r
}

// tool runs an external program (openssl, curl) in the work directory.
func (f *fixture) tool(name string, args ...string) result {
	f.t.Helper()
	return execIn(f.t, f.work, baseEnv(), name, args...)
}

// mustTool runs an external program and fails the test unless it exits 0.
func (f *fixture) mustTool(name string, args ...string) result {
	f.t.Helper()
	r := f.tool(name, args...)
	if r.code != 0 {
		f.t.Fatalf("%s %s: exit %d, want 0; stdout: %s\nstderr: %s", name, strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// token mints an enrollment token with `fleetca token create` and returns it
// and its ID.
func (f *fixture) token(args ...string) (token, id string) {
	f.t.Helper()
	r := f.mustFleetca(append([]string{"token", "create", "--dir", f.dataDir, "--json"}, args...)...)
	var tj struct{ Token, ID string }
	if err := json.Unmarshal([]byte(r.stdout), &tj); err != nil || tj.Token == "" || tj.ID == "" {
		f.t.Fatalf("fleetca token create --json stdout = %q (%v), want a token and its id", r.stdout, err)
	}
	return tj.Token, tj.ID
}

// plainToken mints a token as a script would: T=$(fleetca token create ...).
func (f *fixture) plainToken(args ...string) string {
	f.t.Helper()
	r := f.mustFleetca(append([]string{"token", "create", "--dir", f.dataDir}, args...)...)
	tok, rest, _ := strings.Cut(r.stdout, "\n")
	if tok == "" || rest != "" || strings.ContainsAny(tok, " \t") {
		f.t.Fatalf("fleetca token create stdout = %q, want the token alone on one line", r.stdout)
	}
	return tok
}

// httpResult is a response as curl saw it.
type httpResult struct {
	status int
	header http.Header
	body   []byte
}

// curl runs curl against the server with the root as its only trust anchor
// and returns the response: status, headers of the last response, body.
func (f *fixture) curl(args ...string) httpResult {
	f.t.Helper()
	dir, err := os.MkdirTemp(f.work, "curl-")
	if err != nil {
		f.t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	hdr, body := filepath.Join(dir, "headers"), filepath.Join(dir, "body")
	r := f.tool("curl", append([]string{"-sS", "--cacert", f.root, "-D", hdr, "-o", body, "-w", "%{http_code}"}, args...)...)
	if r.code != 0 {
		f.t.Fatalf("curl %s: exit %d; stderr: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	var res httpResult
	if res.status, err = strconv.Atoi(strings.TrimSpace(r.stdout)); err != nil {
		f.t.Fatalf("curl -w %%{http_code} printed %q", r.stdout)
	}
	if res.body, err = os.ReadFile(body); err != nil && !errors.Is(err, os.ErrNotExist) {
		f.t.Fatal(err)
	}
	raw, err := os.ReadFile(hdr)
	if err != nil {
		f.t.Fatal(err)
	}
	blocks := strings.Split(strings.TrimSpace(strings.ReplaceAll(string(raw), "\r\n", "\n")), "\n\n")
	tp := textproto.NewReader(bufio.NewReader(strings.NewReader(blocks[len(blocks)-1] + "\n\n")))
	if _, err := tp.ReadLine(); err != nil { // the status line
		f.t.Fatalf("curl headers %q: %v", raw, err)
	}
	mh, err := tp.ReadMIMEHeader()
	if err != nil && !errors.Is(err, io.EOF) {
		f.t.Fatalf("curl headers %q: %v", raw, err)
	}
	res.header = http.Header(mh)
	return res
}

// problem is an RFC 9457 body as fleetca sends it.
type problem struct {
	Type, Title, Detail, Hint string
	Status                    int
}

// wantProblem checks a refusal: status, problem content type, type URI.
func (f *fixture) wantProblem(what string, res httpResult, status int, kind string) problem {
	f.t.Helper()
	if res.status != status {
		f.t.Errorf("%s: status = %d, want %d; body: %s", what, res.status, status, res.body)
	}
	if ct := res.header.Get("Content-Type"); ct != "application/problem+json" {
		f.t.Errorf("%s: Content-Type = %q, want application/problem+json", what, ct)
	}
	var p problem
	if err := json.Unmarshal(res.body, &p); err != nil {
		f.t.Errorf("%s: body %q is not JSON: %v", what, res.body, err)
	}
	if want := "urn:fleetca:problem:" + kind; p.Type != want {
		f.t.Errorf("%s: problem type = %q, want %q", what, p.Type, want)
	}
	if p.Status != status || p.Detail == "" {
		f.t.Errorf("%s: problem status, detail = %d, %q, want %d and a detail", what, p.Status, p.Detail, status)
	}
	return p
}

// adminGET reads the admin API with the admin token, through Go's client.
func (f *fixture) adminGET(path string, out any) {
	f.t.Helper()
	tok, err := os.ReadFile(filepath.Join(f.dataDir, "admin-token"))
	if err != nil {
		f.t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(f.t.Context(), "GET", f.srv.httpsURL+path, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := f.client.Do(req)
	if err != nil {
		f.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		f.t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		f.t.Fatalf("GET %s: status %d, want 200; body: %s", path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		f.t.Fatalf("GET %s: %v", path, err)
	}
}

// tokenSpent returns how many uses of the token with this ID are spent.
func (f *fixture) tokenSpent(id string) int {
	f.t.Helper()
	// Every page: a CA with more tokens than a page (a factory's bulk
	// mint) lists this one on any of them.
	after := ""
	for {
		var page struct {
			Tokens []struct {
				ID    string
				Spent int
			}
			Next string
		}
		f.adminGET("/v1/admin/tokens?limit=1000&after="+url.QueryEscape(after), &page)
		for _, tk := range page.Tokens {
			if tk.ID == id {
				return tk.Spent
			}
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	f.t.Fatalf("token %s is not in the admin token list", id)
	return 0
}

// opensslCSR makes a key and CSR with openssl req in the work directory.
func (f *fixture) opensslCSR(newkey, cn, name string, pkeyopts ...string) {
	f.t.Helper()
	args := []string{"req", "-new", "-newkey", newkey}
	for _, o := range pkeyopts {
		args = append(args, "-pkeyopt", o)
	}
	args = append(args, "-nodes", "-keyout", name+".key", "-subj", "/CN="+cn, "-out", name+".csr")
	if r := f.tool("openssl", args...); r.code != 0 {
		f.t.Fatalf("openssl %s: exit %d; stderr: %s", strings.Join(args, " "), r.code, r.stderr)
	}
}

// enrollment is the 201 answer of POST /v1/enroll.
type enrollment struct {
	DeviceID    string `json:"device_id"`
	Serial      string `json:"serial"`
	NotAfter    string `json:"not_after"`
	Certificate string `json:"certificate"`
	Chain       string `json:"chain"`
}

// enrolledLine is `fleetca enroll`'s success output.
var enrolledLine = regexp.MustCompile(`\Aenrolled device (\S+): serial ([0-9a-f]+), valid until (\S+)\n\z`)

// fleetcaEnroll runs `fleetca enroll` as a device would and returns the serial.
func (f *fixture) fleetcaEnroll(token, name string, extra ...string) string {
	f.t.Helper()
	args := append([]string{"enroll", "--ca", f.srv.httpsURL, "--fingerprint", f.srv.fingerprint, "--token", token,
		"--key", name + ".key", "--cert", name + ".crt"}, extra...)
	r := f.mustFleetca(args...)
	m := enrolledLine.FindStringSubmatch(r.stdout)
	if m == nil {
		f.t.Fatalf("fleetca enroll stdout = %q, want \"enrolled device ID: serial HEX, valid until TIME\"", r.stdout)
	}
	return m[2]
}

func (f *fixture) with(t *testing.T) *fixture {
	g := *f
	g.t = t
	return &g
}

func checkDeviceCert(t *testing.T, c *x509.Certificate, device, serial string) {
	t.Helper()
	if c.Subject.CommonName != device {
		t.Errorf("certificate subject CN = %q, want %q", c.Subject.CommonName, device)
	}
	var uris []string
	for _, u := range c.URIs {
		uris = append(uris, u.String())
	}
	if want := []string{"spiffe://e2e-test/device/" + device}; !slices.Equal(uris, want) {
		t.Errorf("certificate URI SANs = %v, want %v", uris, want)
	}
	if got := c.SerialNumber.Text(16); got != serial {
		t.Errorf("certificate serial = %s, want %s (as reported)", got, serial)
	}
	if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("certificate EKU = %v, want [clientAuth]", c.ExtKeyUsage)
	}
}

// newCSRPEM makes a P-256 key and a CSR for CN=cn, as a device would.
func newCSRPEM(t *testing.T, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// parseCerts decodes every CERTIFICATE block of a PEM bundle.
func parseCerts(t *testing.T, b []byte) []*x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return certs
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("parse certificate: %v", err)
		}
		certs = append(certs, c)
	}
}

func readCerts(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	certs := parseCerts(t, []byte(readFile(t, path)))
	if len(certs) == 0 {
		t.Fatalf("%s holds no PEM certificate", path)
	}
	return certs
}

func readCSR(t *testing.T, path string) *x509.CertificateRequest {
	t.Helper()
	block, _ := pem.Decode([]byte(readFile(t, path)))
	if block == nil {
		t.Fatalf("%s is not PEM", path)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return csr
}

// readKey reads a PKCS #8 PEM private key.
func readKey(t *testing.T, path string) crypto.Signer {
	t.Helper()
	block, _ := pem.Decode([]byte(readFile(t, path)))
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("%s is not a PEM PRIVATE KEY", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		t.Fatalf("%s holds a %T, not a signer", path, k)
	}
	return s
}

func samePublicKey(a, b crypto.PublicKey) bool {
	ka, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ka.Equal(b)
}

// fileFingerprint is the SHA-256 of the first certificate in a PEM file, hex.
func fileFingerprint(t *testing.T, path string) string {
	t.Helper()
	sum := sha256.Sum256(readCerts(t, path)[0].Raw)
	return hex.EncodeToString(sum[:])
}

// dirNames lists a directory's entries, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
