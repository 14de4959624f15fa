package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantFail  bool
		check     func(options) bool
		wantCheck string
	}{
		{"ok/defaults", nil, false, func(o options) bool {
			return o.crlSize == 1_000_000 && slices.Equal(o.hsConc, []int{8, 32}) && slices.Equal(o.kaConc, []int{8, 32}) &&
				o.reps == 3 && o.duration == 4*time.Second && len(o.phases) == len(allPhases) && o.nginx == "nginx" && o.install &&
				o.verifierCRLSize == 100_000 && o.verifierParts == 16 && slices.Equal(o.verifierConc, []int{8})
		}, "1M CRL, concurrency 8,32, 3 x 4s, every phase, nginx installed if missing, verifier: 100k CRL, 16 partitions, concurrency 8"},
		{"ok/no-crl", []string{"-crl-size", "0"}, false, func(o options) bool { return !o.phases["crl"] && o.phases["revoke"] }, "no crl phase"},
		{"ok/some-phases", []string{"-phases", "handshake, revoke"}, false, func(o options) bool {
			return len(o.phases) == 2 && o.phases["handshake"] && o.phases["revoke"]
		}, "handshake and revoke only"},
		{"ok/proxy-env", []string{"-proxy-env", "GOGC=400", "-proxy-env", "GOMAXPROCS=1"}, false, func(o options) bool {
			return slices.Equal(o.proxyEnv, []string{"GOGC=400", "GOMAXPROCS=1"})
		}, "both variables"},
		{"ok/no-verifier", []string{"-verifier-crl-size", "0"}, false, func(o options) bool { return !o.phases["verifier"] && o.phases["crl"] }, "no verifier phase"},
		{"ok/verifier", []string{"-phases", "verifier", "-verifier-crl-size", "1M", "-verifier-concurrency", "8,32", "-verifier-partitions", "64"}, false,
			func(o options) bool {
				return len(o.phases) == 1 && o.verifierCRLSize == 1_000_000 && slices.Equal(o.verifierConc, []int{8, 32}) && o.verifierParts == 64
			}, "the verifier phase alone, 1M CRL, concurrency 8 and 32, 64 partitions"},
		// The CA's revocation.crl_partitions: a power of two up to 256.
		{"fail/verifier-partitions-100", []string{"-verifier-partitions", "100"}, true, nil, ""},
		{"fail/verifier-partitions-512", []string{"-verifier-partitions", "512"}, true, nil, ""},
		{"ok/crl-size-k", []string{"-crl-size", "100k"}, false, func(o options) bool { return o.crlSize == 100_000 }, "100000"},
		{"fail/unknown-phase", []string{"-phases", "handshake,tcp"}, true, nil, ""},
		{"fail/bad-level", []string{"-handshake-concurrency", "8,x"}, true, nil, ""},
		{"fail/zero-level", []string{"-keepalive-concurrency", "0"}, true, nil, ""},
		{"fail/crl-size", []string{"-crl-size", "lots"}, true, nil, ""},
		{"fail/verifier-crl-size", []string{"-verifier-crl-size", "-1"}, true, nil, ""},
		{"fail/verifier-level", []string{"-verifier-concurrency", "x"}, true, nil, ""},
		{"fail/verifier-partitions", []string{"-verifier-partitions", "0"}, true, nil, ""},
		{"fail/zero-reps", []string{"-reps", "0"}, true, nil, ""},
		{"fail/proxy-env", []string{"-proxy-env", "GOGC"}, true, nil, ""},
		{"fail/positional", []string{"extra"}, true, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args, io.Discard)
			if (err != nil) != tc.wantFail {
				t.Fatalf("parseFlags(%q) error = %v, want failure %v", tc.args, err, tc.wantFail)
			}
			if !tc.wantFail && !tc.check(o) {
				t.Errorf("parseFlags(%q) = %+v, want %s", tc.args, o, tc.wantCheck)
			}
		})
	}
}

func testNginxConfig(dir string) nginxConfig {
	return nginxConfig{Dir: dir, Listen: "127.0.0.1:9443", Workers: 2, Cert: filepath.Join(dir, "proxy.crt"), Key: filepath.Join(dir, "proxy.key"),
		ClientCA: filepath.Join(dir, "fleet-ca.pem"), CRL: filepath.Join(dir, "crl.pem"), Upstream: "127.0.0.1:8000"}
}

func TestNginxConfigRender(t *testing.T) {
	conf, err := testNginxConfig("/tmp/b").render()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"worker_processes 2;",
		"pid /tmp/b/nginx.pid;",
		"error_log /tmp/b/error.log warn;",
		"listen 127.0.0.1:9443 ssl;",
		"ssl_certificate /tmp/b/proxy.crt;",
		"ssl_certificate_key /tmp/b/proxy.key;",
		"ssl_client_certificate /tmp/b/fleet-ca.pem;",
		"ssl_verify_client on;",
		"ssl_verify_depth 2;",
		"ssl_crl /tmp/b/crl.pem;",
		"ssl_session_cache off;",
		"ssl_session_tickets off;",
		"server 127.0.0.1:8000;",
		"keepalive 64;",
		"proxy_pass http://service;",
		"proxy_http_version 1.1;",
		`proxy_set_header Connection "";`,
		"proxy_set_header X-Device-Id $device_id;",
		"access_log /tmp/b/access.log fleet;",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("render() lacks %q:\n%s", want, conf)
		}
	}
	if open, closed := strings.Count(conf, "{"), strings.Count(conf, "}"); open != closed {
		t.Errorf("render() has %d { and %d }", open, closed)
	}

	bad := []struct {
		name   string
		change func(*nginxConfig)
	}{
		{"relative-dir", func(c *nginxConfig) { c.Dir = "b" }},
		{"space-in-path", func(c *nginxConfig) { c.CRL = "/tmp/my crl.pem" }},
		{"semicolon-in-path", func(c *nginxConfig) { c.Cert = "/tmp/x;y" }},
		{"listen-no-port", func(c *nginxConfig) { c.Listen = "127.0.0.1" }},
		{"upstream-url", func(c *nginxConfig) { c.Upstream = "http://127.0.0.1:8000" }},
		{"no-workers", func(c *nginxConfig) { c.Workers = 0 }},
	}
	for _, tc := range bad {
		t.Run("fail/"+tc.name, func(t *testing.T) {
			c := testNginxConfig("/tmp/b")
			tc.change(&c)
			if _, err := c.render(); err == nil {
				t.Errorf("render() of %+v succeeded, want an error", c)
			}
		})
	}
}

// TestNginxConfigAccepted has nginx itself check the configuration, with
// real files, when nginx is installed; in CI (CI=true), where .ci/run
// installs it, a missing nginx fails the test. (The product's
// internal/testenv.Need does this for its own tests, out of this module's
// reach.)
func TestNginxConfigAccepted(t *testing.T) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("nginx is required in CI but not installed (.ci/run should install it)")
			}
			t.Skip("nginx is not installed (apt-get install nginx-light)")
		}
		bin = "/usr/sbin/nginx"
	}
	dir := t.TempDir()
	c := testNginxConfig(dir)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now, NextUpdate: now.Add(time.Hour)}, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for path, b := range map[string][]byte{
		c.Cert: certPEM, c.ClientCA: certPEM, c.Key: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		c.CRL: pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crl}),
	} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf, err := c.render()
	if err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), bin, "-t", "-q", "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log")).CombinedOutput()
	if err != nil {
		t.Errorf("nginx -t: %v\n%s\n%s", err, out, conf)
	}
}

func TestParseProxyListening(t *testing.T) {
	tests := []struct {
		name, log, want string
	}{
		{"ok/after-other-lines", `{"time":"t","level":"INFO","msg":"CRL loaded","number":"3"}
{"time":"t","level":"INFO","msg":"proxy listening","addr":"127.0.0.1:1111","upstream":"http://127.0.0.1:2"}
{"time":"t","level":"INFO","msg":"listening","addr":"127.0.0.1:41999","upstream":"http://127.0.0.1:39823","server_serial":"ab"}
`, "127.0.0.1:41999"},
		{"fail/only-the-servers-line", `{"msg":"proxy listening","addr":"127.0.0.1:1111"}` + "\n", ""},
		{"fail/partial-line", `{"time":"t","level":"INFO","msg":"listening","addr":"127.0.0.1:4`, ""},
		{"fail/no-newline-yet", `{"msg":"listening","addr":"127.0.0.1:41999"}`, ""},
		{"fail/no-addr", `{"msg":"listening"}` + "\n", ""},
		{"fail/not-json", "fleetca: cannot read the CA bundle\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseProxyListening([]byte(tc.log)); got != tc.want {
				t.Errorf("parseProxyListening() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseUpstreamLine(t *testing.T) {
	tests := []struct {
		name, out, want string
	}{
		{"ok", "upstream listening on 127.0.0.1:39823\n", "127.0.0.1:39823"},
		{"fail/partial", "upstream listening on 127.0.0.1:3", ""},
		{"fail/not-an-address", "upstream listening on nowhere\n", ""},
		{"fail/other", "upstream: listen tcp: address already in use\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseUpstreamLine([]byte(tc.out)); got != tc.want {
				t.Errorf("parseUpstreamLine(%q) = %q, want %q", tc.out, got, tc.want)
			}
		})
	}
}

func TestRefusal(t *testing.T) {
	// What crypto/tls returns when the server sends an alert.
	alert := &net.OpError{Op: "remote error", Err: errors.New("tls: bad certificate")}
	tests := []struct {
		name   string
		status int
		err    error
		want   bool
	}{
		{"tls-alert", 0, alert, true},
		{"nginx-400", 400, nil, true},
		{"ok", 200, nil, false},
		{"upstream-down", 502, nil, false},
		{"refused-connection", 0, &net.OpError{Op: "dial", Err: errors.New("connection refused")}, false},
		{"eof", 0, io.EOF, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := refusal(tc.status, tc.err); got != tc.want {
				t.Errorf("refusal(%d, %v) = %v, want %v", tc.status, tc.err, got, tc.want)
			}
		})
	}
}

// TestConn drives the lean client against a plain HTTP server: keep-alive,
// Connection: close, and an answer that is not the upstream's.
func TestConn(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/wrong" {
			io.WriteString(w, "nope")
			return
		}
		io.WriteString(w, upstreamBody)
	}))
	defer srv.Close()
	c := newConn(&target{name: "test", addr: srv.Listener.Addr().String()}, nil)
	for i := range 3 {
		if status, err := c.do(reqKeepAlive); err != nil || status != 200 {
			t.Fatalf("request %d: status %d, %v", i, status, err)
		}
	}
	if c.Dials != 1 {
		t.Errorf("three keep-alive requests dialled %d times, want 1", c.Dials)
	}
	if status, err := c.oneShot(); err != nil || status != 200 {
		t.Fatalf("oneShot: status %d, %v", status, err)
	}
	if c.NetConn() != nil {
		t.Error("oneShot left its connection open")
	}
	if _, err := c.do([]byte("GET /wrong HTTP/1.1\r\nHost: x\r\n\r\n")); err == nil {
		t.Error("an answer with another body was taken for the upstream's")
	}
	c.Close()

	// A TLS target that is not TLS fails at the handshake.
	tc := newConn(&target{name: "test", addr: srv.Listener.Addr().String(), tls: true}, &tls.Config{InsecureSkipVerify: true})
	if _, err := tc.oneShot(); err == nil {
		t.Error("a TLS handshake with a plain HTTP server succeeded")
	}
}

func TestCRLServer(t *testing.T) {
	cs, err := newCRLServer([]byte("first"))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.srv.Close()
	get := func(etag string) (int, string, string) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+cs.addr+"/crl", nil)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("ETag"), string(b)
	}
	status, etag, body := get("")
	if status != 200 || body != "first" || etag == "" {
		t.Fatalf("GET = %d, ETag %q, %q; want 200, an ETag, first", status, etag, body)
	}
	if status, _, _ := get(etag); status != http.StatusNotModified {
		t.Errorf("GET If-None-Match the current ETag = %d, want 304", status)
	}
	cs.set([]byte("second"))
	if status, etag2, body := get(etag); status != 200 || body != "second" || etag2 == etag {
		t.Errorf("GET after set = %d, ETag %q, %q; want 200, a new ETag, second", status, etag2, body)
	}
}

// TestVerifierDerive checks the two changes the verifier phase makes to
// exported files against the export package's golden files, so that a
// change of the templates shows here rather than as a failed run.
func TestVerifierDerive(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", "export", "testdata", "nginx", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	crlConf := read("nginx.conf.golden")
	got, err := withoutCRL(crlConf)
	if err != nil {
		t.Fatalf("withoutCRL(nginx.conf) error = %v", err)
	}
	if strings.Contains(got, "ssl_crl ") || len(crlConf)-len(got) != len("    ssl_crl /etc/fleetca/verifier/crl.pem;\n") {
		t.Errorf("withoutCRL(nginx.conf) removed %d bytes, want the ssl_crl line only:\n%s", len(crlConf)-len(got), got)
	}
	if _, err := withoutCRL(got); err == nil {
		t.Error("withoutCRL of a file without ssl_crl succeeded, want an error")
	}

	ocspConf := read("nginx-ocsp.conf.golden")
	got, err = withOCSPCache(ocspConf)
	if err != nil {
		t.Fatalf("withOCSPCache(nginx-ocsp.conf) error = %v", err)
	}
	if !strings.Contains(got, "\n    ssl_ocsp_cache     shared:fleetca_ocsp:10m;\n") || len(ocspConf)-len(got) != 1 {
		t.Errorf("withOCSPCache(nginx-ocsp.conf) = %s\nwant the ssl_ocsp_cache line uncommented, nothing else", got)
	}
	if _, err := withOCSPCache(crlConf); err == nil {
		t.Error("withOCSPCache(nginx.conf) succeeded, want an error")
	}
}

func TestCRLSet(t *testing.T) {
	cs, err := newCRLSet()
	if err != nil {
		t.Fatal(err)
	}
	defer cs.srv.Close()
	cs.put("/big", []byte("device"), []byte("root"))
	for path, want := range map[string]string{"/big/crl": "device", "/big/root.crl": "root", "/small/crl": "404 page not found\n"} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, cs.url+path, nil)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != want {
			t.Errorf("GET %s = %d %q, want %q", path, resp.StatusCode, b, want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	args := []string{"printf", "%s|", "/tmp/a b", "it's", "$HOME;"}
	out, err := exec.CommandContext(t.Context(), "sh", "-c", shellQuote(args)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := "/tmp/a b|it's|$HOME;|"; string(out) != want {
		t.Errorf("sh -c %s printed %q, want %q", shellQuote(args), out, want)
	}
}

func TestClosedByProxy(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"eof", io.EOF, true},
		{"wrapped-reset", &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, true},
		{"alert", &net.OpError{Op: "remote error", Err: errors.New("tls: bad certificate")}, false},
		{"refused", &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := closedByProxy(tc.err); got != tc.want {
				t.Errorf("closedByProxy(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
