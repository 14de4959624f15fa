package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/fleetca/fleetca/bench/benchutil"
	"github.com/fleetca/fleetca/ca"
)

// opensslFiles are the inputs of `openssl ocsp` as a responder.
type opensslFiles struct {
	index, rsigner, rkey, ca string
}

// writeOpenSSLFiles writes, under tmp/openssl: an OpenSSL CA database
// (index.txt) listing devs as valid, the intermediate, and a delegated OCSP
// responder certificate (P-256, EKU OCSPSigning, id-pkix-ocsp-nocheck:
// what fleetca's own responder has) with its key.
//
// The responder certificate is signed here with the data directory's
// intermediate key: ca.Authority.NewOCSPResponder keeps its key in memory
// and never hands it out, and openssl needs a key file.
func writeOpenSSLFiles(env *serverEnv, devs []device, tmp string) (opensslFiles, error) {
	dir := filepath.Join(tmp, "openssl")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return opensslFiles{}, err
	}
	f := opensslFiles{index: filepath.Join(dir, "index.txt"), rsigner: filepath.Join(dir, "responder.pem"),
		rkey: filepath.Join(dir, "responder.key"), ca: filepath.Join(dir, "intermediate.pem")}
	var idx strings.Builder
	for _, d := range devs {
		idx.WriteString(indexLine(d.cert))
	}
	interKey, err := loadIntermediateKey(env.srv.Dir)
	if err != nil {
		return f, err
	}
	cert, key, err := newResponderCert(env.inter, interKey)
	if err != nil {
		return f, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return f, err
	}
	for _, w := range []struct {
		path string
		data []byte
	}{
		{f.index, []byte(idx.String())},
		// Subjects are unique anyway; say so, so that openssl does not index them.
		{f.index + ".attr", []byte("unique_subject = no\n")},
		{f.ca, env.interPEM},
		{f.rsigner, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})},
		{f.rkey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})},
	} {
		if err := os.WriteFile(w.path, w.data, 0o600); err != nil {
			return f, err
		}
	}
	return f, nil
}

// indexLine is cert's line in an OpenSSL CA database (the format `openssl
// ca` writes and `openssl ocsp -index` reads): status V, expiry as UTCTime
// YYMMDDHHMMSSZ, no revocation date, the serial in upper-case hex with two
// digits per octet (what BN_bn2hex makes of it, which is how openssl looks
// it up), file name "unknown", subject in openssl's one-line form.
func indexLine(cert *x509.Certificate) string {
	return fmt.Sprintf("V\t%s\t\t%X\tunknown\t/CN=%s\n",
		cert.NotAfter.UTC().Format("060102150405Z"), cert.SerialNumber.Bytes(), cert.Subject.CommonName)
}

// benchConfig is the part of DIR/fleetca.yaml the benchmark reads; other
// keys are ignored.
type benchConfig struct {
	TrustDomain string    `yaml:"trust_domain"`
	CA          ca.Config `yaml:"ca"`
}

func readBenchConfig(dir string) (benchConfig, error) {
	var c benchConfig
	b, err := os.ReadFile(filepath.Join(dir, "fleetca.yaml"))
	if err != nil {
		return c, err
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("fleetca.yaml: %w", err)
	}
	c.CA = c.CA.WithDefaults()
	return c, nil
}

// loadIntermediateKey reads the data directory's unencrypted intermediate
// key (fleetca init --no-password).
func loadIntermediateKey(dir string) (crypto.Signer, error) {
	c, err := readBenchConfig(dir)
	if err != nil {
		return nil, err
	}
	p := c.CA.IntermediateKey
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read the intermediate key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s is not an unencrypted PKCS#8 PEM key", p)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: a %T is not a signer", p, k)
	}
	return s, nil
}

// oidOCSPNoCheck is id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1).
var oidOCSPNoCheck = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}

// newResponderCert issues a delegated OCSP responder certificate with a
// new P-256 key from issuer, valid for a day.
func newResponderCert(issuer *x509.Certificate, issuerKey crypto.Signer) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 159))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: issuer.Subject.CommonName + " OCSP Responder (openssl)"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning},
		BasicConstraintsValid: true,
		ExtraExtensions:       []pkix.Extension{{Id: oidOCSPNoCheck, Value: []byte{0x05, 0x00}}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &key.PublicKey, issuerKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign the openssl responder certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// opensslProc is a running `openssl ocsp` responder.
type opensslProc struct {
	cmd     *exec.Cmd
	pid     int
	url     string
	logPath string
	exited  chan struct{}
}

// acceptLine is what openssl ocsp prints once it listens: "ACCEPT [::]:40039".
var acceptLine = regexp.MustCompile(`ACCEPT (\S+):(\d+)`)

// startOpenSSL runs `openssl ocsp` as a responder with multi processes
// (1: the single process the issue describes) on a port the kernel picks
// (-port 0: openssl prints it), and waits until it listens.
//
// openssl binds every interface (its -port takes a number, not an
// address); the benchmark only ever connects to it over loopback.
func startOpenSSL(ctx context.Context, bin string, f opensslFiles, multi int, tmp string) (*opensslProc, error) {
	args := []string{"ocsp", "-index", f.index, "-port", "0", "-rsigner", f.rsigner, "-rkey", f.rkey, "-CA", f.ca, "-nmin", "60"}
	if multi > 1 {
		args = append(args, "-multi", fmt.Sprint(multi))
	}
	logPath := filepath.Join(tmp, fmt.Sprintf("openssl-ocsp-multi%d.log", multi))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so that stop reaches the -multi children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	benchutil.SetDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start openssl ocsp: %w", err)
	}
	p := &opensslProc{cmd: cmd, pid: cmd.Process.Pid, logPath: logPath, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-p.exited:
			return nil, fmt.Errorf("openssl %s exited before listening:\n%s", strings.Join(args, " "), benchutil.Tail(logPath, 10))
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		b, _ := os.ReadFile(logPath)
		if m := acceptLine.FindSubmatch(b); m != nil {
			// Do not probe the port: the single-process responder would
			// wait on the probe's connection for ever.
			host, err := loopbackFor(string(m[1]))
			if err != nil {
				p.stop()
				return nil, err
			}
			p.url = "http://" + net.JoinHostPort(host, string(m[2])) + "/"
			return p, nil
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("openssl ocsp did not print ACCEPT within 10s:\n%s", benchutil.Tail(logPath, 10))
		}
	}
}

// loopbackFor returns the loopback address to reach a listener bound to
// host, as openssl prints it: [::] (dual-stack unless
// net.ipv6.bindv6only is set), 0.0.0.0 or *.
func loopbackFor(host string) (string, error) {
	switch host {
	case "0.0.0.0", "*":
		return "127.0.0.1", nil
	case "[::]", "::":
		b, err := os.ReadFile("/proc/sys/net/ipv6/bindv6only")
		if err == nil && strings.TrimSpace(string(b)) == "1" {
			return "::1", nil
		}
		return "127.0.0.1", nil
	}
	return "", fmt.Errorf("openssl ocsp listens on %s, not on every interface: cannot tell its loopback address", host)
}

// stop ends the responder's process group: SIGTERM, then SIGKILL.
func (p *opensslProc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = syscall.Kill(-p.pid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(3 * time.Second):
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		<-p.exited
	}
	// The -multi children may outlive the parent by a moment.
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
}
