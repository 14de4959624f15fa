package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// The HTTP/1.1 fast path.
//
// A client connection that did not negotiate h2 is served here, on the
// goroutine that did its handshake, for as long as its requests are
// plain: body-less GET, HEAD, OPTIONS and TRACE requests whose heads
// parseRequestHead accepts, to an http:// upstream. Each is written to a
// pooled upstream connection (h1Upstream) and the answer is written
// straight back. The first request that is not plain (a body, an upgrade,
// Expect, HTTP/1.0, a malformed or oversized head, ...) and every later
// request on the connection go to http.Server and the ReverseProxy, which
// get the connection with the bytes already read put back in front
// (replayConn): the fast path never answers what it does not fully
// handle.
//
// Why: net/http's server costs a keep-alive request a goroutine of its
// own (the background read that watches for the client going away), a
// cancelable context, a Request and a ResponseWriter, and ReverseProxy a
// clone of the request and its header; with the upstream's work that was
// more than half the proxy's CPU per request.
//
// What it keeps of the slow path, byte for byte where it can
// (TestFastPathMatchesSlowPath compares them): the upstream request
// (ReverseProxy's Rewrite: the upstream's URL joined with the path, the
// query as sent, hop-by-hop headers and those named in Connection
// removed, Te: trailers kept, X-Forwarded-For/-Host/-Proto, the identity
// headers, User-Agent only if the client sent one, Cache-Control:
// no-cache for Pragma: no-cache); the answer (http.Server's ResponseWriter
// behind ReverseProxy: the status line with Go's reason phrase, headers
// sorted, hop-by-hop ones removed, trailers announced and sent, Date added,
// Content-Type sniffed, 1xx answers passed on, no body for HEAD, 1xx, 204
// and 304, chunked when the upstream sent no length and then flushed per
// read, as for text/event-stream, Connection: close when the client asked
// or the server is shutting down); timeouts (ReadHeaderTimeout from the
// first byte of a request, IdleTimeout between requests, no write
// timeout); errors (502 or 504 with upstreamError's body, logged the
// same); the access log line and metrics; revocation and shutdown
// (closing the connection interrupts its upstream exchange).
//
// What differs: a client that goes away while its request waits for the
// upstream's answer is noticed when the answer comes (http.Server's
// background read notices at once), so the upstream's work is not cut
// short; a status code below 100 from the upstream is a 502 (the slow path
// panics in WriteHeader and drops the connection); and a connection whose
// first request has not started when a shutdown begins is closed at once
// (http.Server gives new connections 5 seconds).

// h1BufferSize is the size of a fast-path connection's read and write
// buffers. A request head that does not fit takes the slow path.
const h1BufferSize = 4096

// sniffLen is how much of a body http.DetectContentType reads.
const sniffLen = 512

// fastPath is what the HTTP/1.1 fast path shares between connections.
type fastPath struct {
	up     *h1Upstream
	host   string // the Host header sent upstream, as http.Request.Write would send it
	prefix string // the upstream URL's path, without one trailing '/'
	// reqs are what http.ReadResponse needs to read an answer to each
	// method: read-only, shared.
	get, head, options, trace *http.Request
	drain                     drainer
}

// newFastPath returns the fast path for an http:// upstream u, or nil if
// it cannot send requests exactly as the slow path does: for an https://
// upstream (h1Upstream does not serve those), an upstream whose path or
// host would be escaped or rewritten, or a process where ReverseProxy
// re-encodes queries (GODEBUG urlmaxqueryparams set).
func newFastPath(u *url.URL, up *h1Upstream) *fastPath {
	if u.Scheme != "http" || u.RawPath != "" || strings.ContainsAny(u.Host, "%") || !httpguts.ValidHostHeader(u.Host) {
		return nil
	}
	for i := 0; i < len(u.Path); i++ {
		if !plainPathByte(u.Path[i]) {
			return nil
		}
	}
	if !queriesPassThrough() {
		return nil
	}
	for i := 0; i < len(u.Host); i++ {
		if u.Host[i] >= 0x80 { // http.Request.Write would punycode it
			return nil
		}
	}
	req := func(method string) *http.Request { return &http.Request{Method: method} }
	return &fastPath{up: up, host: u.Host, prefix: strings.TrimSuffix(u.Path, "/"),
		get: req(http.MethodGet), head: req(http.MethodHead), options: req(http.MethodOptions), trace: req(http.MethodTrace)}
}

// request is the request http.ReadResponse is given for method.
func (f *fastPath) request(method string) *http.Request {
	switch method {
	case http.MethodHead:
		return f.head
	case http.MethodOptions:
		return f.options
	case http.MethodTrace:
		return f.trace
	}
	return f.get
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

// drainer counts the fast-path requests in flight, so that a shutdown can
// wait for them as http.Server.Shutdown waits for its own.
type drainer struct {
	draining atomic.Bool

	mu     sync.Mutex
	active int
	done   chan struct{} // closed once draining and no request is in flight
	closed bool
}

func (d *drainer) begin() {
	d.mu.Lock()
	d.active++
	d.mu.Unlock()
}

func (d *drainer) end() {
	d.mu.Lock()
	d.active--
	d.checkLocked()
	d.mu.Unlock()
}

// start begins draining: it returns a channel closed once no request is
// in flight.
func (d *drainer) start() <-chan struct{} {
	d.draining.Store(true)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done == nil {
		d.done = make(chan struct{})
	}
	d.checkLocked()
	return d.done
}

func (d *drainer) checkLocked() {
	if d.done != nil && d.active == 0 && !d.closed {
		d.closed = true
		close(d.done)
	}
}

// h1Conn is one client connection on the fast path. Its fields are its
// goroutine's alone.
type h1Conn struct {
	s        *Server
	f        *fastPath
	tc       *tls.Conn
	c        *trackedConn
	ctx      context.Context // Serve's, without its end: for upstream dials and logs
	br       *bufio.Reader
	bw       *bufio.Writer
	clientIP string // "" if the remote address has none

	rh        requestHead
	out       []headerField // the upstream request's headers but Host and User-Agent, sorted
	ua        string        // the User-Agent sent upstream; "" for none
	connNames []string      // the names listed in the request's Connection headers
	sniff     [sniffLen]byte
}

// headResult is what readHead found.
type headResult int

const (
	headOK    headResult = iota // a whole head
	headClose                   // nothing more to serve: close the connection
	headSlow                    // the slow path's to serve
)

// serveH1 serves a verified HTTP/1.1 connection on the fast path until it
// closes, or hands it to http.Server.
func (s *Server) serveH1(ctx context.Context, tc *tls.Conn, c *trackedConn, handoff *handoffListener) {
	h := &h1Conn{s: s, f: s.fast, tc: tc, c: c, ctx: context.WithoutCancel(ctx),
		br: bufio.NewReaderSize(tc, h1BufferSize), bw: bufio.NewWriterSize(tc, h1BufferSize)}
	if ip, _, err := net.SplitHostPort(c.RemoteAddr().String()); err == nil {
		h.clientIP = ip
	}
	// A panic serving one connection ends that connection, logged, not the
	// proxy, as with net/http's server.
	defer func() {
		if r := recover(); r != nil {
			s.log.ErrorContext(h.ctx, "panic serving a connection; closed", "device_id", c.id.deviceID, "panic", fmt.Sprint(r),
				"stack", string(debug.Stack()))
			tc.Close()
		}
	}()
	for first := true; ; first = false {
		// Idle until a request starts: a shutdown closes the connection
		// now (see Serve), or this does if the shutdown came first.
		c.fastIdle.Store(true)
		if h.f.drain.draining.Load() {
			tc.Close()
			return
		}
		wait := s.cfg.IdleTimeout
		if first {
			wait = s.cfg.ReadHeaderTimeout
		}
		c.SetReadDeadline(time.Now().Add(wait))
		head, res := h.readHead(!first)
		// Counted in flight before it stops being idle, so that a shutdown
		// in between waits for this request rather than cutting it off.
		h.f.drain.begin()
		c.fastIdle.Store(false)
		if res == headOK && !parseRequestHead(head, &h.rh) {
			res = headSlow
		}
		switch res {
		case headClose:
			h.f.drain.end()
			tc.Close()
			return
		case headSlow:
			h.f.drain.end()
			h.handOff(handoff)
			return
		}
		h.br.Discard(len(head))
		if !h.serveRequest() {
			tc.Close()
			return
		}
	}
}

// readHead waits for a whole request head in the read buffer and returns
// it, unconsumed. idle says the connection waited for the request under
// IdleTimeout: once its first bytes are in, the rest of the head is due
// within ReadHeaderTimeout, as with http.Server.
func (h *h1Conn) readHead(idle bool) (string, headResult) {
	scanned := 0
	for {
		b, _ := h.br.Peek(h.br.Buffered())
		if n := headEnd(b, scanned); n > 0 {
			return string(b[:n]), headOK
		}
		if len(b) >= h1BufferSize {
			return "", headSlow
		}
		if idle && len(b) > 0 {
			idle = false
			h.c.SetReadDeadline(time.Now().Add(h.s.cfg.ReadHeaderTimeout))
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

// handOff gives the connection to http.Server, with what has been read of
// it and not served put back in front.
func (h *h1Conn) handOff(handoff *handoffListener) {
	pending, _ := h.br.Peek(h.br.Buffered())
	state := h.tc.ConnectionState()
	h.c.handedTLS = &state
	h.c.SetReadDeadline(time.Time{}) // http.Server sets its own
	rc := &replayConn{Conn: h.tc, pending: slices.Clone(pending)}
	if !handoff.handoff(rc) {
		h.tc.Close()
	}
}

// replayConn is a TLS connection handed to http.Server with bytes already
// read from it in front. http.Server does not see a *tls.Conn in it, so
// httpHandler sets the request's TLS state from trackedConn.handedTLS.
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

// serveRequest proxies h.rh, writes the access-log line and counts it. It
// reports whether the connection may serve another request. The caller
// has counted the request in flight (drain.begin); serveRequest ends it.
func (h *h1Conn) serveRequest() bool {
	s := h.s
	start := s.now()
	status, keep := func() (int, bool) {
		defer h.f.drain.end() // even if proxy panics
		return h.proxy()
	}()
	s.m.request(status)
	s.log.LogAttrs(h.ctx, slog.LevelInfo, "request",
		slog.String("device_id", h.c.id.deviceID),
		slog.String("serial", h.c.id.serial),
		slog.String("method", h.rh.method),
		slog.String("path", h.rh.path),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(s.now().Sub(start))/float64(time.Millisecond)),
		slog.String("upstream", s.upstreamLog),
		slog.String("proto", "HTTP/1.1"))
	return keep
}

// errClientGone is the error of an exchange interrupted because the client
// connection was closed.
var errClientGone = errors.New("proxy: the client connection was closed")

// proxy sends h.rh upstream and writes the answer. It returns the status
// for the access log and whether the connection may go on.
func (h *h1Conn) proxy() (status int, keep bool) {
	h.buildUpstreamHeader()
	req := h.f.request(h.rh.method)
	interrupted := func() error {
		if h.c.upstreamInterrupted() {
			return errClientGone
		}
		return nil
	}
	for {
		up, err := h.f.up.get(h.ctx)
		if err != nil {
			return h.upstreamFailed(err)
		}
		if !h.c.setUpstream(up.nc) {
			up.nc.Close()
			return h.upstreamFailed(errClientGone)
		}
		resp, retry, err := h.f.up.send(up, req, h.writeUpstream, h.write1xx, h.c.clearUpstream, interrupted)
		if err == nil {
			return h.writeResponse(resp)
		}
		if !retry || h.c.upstreamInterrupted() {
			return h.upstreamFailed(err)
		}
		// A reused upstream connection had been closed: once more (see
		// h1Upstream.RoundTrip).
	}
}

// hopHeaders are the hop-by-hop headers ReverseProxy removes both ways,
// besides those named in Connection.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// buildUpstreamHeader sets h.out and h.ua from h.rh, as ReverseProxy's
// Rewrite (s.rewrite) and http.Request.Write would.
func (h *h1Conn) buildUpstreamHeader() {
	rh := &h.rh
	h.connNames = h.connNames[:0]
	trailers, pragmaNoCache, pragmaSeen, cacheControl := false, false, false, false
	for _, f := range rh.fields {
		switch f.name {
		case "Connection":
			for name := range strings.SplitSeq(f.value, ",") {
				if name = textproto.TrimString(name); name != "" {
					h.connNames = append(h.connNames, http.CanonicalHeaderKey(name))
				}
			}
		case "Te":
			trailers = trailers || httpguts.HeaderValuesContainsToken([]string{f.value}, "trailers")
		case "Pragma":
			if !pragmaSeen {
				pragmaSeen, pragmaNoCache = true, f.value == "no-cache"
			}
		case "Cache-Control":
			cacheControl = true
		}
	}
	out := h.out[:0]
	h.ua = ""
	uaSeen := false
	keepField := func(name string) bool {
		switch name {
		case "Host", "Content-Length", "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
			return false
		}
		return !slices.Contains(hopHeaders, name) && !slices.Contains(h.connNames, name) && !isIdentityHeader(name)
	}
	for _, f := range rh.fields {
		if !keepField(f.name) {
			continue
		}
		if f.name == "User-Agent" {
			if !uaSeen {
				uaSeen, h.ua = true, f.value
			}
			continue
		}
		out = append(out, f)
	}
	// http.Server adds it when reading the request (fixPragmaCacheControl),
	// before ReverseProxy removes hop-by-hop headers.
	if pragmaNoCache && !cacheControl && keepField("Cache-Control") {
		out = append(out, headerField{"Cache-Control", "no-cache"})
	}
	if trailers {
		out = append(out, headerField{"Te", "trailers"})
	}
	if h.clientIP != "" {
		out = append(out, headerField{"X-Forwarded-For", h.clientIP})
	}
	out = append(out, headerField{"X-Forwarded-Host", rh.host}, headerField{"X-Forwarded-Proto", "https"})
	id := h.c.id
	if id.deviceID != "" {
		out = append(out, headerField{HeaderDeviceID, id.deviceID})
	}
	out = append(out, headerField{HeaderSerial, id.serial}, headerField{HeaderXFCC, id.hXFCC[0]})
	slices.SortStableFunc(out, func(a, b headerField) int { return strings.Compare(a.name, b.name) })
	h.out = out
}

// writeUpstream writes the upstream request, as http.Request.Write writes
// ReverseProxy's outgoing request: the request line, Host, User-Agent,
// then the other headers sorted. A body-less request has no
// Content-Length (Request.Write sends none when Body is nil).
func (h *h1Conn) writeUpstream(w io.Writer) error {
	bw := w.(*bufio.Writer)
	bw.WriteString(h.rh.method)
	bw.WriteByte(' ')
	bw.WriteString(h.f.prefix)
	bw.WriteString(h.rh.path)
	bw.WriteString(h.rh.query)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(h.f.host)
	bw.WriteString("\r\n")
	if h.ua != "" {
		bw.WriteString("User-Agent: ")
		bw.WriteString(h.ua)
		bw.WriteString("\r\n")
	}
	for _, f := range h.out {
		bw.WriteString(f.name)
		bw.WriteString(": ")
		bw.WriteString(f.value)
		bw.WriteString("\r\n")
	}
	_, err := bw.WriteString("\r\n")
	return err
}

// write1xx passes an informational answer on, as ReverseProxy and
// http.Server do: all its headers but Content-Length and
// Transfer-Encoding, flushed at once. A write error shows later.
func (h *h1Conn) write1xx(code int, hdr textproto.MIMEHeader) error {
	h.writeStatusLine(code)
	h.writeHeader(http.Header(hdr), "Content-Length", "Transfer-Encoding")
	h.bw.WriteString("\r\n")
	h.bw.Flush()
	return nil
}

// writeStatusLine writes the status line as http.Server does: Go's reason
// phrase, not the upstream's.
func (h *h1Conn) writeStatusLine(code int) {
	var b [64]byte
	line := append(b[:0], "HTTP/1.1 "...)
	line = strconv.AppendInt(line, int64(code), 10)
	if text := http.StatusText(code); text != "" {
		line = append(line, ' ')
		line = append(line, text...)
	} else {
		line = append(line, " status code "...)
		line = strconv.AppendInt(line, int64(code), 10)
	}
	h.bw.Write(append(line, "\r\n"...))
}

// writeHeader writes hdr sorted by name, as http.Header.WriteSubset does,
// without the names in exclude (and without invalid names, which
// WriteSubset drops). Values read by http.ReadResponse need no cleaning.
func (h *h1Conn) writeHeader(hdr http.Header, exclude ...string) {
	var buf [32]string
	keys := buf[:0]
	for k := range hdr {
		if !slices.Contains(exclude, k) && httpguts.ValidHeaderFieldName(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range hdr[k] {
			h.bw.WriteString(k)
			h.bw.WriteString(": ")
			h.bw.WriteString(v)
			h.bw.WriteString("\r\n")
		}
	}
}

// removeHopByHop removes from hdr the headers named in its Connection
// headers and the hop-by-hop ones, as ReverseProxy does to an answer.
func removeHopByHop(hdr http.Header) {
	for _, f := range hdr["Connection"] {
		for name := range strings.SplitSeq(f, ",") {
			if name = textproto.TrimString(name); name != "" {
				hdr.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		delete(hdr, name)
	}
}

// bodyAllowed reports whether an answer with status code may have a body
// (RFC 9110 §6.4.1).
func bodyAllowed(code int) bool {
	return !(code >= 100 && code <= 199) && code != http.StatusNoContent && code != http.StatusNotModified
}

// writeResponse writes the upstream's answer to the client, as
// ReverseProxy and http.Server's ResponseWriter would. It returns the
// status and whether the connection may go on.
func (h *h1Conn) writeResponse(resp *http.Response) (int, bool) {
	defer resp.Body.Close()
	code := resp.StatusCode
	if code < 100 {
		return h.upstreamFailed(errors.New("proxy: upstream answered with a status code below 100"))
	}
	hdr := resp.Header
	removeHopByHop(hdr)
	if len(resp.Trailer) > 0 {
		keys := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		hdr.Add("Trailer", strings.Join(keys, ", "))
	}
	// http.Server drops a Content-Length it cannot use; http.ReadResponse
	// leaves one unchecked where no body is expected.
	if cl := hdr.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err != nil || n < 0 {
			hdr.Del("Content-Length")
		}
	}
	hasBody := bodyAllowed(code) && h.rh.method != http.MethodHead
	switch code {
	case http.StatusNotModified:
		delete(hdr, "Content-Type")
		fallthrough
	case http.StatusNoContent:
		delete(hdr, "Content-Length")
	}
	closeAfter := h.rh.close || h.f.drain.draining.Load()

	// ReverseProxy flushes every write of a body of unknown length (then
	// chunked) or of text/event-stream; otherwise http.Server sniffs a
	// missing Content-Type from the first bytes.
	chunked := hasBody && resp.ContentLength < 0
	flushEach := chunked
	sniffed, contentType := 0, ""
	if hasBody && !chunked {
		ct, haveType := hdr["Content-Type"]
		if haveType && len(ct) > 0 && strings.Contains(ct[0], "event-stream") {
			base, _, _ := mime.ParseMediaType(ct[0])
			flushEach = base == "text/event-stream"
		}
		if !haveType && hdr.Get("Content-Encoding") == "" && resp.ContentLength > 0 {
			n, err := io.ReadFull(resp.Body, h.sniff[:min(sniffLen, resp.ContentLength)])
			if err != nil {
				// Nothing written yet: the slow path drops the connection
				// too (ReverseProxy's http.ErrAbortHandler).
				h.s.log.LogAttrs(h.ctx, slog.LevelDebug, "upstream body failed", slog.String("upstream", h.s.upstreamLog), slog.Any("err", err))
				return code, false
			}
			sniffed, contentType = n, http.DetectContentType(h.sniff[:n])
		}
	}

	h.writeStatusLine(code)
	h.writeHeader(hdr)
	if _, ok := hdr["Date"]; !ok {
		var b [64]byte
		h.bw.WriteString("Date: ")
		h.bw.Write(time.Now().UTC().AppendFormat(b[:0], http.TimeFormat))
		h.bw.WriteString("\r\n")
	}
	if contentType != "" {
		h.bw.WriteString("Content-Type: ")
		h.bw.WriteString(contentType)
		h.bw.WriteString("\r\n")
	}
	if closeAfter {
		h.bw.WriteString("Connection: close\r\n")
	}
	if chunked {
		h.bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	h.bw.WriteString("\r\n")
	if !hasBody {
		return code, h.bw.Flush() == nil && !closeAfter
	}
	if flushEach {
		if h.bw.Flush() != nil {
			return code, false
		}
	}
	h.bw.Write(h.sniff[:sniffed])
	var err error
	if flushEach {
		err = h.copyFlushing(resp, chunked)
	} else {
		_, err = h.bw.ReadFrom(resp.Body)
	}
	if err != nil {
		// The client sees a truncated answer and the connection closed,
		// as after ReverseProxy's http.ErrAbortHandler.
		h.bw.Flush()
		h.s.log.LogAttrs(h.ctx, slog.LevelDebug, "copying the answer failed", slog.String("upstream", h.s.upstreamLog), slog.Any("err", err))
		return code, false
	}
	return code, h.bw.Flush() == nil && !closeAfter
}

// copyFlushing copies resp's body, flushing each read, in chunks if
// chunked, then the last chunk and the trailers.
func (h *h1Conn) copyFlushing(resp *http.Response, chunked bool) error {
	buf := h.s.buffers.Get()
	defer h.s.buffers.Put(buf)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if chunked {
				var b [20]byte
				h.bw.Write(append(strconv.AppendInt(b[:0], int64(n), 16), "\r\n"...))
			}
			h.bw.Write(buf[:n])
			if chunked {
				h.bw.WriteString("\r\n")
			}
			if err := h.bw.Flush(); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if !chunked {
		return nil
	}
	resp.Body.Close() // fills resp.Trailer
	h.bw.WriteString("0\r\n")
	trailer := http.Header{}
	for k, vv := range resp.Trailer {
		if httpguts.ValidTrailerHeader(k) {
			trailer[k] = vv
		}
	}
	h.writeHeader(trailer)
	h.bw.WriteString("\r\n")
	return nil
}

// upstreamFailed answers a request the upstream could not, as
// upstreamError does for the slow path: 504 if it timed out, 502
// otherwise, with a short plain body; and logs why. A request whose
// client connection was closed (revocation, shutdown) gets no answer.
func (h *h1Conn) upstreamFailed(err error) (int, bool) {
	s := h.s
	status := http.StatusBadGateway
	if ne, ok := errors.AsType[net.Error](err); (ok && ne.Timeout()) || errors.Is(err, context.DeadlineExceeded) {
		status = http.StatusGatewayTimeout
	}
	attrs := []slog.Attr{slog.String("method", h.rh.method), slog.String("path", h.rh.path),
		slog.String("upstream", s.upstreamLog), slog.Any("err", err), slog.String("device_id", h.c.id.deviceID)}
	if errors.Is(err, errClientGone) || h.c.upstreamInterrupted() {
		s.log.LogAttrs(h.ctx, slog.LevelDebug, "request abandoned", attrs...)
		return status, false
	}
	s.m.upstreamErrors.Inc()
	s.log.LogAttrs(h.ctx, slog.LevelWarn, "upstream failed", attrs...)
	body := http.StatusText(status) + "\n"
	h.writeStatusLine(status)
	h.bw.WriteString("Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nDate: ")
	var b [64]byte
	h.bw.Write(time.Now().UTC().AppendFormat(b[:0], http.TimeFormat))
	h.bw.WriteString("\r\nContent-Length: ")
	h.bw.WriteString(strconv.Itoa(len(body)))
	h.bw.WriteString("\r\n")
	closeAfter := h.rh.close || h.f.drain.draining.Load()
	if closeAfter {
		h.bw.WriteString("Connection: close\r\n")
	}
	h.bw.WriteString("\r\n")
	h.bw.WriteString(body)
	return status, h.bw.Flush() == nil && !closeAfter
}
