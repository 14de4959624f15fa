package benchutil

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"time"
)

// ReadHead reads an HTTP/1 answer's status line and headers from br, for
// the lean load clients of the benchmarks (in the manner of wrk: requests
// serialized up front, answers read just enough to check them). length is
// the Content-Length, -1 when there is none; a Content-Length above
// maxLength is an error. keep says whether the connection stays open:
// HTTP/1.1 without Connection: close, or HTTP/1.0 with keep-alive.
func ReadHead(br *bufio.Reader, maxLength int) (status, length int, keep bool, err error) {
	h, err := readHead(br, maxLength)
	if err != nil {
		return 0, 0, false, err
	}
	return h.status, h.length, h.keep, nil
}

// head is what readHead learns of an answer's status line and headers.
type head struct {
	status, length int
	keep, chunked  bool
}

// readHead is ReadHead, which also learns whether the body is chunked
// (Transfer-Encoding: chunked).
func readHead(br *bufio.Reader, maxLength int) (head, error) {
	var h head
	line, err := br.ReadSlice('\n')
	if err != nil {
		return h, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return h, fmt.Errorf("bad status line %q", line)
	}
	h.keep = line[7] == '1'
	if h.status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return h, fmt.Errorf("bad status line %q", line)
	}
	h.length = -1
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return h, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return h, nil
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if h.length, err = strconv.Atoi(string(v)); err != nil || h.length < 0 || h.length > maxLength {
				return h, fmt.Errorf("bad Content-Length %q", v)
			}
		case bytes.EqualFold(k, []byte("Connection")):
			switch {
			case bytes.EqualFold(v, []byte("close")):
				h.keep = false
			case bytes.EqualFold(v, []byte("keep-alive")):
				h.keep = true
			}
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			h.chunked = bytes.EqualFold(v, []byte("chunked"))
		}
	}
}

// ReadBody reads the body of an answer whose head ReadHead returned, into
// buf (grown if needed, reused otherwise): length bytes, or, when there is
// no Content-Length and the connection closes, up to maxLength bytes.
func ReadBody(br *bufio.Reader, buf []byte, length int, keep bool, maxLength int64) ([]byte, error) {
	switch {
	case length >= 0:
		if cap(buf) < length {
			buf = make([]byte, length)
		}
		buf = buf[:length]
		_, err := io.ReadFull(br, buf)
		return buf, err
	case !keep:
		return io.ReadAll(io.LimitReader(br, maxLength))
	}
	return buf, errors.New("answer has neither Content-Length nor Connection: close")
}

// ReadAnswer reads a whole HTTP/1 answer from br, head (as ReadHead) and
// body, into buf (grown if needed, reused otherwise): Content-Length
// bytes; a chunked body (Transfer-Encoding: chunked, which net/http sends
// for a body of more than 2 KB whose length the handler did not set),
// decoded; or, with neither and when the connection closes, up to
// maxLength bytes. A body longer than maxLength is an error. keep says
// whether the connection stays open.
func ReadAnswer(br *bufio.Reader, buf []byte, maxLength int) (status int, body []byte, keep bool, err error) {
	h, err := readHead(br, maxLength)
	if err != nil {
		return 0, buf, false, err
	}
	if !h.chunked {
		body, err = ReadBody(br, buf, h.length, h.keep, int64(maxLength))
		return h.status, body, h.keep, err
	}
	body, err = readChunked(br, buf[:0], maxLength)
	return h.status, body, h.keep, err
}

// readChunked decodes a chunked body (RFC 9112 §7.1) from br, appending
// it to buf: chunks of a hexadecimal size line (extensions ignored), the
// data and CRLF, up to the last chunk of size 0 and the trailer section,
// whose fields are dropped.
func readChunked(br *bufio.Reader, buf []byte, maxLength int) ([]byte, error) {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return buf, err
		}
		sizeHex, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		size, err := strconv.ParseUint(string(bytes.TrimSpace(sizeHex)), 16, 31)
		if err != nil {
			return buf, fmt.Errorf("bad chunk size line %q", line)
		}
		if size == 0 {
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return buf, err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return buf, nil
				}
			}
		}
		if len(buf)+int(size) > maxLength {
			return buf, fmt.Errorf("chunked body longer than %d bytes", maxLength)
		}
		n := len(buf)
		buf = slices.Grow(buf, int(size))[:n+int(size)]
		if _, err := io.ReadFull(br, buf[n:]); err != nil {
			return buf, err
		}
		if crlf, err := br.ReadSlice('\n'); err != nil || len(bytes.TrimRight(crlf, "\r\n")) != 0 {
			return buf, fmt.Errorf("chunk of %d bytes not followed by CRLF", size)
		}
	}
}

// Conn is a lean HTTP/1.1 client connection, over TCP or TLS, for one
// worker of a load: requests serialized up front, answers read just
// enough to check them (ReadAnswer), one connection kept while the server
// keeps it open. net/http's client would cost the cores the client shares
// with the server more, and cannot present a different client certificate
// on each connection.
type Conn struct {
	Addr    string        // host:port
	TLS     *tls.Config   // the next connection's TLS client configuration; nil for plain TCP
	Timeout time.Duration // bounds the dial and handshake, and each request until its answer is read
	MaxBody int           // the longest answer body read
	Dials   int           // connections opened

	nc   net.Conn
	br   *bufio.Reader
	body []byte
}

// NewConn returns a Conn to addr that has not connected yet.
func NewConn(addr string, cfg *tls.Config, timeout time.Duration, maxBody int) *Conn {
	// body is never nil, so neither is the body of an answer.
	return &Conn{Addr: addr, TLS: cfg, Timeout: timeout, MaxBody: maxBody,
		br: bufio.NewReaderSize(nil, 16<<10), body: make([]byte, 0, 4<<10)}
}

// Open connects, and with TLS set completes the handshake.
func (c *Conn) Open() error {
	nc, err := net.DialTimeout("tcp", c.Addr, c.Timeout)
	if err != nil {
		return err
	}
	c.Dials++
	if c.TLS != nil {
		tc := tls.Client(nc, c.TLS)
		_ = tc.SetDeadline(time.Now().Add(c.Timeout))
		if err := tc.Handshake(); err != nil {
			nc.Close()
			return err
		}
		nc = tc
	}
	c.nc = nc
	c.br.Reset(nc)
	return nil
}

// NetConn is the open connection, or nil, for a caller that watches it
// (a read that returns when the server closes it).
func (c *Conn) NetConn() net.Conn { return c.nc }

// Close closes the connection, if one is open.
func (c *Conn) Close() {
	if c.nc != nil {
		c.nc.Close()
		c.nc = nil
	}
}

// Do sends one serialized request, first opening a connection if none is
// open, and reads the answer: its status and body (not nil; valid until
// the next call). err is a failure to get an answer. The connection is
// closed after an error, or when the server closes it (Connection: close,
// or HTTP/1.0 without keep-alive).
func (c *Conn) Do(req []byte) (status int, body []byte, err error) {
	if c.nc == nil {
		if err := c.Open(); err != nil {
			return 0, nil, err
		}
	}
	_ = c.nc.SetDeadline(time.Now().Add(c.Timeout))
	if _, err := c.nc.Write(req); err != nil {
		c.Close()
		return 0, nil, err
	}
	var keep bool
	status, c.body, keep, err = ReadAnswer(c.br, c.body, c.MaxBody)
	if err != nil || !keep {
		c.Close()
	}
	if err != nil {
		return 0, nil, err
	}
	return status, c.body, nil
}

// FirstBytes is the start of an answer's body, for error messages.
func FirstBytes(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 300 {
		b = b[:300]
	}
	return string(b)
}

// PinnedTLS is a load client's TLS configuration, with the client
// certificate cert if not nil. Every connection is a full handshake: no
// session cache, tickets refused. Only X25519 is offered, as most device
// TLS stacks do: Go would otherwise offer X25519MLKEM768 first, which one
// server may take and another (nginx 1.22, OpenSSL 3.0) cannot, and the
// two would not do the same work. The server's certificate is pinned by
// its bytes (DER) rather than verified: chain verification on the client
// would take CPU from the servers measured on the same cores, and the pin
// proves as much here. A handshake with a server that presents another
// certificate fails with "the server did not present " + pinnedName.
func PinnedTLS(cert *tls.Certificate, pinned []byte, pinnedName string) *tls.Config {
	cfg := &tls.Config{
		ServerName:             "localhost",
		MinVersion:             tls.VersionTLS12,
		NextProtos:             []string{"http/1.1"},
		CurvePreferences:       []tls.CurveID{tls.X25519},
		SessionTicketsDisabled: true,
		InsecureSkipVerify:     true, // replaced by the pin below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, pinned) {
				return errors.New("the server did not present " + pinnedName)
			}
			return nil
		},
	}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}
