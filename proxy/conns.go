package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"slices"
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
	// jwt marks a connection without a client certificate whose requests
	// carry device JWTs; jwtSerials are the serials of the certificates
	// whose keys signed them (keys in set.jwtBySerial).
	jwt        bool
	jwtSerials []string
	// lastJWTSerial is the serial last registered for a JWT, so that the
	// next request of the same device skips set.mu. Only a hint.
	lastJWTSerial atomic.Pointer[string]

	// id is set once, after the handshake is verified and before the
	// connection is handed to HTTP or the pipe; read-only afterwards.
	id *identity
	// upgraded is set when the ReverseProxy hijacks the connection for a
	// protocol switch (WebSocket): http.Server no longer drains it, so a
	// shutdown closes it at once.
	upgraded atomic.Bool
	// handedTLS is the connection's TLS state when the fast path hands it
	// to http.Server in a wrapper that http.Server does not see as TLS;
	// set by ConnContext, read by httpHandler.
	handedTLS *tls.ConnectionState

	// ctx ends, with errConnClosed, when the connection is closed: it is
	// the fast path's Conn.Context, whose end interrupts the upstream
	// exchange of a request in flight, as the end of a net/http request's
	// context interrupts its own.
	ctx    context.Context
	cancel context.CancelCauseFunc
}

// errConnClosed is the cause of a trackedConn's ctx ending.
var errConnClosed = errors.New("proxy: the client connection was closed")

// Close closes the connection and stops tracking it. It may be called more
// than once.
func (c *trackedConn) Close() error {
	c.set.remove(c)
	return c.closeSocket()
}

// closeSocket closes the socket and ends c.ctx.
func (c *trackedConn) closeSocket() error {
	err := c.Conn.Close()
	c.cancel(errConnClosed)
	return err
}

// connSet holds the open client connections, by the serial of their
// client certificate once the handshake has verified it. Closing by serial
// and registering are ordered by mu; epoch counts the closings by serial,
// so that a handshake that raced with one can tell (see register).
type connSet struct {
	mu       sync.Mutex
	epoch    atomic.Uint64 // written under mu; read without it by JWT requests
	stopped  bool          // no more registrations: the Server is shutting down
	all      map[*trackedConn]struct{}
	bySerial map[string]*trackedConn // head of each serial's list
	// jwtBySerial are the JWT connections by the serials of the
	// certificates whose keys signed their requests' tokens.
	jwtBySerial map[string]map[*trackedConn]struct{}
	open        atomic.Int64
}

func newConnSet() *connSet {
	return &connSet{all: map[*trackedConn]struct{}{}, bySerial: map[string]*trackedConn{},
		jwtBySerial: map[string]map[*trackedConn]struct{}{}}
}

// markJWT marks c a JWT connection (see trackedConn.jwt); false if it is
// closed or the Server is stopping.
func (s *connSet) markJWT(c *trackedConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.closed || s.stopped {
		return false
	}
	c.jwt = true
	return true
}

// registerJWT files JWT connection c under serial, the certificate of a
// token it carried, as register does for a handshake's; a connection may
// be under many serials (a load balancer's carries many devices').
func (s *connSet) registerJWT(c *trackedConn, serial string, epoch0 uint64) (open, recheck bool) {
	if p := c.lastJWTSerial.Load(); p != nil && *p == serial {
		// Filed already: a closing of serial from then on finds c.
		return true, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.closed {
		return false, false
	}
	if !slices.Contains(c.jwtSerials, serial) {
		c.jwtSerials = append(c.jwtSerials, serial)
		m := s.jwtBySerial[serial]
		if m == nil {
			m = map[*trackedConn]struct{}{}
			s.jwtBySerial[serial] = m
		}
		m[c] = struct{}{}
	}
	c.lastJWTSerial.Store(&serial)
	return true, s.epoch.Load() != epoch0
}

// add starts tracking a newly accepted connection. Its ctx carries the
// values of base, not its end.
func (s *connSet) add(base context.Context, nc net.Conn) *trackedConn {
	c := &trackedConn{Conn: nc, set: s}
	c.ctx, c.cancel = context.WithCancelCause(context.WithoutCancel(base))
	s.mu.Lock()
	s.all[c] = struct{}{}
	s.mu.Unlock()
	s.open.Add(1)
	return c
}

// currentEpoch is read before a handshake starts; see register.
func (s *connSet) currentEpoch() uint64 {
	return s.epoch.Load()
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
	return true, s.epoch.Load() != epoch0
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
	for _, serial := range c.jwtSerials {
		if m := s.jwtBySerial[serial]; m != nil {
			delete(m, c)
			if len(m) == 0 {
				delete(s.jwtBySerial, serial)
			}
		}
	}
	c.jwtSerials = nil
	s.open.Add(-1)
	return true
}

// closeSerial closes every connection whose client certificate has serial
// and returns how many there were. It closes the socket under the TLS
// connection, which never blocks (a TLS close_notify could, on a peer that
// does not read), so it may run in a Checker's Subscribe callback.
func (s *connSet) closeSerial(serial string) int {
	s.mu.Lock()
	s.epoch.Add(1)
	var victims []*trackedConn
	for c := s.bySerial[serial]; c != nil; {
		next := c.next
		s.removeLocked(c)
		victims = append(victims, c)
		c = next
	}
	jwtConns := s.jwtBySerial[serial]
	for c := range jwtConns {
		victims = append(victims, c)
	}
	for _, c := range victims[len(victims)-len(jwtConns):] {
		s.removeLocked(c)
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
