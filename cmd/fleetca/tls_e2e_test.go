package main

import (
	"net/url"
	"strings"
	"testing"

	"github.com/fleetca/fleetca/internal/testenv"
)

// TestHTTPSSuitesOpenSSL: the real serve's HTTPS listener, asked by the
// real openssl for TLS 1.2 with ECDHE and AES-CBC with SHA-1 (Go's
// defaults accept it), refuses the handshake; with ECDHE and AES-GCM it
// completes.
func TestHTTPSSuitesOpenSSL(t *testing.T) {
	testenv.Need(t, "openssl")
	f := newFixture(t)
	u, err := url.Parse(f.srv.httpsURL)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cipher string
		ok     bool
	}{
		{"ECDHE-ECDSA-AES128-SHA", false},
		{"ECDHE-ECDSA-AES256-SHA", false},
		{"ECDHE-ECDSA-AES128-SHA256", false},
		{"ECDHE-ECDSA-AES128-GCM-SHA256", true},
		{"ECDHE-ECDSA-CHACHA20-POLY1305", true},
	} {
		t.Run(tc.cipher, func(t *testing.T) {
			r := f.tool("openssl", "s_client", "-connect", u.Host, "-tls1_2", "-cipher", tc.cipher, "-CAfile", f.root, "-verify_return_error")
			ok := r.code == 0 && strings.Contains(r.stdout, "Cipher is "+tc.cipher)
			if ok != tc.ok {
				t.Errorf("openssl s_client -tls1_2 -cipher %s: exit %d, handshake ok %v, want %v\nstdout: %s\nstderr: %s",
					tc.cipher, r.code, ok, tc.ok, r.stdout, r.stderr)
			}
		})
	}
}
