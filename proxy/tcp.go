package proxy

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"time"
)

// pipe runs a verified TCP-mode connection: dial the upstream, send the
// PROXY header if configured, then first (the rewritten MQTT CONNECT of a
// client with a device JWT; nil otherwise), and copy both ways. A direction that ends
// cleanly (EOF, or the client's close_notify) is passed on as a
// half-close, and the other direction then has Config.HalfCloseTimeout to
// end; an error in either direction, or the client connection being
// closed (revocation, shutdown), ends both. It writes the access-log line.
func (s *Server) pipe(ctx context.Context, client *tls.Conn, c *trackedConn, start time.Time, first []byte) {
	up, err := s.dialer.DialContext(ctx, "tcp", s.upstream.Host)
	if err != nil {
		s.m.upstreamErrors.Inc()
		s.log.Warn("upstream failed", "device_id", c.id.deviceID, "upstream", s.upstreamLog, "err", err)
		c.Close()
		return
	}
	if s.cfg.ProxyProtocol {
		if _, err := up.Write(proxyHeaderV2(c.RemoteAddr(), c.LocalAddr())); err != nil {
			s.m.upstreamErrors.Inc()
			s.log.Warn("upstream failed", "device_id", c.id.deviceID, "upstream", s.upstreamLog, "err", err)
			up.Close()
			c.Close()
			return
		}
	}
	if first != nil {
		if _, err := up.Write(first); err != nil {
			s.m.upstreamErrors.Inc()
			s.log.Warn("upstream failed", "device_id", c.id.deviceID, "upstream", s.upstreamLog, "err", err)
			up.Close()
			c.Close()
			return
		}
	}
	abort := func() {
		c.Close() // the socket: never blocks, unlike a close_notify to a peer that does not read
		up.Close()
	}
	clientCloseWrite := func() error {
		if err := client.CloseWrite(); err != nil {
			return err
		}
		if cw, ok := c.Conn.(closeWriter); ok {
			return cw.CloseWrite()
		}
		return nil
	}
	upCloseWrite := func() error {
		if cw, ok := up.(closeWriter); ok {
			return cw.CloseWrite()
		}
		return up.Close()
	}
	var bytesIn int64 // client to upstream
	done := make(chan struct{})
	go func() {
		defer close(done)
		bytesIn = s.copyHalf(up, client, upCloseWrite, up, abort)
	}()
	bytesOut := s.copyHalf(client, up, clientCloseWrite, client, abort)
	<-done
	up.Close()
	client.Close()
	attrs := []slog.Attr{
		slog.String("device_id", c.id.deviceID),
		slog.String("serial", c.id.serial),
		slog.String("remote_addr", c.RemoteAddr().String()),
		slog.Int64("bytes_in", bytesIn),
		slog.Int64("bytes_out", bytesOut),
		slog.Float64("duration_ms", float64(s.now().Sub(start))/float64(time.Millisecond)),
		slog.String("upstream", s.upstreamLog),
	}
	if c.id.keyID != "" { // the client authenticated with a device JWT
		attrs = append(attrs, slog.String("kid", c.id.keyID))
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "tcp connection closed", attrs...)
}

type closeWriter interface{ CloseWrite() error }

// copyHalf copies src to dst until src ends and returns the bytes copied.
// On a clean end it closes dst for writing and gives the other
// direction, which reads otherSrc, HalfCloseTimeout to end; on an error
// it aborts the pipe.
func (s *Server) copyHalf(dst, src net.Conn, closeWrite func() error, otherSrc net.Conn, abort func()) int64 {
	buf := s.buffers.Get()
	defer s.buffers.Put(buf)
	// Hide ReadFrom and WriteTo, so that the pooled buffer is used.
	n, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, buf)
	if err == nil && closeWrite() == nil {
		otherSrc.SetReadDeadline(time.Now().Add(s.cfg.HalfCloseTimeout))
		return n
	}
	abort()
	return n
}

// proxyV2Signature starts every PROXY protocol v2 header.
const proxyV2Signature = "\r\n\r\n\x00\r\nQUIT\n"

// proxyHeaderV2 is the PROXY protocol v2 header (haproxy's
// proxy-protocol.txt §2.2) for a connection from src to dst: version 2,
// command PROXY, TCP over IPv4 (both addresses IPv4) or IPv6, then the
// source and destination addresses and ports, big-endian, and no TLVs.
// For addresses that are not TCP it is the LOCAL command with no address
// (family UNSPEC), which tells the upstream to use the connection's own.
func proxyHeaderV2(src, dst net.Addr) []byte {
	h := make([]byte, 0, 16+36)
	h = append(h, proxyV2Signature...)
	s, ok1 := src.(*net.TCPAddr)
	d, ok2 := dst.(*net.TCPAddr)
	if !ok1 || !ok2 || s.IP.To16() == nil || d.IP.To16() == nil {
		return append(h, 0x20, 0x00, 0x00, 0x00) // LOCAL, UNSPEC, length 0
	}
	if s4, d4 := s.IP.To4(), d.IP.To4(); s4 != nil && d4 != nil {
		h = append(h, 0x21, 0x11, 0x00, 12) // PROXY, TCP over IPv4, 12 bytes
		h = append(h, s4...)
		h = append(h, d4...)
	} else {
		h = append(h, 0x21, 0x21, 0x00, 36) // PROXY, TCP over IPv6, 36 bytes
		h = append(h, s.IP.To16()...)
		h = append(h, d.IP.To16()...)
	}
	h = binary.BigEndian.AppendUint16(h, uint16(s.Port))
	return binary.BigEndian.AppendUint16(h, uint16(d.Port))
}
