// Package tlsconf is fleetca's TLS policy, written once: the oldest
// version and the TLS 1.2 cipher suites that every listener fleetca runs
// (the CA's HTTPS listener, the proxy) and every TLS client it configures
// (the client package, the proxy's and crl sync's fetchers, the proxy's
// upstream) offer. It imports nothing of ours, so any package may use it.
//
// # Invariants
//
//   - TLS 1.2 or newer (MinVersion).
//   - For TLS 1.2, only ECDHE key exchange (forward secrecy) with an AEAD
//     cipher: AES-GCM or ChaCha20-Poly1305 (CipherSuites). No CBC mode, no
//     SHA-1 MAC, no RSA key exchange, no 3DES or RC4: Go's defaults still
//     accept ECDHE with AES-CBC and SHA-1.
//   - TLS 1.3 suites are not configurable in crypto/tls and are all AEAD
//     with (EC)DHE: they are Go's.
package tlsconf

import "crypto/tls"

// MinVersion is the oldest TLS version fleetca speaks.
const MinVersion = tls.VersionTLS12

// CipherSuites returns the TLS 1.2 suites fleetca offers, as
// tls.Config.CipherSuites takes them: ECDHE with AES-GCM or
// ChaCha20-Poly1305, for ECDSA and RSA certificates. It returns a new
// slice at each call, so that no caller can change another's.
func CipherSuites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}
