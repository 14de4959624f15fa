package web

import (
	"crypto"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/internal/testenv"
)

// The HTTPS listener speaks TLS 1.2 with ECDHE and AEAD suites only: a
// client offering CBC with SHA-1, or RSA key exchange, fails the
// handshake; one offering ECDHE with AES-GCM gets in. Both key types of
// the listener's certificate are tried, so that each suite could have
// been chosen but for the policy.
func TestHTTPSSuites(t *testing.T) {
	authority, err := ca.New(t.Context(), ca.Config{}.WithDefaults(),
		ca.Deps{Dir: caDir, PublicURL: "http://127.0.0.1:8080", TrustDomain: "fleet.test", Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	for _, kt := range []ca.KeyType{ca.KeyECP256, ca.KeyRSA3072} {
		sc, err := NewServerCert(t.Context(), authority, ServerCertConfig{
			IPs:    []net.IP{net.IPv4(127, 0, 0, 1)},
			NewKey: func() (crypto.Signer, error) { return ca.GenerateKey(kt) },
			Now:    func() time.Time { return testNow },
		})
		if err != nil {
			t.Fatal(err)
		}
		ln := tls.NewListener(testenv.Listen(t), sc.TLSConfig())
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					c.(*tls.Conn).HandshakeContext(t.Context())
				}()
			}
		}()
		for _, tc := range []struct {
			name   string
			suites []uint16
			ok     bool
		}{
			{"fail/ecdhe-cbc-sha1", []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}, false},
			{"fail/ecdhe-cbc-sha256", []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256}, false},
			{"fail/rsa-key-exchange", []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_128_CBC_SHA}, false},
			{"ok/ecdhe-aes-gcm", []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}, true},
			{"ok/ecdhe-chacha20", []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256}, true},
		} {
			t.Run(string(kt)+"/"+tc.name, func(t *testing.T) {
				d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: tc.suites}} //nolint:gosec // the suite is under test, not the certificate
				c, err := d.DialContext(t.Context(), "tcp", ln.Addr().String())
				if err == nil {
					c.Close()
				}
				if (err == nil) != tc.ok {
					t.Errorf("TLS 1.2 handshake offering only %v: err = %v, want success %v", suiteNames(tc.suites), err, tc.ok)
				}
			})
		}
	}
}

func suiteNames(ids []uint16) []string {
	var names []string
	for _, id := range ids {
		names = append(names, tls.CipherSuiteName(id))
	}
	return names
}
