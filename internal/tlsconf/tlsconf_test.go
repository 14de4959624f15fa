package tlsconf

import (
	"crypto/tls"
	"slices"
	"strings"
	"testing"
)

// Every suite offered is a secure one of crypto/tls's, for TLS 1.2, with
// ECDHE key exchange and an AEAD cipher.
func TestCipherSuitesAreECDHEAndAEAD(t *testing.T) {
	secure := map[uint16]*tls.CipherSuite{}
	for _, s := range tls.CipherSuites() {
		secure[s.ID] = s
	}
	got := CipherSuites()
	if len(got) == 0 {
		t.Fatal("CipherSuites() is empty: crypto/tls would use its defaults, CBC included")
	}
	for _, id := range got {
		s, ok := secure[id]
		if !ok {
			t.Errorf("%s is not among crypto/tls's secure suites", tls.CipherSuiteName(id))
			continue
		}
		name := s.Name
		if !strings.HasPrefix(name, "TLS_ECDHE_") || !(strings.Contains(name, "_GCM_") || strings.Contains(name, "_CHACHA20_POLY1305")) {
			t.Errorf("%s: want ECDHE with AES-GCM or ChaCha20-Poly1305", name)
		}
		if !slices.Contains(s.SupportedVersions, tls.VersionTLS12) {
			t.Errorf("%s is not a TLS 1.2 suite", name)
		}
	}
	got[0] = 0
	if CipherSuites()[0] == 0 {
		t.Error("CipherSuites returned a shared slice")
	}
}
