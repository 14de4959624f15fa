package proxy

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fleetca/fleetca/internal/testenv"
)

// tcpEchoUpstream is a real TCP server that echoes what it reads and
// half-closes when its client does. With proxyHeader set, it first reads
// a PROXY v2 header (16 bytes, then the length they announce) and sends
// it on headers.
type tcpEchoUpstream struct {
	addr    string
	headers chan []byte
}

func newTCPEchoUpstream(t *testing.T, proxyHeader bool) *tcpEchoUpstream {
	t.Helper()
	ln := testenv.Listen(t)
	u := &tcpEchoUpstream{addr: ln.Addr().String(), headers: make(chan []byte, 4)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if proxyHeader {
					h := make([]byte, 16)
					if _, err := io.ReadFull(c, h); err != nil {
						return
					}
					rest := make([]byte, binary.BigEndian.Uint16(h[14:]))
					if _, err := io.ReadFull(c, rest); err != nil {
						return
					}
					u.headers <- append(h, rest...)
				}
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return u
}

func TestTCPPipe(t *testing.T) {
	pki := newPKI(t, "Fleet")
	up := newTCPEchoUpstream(t, false)
	p := startProxy(t, pki, Config{Upstream: "tcp://" + up.addr})
	dev := pki.device(t, "dev-mqtt")

	c := p.dial(t, pki.clientTLS(&dev))
	echo(t, c, c, "hello")
	echo(t, c, c, "world!")
	// Half-close: the upstream sees the end, ends too, and the client
	// reads the end after the last bytes.
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(waitLimit))
	if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
		t.Fatalf("after the client's close_notify: read %q, %v; want the end, no error", rest, err)
	}
	e := p.logs.wait(t, "tcp connection closed", "device_id", "dev-mqtt")
	if e["bytes_in"] != int64(11) || e["bytes_out"] != int64(11) {
		t.Errorf("access log bytes_in %v bytes_out %v, want 11 and 11", e["bytes_in"], e["bytes_out"])
	}
	if got := p.handshakes(outcomeAccepted, reasonOK); got != 1 {
		t.Errorf("handshakes{accepted,ok} = %v, want 1", got)
	}
}

func TestTCPClosedOnRevoke(t *testing.T) {
	pki := newPKI(t, "Fleet")
	up := newTCPEchoUpstream(t, false)
	p := startProxy(t, pki, Config{Upstream: "tcp://" + up.addr})
	dev := pki.device(t, "dev-mqtt")
	other := pki.device(t, "dev-other")

	c := p.dial(t, pki.clientTLS(&dev))
	echo(t, c, c, "before")
	kept := p.dial(t, pki.clientTLS(&other))
	echo(t, kept, kept, "other")

	p.checker.revoke(dev.Leaf.SerialNumber)
	waitClosed(t, c)
	echo(t, kept, kept, "still here")
	if got := testutil.ToFloat64(p.m.revokedClosed); got != 1 {
		t.Errorf("revoked_connections_closed_total = %v, want 1", got)
	}
	p.logs.wait(t, "tcp connection closed", "device_id", "dev-mqtt")
	// A new connection with the revoked certificate is refused.
	c2 := p.dial(t, pki.clientTLS(&dev))
	c2.SetReadDeadline(time.Now().Add(waitLimit))
	if _, err := c2.Read(make([]byte, 1)); !isRemoteAlert(err) {
		t.Fatalf("reconnect with a revoked certificate: %v, want a TLS alert", err)
	}
}

func TestProxyProtocolV2(t *testing.T) {
	pki := newPKI(t, "Fleet")
	up := newTCPEchoUpstream(t, true)
	p := startProxy(t, pki, Config{Upstream: "tcp://" + up.addr, ProxyProtocol: true})
	dev := pki.device(t, "dev-1")

	c := p.dial(t, pki.clientTLS(&dev))
	echo(t, c, c, "payload")
	client := c.LocalAddr().(*net.TCPAddr)
	proxy := c.RemoteAddr().(*net.TCPAddr)
	want := []byte("\r\n\r\n\x00\r\nQUIT\n")
	want = append(want, 0x21, 0x11, 0x00, 0x0c)
	want = append(want, client.IP.To4()...)
	want = append(want, proxy.IP.To4()...)
	want = append(want, byte(client.Port>>8), byte(client.Port), byte(proxy.Port>>8), byte(proxy.Port))
	select {
	case got := <-up.headers:
		if !bytes.Equal(got, want) {
			t.Errorf("PROXY header\n got % x\nwant % x", got, want)
		}
	case <-time.After(waitLimit):
		t.Fatal("the upstream got no PROXY header")
	}
}

func TestProxyHeaderV2Encoding(t *testing.T) {
	sig := []byte("\r\n\r\n\x00\r\nQUIT\n")
	v6 := append(append([]byte{}, sig...), 0x21, 0x21, 0x00, 36)
	v6 = append(v6, net.ParseIP("2001:db8::1").To16()...)
	v6 = append(v6, net.ParseIP("::1").To16()...)
	v6 = append(v6, 0xc3, 0x50, 0x22, 0xb3) // 50000, 8883
	mixed := append(append([]byte{}, sig...), 0x21, 0x21, 0x00, 36)
	mixed = append(mixed, net.ParseIP("192.0.2.1").To16()...)
	mixed = append(mixed, net.ParseIP("2001:db8::2").To16()...)
	mixed = append(mixed, 0x00, 0x50, 0x01, 0xbb)
	tests := []struct {
		name     string
		src, dst net.Addr
		want     []byte
	}{
		{"ipv6", &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 50000}, &net.TCPAddr{IP: net.IPv6loopback, Port: 8883}, v6},
		{"mixed-families", &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 80}, &net.TCPAddr{IP: net.ParseIP("2001:db8::2"), Port: 443}, mixed},
		{"not-tcp", &net.UnixAddr{Name: "/x", Net: "unix"}, &net.UnixAddr{Name: "/y", Net: "unix"}, append(append([]byte{}, sig...), 0x20, 0x00, 0x00, 0x00)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, proxyHeaderV2(tc.src, tc.dst)); diff != "" {
				t.Errorf("proxyHeaderV2 (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTCPShutdownClosesPipes(t *testing.T) {
	pki := newPKI(t, "Fleet")
	up := newTCPEchoUpstream(t, false)
	p := startProxy(t, pki, Config{Upstream: "tcp://" + up.addr})
	dev := pki.device(t, "dev-1")
	c := p.dial(t, pki.clientTLS(&dev))
	echo(t, c, c, "hi")
	p.stop()
	waitClosed(t, c)
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
		p.done <- err
	case <-time.After(waitLimit):
		t.Fatal("Serve did not return")
	}
	if got := p.OpenConnections(); got != 0 {
		t.Errorf("OpenConnections after shutdown = %d, want 0", got)
	}
}

func TestTCPUpstreamDown(t *testing.T) {
	pki := newPKI(t, "Fleet")
	// Port 0 cannot be connected to: the dial is refused at once.
	p := startProxy(t, pki, Config{Upstream: "tcp://127.0.0.1:0"})
	dev := pki.device(t, "dev-1")
	c := p.dial(t, pki.clientTLS(&dev))
	waitClosed(t, c)
	p.logs.wait(t, "upstream failed", "device_id", "dev-1")
	if got := testutil.ToFloat64(p.m.upstreamErrors); got != 1 {
		t.Errorf("upstream_errors_total = %v, want 1", got)
	}
}
