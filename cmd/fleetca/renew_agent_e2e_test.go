package main

// End to end: `fleetca renew` as a subprocess against a real server (serve
// in-process, so that the test sets its clock back to issue certificates
// that are already inside their window or already expired: nothing here
// waits for time to pass).

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.step.sm/crypto/pemutil"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/client"
	"github.com/fleetca/fleetca/internal/testenv"
)

// shiftedClock is the in-process server's clock: the wall clock moved by
// an offset the test sets.
type shiftedClock struct{ offset atomic.Int64 }

func (c *shiftedClock) now() time.Time           { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *shiftedClock) set(offset time.Duration) { c.offset.Store(int64(offset)) }

// renewFixture is a CA served in-process with a shifted clock, a device
// validity of an hour, and renewal after expiry allowed for an hour.
type renewFixture struct {
	t          *testing.T
	bin, dir   string
	work       string
	root       string
	url        string
	clock      *shiftedClock
	adminToken string
}

func newRenewFixture(t *testing.T) *renewFixture {
	t.Helper()
	testenv.Need(t, "openssl")
	base := t.TempDir()
	rc := &renewFixture{t: t, bin: fleetcaBinary(t), dir: filepath.Join(base, "ca"), work: filepath.Join(base, "device"), clock: &shiftedClock{}}
	if err := os.Mkdir(rc.work, 0o755); err != nil {
		t.Fatal(err)
	}
	// The CA is made three hours ago, so that its intermediate is older
	// than the oldest device certificate of the tests.
	var stdout, stderr strings.Builder
	threeHoursAgo := func() time.Time { return time.Now().Add(-3 * time.Hour) }
	if code := run(t.Context(), initArgs(rc.dir, "--no-password"), env{stdout: &stdout, stderr: &stderr, stdin: strings.NewReader(""),
		getenv: func(string) string { return "" }, now: threeHoursAgo}); code != exitOK {
		t.Fatalf("init: exit %d; stderr: %s", code, stderr.String())
	}
	cfgFile := filepath.Join(rc.dir, "fleetca.yaml")
	cfg := readFile(t, cfgFile)
	for _, kv := range [][2]string{
		{`device_validity: "2160h0m0s"`, `device_validity: "1h"`},
		{`renew_after_expiry: "0s"`, `renew_after_expiry: "1h"`},
		{`renew_min_interval: "1h0m0s"`, `renew_min_interval: "1s"`},
	} {
		if !strings.Contains(cfg, "  "+kv[0]+"\n") {
			t.Fatalf("fleetca.yaml has no %q to change", kv[0])
		}
		cfg = strings.Replace(cfg, "  "+kv[0]+"\n", "  "+kv[1]+"\n", 1)
	}
	writeFile(t, cfgFile, cfg)
	rc.root = filepath.Join(rc.dir, "root.pem")
	rc.adminToken = strings.TrimSpace(readFile(t, filepath.Join(rc.dir, "admin-token")))
	var stop func() error
	rc.url, _, stop = startInProcessAt(t, rc.dir, nil, rc.clock.now)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("serve after cancel: %v", err)
		}
	})
	return rc
}

// enroll enrolls device id with the server's clock moved by shift, and
// writes its key and certificate (and chain) as `fleetca enroll` does, in
// the device's directory as ID.key and ID.crt.
func (rc *renewFixture) enroll(id string, shift time.Duration) (certFile, keyFile string, serial string) {
	t := rc.t
	t.Helper()
	rc.clock.set(shift)
	defer rc.clock.set(0)
	roots, err := client.ReadRoots(rc.root)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := client.New(client.Config{URL: rc.url, Roots: roots, AdminToken: rc.adminToken})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := admin.CreateToken(t.Context(), api.TokenRequest{DeviceID: id})
	if err != nil {
		t.Fatalf("create a token for %s: %v", id, err)
	}
	// The device checks what it gets on the CA's clock: an expired
	// certificate is what this test wants.
	dev, err := client.New(client.Config{URL: rc.url, Roots: roots, Now: rc.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
	if err != nil {
		t.Fatal(err)
	}
	out, err := dev.Enroll(t.Context(), tok.Token, csr)
	if err != nil {
		t.Fatalf("enroll %s: %v", id, err)
	}
	block, err := pemutil.Serialize(key, pemutil.WithPKCS8(true))
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(rc.work, id+".crt"), filepath.Join(rc.work, id+".key")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	writeFile(t, certFile, out.Chain)
	return certFile, keyFile, out.Serial
}

// renewArgs is `fleetca renew` for a device's files, with extra flags.
func (rc *renewFixture) renewArgs(certFile, keyFile string, extra ...string) []string {
	return append([]string{"renew", "--ca", rc.url, "--root", rc.root, "--cert", certFile, "--key", keyFile}, extra...)
}

// run runs the fleetca binary in the device's directory.
func (rc *renewFixture) run(args ...string) result {
	rc.t.Helper()
	return execIn(rc.t, rc.work, baseEnv(), rc.bin, args...)
}

// revoke revokes a device through the admin CLI.
func (rc *renewFixture) revoke(id string) {
	rc.t.Helper()
	r := execIn(rc.t, rc.work, baseEnv("FLEETCA_URL="+rc.url), rc.bin, "revoke", "--dir", rc.dir, "--device-id", id)
	if r.code != 0 {
		rc.t.Fatalf("fleetca revoke --device-id %s: exit %d; stderr: %s", id, r.code, r.stderr)
	}
}

// wantValidChain checks a certificate file with openssl verify, for TLS
// client use, and returns its leaf.
func (rc *renewFixture) wantValidChain(certFile string) *x509.Certificate {
	rc.t.Helper()
	r := execIn(rc.t, rc.work, baseEnv(), "openssl", "verify", "-purpose", "sslclient", "-CAfile", rc.root, "-untrusted", certFile, certFile)
	if r.code != 0 || !strings.Contains(r.stdout, ": OK") {
		rc.t.Errorf("openssl verify %s: exit %d, %s%s, want OK", filepath.Base(certFile), r.code, r.stdout, r.stderr)
	}
	return readCerts(rc.t, certFile)[0]
}

// renewDaemon is a running `fleetca renew --daemon`.
type renewDaemon struct {
	cmd   *exec.Cmd
	lines chan string // its stderr, line by line; closed at EOF
	log   *lockedBuffer
}

func (rc *renewFixture) startDaemon(args ...string) *renewDaemon {
	t := rc.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), serverTimeout)
	cmd := exec.CommandContext(ctx, rc.bin, args...)
	cmd.Dir, cmd.Env = rc.work, baseEnv()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	d := &renewDaemon{cmd: cmd, lines: make(chan string, 1000), log: &lockedBuffer{}}
	go func() {
		defer close(d.lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			d.log.Write([]byte(sc.Text() + "\n"))
			d.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		cancel()
		if t.Failed() {
			t.Logf("fleetca %s stderr:\n%s", strings.Join(args, " "), d.log.String())
		}
	})
	return d
}

// waitFor returns the first stderr line that matches, or fails the test
// when the daemon ends or startTimeout passes first.
func (d *renewDaemon) waitFor(t *testing.T, what string, match func(string) bool) string {
	t.Helper()
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	for {
		select {
		case line, ok := <-d.lines:
			if !ok {
				t.Fatalf("fleetca renew --daemon ended before it logged %s", what)
			}
			if match(line) {
				return line
			}
		case <-deadline.C:
			t.Fatalf("fleetca renew --daemon did not log %s within %s", what, startTimeout)
		}
	}
}

// wait returns the daemon's exit code once it ended by itself.
func (d *renewDaemon) wait(t *testing.T) int {
	t.Helper()
	for range d.lines { // to EOF
	}
	err := d.cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee) && ee.Exited():
		return ee.ExitCode()
	}
	t.Fatalf("fleetca renew --daemon: %v", err)
	return -1
}

// logEvent is a JSON log line of the daemon.
type logEvent struct {
	Msg          string `json:"msg"`
	Serial       string `json:"serial"`
	ParentSerial string `json:"parent_serial"`
	Kind         string `json:"kind"`
	AfterExpiry  bool   `json:"after_expiry"`
}

func parseEvent(line string) (logEvent, bool) {
	var ev logEvent
	return ev, json.Unmarshal([]byte(line), &ev) == nil && ev.Msg != ""
}

// TestRenewDaemonRenewsAndRunsExec: a certificate inside its window is
// renewed by the daemon on its own, over mutual TLS, the new chain
// verifies, the key stays, and --exec runs with the files named.
func TestRenewDaemonRenewsAndRunsExec(t *testing.T) {
	t.Parallel()
	rc := newRenewFixture(t)
	// Issued 50 minutes ago for an hour: two thirds of it are behind.
	certFile, keyFile, serial := rc.enroll("dev-1", -50*time.Minute)
	keyBefore := readFile(t, keyFile)

	// Trusting the CA by its root's fingerprint, as a device fresh from
	// the factory would.
	d := rc.startDaemon("renew", "--ca", rc.url, "--fingerprint", fileFingerprint(t, rc.root), "--cert", certFile, "--key", keyFile,
		"--daemon", "--exec", `echo "exec ran: $FLEETCA_CERT_FILE $FLEETCA_KEY_FILE"`)
	renewed := d.waitFor(t, `"renewed"`, func(l string) bool { ev, ok := parseEvent(l); return ok && ev.Msg == "renewed" })
	ev, _ := parseEvent(renewed)
	if ev.ParentSerial != serial || ev.Serial == "" || ev.Serial == serial || ev.Kind != "renew" || ev.AfterExpiry {
		t.Errorf("renewed event %s, want serial new, parent_serial %s, kind renew, not after expiry", renewed, serial)
	}
	execLine := d.waitFor(t, "the --exec output", func(l string) bool { return strings.HasPrefix(l, "exec ran: ") })
	if want := "exec ran: " + certFile + " " + keyFile; execLine != want {
		t.Errorf("--exec printed %q, want %q", execLine, want)
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := d.wait(t); code != 0 {
		t.Errorf("fleetca renew --daemon after SIGTERM: exit %d, want 0", code)
	}

	leaf := rc.wantValidChain(certFile)
	if got := leaf.SerialNumber.Text(16); got != ev.Serial {
		t.Errorf("%s holds serial %s, want the renewed %s", filepath.Base(certFile), got, ev.Serial)
	}
	if leaf.Subject.CommonName != "dev-1" || !samePublicKey(leaf.PublicKey, readKey(t, keyFile).Public()) {
		t.Errorf("renewed certificate: CN %q, key matches %v; want dev-1 and the device's key", leaf.Subject.CommonName, samePublicKey(leaf.PublicKey, readKey(t, keyFile).Public()))
	}
	if readFile(t, keyFile) != keyBefore {
		t.Errorf("the key file changed without --rekey")
	}

	// One shot, not due: it says when, and changes nothing.
	r := rc.run(rc.renewArgs(certFile, keyFile)...)
	if r.code != 0 || !regexp.MustCompile(`\Adevice dev-1: certificate `+ev.Serial+` \(valid until \S+\) is due for renewal at \S+, by the CA; nothing to do\n\z`).MatchString(r.stdout) {
		t.Errorf("fleetca renew (not due): exit %d, stdout %q, stderr %q; want 0 and when it is due", r.code, r.stdout, r.stderr)
	}

	// One shot, --force --rekey (30 s later by the CA's clock, past
	// renew_min_interval): a new key, mode 0600, that the new
	// certificate certifies.
	rc.clock.set(30 * time.Second)
	r = rc.run(rc.renewArgs(certFile, keyFile, "--force", "--rekey")...)
	rc.clock.set(0)
	if r.code != 0 || !regexp.MustCompile(`\Arenewed device dev-1: serial [0-9a-f]+, valid until \S+, was `+ev.Serial+` \(with a new key\)\n\z`).MatchString(r.stdout) {
		t.Fatalf("fleetca renew --force --rekey: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	leaf = rc.wantValidChain(certFile)
	if readFile(t, keyFile) == keyBefore || !samePublicKey(leaf.PublicKey, readKey(t, keyFile).Public()) {
		t.Errorf("after --rekey: key changed %v, certificate certifies it %v; want both", readFile(t, keyFile) != keyBefore,
			samePublicKey(leaf.PublicKey, readKey(t, keyFile).Public()))
	}
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file after --rekey: %v, mode %v, want 0600", err, st.Mode().Perm())
	}
	if names := dirNames(t, rc.work); len(names) != 2 {
		t.Errorf("the device's directory holds %q, want the certificate and the key only", names)
	}
}

// TestRenewDaemonStopsWhenRevoked: after `fleetca revoke --device-id` the
// daemon stops with exit 1 and one line that says what to do.
func TestRenewDaemonStopsWhenRevoked(t *testing.T) {
	t.Parallel()
	rc := newRenewFixture(t)
	certFile, keyFile, _ := rc.enroll("dev-1", -50*time.Minute)
	before := readFile(t, certFile)
	rc.revoke("dev-1")

	d := rc.startDaemon(rc.renewArgs(certFile, keyFile, "--daemon", "--exec", "echo exec ran")...)
	if code := d.wait(t); code != exitError {
		t.Errorf("fleetca renew --daemon of a revoked device: exit %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSuffix(d.log.String(), "\n"), "\n")
	last := lines[len(lines)-1] + "\n"
	t.Logf("the daemon's last line: %s", last)
	if !oneLineError.MatchString(last) || !strings.Contains(last, "revoked") {
		t.Errorf("last stderr line %q, want one line \"fleetca: ... revoked ... (hint)\"", last)
	}
	if strings.Contains(d.log.String(), "exec ran") {
		t.Errorf("--exec ran, want it not to without a renewal")
	}
	if readFile(t, certFile) != before {
		t.Errorf("the certificate file changed, want it kept")
	}
}

// TestRenewAfterExpiry: an expired certificate renews with the renewal
// token within ca.renew_after_expiry, and is refused past it.
func TestRenewAfterExpiry(t *testing.T) {
	t.Parallel()
	rc := newRenewFixture(t)
	// Issued 80 minutes ago for an hour: expired 20 minutes ago, within
	// the hour of grace.
	certFile, keyFile, serial := rc.enroll("dev-1", -80*time.Minute)
	r := rc.run(rc.renewArgs(certFile, keyFile)...)
	if r.code != 0 || !regexp.MustCompile(`\Arenewed device dev-1: serial [0-9a-f]+, valid until \S+, was `+serial+` \(after expiry, with a renewal token\)\n\z`).MatchString(r.stdout) {
		t.Errorf("fleetca renew (expired 20 minutes ago): exit %d, stdout %q, stderr %q; want it renewed with a token", r.code, r.stdout, r.stderr)
	}
	if leaf := rc.wantValidChain(certFile); !leaf.NotAfter.After(time.Now()) {
		t.Errorf("renewed certificate valid until %s, want a date to come", leaf.NotAfter)
	}

	// Expired 80 minutes ago: past the grace.
	certFile, keyFile, _ = rc.enroll("dev-2", -140*time.Minute)
	before := readFile(t, certFile)
	r = rc.run(rc.renewArgs(certFile, keyFile)...)
	t.Logf("past the grace: %s", r.stderr)
	if r.code != exitError || !oneLineError.MatchString(r.stderr) || r.stdout != "" {
		t.Errorf("fleetca renew (expired 80 minutes ago): exit %d, stdout %q, stderr %q; want exit 1 and one line", r.code, r.stdout, r.stderr)
	}
	if readFile(t, certFile) != before {
		t.Errorf("the certificate file changed, want it kept")
	}
}

// TestRenewDaemonTrust: a daemon that trusts a fingerprint keeps trying
// while the CA cannot be reached (a device that boots offline), and stops
// at once, exit 1, when the CA has no root of that fingerprint.
func TestRenewDaemonTrust(t *testing.T) {
	t.Parallel()
	rc := newRenewFixture(t)
	certFile, keyFile, _ := rc.enroll("dev-1", -50*time.Minute)
	fp := fileFingerprint(t, rc.root)

	const offline = "https://127.0.0.1:1" // nothing listens: refused at once
	d := rc.startDaemon("renew", "--ca", offline, "--fingerprint", fp, "--cert", certFile, "--key", keyFile, "--daemon")
	d.waitFor(t, "a retry", func(l string) bool { ev, ok := parseEvent(l); return ok && ev.Msg == "renewal failed; trying again" })
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := d.wait(t); code != 0 {
		t.Errorf("fleetca renew --daemon (CA offline) after SIGTERM: exit %d, want 0", code)
	}

	other := strings.Repeat("0", 64)
	d = rc.startDaemon("renew", "--ca", rc.url, "--fingerprint", other, "--cert", certFile, "--key", keyFile, "--daemon")
	if code := d.wait(t); code != exitError {
		t.Errorf("fleetca renew --daemon with another CA's fingerprint: exit %d, want 1", code)
	}
	if last := d.log.String(); !oneLineError.MatchString(last) || !strings.Contains(last, "no root with fingerprint") {
		t.Errorf("stderr %q, want one line saying the CA has no such root", last)
	}
}
