package proxy

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
)

// trackedConn is an accepted client connection: the net.Conn under the
// *tls.Conn. Its Close takes it out of the connSet, so that whoever closes
// the TLS connection (http.Server, the ReverseProxy after a hijack, the TCP
// pipe) also ends its tracking.
type trackedConn struct {
	net.Conn
	set *connSet

	// Guarded by set.mu.
	closed     bool
	serial     string       // key in set.bySerial; "" until registered
	prev, next *trackedConn // the other connections with the same serial

	// id is set once, after the handshake is verified and before the
	// connection is handed to HTTP or the pipe; read-only afterwards.
	id *identity
	// upgraded is set when the ReverseProxy hijacks the connection for a
	// protocol switch (WebSocket): http.Server no longer drains it, so a
	// shutdown closes it at once.
	upgraded atomic.Bool
	// handedTLS is the connection's TLS state when the fast path hands it
	// to http.Server inside a replayConn, where http.Server cannot see it.
	handedTLS *tls.ConnectionState
	// fastIdle is set while the HTTP/1.1 fast path (h1fast.go) waits for
	// the connection's next request: a shutdown closes it at once, as
	// http.Server closes its idle connections.
	fastIdle atomic.Bool

	// up is the upstream connection a fast-path request is using: closing
	// the client connection (revocation, shutdown, an error) interrupts
	// it, as the end of a net/http request's context interrupts its
	// upstream exchange. upGone is set once the client connection is
	// closed: no upstream connection may be registered after that.
	upMu   sync.Mutex
	up     net.Conn
	upGone bool
}

// Close closes the connection and stops tracking it. It may be called more
// than once.
func (c *trackedConn) Close() error {
	c.set.remove(c)
	return c.closeSocket()
}

// closeSocket closes the socket and interrupts the upstream exchange of
// a fast-path request in flight.
func (c *trackedConn) closeSocket() error {
	err := c.Conn.Close()
	c.upMu.Lock()
	c.upGone = true
	if c.up != nil {
		c.up.SetDeadline(aLongTimeAgo)
	}
	c.upMu.Unlock()
	return err
}

// setUpstream registers up as the upstream connection of the request in
// flight; false if the client connection is already closed (the caller
// then drops up).
func (c *trackedConn) setUpstream(up net.Conn) bool {
	c.upMu.Lock()
	defer c.upMu.Unlock()
	if c.upGone {
		return false
	}
	c.up = up
	return true
}

// clearUpstream ends the registration of setUpstream. It reports false if
// the upstream connection was interrupted meanwhile: it must not be
// reused.
func (c *trackedConn) clearUpstream() bool {
	c.upMu.Lock()
	defer c.upMu.Unlock()
	c.up = nil
	return !c.upGone
}

// upstreamInterrupted reports whether closing the client connection has
// interrupted (or would interrupt) its upstream exchange.
func (c *trackedConn) upstreamInterrupted() bool {
	c.upMu.Lock()
	defer c.upMu.Unlock()
	return c.upGone
}

// connSet holds the open client connections, by the serial of their
// client certificate once the handshake has verified it. Closing by serial
// and registering are ordered by mu; epoch counts the closings by serial,
// so that a handshake that raced with one can tell (see register).
type connSet struct {
	mu       sync.Mutex
	epoch    uint64
	stopped  bool // no more registrations: the Server is shutting down
	all      map[*trackedConn]struct{}
	bySerial map[string]*trackedConn // head of each serial's list
	open     atomic.Int64
}

func newConnSet() *connSet {
	return &connSet{all: map[*trackedConn]struct{}{}, bySerial: map[string]*trackedConn{}}
}

// add starts tracking a newly accepted connection.
func (s *connSet) add(nc net.Conn) *trackedConn {
	c := &trackedConn{Conn: nc, set: s}
	s.mu.Lock()
	s.all[c] = struct{}{}
	s.mu.Unlock()
	s.open.Add(1)
	return c
}

// currentEpoch is read before a handshake starts; see register.
func (s *connSet) currentEpoch() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

// register files c under serial after its handshake was verified. It
// reports whether c may go on (it is open and the Server is not stopping:
// if not, the caller closes it), and whether some serial was closed
// since epoch0 was read: the revocation may then have been announced
// after the handshake checked it but before c could be found by serial,
// and the caller must check again. A Checker makes a revocation visible to
// Check before it announces it, so nothing announced before epoch0 was
// read can be missed.
func (s *connSet) register(c *trackedConn, serial string, epoch0 uint64) (open, recheck bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.closed || s.stopped {
		return false, false
	}
	c.serial = serial
	if head := s.bySerial[serial]; head != nil {
		head.prev = c
		c.next = head
	}
	s.bySerial[serial] = c
	return true, s.epoch != epoch0
}

// remove stops tracking c; it reports whether c was still tracked.
func (s *connSet) remove(c *trackedConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.removeLocked(c)
}

func (s *connSet) removeLocked(c *trackedConn) bool {
	if c.closed {
		return false
	}
	c.closed = true
	delete(s.all, c)
	if c.serial != "" {
		if c.prev != nil {
			c.prev.next = c.next
		} else if c.next != nil {
			s.bySerial[c.serial] = c.next
		} else {
			delete(s.bySerial, c.serial)
		}
		if c.next != nil {
			c.next.prev = c.prev
		}
		c.prev, c.next = nil, nil
	}
	s.open.Add(-1)
	return true
}

// closeSerial closes every connection whose client certificate has serial
// and returns how many there were. It closes the socket under the TLS
// connection, which never blocks (a TLS close_notify could, on a peer that
// does not read), so it may run in a Checker's Subscribe callback.
func (s *connSet) closeSerial(serial string) int {
	s.mu.Lock()
	s.epoch++
	var victims []*trackedConn
	for c := s.bySerial[serial]; c != nil; {
		next := c.next
		s.removeLocked(c)
		victims = append(victims, c)
		c = next
	}
	s.mu.Unlock()
	for _, c := range victims {
		c.closeSocket()
	}
	return len(victims)
}

// stop refuses further registrations.
func (s *connSet) stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
}

// closeWhere closes the connections for which match returns true, and
// returns how many. match runs under s.mu: it may read the guarded fields.
func (s *connSet) closeWhere(match func(*trackedConn) bool) int {
	s.mu.Lock()
	var victims []*trackedConn
	for c := range s.all {
		if match(c) {
			victims = append(victims, c)
		}
	}
	for _, c := range victims {
		s.removeLocked(c)
	}
	s.mu.Unlock()
	for _, c := range victims {
		c.closeSocket()
	}
	return len(victims)
}
