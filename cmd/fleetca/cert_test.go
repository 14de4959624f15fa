package main

// In-process tests of `fleetca cert server` against runServe, and of the
// proxy's command-line checks.

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCertServer(t *testing.T) {
	t.Parallel()
	ca := startCA(t)
	dir := ca.dir
	vars := map[string]string{"FLEETCA_URL": ca.httpsURL}
	out := t.TempDir()
	key, crt := filepath.Join(out, "proxy.key"), filepath.Join(out, "proxy.crt")

	r := runCLI(t, vars, "cert", "server", "--dir", dir, "--dns", "proxy.example.com,localhost", "--ip", "127.0.0.1", "--key", key, "--cert", crt)
	if r.code != exitOK {
		t.Fatalf("cert server: exit %d, want 0; stderr: %q", r.code, r.stderr)
	}
	m := regexp.MustCompile(`\Aserver certificate for proxy\.example\.com, localhost, 127\.0\.0\.1: serial ([0-9a-f]+), valid until (\S+)\n\z`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("cert server stdout = %q, want \"server certificate for NAMES: serial HEX, valid until TIME\"", r.stdout)
	}
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("stat %s = %v, %v, want mode 0600", key, st, err)
	}
	certs := readCerts(t, crt)
	inter := readCerts(t, filepath.Join(dir, "intermediate.pem"))[0]
	if len(certs) != 2 || !certs[1].Equal(inter) {
		t.Fatalf("%s holds %d certificates, want the leaf then the intermediate", crt, len(certs))
	}
	leaf := certs[0]
	if leaf.SerialNumber.Text(16) != m[1] {
		t.Errorf("leaf serial = %s, want %s (as printed)", leaf.SerialNumber.Text(16), m[1])
	}
	if !samePublicKey(leaf.PublicKey, readKey(t, key).Public()) {
		t.Errorf("%s does not certify the key in %s", crt, key)
	}
	roots := x509.NewCertPool()
	roots.AddCert(readCerts(t, filepath.Join(dir, "root.pem"))[0])
	inters := x509.NewCertPool()
	inters.AddCert(inter)
	for _, name := range []string{"proxy.example.com", "localhost", "127.0.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inters,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("server certificate does not verify for %s: %v", name, err)
		}
	}
	if !slices.EqualFunc(leaf.IPAddresses, []net.IP{net.IPv4(127, 0, 0, 1)}, net.IP.Equal) {
		t.Errorf("IP SANs = %v, want [127.0.0.1]", leaf.IPAddresses)
	}
	if d := time.Until(leaf.NotAfter); d < 6*24*time.Hour || d > 8*24*time.Hour {
		t.Errorf("server certificate valid for %s, want about 7 days (ca.server_validity)", d)
	}

	// Not a device certificate: certs list does not show it.
	r = runCLI(t, vars, "certs", "list", "--dir", dir, "--json")
	if r.code != exitOK || strings.Contains(r.stdout, m[1]) {
		t.Errorf("certs list: exit %d, stdout %q, want 0 and no serial %s", r.code, r.stdout, m[1])
	}

	before := readFile(t, crt)
	r = runCLI(t, vars, "cert", "server", "--dir", dir, "--dns", "proxy.example.com", "--key", key, "--cert", crt)
	wantOneLine(t, "cert server over existing files", r, exitError)
	if readFile(t, crt) != before {
		t.Errorf("a refused cert server changed %s", crt)
	}
	if r := runCLI(t, vars, "cert", "server", "--dir", dir, "--dns", "proxy.example.com", "--key", key, "--cert", crt, "--force"); r.code != exitOK {
		t.Errorf("cert server --force: exit %d, want 0; stderr %q", r.code, r.stderr)
	}

	other := filepath.Join(out, "other")
	r = runCLI(t, vars, "cert", "server", "--dir", dir, "--dns", "Not_A_Host", "--key", other+".key", "--cert", other+".crt")
	wantOneLine(t, "cert server --dns Not_A_Host", r, exitError)
	if !strings.Contains(r.stderr, "Not_A_Host") {
		t.Errorf("stderr = %q, want it to name Not_A_Host", r.stderr)
	}
	for _, f := range []string{other + ".key", other + ".crt"} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("after a refusal, stat %s: %v, want it not to exist", f, err)
		}
	}
}

func TestCertServerAndProxyUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	k, c := filepath.Join(dir, "k"), filepath.Join(dir, "c")
	for _, tc := range []struct {
		name string
		args []string
		want string // in the error line
	}{
		{"cert server without names", []string{"cert", "server", "--key", k, "--cert", c}, "--dns"},
		{"cert server without --key", []string{"cert", "server", "--dns", "a.example", "--cert", c}, "--key"},
		{"cert server with a bad IP", []string{"cert", "server", "--ip", "1.2.3", "--key", k, "--cert", c}, "1.2.3"},
		{"proxy without --upstream", []string{"proxy", "--ca", "ca.pem", "--cert", c, "--key", k, "--crl-url", "http://x:8080"}, "--upstream"},
		{"proxy without --ca", []string{"proxy", "--upstream", "http://127.0.0.1:1", "--cert", c, "--key", k, "--crl-url", "http://x:8080"}, "--ca"},
		{"proxy without --cert", []string{"proxy", "--upstream", "http://127.0.0.1:1", "--ca", "ca.pem", "--crl-url", "http://x:8080"}, "--cert"},
		{"proxy with neither CRL nor OCSP", []string{"proxy", "--upstream", "http://127.0.0.1:1", "--ca", "ca.pem", "--cert", c, "--key", k}, "--crl-url"},
		{"proxy with CRL and OCSP", []string{"proxy", "--upstream", "http://127.0.0.1:1", "--ca", "ca.pem", "--cert", c, "--key", k,
			"--crl-url", "http://x:8080", "--ocsp"}, "exactly one"},
		{"proxy with a feed but OCSP", []string{"proxy", "--upstream", "http://127.0.0.1:1", "--ca", "ca.pem", "--cert", c, "--key", k,
			"--ocsp", "--revocation-feed", "https://x:8443"}, "--crl-url"},
		{"proxy with an http feed", []string{"proxy", "--upstream", "http://127.0.0.1:1", "--ca", "ca.pem", "--cert", c, "--key", k,
			"--crl-url", "http://x:8080", "--revocation-feed", "http://x:8443"}, "https"},
		{"proxy with a bad upstream", []string{"proxy", "--upstream", "ftp://127.0.0.1:1", "--ca", "ca.pem", "--cert", c, "--key", k,
			"--crl-url", "http://x:8080"}, "ftp"},
		{"proxy protocol in HTTP mode", []string{"proxy", "--upstream", "http://127.0.0.1:1", "--proxy-protocol", "--ca", "ca.pem", "--cert", c, "--key", k,
			"--crl-url", "http://x:8080"}, "tcp"},
		{"proxy with --crl-url naming the CRL", []string{"proxy", "--upstream", "http://127.0.0.1:1", "--ca", "ca.pem", "--cert", c, "--key", k,
			"--crl-url", "http://x:8080/crl"}, "--crl-url: http://x:8080/crl is the URL of the CA's device CRL, not the base URL of its listener (give the base URL alone, here http://x:8080"},
		{"proxy with a feed naming the feed", []string{"proxy", "--upstream", "http://127.0.0.1:1", "--ca", "ca.pem", "--cert", c, "--key", k,
			"--crl-url", "http://x:8080", "--revocation-feed", "https://x:8443/v1/revocations"}, "here https://x:8443"},
		{"proxy with a long grace", []string{"proxy", "--upstream", "http://127.0.0.1:1", "--ca", "ca.pem", "--cert", c, "--key", k,
			"--crl-url", "http://x:8080", "--grace", "200h"}, "--grace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, nil, tc.args...)
			wantOneLine(t, "fleetca "+strings.Join(tc.args, " "), r, exitUsage)
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr = %q, want it to mention %q", r.stderr, tc.want)
			}
		})
	}
}

func TestProxyTrustBundle(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	if r := runCLI(t, nil, initArgs(dir, "--no-password")...); r.code != exitOK {
		t.Fatalf("init: exit %d, want 0; stderr: %q", r.code, r.stderr)
	}
	root, inter := readFile(t, filepath.Join(dir, "root.pem")), readFile(t, filepath.Join(dir, "intermediate.pem"))
	other := filepath.Join(t.TempDir(), "other")
	if r := runCLI(t, nil, initArgs(other, "--no-password")...); r.code != exitOK {
		t.Fatalf("init: exit %d, want 0; stderr: %q", r.code, r.stderr)
	}
	otherRoot := readFile(t, filepath.Join(other, "root.pem"))
	for _, tc := range []struct {
		name, pem string
		ok        bool
	}{
		{"ok/root-then-intermediate", root + inter, true},
		{"ok/intermediate-then-root", inter + root, true},
		{"ok/two-roots", otherRoot + root + inter, true},
		{"fail/root-only", root, false},
		{"fail/intermediate-only", inter, false},
		{"fail/another-root", otherRoot + inter, false},
		{"fail/empty", "", false},
		{"fail/two-intermediates", root + inter + readFile(t, filepath.Join(other, "intermediate.pem")) + otherRoot, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "bundle.pem")
			writeFile(t, file, tc.pem)
			b, err := loadTrustBundle(file, time.Now())
			if tc.ok != (err == nil) {
				t.Fatalf("loadTrustBundle = %v, want ok=%v", err, tc.ok)
			}
			if err != nil {
				if strings.Contains(oneLine(err), "\n") {
					t.Errorf("error %q is not one line", oneLine(err))
				}
				return
			}
			if want := readCerts(t, filepath.Join(dir, "intermediate.pem"))[0]; !b.issuer.Equal(want) {
				t.Errorf("issuer = %s, want the intermediate", b.issuer.Subject)
			}
		})
	}
}
