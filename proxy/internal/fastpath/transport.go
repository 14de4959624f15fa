package fastpath

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"time"
)

// TransportConfig configures a Transport. The proxy fills it from its own
// Config, as it fills the http.Transport that is the fallback.
type TransportConfig struct {
	// Addr is the upstream's host:port. Required.
	Addr string
	// Dial opens a TCP connection to the upstream; it bounds its own time
	// (the proxy's UpstreamTimeout). Required.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// HeaderTimeout bounds the wait for a response's headers once the
	// request is sent. Required.
	HeaderTimeout time.Duration
	// MaxHeaderBytes bounds a response's headers. Required.
	MaxHeaderBytes int
	// MaxIdle bounds the idle connections kept. Required.
	MaxIdle int
	// IdleTimeout is how long an idle connection is kept. Required.
	IdleTimeout time.Duration
	// BufferSize is the size of each connection's read and write buffers.
	// Required.
	BufferSize int
}

// Transport is the ReverseProxy's RoundTripper for an http:// upstream,
// and the Server's way there: it sends the common request (no body, no
// upgrade, no Expect, a method that may be retried) over a pool of
// HTTP/1.1 connections from the calling goroutine, writing the request
// with http.Request.Write and reading the answer with http.ReadResponse,
// as http.Transport does but without its per-connection read and write
// goroutines and the hand-offs between them, which cost more than the
// rest of a small request. Every other request goes to the fallback (an
// http.Transport), which also serves https:// upstreams.
//
// What it keeps of http.Transport's behaviour: dialing bounded by the
// dialer's timeout and the request's context; the response headers due
// within HeaderTimeout of the request being sent; the response headers
// bounded by MaxHeaderBytes; 1xx answers passed to the request's
// httptrace.ClientTrace.Got1xxResponse (ReverseProxy forwards them); a
// connection reused only once its response body was read to the end and
// neither side asked to close; idle connections bounded in number
// (MaxIdle) and dropped after IdleTimeout; a request that failed on a
// reused connection before any answer retried once on a new one (it is
// replayable); the end of the request's context interrupting the
// exchange at once. It deliberately asks for no compression, as the
// fallback (DisableCompression) does not.
//
// Its methods are safe for concurrent use.
type Transport struct {
	cfg      TransportConfig
	fallback http.RoundTripper

	mu   sync.Mutex
	idle []*upConn // most recently used last
}

// NewTransport returns a Transport to cfg.Addr that sends what it does
// not pool to fallback.
func NewTransport(cfg TransportConfig, fallback http.RoundTripper) *Transport {
	return &Transport{cfg: cfg, fallback: fallback}
}

// upConn is one connection to the upstream. readLimit bounds what the
// bufio.Reader may take from the socket while response headers are read.
type upConn struct {
	nc        net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	readLimit int64
	reused    bool
	idleSince time.Time
}

func (c *upConn) Read(p []byte) (int, error) {
	if c.readLimit <= 0 {
		return 0, errHeadersTooLarge
	}
	if int64(len(p)) > c.readLimit {
		p = p[:c.readLimit]
	}
	n, err := c.nc.Read(p)
	c.readLimit -= int64(n)
	return n, err
}

var errHeadersTooLarge = errors.New("proxy: upstream response headers too large")

// pooled reports whether req can take the pooled path.
func pooled(req *http.Request) bool {
	if req.URL.Scheme != "http" || (req.Body != nil && req.Body != http.NoBody) || req.ContentLength > 0 {
		return false
	}
	if _, ok := req.Header["Upgrade"]; ok {
		return false
	}
	if _, ok := req.Header["Expect"]; ok {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !pooled(req) {
		return t.fallback.RoundTrip(req)
	}
	ctx := req.Context()
	var got1xx func(int, textproto.MIMEHeader) error
	if trace := httptrace.ContextClientTrace(ctx); trace != nil {
		got1xx = trace.Got1xxResponse
	}
	return t.do(ctx, req, req.Write, got1xx)
}

// do sends a request over the pool and reads the response headers; the
// caller reads the body, which returns the connection to the pool once
// read to the end. req is what http.ReadResponse needs of the request
// (its method) and whether it asked to close; write writes the request
// into the connection's buffer (the Server writes its own bytes);
// got1xx, if not nil, is given every 1xx answer but 101. The end of ctx
// interrupts the exchange, and the error is then its cause.
func (t *Transport) do(ctx context.Context, req *http.Request, write func(io.Writer) error,
	got1xx func(int, textproto.MIMEHeader) error) (*http.Response, error) {
	for {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		c, err := t.get(ctx)
		if err != nil {
			return nil, err
		}
		resp, retry, err := t.exchange(ctx, c, req, write, got1xx)
		if err == nil {
			return resp, nil
		}
		if !retry || ctx.Err() != nil {
			return nil, err
		}
		// A reused connection the upstream had closed: once more, on a
		// new one (get dials when the pool is empty; a pooled one is
		// reused at most once per attempt, and the pool drains).
	}
}

// exchange sends a request on c and reads the response headers, as do
// says. On failure it closes c and says whether the request may be
// retried: c was reused and nothing of an answer arrived.
func (t *Transport) exchange(ctx context.Context, c *upConn, req *http.Request, write func(io.Writer) error,
	got1xx func(int, textproto.MIMEHeader) error) (*http.Response, bool, error) {
	// stop ends the watch on ctx; it reports false if ctx ended first and
	// c was interrupted (it must not be reused).
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(aLongTimeAgo) })
	fail := func(err error, gotAnswer bool) (*http.Response, bool, error) {
		c.nc.Close()
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return nil, c.reused && !gotAnswer, err
	}
	maxHeaderBytes := int64(t.cfg.MaxHeaderBytes)
	c.nc.SetDeadline(time.Now().Add(t.cfg.HeaderTimeout))
	if err := write(c.bw); err != nil {
		stop()
		return fail(err, false)
	}
	if err := c.bw.Flush(); err != nil {
		stop()
		return fail(err, false)
	}
	c.readLimit = maxHeaderBytes
	var resp *http.Response
	for n1xx := 0; ; n1xx++ {
		var err error
		resp, err = http.ReadResponse(c.br, req)
		if err != nil {
			stop()
			answered := c.readLimit < maxHeaderBytes || c.br.Buffered() > 0
			if errors.Is(err, errHeadersTooLarge) {
				err = fmt.Errorf("%w (limit %d bytes)", err, maxHeaderBytes)
			}
			return fail(err, answered)
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		// 1xx other than 101: informational, then the real answer.
		if n1xx == 5 {
			stop()
			return fail(errors.New("proxy: upstream sent too many 1xx responses"), true)
		}
		if got1xx != nil {
			if err := got1xx(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
				stop()
				return fail(err, true)
			}
		}
		c.readLimit = maxHeaderBytes
	}
	c.readLimit = math.MaxInt64
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// No upgrade was asked for (those take the fallback).
		stop()
		return fail(errors.New("proxy: upstream switched protocols unasked"), true)
	}
	c.nc.SetDeadline(time.Time{})
	keep := !resp.Close && !req.Close
	if resp.Body == http.NoBody {
		if stop() && keep {
			t.put(c)
		} else {
			c.nc.Close()
		}
		return resp, false, nil
	}
	resp.Body = &upBody{rc: resp.Body, t: t, c: c, stop: stop, keep: keep}
	return resp, false, nil
}

// aLongTimeAgo is a deadline that has passed: it interrupts blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

// upBody returns its connection to the pool once read to the end, and
// closes it if closed before.
type upBody struct {
	rc   io.ReadCloser
	t    *Transport
	c    *upConn
	stop func() bool
	keep bool
	done bool
}

func (b *upBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.done = true
		if b.stop() && b.keep {
			b.t.put(b.c)
		} else {
			b.c.nc.Close()
		}
	} else if err != nil {
		b.done = true
		b.stop()
		b.c.nc.Close()
	}
	return n, err
}

func (b *upBody) Close() error {
	if !b.done {
		b.done = true
		b.stop()
		b.c.nc.Close()
	}
	return nil
}

// get takes the most recently used idle connection, or dials one.
func (t *Transport) get(ctx context.Context) (*upConn, error) {
	now := time.Now()
	t.mu.Lock()
	for len(t.idle) > 0 {
		c := t.idle[len(t.idle)-1]
		t.idle[len(t.idle)-1] = nil
		t.idle = t.idle[:len(t.idle)-1]
		if now.Sub(c.idleSince) < t.cfg.IdleTimeout {
			t.mu.Unlock()
			c.reused = true
			return c, nil
		}
		c.nc.Close()
	}
	t.mu.Unlock()
	nc, err := t.cfg.Dial(ctx, "tcp", t.cfg.Addr)
	if err != nil {
		return nil, err
	}
	c := &upConn{nc: nc}
	c.br = bufio.NewReaderSize(c, t.cfg.BufferSize)
	c.bw = bufio.NewWriterSize(nc, t.cfg.BufferSize)
	return c, nil
}

// put makes c idle, or closes it if the pool is full.
func (t *Transport) put(c *upConn) {
	if c.br.Buffered() > 0 {
		c.nc.Close() // the upstream sent more than its answer
		return
	}
	c.idleSince = time.Now()
	t.mu.Lock()
	// The oldest idle connections are first: close those idle too long
	// (get only looks at the newest), as http.Transport's IdleConnTimeout.
	n := 0
	for n < len(t.idle) && c.idleSince.Sub(t.idle[n].idleSince) >= t.cfg.IdleTimeout {
		t.idle[n].nc.Close()
		n++
	}
	if n > 0 {
		m := copy(t.idle, t.idle[n:])
		clear(t.idle[m:])
		t.idle = t.idle[:m]
	}
	if len(t.idle) < t.cfg.MaxIdle {
		t.idle = append(t.idle, c)
		c = nil
	}
	t.mu.Unlock()
	if c != nil {
		c.nc.Close()
	}
}

// CloseIdleConnections closes the idle connections of the pool and of the
// fallback.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, c := range idle {
		c.nc.Close()
	}
	if ci, ok := t.fallback.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}
