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
)

// connKey is the context key of a request's *trackedConn (set by
// http.Server.ConnContext).
type connKey struct{}

// upstreamIdleTimeout is how long an idle upstream connection is kept.
const upstreamIdleTimeout = 90 * time.Second

// newReverseProxy builds the Transport to the upstream and the
// ReverseProxy over it.
func (s *Server) newReverseProxy(upstreamTLS *tls.Config) {
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
	port := s.upstream.Port()
	if port == "" {
		port = "80"
	}
	s.upstreamRT = &h1Upstream{
		addr:           net.JoinHostPort(s.upstream.Hostname(), port),
		dialer:         dialer,
		headerTimeout:  s.cfg.UpstreamTimeout,
		maxHeaderBytes: int64(s.cfg.MaxHeaderBytes),
		maxIdle:        s.cfg.MaxIdleUpstream,
		idleTimeout:    upstreamIdleTimeout,
		fallback:       s.transport,
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
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			var tc *tls.Conn
			switch c := c.(type) {
			case *tls.Conn:
				tc = c
			case *replayConn: // handed over by the fast path
				tc = c.Conn
			default:
				return ctx
			}
			if c, ok := tc.NetConn().(*trackedConn); ok {
				return context.WithValue(ctx, connKey{}, c)
			}
			return ctx
		},
	}
}

// httpHandler proxies one request and writes its access-log line.
type httpHandler struct{ s *Server }

func (h httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := h.s
	c, _ := r.Context().Value(connKey{}).(*trackedConn)
	if c == nil || c.id == nil {
		// Unreachable: every connection is verified before it is handed
		// over. Never forward a request without its identity.
		s.log.Error("request on a connection without a verified client", "remote_addr", r.RemoteAddr)
		http.Error(w, "no verified client certificate", http.StatusInternalServerError)
		return
	}
	if r.TLS == nil && c.handedTLS != nil {
		// A connection the fast path handed over (replayConn): it is TLS
		// all the same, and X-Forwarded-Proto must say so.
		r.TLS = c.handedTLS
	}
	start := s.now()
	rec := &recorder{ResponseWriter: w, conn: c}
	defer func() { // also when ReverseProxy aborts with http.ErrAbortHandler
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		s.m.request(status)
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("device_id", c.id.deviceID),
			slog.String("serial", c.id.serial),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", status),
			slog.Float64("duration_ms", float64(s.now().Sub(start))/float64(time.Millisecond)),
			slog.String("upstream", s.upstreamLog),
			slog.String("proto", r.Proto))
	}()
	s.rp.ServeHTTP(rec, r)
}

// rewrite is the ReverseProxy's Rewrite: route to the upstream, set
// X-Forwarded-For/-Host/-Proto (ReverseProxy has removed the client's),
// and replace the identity headers with the verified client's.
func (s *Server) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(s.upstream)
	pr.SetXForwarded()
	c := pr.In.Context().Value(connKey{}).(*trackedConn) // ServeHTTP checked it
	c.id.setHeaders(pr.Out.Header)
}

// upstreamError answers a request the upstream could not: 504 if it timed
// out, 502 otherwise, with a short plain body; and logs why.
func (s *Server) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusBadGateway
	if ne, ok := errors.AsType[net.Error](err); (ok && ne.Timeout()) || errors.Is(err, context.DeadlineExceeded) {
		status = http.StatusGatewayTimeout
	}
	attrs := []slog.Attr{slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.String("upstream", s.upstreamLog), slog.Any("err", err)}
	if c, ok := r.Context().Value(connKey{}).(*trackedConn); ok && c.id != nil {
		attrs = append(attrs, slog.String("device_id", c.id.deviceID))
	}
	if r.Context().Err() != nil {
		// The client went away (or its connection was closed); nobody
		// reads the answer.
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "request abandoned", attrs...)
	} else {
		s.m.upstreamErrors.Inc()
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "upstream failed", attrs...)
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	io.WriteString(w, http.StatusText(status)+"\n")
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
