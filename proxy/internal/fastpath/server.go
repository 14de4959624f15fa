package fastpath

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
	"net/url"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// bufferSize is the size of a connection's read and write buffers. A
// request head that does not fit takes the slow path.
const bufferSize = 4096

// sniffLen is how much of a body http.DetectContentType reads.
const sniffLen = 512

// Config configures a Server. The proxy fills it from its own Config.
type Config struct {
	// Upstream is the http:// upstream: each request goes to its host,
	// with its path (a prefix) joined to the request's, as
	// httputil.ProxyRequest.SetURL joins them. Required.
	Upstream *url.URL
	// ReadHeaderTimeout bounds reading a request head: the first from the
	// start of ServeConn, later ones from their first byte, as
	// http.Server.ReadHeaderTimeout. Required.
	ReadHeaderTimeout time.Duration
	// IdleTimeout is how long a connection may wait for its next request,
	// as http.Server.IdleTimeout. Required.
	IdleTimeout time.Duration
	// OwnHeader reports whether a request header, by its canonical name,
	// is the proxy's to set (its identity headers, which Conn.Header
	// carries): the client's headers for which it returns true never
	// reach the upstream. nil means none.
	OwnHeader func(name string) bool
}

// Deps are a Server's collaborators.
type Deps struct {
	// Transport carries requests to the upstream. Required.
	Transport *Transport
	// Buffers lends the buffers that copy answers flushed as they come
	// (no length, text/event-stream); ReverseProxy's pool. nil allocates.
	Buffers httputil.BufferPool
	// Logger gets the Server's own lines: a panic serving a connection
	// (Error), an answer cut short (Debug). nil discards.
	Logger *slog.Logger
	// Now stamps Request.Start; nil means time.Now. Network deadlines are
	// wall-clock.
	Now func() time.Time
	// Served is told of every request the Server took, once its answer
	// is written or abandoned: the proxy writes its access-log line and
	// counts it, as it does for the requests net/http serves. It runs on
	// the connection's goroutine. nil ignores.
	Served func(c *Conn, r Request)
	// UpstreamFailed is told of a request the upstream could not answer,
	// before Served: r.Status is the 502 or 504 the client gets, unless
	// abandoned says that the client's connection was closed meanwhile
	// (Conn.Context ended), and no answer is sent. nil ignores.
	UpstreamFailed func(c *Conn, r Request, err error, abandoned bool)
}

// Conn is a verified client connection the proxy gives ServeConn.
type Conn struct {
	// TLS is the connection, its handshake done and its client verified;
	// no protocol but HTTP/1.1 was negotiated.
	TLS *tls.Conn
	// Context ends when the proxy closes the connection (a revocation,
	// shutdown): that interrupts the upstream exchange of the request in
	// flight at once, as the end of a request's context does under
	// net/http. Upstream dials and log lines use it.
	Context context.Context
	// Header is set on every request sent upstream (the proxy's identity
	// headers, named by Config.OwnHeader), in place of what the client
	// sent under those names. Read-only.
	Header []Field
	// DeviceID and Serial name the client, for the proxy's log lines and
	// the Server's own.
	DeviceID, Serial string
	// Authorize, if set, authenticates each request instead of the
	// connection (device JWTs): it gets the request's Authorization header
	// ("" if none) and returns the fields to send upstream in place of
	// Header, with the device ID and serial for the log lines, and true;
	// or false, and the request (and the rest of the connection) goes to
	// net/http, which answers the refusal. A request with more than one
	// Authorization header goes there without asking. The client's
	// Authorization header is not sent upstream. It runs on the
	// connection's goroutine.
	Authorize func(authorization string) (header []Field, deviceID, serial string, ok bool)
}

// Request is what Served and UpstreamFailed are told of a request.
type Request struct {
	Method string
	Path   string    // as sent, without the query
	Start  time.Time // Deps.Now once its head was read
	Status int       // the answer's status (see Deps.UpstreamFailed)
}

// Server is the HTTP/1.1 fast path: New builds it for an upstream,
// ServeConn serves a connection until it closes or takes a request the
// Server does not, Shutdown drains it. Its methods are safe for
// concurrent use.
type Server struct {
	cfg            Config
	t              *Transport
	buffers        httputil.BufferPool
	log            *slog.Logger
	now            func() time.Time
	served         func(*Conn, Request)
	upstreamFailed func(*Conn, Request, error, bool)
	upstreamLog    string // the upstream for logs

	host   string // the Host header sent upstream, as http.Request.Write would send it
	prefix string // the upstream URL's path, without one trailing '/'
	// reqs are what http.ReadResponse needs to read an answer to each
	// method: read-only, shared.
	get, head, options, trace *http.Request

	track tracker
}

// ErrUnsupported is New's error for an upstream to which the Server cannot
// send requests exactly as the proxy's ReverseProxy would: the proxy then
// serves every request through net/http.
var ErrUnsupported = errors.New("the HTTP/1.1 fast path cannot serve this upstream")

// New returns a Server for cfg.Upstream. Its error wraps ErrUnsupported,
// saying why, for an upstream that is not http:// (Transport does not
// serve https), whose path or host http.Request.Write or ReverseProxy
// would escape or rewrite, or in a process where ReverseProxy re-encodes
// queries (the GODEBUG setting urlmaxqueryparams); and says what is
// missing if cfg or deps lack a required field.
func New(cfg Config, deps Deps) (*Server, error) {
	switch {
	case cfg.Upstream == nil:
		return nil, errors.New("fastpath.New: Config.Upstream is required")
	case cfg.ReadHeaderTimeout <= 0 || cfg.IdleTimeout <= 0:
		return nil, errors.New("fastpath.New: Config.ReadHeaderTimeout and Config.IdleTimeout are required")
	case deps.Transport == nil:
		return nil, errors.New("fastpath.New: Deps.Transport is required")
	}
	if err := supported(cfg.Upstream); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrUnsupported, err)
	}
	s := &Server{cfg: cfg, t: deps.Transport, buffers: deps.Buffers, log: deps.Logger, now: deps.Now,
		served: deps.Served, upstreamFailed: deps.UpstreamFailed, upstreamLog: cfg.Upstream.Redacted(),
		host: cfg.Upstream.Host, prefix: strings.TrimSuffix(cfg.Upstream.Path, "/")}
	req := func(method string) *http.Request { return &http.Request{Method: method} }
	s.get, s.head, s.options, s.trace = req(http.MethodGet), req(http.MethodHead), req(http.MethodOptions), req(http.MethodTrace)
	if s.cfg.OwnHeader == nil {
		s.cfg.OwnHeader = func(string) bool { return false }
	}
	if s.buffers == nil {
		s.buffers = allocPool{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.served == nil {
		s.served = func(*Conn, Request) {}
	}
	if s.upstreamFailed == nil {
		s.upstreamFailed = func(*Conn, Request, error, bool) {}
	}
	s.track.idle = map[*conn]struct{}{}
	return s, nil
}

// supported says why the Server cannot send requests to u exactly as
// ReverseProxy does, or returns nil.
func supported(u *url.URL) error {
	if u.Scheme != "http" {
		return fmt.Errorf("the upstream is %s://, not http://", u.Scheme)
	}
	if u.RawPath != "" {
		return errors.New("the upstream's path is escaped")
	}
	for i := 0; i < len(u.Path); i++ {
		if !plainPathByte(u.Path[i]) {
			return errors.New("the upstream's path has bytes that would be escaped")
		}
	}
	if strings.ContainsAny(u.Host, "%") || !httpguts.ValidHostHeader(u.Host) {
		return errors.New("the upstream's host is escaped or not a valid Host header")
	}
	for i := 0; i < len(u.Host); i++ {
		if u.Host[i] >= 0x80 { // http.Request.Write would punycode it
			return errors.New("the upstream's host would be punycoded")
		}
	}
	if !queriesPassThrough() {
		return errors.New("ReverseProxy re-encodes queries in this process (GODEBUG urlmaxqueryparams)")
	}
	return nil
}

// request is the request http.ReadResponse is given for method.
func (s *Server) request(method string) *http.Request {
	switch method {
	case http.MethodHead:
		return s.head
	case http.MethodOptions:
		return s.options
	case http.MethodTrace:
		return s.trace
	}
	return s.get
}

// queriesPassThrough reports whether ReverseProxy passes a plain query on
// as it is. It re-encodes (and so reorders) every query when the GODEBUG
// setting urlmaxqueryparams is set, which only it can see.
func queriesPassThrough() bool {
	const q = "b=1&a=2"
	var got string
	rp := &httputil.ReverseProxy{
		Rewrite:      func(pr *httputil.ProxyRequest) { got = pr.Out.URL.RawQuery },
		Transport:    roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, errProbe }),
		ErrorHandler: func(http.ResponseWriter, *http.Request, error) {},
	}
	rp.ServeHTTP(discardResponse{}, &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/", RawQuery: q}, Header: http.Header{}})
	return got == q
}

var errProbe = errors.New("proxy: probe")

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type discardResponse struct{}

func (discardResponse) Header() http.Header         { return http.Header{} }
func (discardResponse) Write(b []byte) (int, error) { return len(b), nil }
func (discardResponse) WriteHeader(int)             {}

// allocPool is the BufferPool of a Server given none.
type allocPool struct{}

func (allocPool) Get() []byte  { return make([]byte, 32<<10) }
func (allocPool) Put(b []byte) {}

// tracker knows which connections wait for a request and how many
// requests are in flight, so that Shutdown can close the first at once
// and wait for the second, as http.Server.Shutdown does.
type tracker struct {
	draining atomic.Bool // set once, under mu; read without it as answers are written

	mu     sync.Mutex
	idle   map[*conn]struct{}
	active int
	done   chan struct{} // made by Shutdown; closed once no request is in flight
	closed bool
}

// setIdle marks c as waiting for its next request. It reports false if
// the Server is draining: the caller closes c.
func (t *tracker) setIdle(c *conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.draining.Load() {
		return false
	}
	t.idle[c] = struct{}{}
	return true
}

// begin marks c busy, a request in flight until end: counted before c
// stops being idle, so that a Shutdown in between waits for the request
// rather than cutting it off.
func (t *tracker) begin(c *conn) {
	t.mu.Lock()
	delete(t.idle, c)
	t.active++
	t.mu.Unlock()
}

func (t *tracker) end() {
	t.mu.Lock()
	t.active--
	t.checkLocked()
	t.mu.Unlock()
}

// forget drops c, whatever its state, when its ServeConn returns.
func (t *tracker) forget(c *conn) {
	t.mu.Lock()
	delete(t.idle, c)
	t.mu.Unlock()
}

func (t *tracker) checkLocked() {
	if t.done != nil && t.active == 0 && !t.closed {
		t.closed = true
		close(t.done)
	}
}

// Shutdown starts draining the Server: it closes the connections that wait
// for a request at once, and every other connection once its request in
// flight is answered (with Connection: close); a connection given to
// ServeConn afterwards is closed before its first request. It returns a
// channel closed once no request is in flight. It may be called more than
// once.
func (s *Server) Shutdown() <-chan struct{} {
	t := &s.track
	t.mu.Lock()
	t.draining.Store(true)
	if t.done == nil {
		t.done = make(chan struct{})
	}
	idle := make([]*conn, 0, len(t.idle))
	for c := range t.idle {
		idle = append(idle, c)
	}
	clear(t.idle)
	t.checkLocked()
	done := t.done
	t.mu.Unlock()
	for _, c := range idle {
		// The socket: it never blocks, unlike a close_notify to a peer
		// that does not read.
		c.c.TLS.NetConn().Close()
	}
	return done
}

// conn is one client connection on the fast path. Its fields are its
// goroutine's alone.
type conn struct {
	s        *Server
	c        *Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	clientIP string // "" if the remote address has none

	rh        requestHead
	header    []Field   // the identity fields of the request: Conn.Header, or what Conn.Authorize gave
	out       []Field   // the upstream request's headers but Host and User-Agent, sorted
	ua        string    // the User-Agent sent upstream; "" for none
	connNames []string  // the names listed in the request's Connection headers
	start     time.Time // Deps.Now once the request's head was read
	sniff     [sniffLen]byte
}

// headResult is what readHead found.
type headResult int

const (
	headOK    headResult = iota // a whole head
	headClose                   // nothing more to serve: close the connection
	headSlow                    // the slow path's to serve
)

// ServeConn serves c on the calling goroutine for as long as its requests
// are plain: body-less GET, HEAD, OPTIONS and TRACE requests whose heads
// parseRequestHead accepts. It returns nil once it has closed c, or, at
// the first request it does not serve, the connection for net/http to
// serve, with the bytes already read put back in front: a net.Conn that
// is not a *tls.Conn (http.Server cannot see its TLS state) but has its
// ConnectionState and NetConn methods. A panic while serving c closes c,
// logged, and does not reach the caller.
func (s *Server) ServeConn(c *Conn) net.Conn {
	h := &conn{s: s, c: c, br: bufio.NewReaderSize(c.TLS, bufferSize), bw: bufio.NewWriterSize(c.TLS, bufferSize)}
	if ip, _, err := net.SplitHostPort(c.TLS.RemoteAddr().String()); err == nil {
		h.clientIP = ip
	}
	defer s.track.forget(h)
	// A panic serving one connection ends that connection, logged, not the
	// proxy, as with net/http's server.
	defer func() {
		if r := recover(); r != nil {
			s.log.ErrorContext(c.Context, "panic serving a connection; closed", "device_id", c.DeviceID, "panic", fmt.Sprint(r),
				"stack", string(debug.Stack()))
			c.TLS.Close()
		}
	}()
	for first := true; ; first = false {
		// Idle until a request starts: a Shutdown closes the connection
		// now, or this does if the Shutdown came first.
		if !s.track.setIdle(h) {
			c.TLS.Close()
			return nil
		}
		wait := s.cfg.IdleTimeout
		if first {
			wait = s.cfg.ReadHeaderTimeout
		}
		c.TLS.SetReadDeadline(time.Now().Add(wait))
		head, res := h.readHead(!first)
		s.track.begin(h)
		if res == headOK && !parseRequestHead(head, &h.rh) {
			res = headSlow
		}
		switch res {
		case headClose:
			s.track.end()
			c.TLS.Close()
			return nil
		case headSlow:
			s.track.end()
			return h.handOff()
		}
		if !h.authorize() {
			s.track.end()
			return h.handOff()
		}
		h.br.Discard(len(head))
		if !h.serveRequest() {
			c.TLS.Close()
			return nil
		}
	}
}

// authorize sets h.header for the request in h.rh: Conn.Header, or what
// Conn.Authorize answers. false hands the request to net/http.
func (h *conn) authorize() bool {
	if h.c.Authorize == nil {
		h.header = h.c.Header
		return true
	}
	authz, n := "", 0
	for _, f := range h.rh.fields {
		if f.Name == "Authorization" {
			authz = f.Value
			n++
		}
	}
	if n > 1 {
		return false
	}
	header, deviceID, serial, ok := h.c.Authorize(authz)
	if !ok {
		return false
	}
	h.header, h.c.DeviceID, h.c.Serial = header, deviceID, serial
	return true
}

// readHead waits for a whole request head in the read buffer and returns
// it, unconsumed. idle says the connection waited for the request under
// IdleTimeout: once its first bytes are in, the rest of the head is due
// within ReadHeaderTimeout, as with http.Server.
func (h *conn) readHead(idle bool) (string, headResult) {
	scanned := 0
	for {
		b, _ := h.br.Peek(h.br.Buffered())
		if n := headEnd(b, scanned); n > 0 {
			return string(b[:n]), headOK
		}
		if len(b) >= bufferSize {
			return "", headSlow
		}
		if idle && len(b) > 0 {
			idle = false
			h.c.TLS.SetReadDeadline(time.Now().Add(h.s.cfg.ReadHeaderTimeout))
		}
		scanned = len(b)
		if _, err := h.br.Peek(len(b) + 1); err != nil {
			if len(b) > 0 && errors.Is(err, io.EOF) {
				// A partial request and the end of the stream: net/http
				// answers those (400).
				return "", headSlow
			}
			// Nothing, a timeout (http.Server closes those silently too),
			// or a connection closed under us.
			return "", headClose
		}
	}
}

// handOff returns the connection for net/http, with what has been read of
// it and not served put back in front.
func (h *conn) handOff() net.Conn {
	pending, _ := h.br.Peek(h.br.Buffered())
	h.c.TLS.SetReadDeadline(time.Time{}) // http.Server sets its own
	return &replayConn{Conn: h.c.TLS, pending: slices.Clone(pending)}
}

// replayConn is a TLS connection handed to net/http with bytes already
// read from it in front. Its embedded *tls.Conn gives it ConnectionState
// and NetConn.
type replayConn struct {
	*tls.Conn
	pending []byte
}

func (r *replayConn) Read(p []byte) (int, error) {
	if len(r.pending) > 0 {
		n := copy(p, r.pending)
		r.pending = r.pending[n:]
		return n, nil
	}
	return r.Conn.Read(p)
}

// serveRequest proxies h.rh and tells Served. It reports whether the
// connection may serve another request. The caller has counted the
// request in flight (track.begin); serveRequest ends it.
func (h *conn) serveRequest() bool {
	s := h.s
	h.start = s.now()
	status, keep := func() (int, bool) {
		defer s.track.end() // even if proxy panics
		return h.proxy()
	}()
	s.served(h.c, Request{Method: h.rh.method, Path: h.rh.path, Start: h.start, Status: status})
	return keep
}
