package proxy

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fleetca/fleetca/internal/tlsconf"
	"github.com/fleetca/fleetca/verify"
)

// Handshake outcomes and reasons: the labels of
// fleetca_proxy_handshakes_total, and the "reason" of the log lines. The
// sets are closed, so the metric's cardinality is bounded.
const (
	outcomeAccepted = "accepted"
	outcomeRefused  = "refused" // the client's certificate was refused
	outcomeFailed   = "failed"  // the handshake broke before a decision
	outcomeClosed   = "closed"  // an accepted MQTT session closed by the proxy (its token expired)

	reasonOK = "ok"

	// Refusals.
	reasonNoCert      = "no_cert"      // no client certificate
	reasonChain       = "chain"        // does not chain to the fleet's roots
	reasonExpired     = "expired"      // outside its validity period (or a CA's in its chain)
	reasonWrongEKU    = "wrong_eku"    // no extended key usage clientAuth
	reasonRevoked     = "revoked"      // the Checker: revoked
	reasonStale       = "stale"        // the Checker: revocation data too old, failing closed
	reasonNoData      = "no_data"      // the Checker: no revocation data yet
	reasonUnknown     = "unknown"      // the Checker: the OCSP responder does not know it
	reasonWrongIssuer = "wrong_issuer" // the Checker: not issued by the Checker's issuer
	reasonCheckError  = "check_error"  // the Checker failed otherwise

	// Failures.
	reasonTimeout     = "timeout"      // HandshakeTimeout passed
	reasonEOF         = "eof"          // the client went away (port scans, TCP health checks)
	reasonClientAlert = "client_alert" // the client aborted, e.g. it does not trust the proxy's certificate
	reasonNotTLS      = "not_tls"      // the client did not speak TLS (plain HTTP?)
	reasonTLS         = "tls_error"    // any other TLS protocol failure
	reasonShutdown    = "shutdown"     // the server was stopping
)

var refusalReasons = []string{reasonNoCert, reasonChain, reasonExpired, reasonWrongEKU, reasonRevoked, reasonStale,
	reasonNoData, reasonUnknown, reasonWrongIssuer, reasonCheckError}

var failureReasons = []string{reasonTimeout, reasonEOF, reasonClientAlert, reasonNotTLS, reasonTLS, reasonShutdown}

// refusedError is VerifyConnection's refusal of a client certificate.
type refusedError struct {
	reason string
	leaf   *x509.Certificate // nil for reasonNoCert
	err    error
}

func (e *refusedError) Error() string {
	if e.err == nil {
		return "client certificate refused: " + e.reason
	}
	return "client certificate refused: " + e.reason + ": " + e.err.Error()
}

func (e *refusedError) Unwrap() error { return e.err }

// revocationAttrs are the log attributes of a refusal of a revoked
// certificate: why it was revoked (the RFC 5280 §5.3.1 reason, by its
// name) and when, as the Checker knows them; nil for other refusals.
func (e *refusedError) revocationAttrs() []any {
	if e.reason != reasonRevoked {
		return nil
	}
	rev, ok := errors.AsType[*verify.RefusedError](e.err)
	if !ok {
		return nil
	}
	attrs := []any{"revocation_reason", rev.Reason.String()}
	if !rev.RevokedAt.IsZero() {
		attrs = append(attrs, "revoked_at", rev.RevokedAt)
	}
	return attrs
}

// trust is one generation of what client handshakes are checked against
// and what the proxy presents; Reload swaps it. Its tls.Config is what
// GetConfigForClient returns, so that the shared base config, which owns
// the session ticket keys, never changes: sessions survive a reload, and
// a resumed one is verified again against the new roots.
type trust struct {
	roots         *x509.CertPool
	intermediates *x509.CertPool // may be nil
	cert          *tls.Certificate
	tlsConfig     *tls.Config
	cache         *verifyCache
}

func (s *Server) newTrust(roots, intermediates *x509.CertPool, cert *tls.Certificate) *trust {
	t := &trust{roots: roots, intermediates: intermediates, cert: cert, cache: newVerifyCache(s.cfg.VerifyCacheSize)}
	t.tlsConfig = &tls.Config{
		MinVersion:   tlsconf.MinVersion,
		CipherSuites: tlsconf.CipherSuites(), // TLS 1.2: ECDHE with AEAD only
		Certificates: []tls.Certificate{*cert},
		// Verification is ours, in VerifyConnection: RequireAnyClientCert
		// (Auth mtls) only makes the client send one (or get
		// certificate_required); see clientAuth for jwt and any.
		// No ClientCAs: the request names no CAs, so clients send the
		// certificate they have even if it is the wrong one (Go's would
		// send none), and the refusal says why ("chain", with its issuer)
		// rather than "no_cert".
		ClientAuth: clientAuth(s.cfg.Auth),
		NextProtos: s.nextProtos,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return s.verifyConnection(t, cs)
		},
	}
	return t
}

// clientAuth is what the handshake asks of clients under Config.Auth:
// a certificate (mtls), one if they have it (any), nothing (jwt).
func clientAuth(auth string) tls.ClientAuthType {
	switch auth {
	case AuthJWT:
		return tls.NoClientCert
	case AuthAny:
		return tls.RequestClientCert
	}
	return tls.RequireAnyClientCert
}

// verifyConnection decides whether a client may in. It runs in every
// handshake, full or resumed (crypto/tls skips VerifyPeerCertificate on
// resumption, never VerifyConnection). It reads cs.PeerCertificates only.
// In TLS 1.3 it runs before the client has proved it holds the key
// (CertificateVerify comes after), so it must have no effect but its
// answer: connections are registered once the handshake is complete.
func (s *Server) verifyConnection(t *trust, cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		if s.cfg.Auth != AuthMTLS {
			return nil // its requests carry device JWTs
		}
		return &refusedError{reason: reasonNoCert}
	}
	leaf := cs.PeerCertificates[0]
	if err := t.verifyChain(leaf, cs.PeerCertificates[1:], s.now()); err != nil {
		return err
	}
	// The handshake has no context of its own; Serve's ends on shutdown.
	// A Checker that may block (OCSP) bounds its own fetches.
	if err := s.checker.Check(s.ctx, leaf); err != nil {
		return checkRefusal(leaf, err)
	}
	return nil
}

// verifyChain checks that leaf chains to t.roots (through t.intermediates
// and the certificates the client sent after it), that every certificate
// on the chain is valid at now, and that leaf has the extended key usage
// clientAuth, explicitly: a leaf without EKU, which x509.Verify would take
// for any usage, is refused too. A leaf that passed is remembered, with
// the period its chain is valid, in t.cache.
func (t *trust) verifyChain(leaf *x509.Certificate, sent []*x509.Certificate, now time.Time) error {
	key := sha256.Sum256(leaf.Raw)
	if t.cache.valid(key, now) {
		return nil
	}
	opts := x509.VerifyOptions{
		Roots:         t.roots,
		Intermediates: t.intermediates,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if len(sent) > 0 {
		if t.intermediates != nil {
			opts.Intermediates = t.intermediates.Clone()
		} else {
			opts.Intermediates = x509.NewCertPool()
		}
		for _, c := range sent {
			opts.Intermediates.AddCert(c)
		}
	}
	chains, err := leaf.Verify(opts)
	if err != nil {
		return &refusedError{reason: verifyReason(err), leaf: leaf, err: err}
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return &refusedError{reason: reasonWrongEKU, leaf: leaf, err: errors.New("the certificate has no extended key usage clientAuth")}
	}
	notBefore, notAfter := leaf.NotBefore, leaf.NotAfter
	for _, c := range chains[0][1:] {
		if c.NotBefore.After(notBefore) {
			notBefore = c.NotBefore
		}
		if c.NotAfter.Before(notAfter) {
			notAfter = c.NotAfter
		}
	}
	t.cache.add(key, notBefore, notAfter)
	return nil
}

// verifyReason names x509.Verify's error.
func verifyReason(err error) string {
	var invalid x509.CertificateInvalidError
	if errors.As(err, &invalid) {
		switch invalid.Reason {
		case x509.Expired:
			return reasonExpired
		case x509.IncompatibleUsage:
			return reasonWrongEKU
		}
	}
	return reasonChain
}

// checkRefusal names the Checker's refusal.
func checkRefusal(leaf *x509.Certificate, err error) error {
	reason := reasonCheckError
	if re, ok := errors.AsType[*verify.RefusedError](err); ok {
		switch re.Refusal {
		case verify.Revoked:
			reason = reasonRevoked
		case verify.Stale:
			reason = reasonStale
		case verify.NoData:
			reason = reasonNoData
		case verify.UnknownCert:
			reason = reasonUnknown
		case verify.WrongIssuer:
			reason = reasonWrongIssuer
		}
	}
	return &refusedError{reason: reason, leaf: leaf, err: err}
}

// handshakeReason classifies a failed handshake: a refusal by
// VerifyConnection, or one of the failures. serving is false once Serve is
// stopping.
func handshakeReason(err error, serving bool) (outcome, reason string) {
	if re, ok := errors.AsType[*refusedError](err); ok {
		return outcomeRefused, re.reason
	}
	// crypto/tls has no typed error for a client that sent no
	// certificate; this text is its only sign (handshake_server.go,
	// processCertsFromClient). TestHandshakeRefused pins it.
	if strings.Contains(err.Error(), "didn't provide a certificate") {
		return outcomeRefused, reasonNoCert
	}
	if !serving {
		return outcomeFailed, reasonShutdown
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return outcomeFailed, reasonTimeout
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return outcomeFailed, reasonEOF
	}
	if _, ok := errors.AsType[tls.RecordHeaderError](err); ok {
		return outcomeFailed, reasonNotTLS
	}
	if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Op == "remote error" {
		return outcomeFailed, reasonClientAlert
	}
	return outcomeFailed, reasonTLS
}

// verifyCache remembers client certificates whose chain verified, so that
// a device that reconnects costs one SHA-256 and a map lookup rather than
// chain building and two signature checks. Only successes are kept, with
// the period in which their chain is valid; it belongs to one trust
// generation, so a Reload forgets it. Revocation is never cached here.
type verifyCache struct {
	mu  sync.RWMutex
	max int
	m   map[[sha256.Size]byte]validity
}

type validity struct{ notBefore, notAfter time.Time }

func newVerifyCache(max int) *verifyCache {
	return &verifyCache{max: max, m: make(map[[sha256.Size]byte]validity)}
}

func (c *verifyCache) valid(key [sha256.Size]byte, now time.Time) bool {
	c.mu.RLock()
	v, ok := c.m[key]
	c.mu.RUnlock()
	return ok && !now.Before(v.notBefore) && !now.After(v.notAfter)
}

func (c *verifyCache) add(key [sha256.Size]byte, notBefore, notAfter time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k := range c.m { // evict one entry, in map order (pseudo-random)
			delete(c.m, k)
			break
		}
	}
	c.m[key] = validity{notBefore, notAfter}
}

// describeLeaf is the log attributes of a refused certificate.
func describeLeaf(leaf *x509.Certificate) []any {
	if leaf == nil {
		return nil
	}
	return []any{"device_id", leaf.Subject.CommonName, "serial", leaf.SerialNumber.Text(16), "issuer", leaf.Issuer.String()}
}
