package proxy

import (
	"crypto/tls"
	"testing"
)

// The proxy's listener speaks TLS 1.2 with ECDHE and AEAD suites only: a
// device offering CBC with SHA-1, or RSA key exchange, fails the
// handshake; one offering ECDHE with AES-GCM or ChaCha20-Poly1305 gets in.
func TestListenerSuites(t *testing.T) {
	pki := newPKI(t, "Fleet")
	up := newEchoUpstream(t)
	p := startProxy(t, pki, Config{Upstream: up.URL})
	dev := pki.device(t, "dev-1")
	for _, tc := range []struct {
		name   string
		suites []uint16
		ok     bool
	}{
		{"fail/ecdhe-cbc-sha1", []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA}, false},
		{"fail/ecdhe-cbc-sha256", []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}, false},
		{"fail/rsa-key-exchange", []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_128_CBC_SHA}, false},
		{"ok/ecdhe-aes-gcm", []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, true},
		{"ok/ecdhe-chacha20", []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := pki.clientTLS(&dev)
			cfg.MaxVersion = tls.VersionTLS12
			cfg.CipherSuites = tc.suites
			d := tls.Dialer{Config: cfg}
			c, err := d.DialContext(t.Context(), "tcp", p.addr)
			if err == nil {
				c.Close()
			}
			if (err == nil) != tc.ok {
				t.Errorf("TLS 1.2 handshake offering only %v: err = %v, want success %v", tc.suites, err, tc.ok)
			}
		})
	}
}
