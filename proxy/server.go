package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetca/fleetca/internal/tlsconf"
	"github.com/fleetca/fleetca/proxy/internal/fastpath"
)

// Checker is what the proxy asks about revocation; *verify.Checker is
// one.
//
// Check returns nil if leaf may connect, and otherwise an error, a
// *verify.RefusedError when it knows why (its Refusal names the
// reason in logs and metrics). It runs inside every TLS handshake, so it
// must be quick; it gets Serve's context, which ends on shutdown, and must
// bound any blocking of its own (an OCSP fetch).
//
// Subscribe registers fn to be called with the serial of every
// certificate the Checker learns is revoked after it may have been
// checked. The Checker must make the revocation visible to Check before
// it calls fn. fn does not block.
//
// SubscribeStale registers fn to be called at the instant the Checker's
// data goes stale, so that Check refuses every certificate from then on
// (a CRL past its nextUpdate and grace); reason says why. The Checker
// must make the refusal visible to Check before it calls fn, so that a
// handshake after the call cannot get in. fn does not block.
//
// All three are safe for concurrent use.
type Checker interface {
	Check(ctx context.Context, leaf *x509.Certificate) error
	Subscribe(fn func(serial *big.Int))
	SubscribeStale(fn func(reason error))
}

// Deps are a Server's collaborators.
type Deps struct {
	// Roots are the fleet's root(s): client chains must end here. Required.
	Roots *x509.CertPool
	// Intermediates are extra intermediates (the CA bundle's) that client
	// chains may go through; may be nil, as clients usually send theirs.
	Intermediates *x509.CertPool
	// Certificate is the proxy's own server certificate, with its chain
	// (leaf first) and key. Required.
	Certificate *tls.Certificate
	// Checker decides revocation and announces it. Required: the proxy
	// does not run without one. Its Run (keeping it fresh) is the
	// caller's to start.
	Checker Checker
	// UpstreamTLS configures the client side towards an https upstream
	// (RootCAs, a client certificate, ServerName); nil means the system
	// roots. Unused for http and tcp upstreams.
	UpstreamTLS *tls.Config
	// JWT checks device JWTs; required when Config.Auth is "jwt" or "any".
	JWT JWTVerifier
	// Logger; nil discards.
	Logger *slog.Logger
	// Metrics registers the fleetca_proxy_* collectors; nil registers
	// none. One Server per registry.
	Metrics prometheus.Registerer
	// Now is the clock for certificate validity, the CRL age metric and
	// access-log durations; nil means time.Now. Network deadlines are
	// wall-clock, as the kernel's are.
	Now func() time.Time
	// AfterFunc arms a timer that calls f in its own goroutine after d, as
	// time.AfterFunc does; nil means time.AfterFunc. The proxy uses it to
	// close an MQTT session authenticated by a device JWT when the token
	// expires, and stops the timer when the session ends first.
	AfterFunc func(d time.Duration, f func()) Timer
}

// Timer is what Deps.AfterFunc returns; *time.Timer is one. Stop reports
// whether it stopped the timer before it fired.
type Timer interface {
	Stop() bool
}

// Server is the mTLS-terminating proxy. New builds it, Serve runs it on a
// listener, Reload swaps its certificates, a Checker's announcement
// of a revoked serial closes that serial's open connections, and its
// announcement that its data went stale closes every open connection. Its methods
// are safe for concurrent use.
type Server struct {
	cfg         Config
	mode        mode
	upstream    *url.URL
	upstreamLog string // the upstream for logs
	checker     Checker
	jwt         JWTVerifier // nil unless Config.Auth is jwt or any
	jwtIDs      *jwtIdentities
	log         *slog.Logger
	now         func() time.Time
	afterFunc   func(time.Duration, func()) Timer
	m           *metrics
	nextProtos  []string

	trust   atomic.Pointer[trust]
	baseTLS *tls.Config
	conns   *connSet
	buffers *bufferPool

	// HTTP mode.
	transport  *http.Transport
	upstreamRT upstreamTransport // transport, or the fast path's pool over it
	fast       *fastpath.Server  // nil if HTTP/1.1 requests all take the ReverseProxy
	fastOff    string            // why fast is nil
	rp         *httputil.ReverseProxy
	// TCP mode.
	dialer net.Dialer

	serving atomic.Bool
	// ctx is Serve's: set before the first connection is accepted.
	ctx context.Context
}

// New checks cfg and deps and returns a Server. It subscribes to
// deps.Checker and registers its metrics on deps.Metrics.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case deps.Roots == nil:
		return nil, errors.New("proxy.New: Deps.Roots is required")
	case deps.Certificate == nil || len(deps.Certificate.Certificate) == 0 || deps.Certificate.PrivateKey == nil:
		return nil, errors.New("proxy.New: Deps.Certificate with a certificate and a key is required")
	case deps.Checker == nil:
		return nil, errors.New("proxy.New: Deps.Checker is required")
	case cfg.Auth != AuthMTLS && deps.JWT == nil:
		return nil, errors.New("proxy.New: Deps.JWT is required with Config.Auth " + cfg.Auth)
	}
	m, u, _ := parseUpstream(cfg.Upstream)
	s := &Server{cfg: cfg, mode: m, upstream: u, upstreamLog: u.Redacted(), checker: deps.Checker,
		jwtIDs: &jwtIdentities{max: cfg.VerifyCacheSize, m: map[string]*identity{}},
		log:    deps.Logger, now: deps.Now, afterFunc: deps.AfterFunc, conns: newConnSet(), buffers: newBufferPool(), ctx: context.Background()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.afterFunc == nil {
		s.afterFunc = func(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
	}
	if cfg.Auth != AuthMTLS {
		s.jwt = deps.JWT
	}
	if m == modeHTTP {
		s.nextProtos = []string{"h2", "http/1.1"}
		s.newHTTPMode(deps.UpstreamTLS)
	} else {
		s.dialer = net.Dialer{Timeout: cfg.UpstreamTimeout, KeepAlive: 30 * time.Second}
	}
	s.trust.Store(s.newTrust(deps.Roots, deps.Intermediates, deps.Certificate))
	// The base config owns the session ticket keys; everything else comes
	// from the current trust generation, per handshake.
	s.baseTLS = &tls.Config{
		MinVersion:   tlsconf.MinVersion,
		CipherSuites: tlsconf.CipherSuites(),
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.trust.Load().tlsConfig, nil
		},
	}
	if err := s.registerMetrics(deps.Metrics); err != nil {
		return nil, err
	}
	deps.Checker.Subscribe(s.revoked)
	deps.Checker.SubscribeStale(s.stale)
	return s, nil
}

// Reload makes new handshakes use roots, intermediates and cert; open
// connections are not touched, and resumed sessions are verified against
// the new roots. A nil roots or cert keeps the current one; a nil
// intermediates means none beyond what clients send. It forgets the
// cache of verified chains.
func (s *Server) Reload(roots, intermediates *x509.CertPool, cert *tls.Certificate) {
	old := s.trust.Load()
	if roots == nil {
		roots = old.roots
	}
	if cert == nil || len(cert.Certificate) == 0 {
		cert = old.cert
	}
	s.trust.Store(s.newTrust(roots, intermediates, cert))
	attrs := []any{}
	if leaf, err := x509.ParseCertificate(cert.Certificate[0]); err == nil {
		attrs = append(attrs, "cert_subject", leaf.Subject.String(), "cert_not_after", leaf.NotAfter)
	}
	s.log.Info("proxy certificates reloaded", attrs...)
}

// OpenConnections is the number of client connections open, from accept
// (handshaking ones included) to close.
func (s *Server) OpenConnections() int { return int(s.conns.open.Load()) }

// revoked is the Checker's announcement: close the serial's connections.
func (s *Server) revoked(serial *big.Int) {
	n := s.conns.closeSerial(string(serial.Bytes()))
	if n == 0 {
		return
	}
	s.m.revokedClosed.Add(float64(n))
	s.log.Info("closed the connections of a revoked certificate", "serial", serial.Text(16), "connections", n)
}

// stale is the Checker's announcement that its data went stale: every
// device is refused from now on, so the connections let in before are
// closed too, handshaking ones included. A connection whose handshake
// passed Check just before is among them: it was tracked from accept.
// It is logged at Error whatever the count: the proxy now refuses
// everyone, and only the CA coming back (or a fresh CRL) helps.
func (s *Server) stale(reason error) {
	n := s.conns.closeWhere(func(*trackedConn) bool { return true })
	s.m.staleClosed.Add(float64(n))
	s.log.Error("revocation data is stale: every device is refused and every open connection was closed", "connections", n, "err", reason)
}

// Serve accepts client connections on ln until ctx ends, then shuts down:
// it stops accepting, closes connections still handshaking, upgraded
// (WebSocket) connections and TCP pipes at once, lets HTTP requests in
// flight finish for up to Config.ShutdownGrace, closes whatever is left,
// and waits for its goroutines. It closes ln. It returns nil after a stop
// by ctx, and the listener's error if accepting fails for good. Serve may
// be called once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if !s.serving.CompareAndSwap(false, true) {
		return errors.New("proxy: Serve called twice")
	}
	s.ctx = ctx
	var wg sync.WaitGroup
	var hs *http.Server
	var handoff *handoffListener
	if s.mode == modeHTTP {
		handoff = newHandoffListener(ln.Addr())
		hs = s.newHTTPServer(ctx)
		wg.Go(func() {
			hs.Serve(handoff)
			handoff.Close() // had it stopped early, handshakes would wait to hand off
		})
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	attrs := []any{"addr", ln.Addr().String(), "upstream", s.upstreamLog}
	if s.mode == modeHTTP {
		attrs = append(attrs, "http1_fast_path", s.fast != nil)
		if s.fast == nil {
			attrs = append(attrs, "http1_fast_path_off", s.fastOff)
		}
	}
	s.log.Info("proxy listening", attrs...)

	err := s.accept(ctx, ln, handoff, &wg)
	ln.Close()
	s.conns.stop()
	s.log.Info("proxy shutting down", "addr", ln.Addr().String(), "open_connections", s.OpenConnections())

	all := func(*trackedConn) bool { return true }
	if s.mode == modeTCP {
		s.conns.closeWhere(all)
	} else {
		s.conns.closeWhere(func(c *trackedConn) bool { return (c.serial == "" && !c.jwt) || c.upgraded.Load() })
		// The fast path's connections drain as http.Server's do: idle
		// ones close now, busy ones after their request.
		fastDone := make(<-chan struct{})
		if s.fast != nil {
			fastDone = s.fast.Shutdown()
		}
		grace, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownGrace)
		if hs.Shutdown(grace) != nil {
			hs.Close()
		}
		if s.fast != nil {
			select {
			case <-fastDone:
			case <-grace.Done():
			}
		}
		cancel()
		s.conns.closeWhere(all)
		s.upstreamRT.CloseIdleConnections()
	}
	wg.Wait()
	s.log.Info("proxy stopped", "addr", ln.Addr().String())
	return err
}

// accept runs the accept loop until ctx ends (nil) or ln fails for good.
func (s *Server) accept(ctx context.Context, ln net.Listener, handoff *handoffListener, wg *sync.WaitGroup) error {
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !retryableAccept(err) {
				return fmt.Errorf("proxy: accept on %s: %w", ln.Addr(), err)
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		backoff = 0
		c := s.conns.add(ctx, nc)
		wg.Go(func() { s.handle(ctx, c, handoff) })
	}
}

// retryableAccept reports whether an Accept error passes (out of file
// descriptors or memory, a connection aborted before it was accepted).
func retryableAccept(err error) bool {
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return true
	}
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// handle runs one client connection: the handshake, then the connection's
// registration under its serial, then HTTP or the TCP pipe.
func (s *Server) handle(ctx context.Context, c *trackedConn, handoff *handoffListener) {
	start := s.now()
	epoch0 := s.conns.currentEpoch()
	tc := tls.Server(c, s.baseTLS)
	// Socket deadlines are wall-clock, whatever Deps.Now says.
	c.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	if err := tc.HandshakeContext(ctx); err != nil {
		s.handshakeFailed(c, err, ctx.Err() == nil, true)
		if re, ok := errors.AsType[tls.RecordHeaderError](err); ok && s.mode == modeHTTP && looksLikeHTTP(re.RecordHeader) {
			// As http.Server does: tell a plain-HTTP client what is wrong.
			io.WriteString(c, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
		}
		c.Close()
		return
	}
	cs := tc.ConnectionState()
	if len(cs.PeerCertificates) == 0 {
		if s.mode == modeTCP {
			// An MQTT client (Validate allows no other TCP mode without
			// certificates): its CONNECT carries a device JWT.
			s.serveMQTTJWT(ctx, tc, c, start)
			return
		}
		// No client certificate, which verifyConnection allows only with
		// Config.Auth jwt or any: every request carries a device JWT.
		c.SetDeadline(time.Time{})
		s.serveJWTConn(tc, c, cs, handoff)
		return
	}
	c.SetDeadline(time.Time{})
	leaf := cs.PeerCertificates[0]
	c.id = newIdentity(leaf, s.mode == modeHTTP)
	open, recheck := s.conns.register(c, c.id.serialKey, epoch0)
	if !open {
		c.Close() // the Server is stopping
		return
	}
	if recheck {
		// A serial was announced while this handshake ran; it may have
		// been this one, checked before and registered after.
		if err := s.checker.Check(ctx, leaf); err != nil {
			s.handshakeFailed(c, checkRefusal(leaf, err), true, false)
			c.Close()
			return
		}
	}
	s.m.handshake(reasonOK)
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.Debug("client connected", "remote_addr", c.RemoteAddr().String(), "device_id", c.id.deviceID, "serial", c.id.serial,
			"tls_version", tls.VersionName(cs.Version), "alpn", cs.NegotiatedProtocol, "resumed", cs.DidResume)
	}
	if s.mode == modeTCP {
		if s.cfg.MQTT {
			s.serveMQTTCert(ctx, tc, c, start)
			return
		}
		s.pipe(ctx, tc, c, start, nil)
		return
	}
	var hc net.Conn = tc
	if s.fast != nil && cs.NegotiatedProtocol != "h2" {
		// Plain requests are served here; the first other one, and the
		// rest of the connection, by http.Server.
		if hc = s.fast.ServeConn(fastConn(tc, c)); hc == nil {
			return
		}
	}
	if !handoff.handoff(hc) {
		c.Close()
	}
}

// serveJWTConn serves a connection whose requests carry device JWTs:
// plain HTTP/1.1 requests on the fast path, which asks authJWT about each,
// the others (and refusals) through net/http, which asks serveJWT.
func (s *Server) serveJWTConn(tc *tls.Conn, c *trackedConn, cs tls.ConnectionState, handoff *handoffListener) {
	if !s.conns.markJWT(c) {
		c.Close() // the Server is stopping
		return
	}
	s.m.handshake(reasonJWT)
	if s.log.Enabled(s.ctx, slog.LevelDebug) {
		s.log.Debug("client connected without a certificate (device JWTs)", "remote_addr", c.RemoteAddr().String(),
			"tls_version", tls.VersionName(cs.Version), "alpn", cs.NegotiatedProtocol, "resumed", cs.DidResume)
	}
	var hc net.Conn = tc
	if s.fast != nil && cs.NegotiatedProtocol != "h2" {
		if hc = s.fast.ServeConn(&fastpath.Conn{TLS: tc, Context: c.ctx, Authorize: s.fastAuthorize(c)}); hc == nil {
			return
		}
	}
	if !handoff.handoff(hc) {
		c.Close()
	}
}

// looksLikeHTTP reports whether the first five bytes a client sent are
// those of an HTTP/1 request.
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO", "DELET", "PATCH":
		return true
	}
	return false
}

// handshakeFailed logs and counts a handshake that did not let the client
// in. inHandshake says the refusal came from VerifyConnection, so that
// crypto/tls sent the client an alert; otherwise the connection was
// refused once the handshake was over (see connSet.register) and is only
// closed.
func (s *Server) handshakeFailed(c *trackedConn, err error, serving, inHandshake bool) {
	outcome, reason := handshakeReason(err, serving)
	s.m.handshake(reason)
	attrs := []any{"remote_addr", c.RemoteAddr().String(), "reason", reason, "err", err}
	if re, ok := errors.AsType[*refusedError](err); ok {
		attrs = append(attrs, describeLeaf(re.leaf)...)
		attrs = append(attrs, re.revocationAttrs()...)
		if inHandshake {
			// Whatever the reason: crypto/tls has no other alert for a
			// VerifyConnection error (see "Caveats" in doc.go).
			attrs = append(attrs, "tls_alert", "bad_certificate")
		}
	}
	if outcome == outcomeRefused {
		s.log.Info("client refused", attrs...)
	} else {
		s.log.Debug("client handshake failed", attrs...)
	}
}

// upstreamTransport is the ReverseProxy's RoundTripper.
type upstreamTransport interface {
	http.RoundTripper
	CloseIdleConnections()
}

// handoffListener is the net.Listener the HTTP server accepts from:
// connections whose handshake the Server has completed and verified.
type handoffListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

// handoff gives c to the HTTP server; false if it has stopped accepting.
func (l *handoffListener) handoff(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}
