package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.step.sm/crypto/minica"
)

// lineWatcher is a log sink that signals when a line containing want has
// been written.
type lineWatcher struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *lineWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w *lineWatcher) String() string { w.mu.Lock(); defer w.mu.Unlock(); return w.buf.String() }

// --grace 0s is no grace: a CRL a minute past its nextUpdate is refused
// at start (every device is refused until a fresh one loads), while the
// default, and any grace longer than a minute, still use it.
func TestProxyGraceFlag(t *testing.T) {
	dir := t.TempDir()
	ca, err := minica.New(minica.WithName("Fleet"))
	if err != nil {
		t.Fatal(err)
	}
	writePEM := func(name string, blocks ...*pem.Block) string {
		var b []byte
		for _, bl := range blocks {
			b = append(b, pem.EncodeToMemory(bl)...)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	bundle := writePEM("fleet-ca.pem", &pem.Block{Type: "CERTIFICATE", Bytes: ca.Root.Raw}, &pem.Block{Type: "CERTIFICATE", Bytes: ca.Intermediate.Raw})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvCert, err := ca.Sign(&x509.Certificate{Subject: pkix.Name{CommonName: "proxy.test"}, DNSNames: []string{"proxy.test"},
		PublicKey: key.Public(), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature})
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile := writePEM("proxy.crt", &pem.Block{Type: "CERTIFICATE", Bytes: srvCert.Raw}, &pem.Block{Type: "CERTIFICATE", Bytes: ca.Intermediate.Raw})
	keyFile := writePEM("proxy.key", &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	now := time.Now()
	crlDER, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now.Add(-time.Hour),
		NextUpdate: now.Add(-time.Minute)}, ca.Intermediate, ca.Signer)
	if err != nil {
		t.Fatal(err)
	}
	crlFile := writePEM("crl.pem", &pem.Block{Type: "X509 CRL", Bytes: crlDER})

	for _, tc := range []struct {
		name   string
		args   []string
		loaded bool
	}{
		{"unset-is-the-1h-default", nil, true},
		{"0s-is-none", []string{"--grace", "0s"}, false},
		{"10m", []string{"--grace", "10m"}, true},
		{"30s", []string{"--grace", "30s"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"proxy", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9", "--ca", bundle,
				"--cert", certFile, "--key", keyFile, "--crl-url", crlFile}, tc.args...)
			logs := &lineWatcher{want: `"msg":"listening"`, seen: make(chan struct{})}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan int, 1)
			go func() {
				done <- run(ctx, args, env{stdout: &bytes.Buffer{}, stderr: logs, stdin: strings.NewReader(""), getenv: func(string) string { return "" }})
			}()
			select {
			case <-logs.seen:
			case code := <-done:
				t.Fatalf("fleetca proxy exited %d before listening: %s", code, logs)
			case <-time.After(startTimeout):
				t.Fatalf("fleetca proxy did not listen within %s: %s", startTimeout, logs)
			}
			cancel()
			<-done
			out := logs.String()
			gotLoaded := strings.Contains(out, `"msg":"CRL loaded"`)
			gotRefused := strings.Contains(out, "no CRL could be loaded")
			if gotLoaded != tc.loaded || gotRefused == tc.loaded {
				t.Errorf("fleetca %s with a CRL 1m past its nextUpdate: loaded %v, refused %v; want loaded %v\n%s",
					strings.Join(tc.args, " "), gotLoaded, gotRefused, tc.loaded, out)
			}
		})
	}
}
