package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fleetca/fleetca/internal/testenv"
	"github.com/fleetca/fleetca/verify"
)

// connectPacket encodes a CONNECT of version (4 or 5) with the packet
// library; mod may change it first.
func connectPacket(version byte, clientID, password string, mod ...func(*packets.Packet)) []byte {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: version}
	pk.Connect.ProtocolName = []byte("MQTT")
	pk.Connect.ClientIdentifier = clientID
	pk.Connect.Clean = true
	pk.Connect.Keepalive = 60
	pk.Connect.UsernameFlag, pk.Connect.Username = true, []byte("x")
	if password != "" {
		pk.Connect.PasswordFlag, pk.Connect.Password = true, []byte(password)
	}
	for _, m := range mod {
		m(&pk)
	}
	pk.Mods.AllowResponseInfo = true
	var buf bytes.Buffer
	pk.ConnectEncode(&buf)
	return buf.Bytes()
}

// withWill gives the CONNECT a will, with MQTT 5 will properties.
func withWill(pk *packets.Packet) {
	pk.Connect.WillFlag, pk.Connect.WillQos, pk.Connect.WillRetain = true, 1, true
	pk.Connect.WillTopic, pk.Connect.WillPayload = "devices/dev-1/status", []byte("gone")
	if pk.ProtocolVersion == 5 {
		pk.Connect.WillProperties = packets.Properties{WillDelayInterval: 5, ResponseTopic: "devices/dev-1/reply",
			CorrelationData: []byte{1, 2}, ContentType: "text/plain", User: []packets.UserProperty{{Key: "k", Val: "v"}}}
	}
}

// withProperties gives an MQTT 5 CONNECT properties of every kind a
// client may send.
func withProperties(pk *packets.Packet) {
	pk.Properties = packets.Properties{SessionExpiryInterval: 3600, SessionExpiryIntervalFlag: true, ReceiveMaximum: 10,
		MaximumPacketSize: 1 << 20, TopicAliasMaximum: 5, RequestResponseInfo: 1, RequestProblemInfo: 0, RequestProblemInfoFlag: true,
		User: []packets.UserProperty{{Key: "site", Val: "lyon"}}}
}

// decodeConnect decodes a whole CONNECT packet.
func decodeConnect(t *testing.T, b []byte) *packets.Packet {
	t.Helper()
	pk, err := readConnect(bytes.NewReader(b), MaxConnectBytes)
	if err != nil {
		t.Fatalf("decode % x: %v", b, err)
	}
	return pk
}

func TestRewriteConnect(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"3.1.1", connectPacket(4, "dev-1", "JWT")},
		{"3.1.1/will", connectPacket(4, "dev-1", "JWT", withWill)},
		{"3.1.1/no-username", connectPacket(4, "dev-1", "JWT", func(pk *packets.Packet) {
			pk.Connect.UsernameFlag, pk.Connect.Username = false, nil
			pk.Connect.Clean, pk.Connect.Keepalive = false, 0
		})},
		{"5", connectPacket(5, "dev-1", "JWT")},
		{"5/properties-will", connectPacket(5, "dev-1", "JWT", withProperties, withWill)},
		// The bytes of mosquitto_pub -V mqttv311 -i dev-1 -u x -P JWT -k 60:
		// written out here, not encoded by the library.
		{"3.1.1/literal", []byte("\x10\x19\x00\x04MQTT\x04\xc2\x00\x3c\x00\x05dev-1\x00\x01x\x00\x03JWT")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := decodeConnect(t, tc.in)
			if string(in.Connect.Password) != "JWT" {
				t.Fatalf("password %q, want JWT", in.Connect.Password)
			}
			out := decodeConnect(t, rewriteConnect(in, "dev-1"))
			if !out.Connect.UsernameFlag || string(out.Connect.Username) != "dev-1" {
				t.Errorf("rewritten username flag %v %q, want dev-1", out.Connect.UsernameFlag, out.Connect.Username)
			}
			if out.Connect.PasswordFlag || len(out.Connect.Password) != 0 {
				t.Errorf("rewritten password flag %v %q, want none", out.Connect.PasswordFlag, out.Connect.Password)
			}
			// All else is kept.
			in = decodeConnect(t, tc.in)
			in.Connect.Username, in.Connect.UsernameFlag = []byte("dev-1"), true
			in.Connect.Password, in.Connect.PasswordFlag = nil, false
			ignore := cmpopts.IgnoreFields(packets.Packet{}, "FixedHeader")
			if diff := cmp.Diff(in, out, ignore, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("rewritten CONNECT differs beyond username and password (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadConnectRefused(t *testing.T) {
	big := connectPacket(4, "dev-1", strings.Repeat("x", 65000), func(pk *packets.Packet) {
		pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload = true, strings.Repeat("t", 5000), bytes.Repeat([]byte("y"), 65000)
	})
	tests := []struct {
		name    string
		in      []byte
		reason  string
		version byte
		code    byte // the CONNACK code, if version != 0
	}{
		{"pingreq", []byte{0xc0, 0x00}, mqttReasonNotConnect, 0, 0},
		{"publish", []byte("\x30\x05\x00\x01tab"), mqttReasonNotConnect, 0, 0},
		{"http", []byte("GET / HTTP/1.1\r\n\r\n"), mqttReasonNotConnect, 0, 0},
		{"oversized", big, mqttReasonTooLarge, 0, 0},
		{"oversized-unsent", []byte{0x10, 0xff, 0xff, 0xff, 0x7f}, mqttReasonTooLarge, 0, 0},
		{"length-5-bytes", []byte{0x10, 0x80, 0x80, 0x80, 0x80, 0x01}, mqttReasonMalformed, 0, 0},
		{"truncated", connectPacket(4, "dev-1", "JWT")[:10], reasonEOF, 0, 0},
		{"empty", nil, reasonEOF, 0, 0},
		{"mqtt-3.1", []byte("\x10\x11\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x03abc"), mqttReasonVersion, 4, 0x01},
		{"mqtt-6", []byte("\x10\x0f\x00\x04MQTT\x06\x02\x00\x3c\x00\x03abc"), mqttReasonVersion, 4, 0x01},
		{"3.1.1-reserved-flag", []byte("\x10\x0f\x00\x04MQTT\x04\x03\x00\x3c\x00\x03abc"), mqttReasonMalformed, 4, 0x05},
		{"5-bad-property", []byte("\x10\x12\x00\x04MQTT\x05\x02\x00\x3c\x02\x01\x01\x00\x03abc"), mqttReasonMalformed, 5, 0x81},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readConnect(bytes.NewReader(tc.in), MaxConnectBytes)
			ce, ok := errors.AsType[*connectError](err)
			if !ok {
				t.Fatalf("readConnect = %v, want a *connectError", err)
			}
			if ce.reason != tc.reason || ce.version != tc.version {
				t.Fatalf("readConnect: reason %q version %d (%v), want %q version %d", ce.reason, ce.version, err, tc.reason, tc.version)
			}
			if tc.version != 0 {
				if got := connackCodeFor(ce); got != tc.code {
					t.Errorf("CONNACK code 0x%02x, want 0x%02x", got, tc.code)
				}
			}
		})
	}
}

// A client that sends part of its CONNECT and stops is cut off by the
// deadline: readConnect reports a timeout.
func TestReadConnectDeadline(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	go client.Write(connectPacket(5, "dev-1", "JWT")[:7])
	server.SetReadDeadline(time.Now().Add(time.Second))
	_, err := readConnect(server, MaxConnectBytes)
	if ce, ok := errors.AsType[*connectError](err); !ok || ce.reason != reasonTimeout {
		t.Fatalf("readConnect from a client that stalls = %v, want a timeout", err)
	}
}

func TestConnack(t *testing.T) {
	tests := []struct {
		name    string
		version byte
		code    packets.Code
		want    []byte
	}{
		{"3.1.1/not-authorized", 4, packets.ErrNotAuthorized, []byte{0x20, 0x02, 0x00, 0x05}},
		{"3.1.1/bad-password", 4, packets.ErrBadUsernameOrPassword, []byte{0x20, 0x02, 0x00, 0x04}},
		{"3.1.1/unavailable", 4, packets.ErrServerUnavailable, []byte{0x20, 0x02, 0x00, 0x03}},
		{"3.1.1/version", 4, packets.ErrUnsupportedProtocolVersion, []byte{0x20, 0x02, 0x00, 0x01}},
		{"5/not-authorized", 5, packets.ErrNotAuthorized, append([]byte{0x20, 0x0b, 0x00, 0x87, 0x08, 0x1f, 0x00, 0x05}, "nope!"...)},
		{"5/bad-password", 5, packets.ErrBadUsernameOrPassword, append([]byte{0x20, 0x0b, 0x00, 0x86, 0x08, 0x1f, 0x00, 0x05}, "nope!"...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := connackBytes(tc.version, tc.code, "nope!"); !bytes.Equal(got, tc.want) {
				t.Errorf("CONNACK\n got % x\nwant % x", got, tc.want)
			}
		})
	}
}

// fakeMQTTJWT accepts the tokens it was given, each for its certificate, and
// refuses any other with the reason the token names ("bad:REASON"), or
// as malformed.
type fakeMQTTJWT struct {
	mu      sync.Mutex
	tokens  map[string]*tls.Certificate
	audSeen []string
	expiry  time.Time // the tokens' exp; zero: their certificate's NotAfter
}

func (f *fakeMQTTJWT) VerifyDeviceJWT(_ context.Context, token, audienceBase string) (verify.DeviceJWT, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.audSeen = append(f.audSeen, audienceBase)
	if reason, ok := strings.CutPrefix(token, "bad:"); ok {
		return verify.DeviceJWT{}, &verify.JWTError{Reason: reason}
	}
	if reason, ok := strings.CutPrefix(token, "internal:"); ok {
		return verify.DeviceJWT{}, errors.New(reason)
	}
	cert, ok := f.tokens[token]
	if !ok {
		return verify.DeviceJWT{}, &verify.JWTError{Reason: verify.ReasonMalformed}
	}
	sum := sha256.Sum256(cert.Leaf.Raw)
	exp := cert.Leaf.NotAfter
	if !f.expiry.IsZero() {
		exp = f.expiry
	}
	return verify.DeviceJWT{DeviceID: cert.Leaf.Subject.CommonName, Certificate: cert.Leaf, KeyID: hex.EncodeToString(sum[:]),
		Expiry: exp}, nil
}

// sessionTimers is a fake Deps.AfterFunc: each timer armed is sent to
// armed, and fires only when the test calls its fire.
type sessionTimers struct {
	armed chan *sessionTimer
}

type sessionTimer struct {
	d       time.Duration
	f       func()
	stopped chan struct{} // closed by Stop
	once    sync.Once
}

func (s *sessionTimers) AfterFunc(d time.Duration, f func()) Timer {
	t := &sessionTimer{d: d, f: f, stopped: make(chan struct{})}
	s.armed <- t
	return t
}

func (t *sessionTimer) Stop() bool {
	t.once.Do(func() { close(t.stopped) })
	return true
}

func (s *sessionTimers) next(t *testing.T) *sessionTimer {
	t.Helper()
	select {
	case st := <-s.armed:
		return st
	case <-time.After(waitLimit):
		t.Fatal("no session timer was armed")
		return nil
	}
}

// mqttUpstream is a fake broker: it sends the CONNECT it reads on each
// connection to got, then echoes what follows.
type mqttUpstream struct {
	addr string
	got  chan []byte
}

func newMQTTUpstream(t *testing.T) *mqttUpstream {
	t.Helper()
	ln := testenv.Listen(t)
	u := &mqttUpstream{addr: ln.Addr().String(), got: make(chan []byte, 16)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var raw bytes.Buffer
				if _, err := readConnect(io.TeeReader(c, &raw), MaxConnectBytes); err != nil {
					return
				}
				u.got <- raw.Bytes()
				io.Copy(c, c)
			}()
		}
	}()
	return u
}

// wait waits for the broker to get a CONNECT.
func (u *mqttUpstream) wait(t *testing.T) []byte {
	t.Helper()
	select {
	case got := <-u.got:
		return got
	case <-time.After(waitLimit):
		t.Fatal("the broker got no CONNECT")
		return nil
	}
}

func startMQTTProxy(t *testing.T, auth string, cfg ...func(*Config)) (*testProxy, *fakeMQTTJWT, *mqttUpstream) {
	pki := newPKI(t, "Fleet")
	up := newMQTTUpstream(t)
	v := &fakeMQTTJWT{tokens: map[string]*tls.Certificate{}}
	c := Config{Upstream: "tcp://" + up.addr, MQTT: true, Auth: auth, JWTAudience: "https://mqtt.example.com"}
	for _, m := range cfg {
		m(&c)
	}
	p := startProxy(t, pki, c, func(d *Deps) { d.JWT = v })
	return p, v, up
}

func TestMQTTJWTConnect(t *testing.T) {
	for _, version := range []byte{4, 5} {
		t.Run(map[byte]string{4: "3.1.1", 5: "5"}[version], func(t *testing.T) {
			p, v, up := startMQTTProxy(t, AuthJWT)
			dev := p.pki.device(t, "dev-1")
			v.tokens["tok-1"] = &dev
			c := p.dial(t, p.pki.clientTLS(nil))
			c.SetDeadline(time.Now().Add(waitLimit))
			if _, err := c.Write(connectPacket(version, "dev-1", "tok-1", withWill)); err != nil {
				t.Fatal(err)
			}
			var got []byte
			select {
			case got = <-up.got:
			case <-time.After(waitLimit):
				t.Fatal("the broker got no CONNECT")
			}
			pk := decodeConnect(t, got)
			if string(pk.Connect.Username) != "dev-1" || pk.Connect.PasswordFlag || pk.Connect.ClientIdentifier != "dev-1" || pk.ProtocolVersion != version {
				t.Errorf("the broker got username %q password flag %v client ID %q version %d, want dev-1, false, dev-1, %d",
					pk.Connect.Username, pk.Connect.PasswordFlag, pk.Connect.ClientIdentifier, pk.ProtocolVersion, version)
			}
			echo(t, c, c, "after the connect")
			if got := testutil.ToFloat64(p.m.mqttConnects[reasonOK]); got != 1 {
				t.Errorf("mqtt_connects_total{ok} = %v, want 1", got)
			}
			if got := p.handshakes(outcomeAccepted, reasonJWT); got != 1 {
				t.Errorf("handshakes{accepted,jwt} = %v, want 1", got)
			}
			if v.audSeen[0] != "https://mqtt.example.com" {
				t.Errorf("audience base %q, want the configured one", v.audSeen[0])
			}

			// Revocation of the token's certificate closes the connection.
			p.checker.revoke(dev.Leaf.SerialNumber)
			waitClosed(t, c)
			e := p.logs.wait(t, "tcp connection closed", "device_id", "dev-1")
			if e["kid"] == "" || e["serial"] != dev.Leaf.SerialNumber.Text(16) {
				t.Errorf("access log kid %q serial %q, want the token's kid and %s", e["kid"], e["serial"], dev.Leaf.SerialNumber.Text(16))
			}
		})
	}
}

// A session whose token expires is closed when exp plus the skew the
// check allowed passes (an MQTT 5 client gets a DISCONNECT first); one that
// ends first stops its timer.
func TestMQTTSessionExpires(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	exp := now.Add(5 * time.Minute)
	for _, version := range []byte{4, 5} {
		t.Run(map[byte]string{4: "3.1.1", 5: "5"}[version], func(t *testing.T) {
			timers := &sessionTimers{armed: make(chan *sessionTimer, 4)}
			pki := newPKI(t, "Fleet")
			up := newMQTTUpstream(t)
			v := &fakeMQTTJWT{tokens: map[string]*tls.Certificate{}, expiry: exp}
			p := startProxy(t, pki, Config{Upstream: "tcp://" + up.addr, MQTT: true, Auth: AuthJWT, JWTAudience: "https://mqtt.example.com"},
				func(d *Deps) {
					d.JWT, d.Now, d.AfterFunc = v, func() time.Time { return now }, timers.AfterFunc
				})
			dev := p.pki.device(t, "dev-1")
			v.tokens["tok-1"] = &dev

			// Expiry: the timer fires, the client is closed.
			c := p.dial(t, p.pki.clientTLS(nil))
			c.SetDeadline(time.Now().Add(waitLimit))
			if _, err := c.Write(connectPacket(version, "dev-1", "tok-1")); err != nil {
				t.Fatal(err)
			}
			up.wait(t)
			echo(t, c, c, "before the expiry")
			timer := timers.next(t)
			if want := exp.Add(verify.JWTSkew).Sub(now); timer.d != want {
				t.Errorf("timer armed for %s, want exp + skew - now = %s", timer.d, want)
			}
			timer.f()
			c.SetReadDeadline(time.Now().Add(waitLimit))
			rest, err := io.ReadAll(c)
			if isTimeout(err) {
				t.Fatalf("connection still open %s after the expiry", waitLimit)
			}
			if version == 5 {
				var pk packets.Packet
				if len(rest) < 2 || rest[0] != 0xe0 {
					t.Fatalf("after the expiry the client got % x, want a DISCONNECT and the end", rest)
				}
				pk.ProtocolVersion, pk.FixedHeader.Type, pk.FixedHeader.Remaining = 5, packets.Disconnect, int(rest[1])
				if err := pk.DisconnectDecode(rest[2:]); err != nil {
					t.Fatalf("DISCONNECT % x: %v", rest, err)
				}
				if pk.ReasonCode != packets.ErrMaxConnectTime.Code || pk.Properties.ReasonString != mqttReasonExpired {
					t.Errorf("DISCONNECT reason 0x%02x %q, want 0x%02x %q", pk.ReasonCode, pk.Properties.ReasonString,
						packets.ErrMaxConnectTime.Code, mqttReasonExpired)
				}
			} else if len(rest) != 0 {
				t.Errorf("after the expiry an MQTT 3.1.1 client got % x, want the end", rest)
			}
			p.logs.wait(t, "mqtt session expired", "device_id", "dev-1", "kid", v.mustKID(dev))
			if got := testutil.ToFloat64(p.m.mqttConnects[mqttReasonExpired]); got != 1 {
				t.Errorf("mqtt_connects_total{closed,session_expired} = %v, want 1", got)
			}
			if got := testutil.ToFloat64(p.m.mqttConnectVec.WithLabelValues(outcomeClosed, mqttReasonExpired)); got != 1 {
				t.Errorf("mqtt_connects_total{closed,session_expired} = %v, want 1", got)
			}

			// The session ends first: its timer is stopped, and firing
			// late does nothing.
			c2 := p.dial(t, p.pki.clientTLS(nil))
			c2.SetDeadline(time.Now().Add(waitLimit))
			if _, err := c2.Write(connectPacket(version, "dev-1", "tok-1")); err != nil {
				t.Fatal(err)
			}
			up.wait(t)
			echo(t, c2, c2, "hello")
			timer2 := timers.next(t)
			c2.Close()
			select {
			case <-timer2.stopped:
			case <-time.After(waitLimit):
				t.Fatal("the session ended and its timer was not stopped")
			}
			timer2.f()
			if got := testutil.ToFloat64(p.m.mqttConnects[mqttReasonExpired]); got != 1 {
				t.Errorf("mqtt_connects_total{closed,session_expired} = %v after a late firing, want still 1", got)
			}
		})
	}
}

// mustKID is the kid the fake verifier gives cert's tokens.
func (f *fakeMQTTJWT) mustKID(cert tls.Certificate) string {
	sum := sha256.Sum256(cert.Leaf.Raw)
	return hex.EncodeToString(sum[:])
}

func TestMQTTJWTRefused(t *testing.T) {
	tests := []struct {
		name     string
		version  byte
		clientID string
		token    string
		reason   string
		code     byte
	}{
		{"3.1.1/expired", 4, "dev-1", "bad:" + verify.ReasonExpired, verify.ReasonExpired, 0x05},
		{"3.1.1/revoked", 4, "dev-1", "bad:" + verify.ReasonRevoked, verify.ReasonRevoked, 0x05},
		{"3.1.1/malformed", 4, "dev-1", "garbage", verify.ReasonMalformed, 0x04},
		{"3.1.1/no-password", 4, "dev-1", "", mqttReasonNoPassword, 0x04},
		{"3.1.1/other-device", 4, "dev-2", "tok-1", mqttReasonClientID, 0x05},
		{"3.1.1/unavailable", 4, "dev-1", "bad:" + verify.ReasonUnavailable, verify.ReasonUnavailable, 0x03},
		{"3.1.1/verifier-failed", 4, "dev-1", "internal:boom", mqttReasonVerifier, 0x03},
		{"5/bad-audience", 5, "dev-1", "bad:" + verify.ReasonBadAudience, verify.ReasonBadAudience, 0x87},
		{"5/malformed", 5, "dev-1", "garbage", verify.ReasonMalformed, 0x86},
		{"5/no-password", 5, "dev-1", "", mqttReasonNoPassword, 0x86},
		{"5/other-device", 5, "dev-2", "tok-1", mqttReasonClientID, 0x87},
		{"5/unavailable", 5, "dev-1", "bad:" + verify.ReasonUnavailable, verify.ReasonUnavailable, 0x88},
	}
	p, v, up := startMQTTProxy(t, AuthJWT)
	dev := p.pki.device(t, "dev-1")
	v.tokens["tok-1"] = &dev
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(p.m.mqttConnects[tc.reason])
			c := p.dial(t, p.pki.clientTLS(nil))
			c.SetDeadline(time.Now().Add(waitLimit))
			if _, err := c.Write(connectPacket(tc.version, tc.clientID, tc.token)); err != nil {
				t.Fatal(err)
			}
			ack, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("read the CONNACK: %v", err)
			}
			var pk packets.Packet
			if len(ack) < 4 || ack[0] != 0x20 {
				t.Fatalf("answer % x, want a CONNACK and the end", ack)
			}
			pk.ProtocolVersion, pk.FixedHeader.Type = tc.version, packets.Connack
			if err := pk.ConnackDecode(ack[2:]); err != nil {
				t.Fatalf("CONNACK % x: %v", ack, err)
			}
			if pk.ReasonCode != tc.code {
				t.Errorf("CONNACK code 0x%02x, want 0x%02x", pk.ReasonCode, tc.code)
			}
			if tc.version == 5 && pk.Properties.ReasonString != tc.reason {
				t.Errorf("CONNACK reason string %q, want %q", pk.Properties.ReasonString, tc.reason)
			}
			p.logs.wait(t, "mqtt client refused", "reason", tc.reason, "client_id", tc.clientID, "mqtt_version", tc.version)
			if got := testutil.ToFloat64(p.m.mqttConnects[tc.reason]); got != before+1 {
				t.Errorf("mqtt_connects_total{%s} = %v, want %v", tc.reason, got, before+1)
			}
		})
	}
	select {
	case got := <-up.got:
		t.Errorf("the broker got a CONNECT from a refused client: % x", got)
	default:
	}
}

// A client that stops in the middle of its CONNECT is closed at the
// handshake timeout.
func TestMQTTSlowConnect(t *testing.T) {
	p, _, _ := startMQTTProxy(t, AuthJWT, func(c *Config) { c.HandshakeTimeout = time.Second })
	c := p.dial(t, p.pki.clientTLS(nil))
	if _, err := c.Write(connectPacket(4, "dev-1", "tok-1")[:5]); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(waitLimit))
	if n, err := c.Read(make([]byte, 16)); err == nil || errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		t.Fatalf("read from the proxy after a partial CONNECT: %d bytes, %v; want the proxy to close", n, err)
	}
	p.logs.wait(t, "mqtt connect failed", "reason", reasonTimeout)
}

func isTimeout(err error) bool {
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}

// With auth any, a client with a certificate gets its CONNECT rewritten
// as a JWT client's is (username = its device ID, no password), and may
// not name another device as its client ID; one without a certificate
// gets the JWT check.
func TestMQTTAuthAny(t *testing.T) {
	p, v, up := startMQTTProxy(t, AuthAny)
	dev := p.pki.device(t, "dev-1")
	v.tokens["tok-1"] = &dev
	brokerGot := func(what string) *packets.Packet {
		t.Helper()
		select {
		case got := <-up.got:
			return decodeConnect(t, got)
		case <-time.After(waitLimit):
			t.Fatalf("%s: the broker got no CONNECT", what)
		}
		return nil
	}
	c := p.dial(t, p.pki.clientTLS(&dev))
	c.SetDeadline(time.Now().Add(waitLimit))
	if _, err := c.Write(connectPacket(4, "dev-1", "whatever")); err != nil {
		t.Fatal(err)
	}
	if pk := brokerGot("certificate"); string(pk.Connect.Username) != "dev-1" || pk.Connect.PasswordFlag || pk.Connect.ClientIdentifier != "dev-1" {
		t.Errorf("with a certificate the broker got client %q username %q password flag %v, want dev-1, dev-1 and none",
			pk.Connect.ClientIdentifier, pk.Connect.Username, pk.Connect.PasswordFlag)
	}

	other := p.dial(t, p.pki.clientTLS(&dev))
	other.SetDeadline(time.Now().Add(waitLimit))
	if _, err := other.Write(connectPacket(5, "dev-2", "whatever")); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 64)
	n, _ := io.ReadAtLeast(other, ack, 4)
	if n < 4 || ack[0] != 0x20 || ack[3] != 0x87 {
		t.Errorf("dev-1's certificate naming client ID dev-2: got % x, want a CONNACK with 0x87 (not authorized)", ack[:n])
	}
	p.logs.wait(t, "mqtt client refused", "reason", mqttReasonClientID)

	j := p.dial(t, p.pki.clientTLS(nil))
	j.SetDeadline(time.Now().Add(waitLimit))
	if _, err := j.Write(connectPacket(5, "dev-1", "tok-1")); err != nil {
		t.Fatal(err)
	}
	if pk := brokerGot("JWT"); string(pk.Connect.Username) != "dev-1" || pk.Connect.PasswordFlag {
		t.Errorf("with a JWT the broker got username %q password flag %v, want dev-1 and none", pk.Connect.Username, pk.Connect.PasswordFlag)
	}
	select {
	case got := <-up.got:
		t.Errorf("the broker got a CONNECT from the refused client: % x", got)
	default:
	}
}

func TestMQTTConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"mtls-mqtt", Config{Upstream: "tcp://b:1883", MQTT: true}, true},
		{"jwt-mqtt", Config{Upstream: "tcp://b:1883", MQTT: true, Auth: AuthJWT, JWTAudience: "https://a"}, true},
		{"jwt-no-audience", Config{Upstream: "tcp://b:1883", MQTT: true, Auth: AuthJWT}, false},
		{"jwt-tcp-no-mqtt", Config{Upstream: "tcp://b:1883", Auth: AuthJWT, JWTAudience: "https://a"}, false},
		{"mqtt-http", Config{Upstream: "http://b:80", MQTT: true}, false},
		{"bad-auth", Config{Upstream: "tcp://b:1883", MQTT: true, Auth: "password"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func FuzzReadConnect(f *testing.F) {
	f.Add(connectPacket(4, "dev-1", "JWT"))
	f.Add(connectPacket(5, "dev-1", "JWT", withProperties, withWill))
	f.Add([]byte{0x10, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Add([]byte("\x10\x12\x00\x04MQTT\x05\x02\x00\x3c\x02\x01\x01\x00\x03abc"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pk, err := readConnect(bytes.NewReader(b), 4096)
		if err != nil {
			if _, ok := errors.AsType[*connectError](err); !ok {
				t.Fatalf("readConnect error %v is not a *connectError", err)
			}
			return
		}
		if pk.ProtocolVersion != 4 && pk.ProtocolVersion != 5 {
			t.Fatalf("readConnect accepted version %d", pk.ProtocolVersion)
		}
		// What the broker would get decodes, with the device ID as its
		// username and no password.
		out, err := readConnect(bytes.NewReader(rewriteConnect(pk, "dev-1")), 1<<20)
		if err != nil {
			t.Fatalf("the rewritten CONNECT does not decode: %v", err)
		}
		if string(out.Connect.Username) != "dev-1" || out.Connect.PasswordFlag {
			t.Fatalf("rewritten username %q password flag %v", out.Connect.Username, out.Connect.PasswordFlag)
		}
	})
}
