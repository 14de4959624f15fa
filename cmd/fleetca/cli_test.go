package main

// In-process tests of the CLI: run(ctx, args, env) with buffers, and
// runServe on loopback listeners the test opens.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetca/fleetca/client"
	"github.com/fleetca/fleetca/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite cmd/fleetca/testdata/*.golden from the current output")

// cliResult is what an in-process run left.
type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI runs the command line in-process; vars is the whole environment.
func runCLI(t *testing.T, vars map[string]string, args ...string) cliResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, env{stdout: &stdout, stderr: &stderr, stdin: strings.NewReader(""),
		getenv: func(k string) string { return vars[k] }})
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// oneLine is the CLI's line for err, without a command's flags.
func oneLine(err error) string { return errorLine(nil, err) }

// wantOneLine checks an error's CLI output: exit code, nothing on stdout,
// one line "fleetca: ..." on stderr.
func wantOneLine(t *testing.T, what string, r cliResult, code int) {
	t.Helper()
	if r.code != code {
		t.Errorf("%s: exit %d, want %d; stderr: %q", what, r.code, code, r.stderr)
	}
	if !strings.HasPrefix(r.stderr, "fleetca: ") || strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
		t.Errorf("%s: stderr = %q, want one line \"fleetca: ...\"", what, r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("%s: stdout = %q, want nothing", what, r.stdout)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	for _, tc := range []struct {
		name string
		args []string
		want string // in the error line
	}{
		{"init without --dir", []string{"init", "--name", "X", "--no-password"}, "--dir"},
		{"init without --name", []string{"init", "--dir", dir, "--no-password"}, "--name"},
		{"token create with an ID and a pattern", []string{"token", "create", "--device-id", "a", "--device-pattern", "b*"}, "exactly one"},
		{"token create with neither", []string{"token", "create"}, "exactly one"},
		{"unknown flag", []string{"init", "--bogus"}, "--bogus"},
		{"unknown subcommand", []string{"frobnicate"}, "frobnicate"},
		{"devices show without an ID", []string{"devices", "show"}, "arg"},
		{"enroll without --ca", []string{"enroll", "--token", "t", "--key", "k", "--cert", "c"}, "--ca"},
		{"enroll with --csr and --key", []string{"enroll", "--ca", "https://127.0.0.1:1", "--fingerprint", "00", "--token", "t",
			"--csr", "c.csr", "--key", "k", "--cert", "c"}, "--key"},
		{"enroll with a short fingerprint", []string{"enroll", "--ca", "https://127.0.0.1:1", "--fingerprint", "abcd", "--token", "t",
			"--key", filepath.Join(dir, "k"), "--cert", filepath.Join(dir, "c")}, "64 hex digits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, nil, tc.args...)
			wantOneLine(t, "fleetca "+strings.Join(tc.args, " "), r, exitUsage)
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr = %q, want it to mention %q", r.stderr, tc.want)
			}
		})
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("after usage errors, stat %s: %v, want it not to exist", dir, err)
	}
}

// initArgs are the flags of a CA on kernel-chosen loopback ports.
func initArgs(dir string, extra ...string) []string {
	return append([]string{"init", "--dir", dir, "--name", "CLI Test", "--https-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"}, extra...)
}

func TestInitNeedsAPasswordChoice(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	r := runCLI(t, nil, initArgs(dir)...)
	wantOneLine(t, "init with no password choice", r, exitUsage)
	if !strings.Contains(r.stderr, "--no-password") || !strings.Contains(r.stderr, "FLEETCA_PASSWORD") {
		t.Errorf("stderr = %q, want it to name --password-file, FLEETCA_PASSWORD and --no-password", r.stderr)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("after a refused init, stat %s: %v, want it not to exist", dir, err)
	}
}

func TestInitRefusesReadablePasswordFile(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	pw := filepath.Join(base, "password")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(pw, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "ca")
	r := runCLI(t, nil, initArgs(dir, "--password-file", pw)...)
	wantOneLine(t, "init --password-file (mode 0644)", r, exitError)
	if !strings.Contains(r.stderr, "chmod 600") {
		t.Errorf("stderr = %q, want the hint chmod 600", r.stderr)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("after a refused init, stat %s: %v, want it not to exist", dir, err)
	}
}

func TestInitTwiceKeepsTheFirstCA(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	if r := runCLI(t, nil, initArgs(dir, "--no-password")...); r.code != exitOK {
		t.Fatalf("first init: exit %d, want 0; stderr: %q", r.code, r.stderr)
	}
	files := []string{"root.pem", "intermediate.pem", "fleetca.yaml", "admin-token", "secrets/root.key", "secrets/intermediate.key"}
	before := map[string]string{}
	for _, name := range files {
		before[name] = readFile(t, filepath.Join(dir, name))
	}
	fingerprint := fileFingerprint(t, filepath.Join(dir, "root.pem"))

	r := runCLI(t, nil, "init", "--dir", dir, "--name", "Other", "--no-password", "--https-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	wantOneLine(t, "second init", r, exitError)
	for _, name := range files {
		if got := readFile(t, filepath.Join(dir, name)); got != before[name] {
			t.Errorf("second init changed %s", name)
		}
	}
	if got := fileFingerprint(t, filepath.Join(dir, "root.pem")); got != fingerprint {
		t.Errorf("root fingerprint after a second init = %s, want %s", got, fingerprint)
	}
}

// startInProcess runs runServe on fresh loopback listeners and returns its
// URLs once ready, and a stop function that returns runServe's error.
func startInProcess(t *testing.T, dir string, vars map[string]string) (httpsURL, httpURL string, stop func() error) {
	t.Helper()
	return startInProcessAt(t, dir, vars, nil)
}

// servedCA is a new CA, served in-process until the test ends (startCA).
type servedCA struct {
	dir, httpsURL, httpURL string
}

// startCA inits a CA without a password in a new directory, with extra
// init flags, and serves it in-process (startInProcess) until the test
// ends.
func startCA(t *testing.T, extra ...string) servedCA {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	if r := runCLI(t, nil, initArgs(dir, append([]string{"--no-password"}, extra...)...)...); r.code != exitOK {
		t.Fatalf("init: exit %d, want 0; stderr: %q", r.code, r.stderr)
	}
	httpsURL, httpURL, stop := startInProcess(t, dir, nil)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("runServe after cancel: %v, want nil", err)
		}
	})
	return servedCA{dir: dir, httpsURL: httpsURL, httpURL: httpURL}
}

// startInProcessAt is startInProcess with the server's clock (nil:
// time.Now).
func startInProcessAt(t *testing.T, dir string, vars map[string]string, now func() time.Time) (httpsURL, httpURL string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	type urls struct{ https, http string }
	ready := make(chan urls, 1)
	errc := make(chan error, 1)
	var stderr lockedBuffer
	go func() {
		errc <- runServe(ctx, env{stdout: io.Discard, stderr: &stderr, stdin: strings.NewReader(""), getenv: func(k string) string { return vars[k] }},
			serveOptions{dir: dir, httpsListener: testenv.Listen(t), httpListener: testenv.Listen(t),
				ready: func(hs, h string) { ready <- urls{hs, h} }, now: now})
	}()
	select {
	case u := <-ready:
		return u.https, u.http, func() error {
			cancel()
			return <-errc
		}
	case err := <-errc:
		cancel()
		t.Fatalf("runServe returned before it was ready: %v; stderr:\n%s", err, stderr.String())
	case <-time.After(startTimeout):
		cancel()
		t.Fatalf("runServe was not ready within %s; stderr:\n%s", startTimeout, stderr.String())
	}
	return "", "", nil
}

// serveError runs runServe and returns the error it stops with; a server
// that starts instead fails the test.
func serveError(t *testing.T, dir string, vars map[string]string) error {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	started := false
	err := runServe(ctx, env{stdout: io.Discard, stderr: io.Discard, stdin: strings.NewReader(""), getenv: func(k string) string { return vars[k] }},
		serveOptions{dir: dir, httpsListener: testenv.Listen(t), httpListener: testenv.Listen(t),
			ready: func(string, string) { started = true; cancel() }})
	if started || err == nil {
		t.Fatalf("runServe started (error %v), want it to refuse", err)
	}
	return err
}

// TestServeRefusesReadableKeyFile: serve stops, with one line naming the
// key file and the chmod that fixes it, when the intermediate key is
// readable by others; after the chmod it starts.
func TestServeRefusesReadableKeyFile(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	if r := runCLI(t, nil, initArgs(dir, "--no-password")...); r.code != exitOK {
		t.Fatalf("init: exit %d, want 0; stderr: %q", r.code, r.stderr)
	}
	key := filepath.Join(dir, "secrets", "intermediate.key")
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	line := oneLine(serveError(t, dir, nil))
	if strings.Contains(line, "\n") || !strings.Contains(line, key) || !strings.Contains(line, "chmod 600 "+key) {
		t.Errorf("serve with a 0644 intermediate key: error %q, want one line naming %s and chmod 600 %s", line, key, key)
	}
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, stop := startInProcess(t, dir, nil)
	if err := stop(); err != nil {
		t.Errorf("runServe after cancel: %v, want nil", err)
	}
}

func TestEncryptedKeys(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	pw := map[string]string{"FLEETCA_PASSWORD": "correct horse battery staple"}
	if r := runCLI(t, pw, initArgs(dir)...); r.code != exitOK {
		t.Fatalf("init with FLEETCA_PASSWORD: exit %d, want 0; stderr: %q", r.code, r.stderr)
	}
	keys, err := filepath.Glob(filepath.Join(dir, "secrets", "*.key"))
	if err != nil || len(keys) != 4 {
		t.Fatalf("secrets/*.key = %v (%v), want the root, intermediate, step provisioner and audit keys", keys, err)
	}
	for _, k := range keys {
		if got := readFile(t, k); !strings.Contains(got, "-----BEGIN ENCRYPTED PRIVATE KEY-----") {
			t.Errorf("%s does not hold an ENCRYPTED PRIVATE KEY:\n%s", filepath.Base(k), got)
		}
	}

	line := oneLine(serveError(t, dir, nil))
	if strings.Contains(line, "\n") || !strings.Contains(line, "FLEETCA_PASSWORD") {
		t.Errorf("serve without the password: error %q, want one line naming FLEETCA_PASSWORD", line)
	}

	httpsURL, httpURL, stop := startInProcess(t, dir, pw)
	roots, err := client.ReadRoots(filepath.Join(dir, "root.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(roots[0])
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: cmdTimeout}
	for _, u := range []string{httpsURL + "/healthz", httpURL + "/healthz", httpURL + "/roots.pem"} {
		req, err := http.NewRequestWithContext(t.Context(), "GET", u, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200", u, resp.StatusCode)
		}
	}
	tr.CloseIdleConnections()
	if err := stop(); err != nil {
		t.Errorf("runServe after cancel: %v, want nil", err)
	}
}

func TestServeRefusesUnknownConfigKey(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	if r := runCLI(t, nil, initArgs(dir, "--no-password")...); r.code != exitOK {
		t.Fatalf("init: exit %d, want 0; stderr: %q", r.code, r.stderr)
	}
	f, err := os.OpenFile(filepath.Join(dir, "fleetca.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("bogus_key: 1\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	line := oneLine(serveError(t, dir, nil))
	if strings.Contains(line, "\n") || !strings.Contains(line, "bogus_key") {
		t.Errorf("serve with bogus_key in fleetca.yaml: error %q, want one line naming bogus_key", line)
	}
	// The admin commands read the same file, just as strictly.
	r := runCLI(t, nil, "devices", "list", "--dir", dir)
	wantOneLine(t, "devices list with bogus_key in fleetca.yaml", r, exitError)
	if !strings.Contains(r.stderr, "bogus_key") {
		t.Errorf("devices list stderr = %q, want it to name bogus_key", r.stderr)
	}
}

func TestInitPrintsTheRootFingerprint(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	r := runCLI(t, nil, initArgs(dir, "--no-password")...)
	if r.code != exitOK {
		t.Fatalf("init: exit %d, want 0; stderr: %q", r.code, r.stderr)
	}
	root := readCerts(t, filepath.Join(dir, "root.pem"))[0]
	sum := sha256.Sum256(root.Raw)
	if want := hex.EncodeToString(sum[:]); !strings.Contains(r.stdout, want) {
		t.Errorf("init stdout = %q, want the root's SHA-256 %s", r.stdout, want)
	}
	st, err := os.Stat(filepath.Join(dir, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("admin-token mode = %04o, want 0600", st.Mode().Perm())
	}
}

func TestHelpGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"help", []string{"--help"}},
		{"enroll-help", []string{"enroll", "--help"}},
		{"renew-help", []string{"renew", "--help"}},
		{"proxy-help", []string{"proxy", "--help"}},
		{"cert-server-help", []string{"cert", "server", "--help"}},
		{"export-help", []string{"export", "--help"}},
		{"devices-renew-now-help", []string{"devices", "renew-now", "--help"}},
		{"token-create-help", []string{"token", "create", "--help"}},
		{"db-copy-help", []string{"db", "copy", "--help"}},
		{"init-help", []string{"init", "--help"}},
		{"admin-help", []string{"admin", "--help"}},
		{"admin-create-help", []string{"admin", "create", "--help"}},
		{"jwt-help", []string{"jwt", "--help"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, nil, tc.args...)
			if r.code != exitOK || r.stderr != "" {
				t.Fatalf("fleetca %s: exit %d, stderr %q, want 0 and nothing", strings.Join(tc.args, " "), r.code, r.stderr)
			}
			golden := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(r.stdout), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./cmd/fleetca -run TestHelpGolden -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), r.stdout); diff != "" {
				t.Errorf("fleetca %s output differs from %s (-want +got):\n%s\nIf the change is intended, run go test ./cmd/fleetca -run TestHelpGolden -update and review the diff.",
					strings.Join(tc.args, " "), golden, diff)
			}
		})
	}
}

// TestServeOnATakenPort: a port in use is one line that says so and how to
// choose another, for each listener.
func TestServeOnATakenPort(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	if r := runCLI(t, nil, initArgs(dir, "--no-password")...); r.code != exitOK {
		t.Fatalf("init: exit %d, want 0; stderr: %q", r.code, r.stderr)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	for _, tc := range []struct{ flag, other string }{{"--https-addr", "--http-addr"}, {"--http-addr", "--https-addr"}} {
		r := runCLI(t, nil, "serve", "--dir", dir, tc.flag, addr, tc.other, "127.0.0.1:0")
		wantOneLine(t, "serve "+tc.flag+" on a taken port", r, exitError)
		for _, want := range []string{addr, "already listens", tc.flag} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("serve %s %s (taken): stderr %q, want it to contain %q", tc.flag, addr, r.stderr, want)
			}
		}
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := runCLI(t, nil, "version")
	if r.code != exitOK || !strings.HasPrefix(r.stdout, "fleetca ") || !strings.Contains(r.stdout, runtime.Version()) || strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("fleetca version: exit %d, stdout %q, want 0 and one line \"fleetca VERSION ..., %s ...\"", r.code, r.stdout, runtime.Version())
	}
}

// TestRenewalConfigKeys: init writes ca.renew_after_expiry and
// ca.renew_min_interval with their defaults, serve's configuration hands
// them to enroll, and a value out of range stops start-up naming the key.
func TestRenewalConfigKeys(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	if r := runCLI(t, nil, initArgs(dir, "--no-password")...); r.code != exitOK {
		t.Fatalf("init: exit %d, want 0; stderr: %q", r.code, r.stderr)
	}
	path := filepath.Join(dir, "fleetca.yaml")
	yml := readFile(t, path)
	for _, want := range []string{`renew_after_expiry: "0s"`, `renew_min_interval: "1h0m0s"`} {
		if !strings.Contains(yml, want) {
			t.Errorf("fleetca.yaml from init lacks %s", want)
		}
	}
	cfg, err := loadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Enroll.RenewAfterExpiry != 0 || cfg.Enroll.RenewMinInterval != time.Hour {
		t.Errorf("enroll's renewal limits = %s, %s; want 0 (never), 1h", cfg.Enroll.RenewAfterExpiry, cfg.Enroll.RenewMinInterval)
	}
	writeFile(t, path, strings.Replace(strings.Replace(yml, `renew_after_expiry: "0s"`, `renew_after_expiry: "720h"`, 1),
		`renew_min_interval: "1h0m0s"`, `renew_min_interval: "10m"`, 1))
	if cfg, err = loadConfig(dir); err != nil {
		t.Fatal(err)
	}
	if cfg.Enroll.RenewAfterExpiry != 720*time.Hour || cfg.Enroll.RenewMinInterval != 10*time.Minute {
		t.Errorf("enroll's renewal limits = %s, %s; want 720h, 10m from fleetca.yaml", cfg.Enroll.RenewAfterExpiry, cfg.Enroll.RenewMinInterval)
	}
	writeFile(t, path, strings.Replace(yml, `renew_after_expiry: "0s"`, `renew_after_expiry: "9000h"`, 1))
	if _, err := loadConfig(dir); err == nil || !strings.Contains(err.Error(), "ca.renew_after_expiry") {
		t.Errorf("loadConfig with renew_after_expiry 9000h = %v, want an error naming ca.renew_after_expiry", err)
	}
}

// TestWebConfigKeys: init writes the metrics listener and the web keys of
// issue 12 with their defaults, and loadConfig reads and checks them.
func TestWebConfigKeys(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	if r := runCLI(t, nil, "init", "--dir", dir, "--name", "Keys", "--no-password"); r.code != exitOK {
		t.Fatalf("init: exit %d, want 0; stderr: %q", r.code, r.stderr)
	}
	path := filepath.Join(dir, "fleetca.yaml")
	yml := readFile(t, path)
	for _, want := range []string{`metrics_addr: "127.0.0.1:9090"`, `trusted_proxies: []`, `auth_failure_limit: 10`,
		`auth_failure_window: "1m0s"`, `auth_failure_addresses: 10000`} {
		if !strings.Contains(yml, want) {
			t.Errorf("fleetca.yaml from init lacks %s", want)
		}
	}
	for _, tc := range []struct {
		name, old, new string
		key            string // the key the error names; "" for none
	}{
		{"ok/metrics-off", `metrics_addr: "127.0.0.1:9090"`, `metrics_addr: "off"`, ""},
		{"ok/metrics-absent", `metrics_addr: "127.0.0.1:9090"`, ``, ""},
		{"ok/trusted-proxies", `trusted_proxies: []`, `trusted_proxies: ["10.0.0.7", "192.168.0.0/16"]`, ""},
		{"fail/metrics-no-port", `metrics_addr: "127.0.0.1:9090"`, `metrics_addr: "127.0.0.1"`, "server.metrics_addr"},
		{"fail/trusted-proxy-name", `trusted_proxies: []`, `trusted_proxies: ["proxy.example"]`, "web.trusted_proxies"},
		{"fail/limit", `auth_failure_limit: 10`, `auth_failure_limit: -1`, "web.auth_failure_limit"},
		{"fail/window", `auth_failure_window: "1m0s"`, `auth_failure_window: "2h"`, "web.auth_failure_window"},
		{"fail/addresses", `auth_failure_addresses: 10000`, `auth_failure_addresses: 5`, "web.auth_failure_addresses"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			writeFile(t, path, strings.Replace(yml, tc.old, tc.new, 1))
			_, err := loadConfig(dir)
			if tc.key == "" && err != nil {
				t.Errorf("loadConfig = %v, want nil", err)
			}
			if tc.key != "" && (err == nil || !strings.Contains(err.Error(), tc.key)) {
				t.Errorf("loadConfig = %v, want an error naming %s", err, tc.key)
			}
		})
	}
}
