package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"

	"github.com/fleetca/fleetca/proxy/internal/fastpath"
)

// connKey is the context key of a request's *trackedConn (set by
// http.Server.ConnContext).
type connKey struct{}

// upstreamIdleTimeout is how long an idle upstream connection is kept.
const upstreamIdleTimeout = 90 * time.Second

// upstreamBufferSize is the size of each upstream connection's read and
// write buffers.
const upstreamBufferSize = 16 << 10

// newHTTPMode builds the way to the upstream: an http.Transport, the
// ReverseProxy over it and, unless Config.DisableHTTP1FastPath, for an
// http:// upstream, the fast path's pool in between and the fast path.
func (s *Server) newHTTPMode(upstreamTLS *tls.Config) {
	dialer := &net.Dialer{Timeout: s.cfg.UpstreamTimeout, KeepAlive: 30 * time.Second}
	s.transport = &http.Transport{
		Proxy:                  nil, // never an environment proxy between us and the upstream
		DialContext:            dialer.DialContext,
		TLSClientConfig:        upstreamTLS.Clone(),
		TLSHandshakeTimeout:    s.cfg.UpstreamTimeout,
		ResponseHeaderTimeout:  s.cfg.UpstreamTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: int64(s.cfg.MaxHeaderBytes),
		MaxIdleConns:           s.cfg.MaxIdleUpstream,
		MaxIdleConnsPerHost:    s.cfg.MaxIdleUpstream,
		IdleConnTimeout:        upstreamIdleTimeout,
		ForceAttemptHTTP2:      true, // with an https upstream that offers it
		// A proxy passes the client's Accept-Encoding on as it is, and
		// the answer as it comes: no gzip of its own asked for and undone.
		DisableCompression: true,
		WriteBufferSize:    upstreamBufferSize,
		ReadBufferSize:     upstreamBufferSize,
	}
	s.upstreamRT = s.transport
	switch {
	case s.cfg.DisableHTTP1FastPath:
		s.fastOff = "switched off (Config.DisableHTTP1FastPath; fleetca proxy --http1-fast-path=false)"
	case s.upstream.Scheme != "http":
		s.fastOff = "the upstream is " + s.upstream.Scheme + "://"
	default:
		port := s.upstream.Port()
		if port == "" {
			port = "80"
		}
		pool := fastpath.NewTransport(fastpath.TransportConfig{
			Addr:           net.JoinHostPort(s.upstream.Hostname(), port),
			Dial:           dialer.DialContext,
			HeaderTimeout:  s.cfg.UpstreamTimeout,
			MaxHeaderBytes: s.cfg.MaxHeaderBytes,
			MaxIdle:        s.cfg.MaxIdleUpstream,
			IdleTimeout:    upstreamIdleTimeout,
			BufferSize:     upstreamBufferSize,
		}, s.transport)
		s.upstreamRT = pool
		fast, err := fastpath.New(fastpath.Config{
			Upstream:          s.upstream,
			ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
			IdleTimeout:       s.cfg.IdleTimeout,
			OwnHeader:         isIdentityHeader,
		}, fastpath.Deps{
			Transport:      pool,
			Buffers:        s.buffers,
			Logger:         s.log,
			Now:            s.now,
			Served:         s.fastServed,
			UpstreamFailed: s.fastUpstreamFailed,
		})
		if err != nil {
			s.fastOff = err.Error()
		}
		s.fast = fast
	}
	s.rp = &httputil.ReverseProxy{
		Rewrite:      s.rewrite,
		Transport:    s.upstreamRT,
		BufferPool:   s.buffers,
		ErrorHandler: s.upstreamError,
		// What ReverseProxy logs itself is a client gone mid-body.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

// fastConn is c as the fast path serves it.
func fastConn(tc *tls.Conn, c *trackedConn) *fastpath.Conn {
	return &fastpath.Conn{TLS: tc, Context: c.ctx, Header: c.id.fields, DeviceID: c.id.deviceID, Serial: c.id.serial}
}

// fastServed is the fast path's Served: the access-log line and metrics of
// a request it took.
func (s *Server) fastServed(c *fastpath.Conn, r fastpath.Request) {
	s.m.fastRequests.Inc()
	s.served(c.Context, c.DeviceID, c.Serial, r.Method, r.Path, "HTTP/1.1", r.Status, r.Start)
}

// fastUpstreamFailed is the fast path's UpstreamFailed.
func (s *Server) fastUpstreamFailed(c *fastpath.Conn, r fastpath.Request, err error, abandoned bool) {
	s.upstreamFailed(c.Context, r.Method, r.Path, c.DeviceID, err, abandoned)
}

// newHTTPServer is the HTTP server for the handed-off connections. Its
// requests' contexts do not end with ctx, so that a shutdown can let them
// finish.
func (s *Server) newHTTPServer(ctx context.Context) *http.Server {
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	return &http.Server{
		Handler:           httpHandler{s},
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		Protocols:         &protos,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		ConnContext: func(ctx context.Context, nc net.Conn) context.Context {
			// A *tls.Conn, or what the fast path hands over: a wrapper of
			// one, which http.Server does not see as TLS.
			tc, ok := nc.(interface {
				NetConn() net.Conn
				ConnectionState() tls.ConnectionState
			})
			if !ok {
				return ctx
			}
			c, ok := tc.NetConn().(*trackedConn)
			if !ok {
				return ctx
			}
			if _, ok := nc.(*tls.Conn); !ok {
				state := tc.ConnectionState()
				c.handedTLS = &state
			}
			return context.WithValue(ctx, connKey{}, c)
		},
	}
}

// httpHandler proxies one request and writes its access-log line.
type httpHandler struct{ s *Server }

func (h httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := h.s
	c, _ := r.Context().Value(connKey{}).(*trackedConn)
	if c != nil && c.id == nil && c.jwt {
		if r = s.serveJWT(w, r, c); r == nil {
			return
		}
	} else if c == nil || c.id == nil {
		// Unreachable: every connection is verified before it is handed
		// over. Never forward a request without its identity.
		s.log.Error("request on a connection without a verified client", "remote_addr", r.RemoteAddr)
		http.Error(w, "no verified client certificate", http.StatusInternalServerError)
		return
	}
	if r.TLS == nil && c.handedTLS != nil {
		// A connection the fast path handed over, in a wrapper that
		// http.Server does not see as TLS: it is TLS all the same, and
		// X-Forwarded-Proto must say so.
		r.TLS = c.handedTLS
	}
	start := s.now()
	rec := &recorder{ResponseWriter: w, conn: c}
	id := requestIdentity(r, c)
	defer func() { // also when ReverseProxy aborts with http.ErrAbortHandler
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		s.served(r.Context(), id.deviceID, id.serial, r.Method, r.URL.Path, r.Proto, status, start)
	}()
	s.rp.ServeHTTP(rec, r)
}

// served counts a request and writes its access-log line, for either path.
func (s *Server) served(ctx context.Context, deviceID, serial, method, path, proto string, status int, start time.Time) {
	s.m.request(status)
	s.log.LogAttrs(ctx, slog.LevelInfo, "request",
		slog.String("device_id", deviceID),
		slog.String("serial", serial),
		slog.String("method", method),
		slog.String("path", path),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(s.now().Sub(start))/float64(time.Millisecond)),
		slog.String("upstream", s.upstreamLog),
		slog.String("proto", proto))
}

// rewrite is the ReverseProxy's Rewrite: route to the upstream, set
// X-Forwarded-For/-Host/-Proto (ReverseProxy has removed the client's),
// and replace the identity headers with the verified client's.
func (s *Server) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(s.upstream)
	pr.SetXForwarded()
	c := pr.In.Context().Value(connKey{}).(*trackedConn) // ServeHTTP checked it
	if id, ok := pr.In.Context().Value(identityKey{}).(*identity); ok {
		// The device's JWT is its credential for the proxy, not for the
		// upstream: it is not passed on.
		pr.Out.Header.Del("Authorization")
		id.setHeaders(pr.Out.Header)
		return
	}
	c.id.setHeaders(pr.Out.Header)
}

// upstreamError answers a request the upstream could not: 504 if it timed
// out, 502 otherwise, with a short plain body; and logs why.
func (s *Server) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusBadGateway
	if ne, ok := errors.AsType[net.Error](err); (ok && ne.Timeout()) || errors.Is(err, context.DeadlineExceeded) {
		status = http.StatusGatewayTimeout
	}
	deviceID := ""
	if c, ok := r.Context().Value(connKey{}).(*trackedConn); ok {
		if id := requestIdentity(r, c); id != nil {
			deviceID = id.deviceID
		}
	}
	// The client went away (or its connection was closed): nobody reads
	// the answer.
	s.upstreamFailed(r.Context(), r.Method, r.URL.Path, deviceID, err, r.Context().Err() != nil)
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	io.WriteString(w, http.StatusText(status)+"\n")
}

// upstreamFailed logs and counts a request the upstream could not answer,
// for either path: at Debug and uncounted if it was abandoned (the client
// went away, or its connection was closed), at Warn otherwise.
func (s *Server) upstreamFailed(ctx context.Context, method, path, deviceID string, err error, abandoned bool) {
	attrs := []slog.Attr{slog.String("method", method), slog.String("path", path),
		slog.String("upstream", s.upstreamLog), slog.Any("err", err), slog.String("device_id", deviceID)}
	if abandoned {
		s.log.LogAttrs(ctx, slog.LevelDebug, "request abandoned", attrs...)
		return
	}
	s.m.upstreamErrors.Inc()
	s.log.LogAttrs(ctx, slog.LevelWarn, "upstream failed", attrs...)
}

// recorder notes a response's status for the access log, and marks the
// connection upgraded when the ReverseProxy hijacks it for a protocol
// switch. Flush reaches the writer underneath through Unwrap
// (http.ResponseController).
type recorder struct {
	http.ResponseWriter
	conn   *trackedConn
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Hijack is only called by the ReverseProxy, after the upstream answered
// 101 Switching Protocols. HTTP/2 cannot be hijacked: ReverseProxy then
// answers 502.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("proxy: this connection (HTTP/2) cannot switch protocols: %w", http.ErrNotSupported)
	}
	conn, brw, err := hj.Hijack()
	if err == nil {
		r.status = http.StatusSwitchingProtocols
		r.conn.upgraded.Store(true)
	}
	return conn, brw, err
}

// copyBufferSize is the size of the buffers that copy bodies and pipes.
const copyBufferSize = 32 << 10

// bufferPool recycles the copy buffers of ReverseProxy (otherwise one is
// allocated per response) and of TCP pipes.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { return new([copyBufferSize]byte) }}}
}

func (bp *bufferPool) Get() []byte { return bp.p.Get().(*[copyBufferSize]byte)[:] }

func (bp *bufferPool) Put(b []byte) {
	if len(b) == copyBufferSize {
		bp.p.Put((*[copyBufferSize]byte)(b))
	}
}
