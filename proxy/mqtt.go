package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fleetca/fleetca/verify"
)

// MaxConnectBytes bounds the CONNECT packet a client sends in MQTT mode
// (fixed header included): a JWT with its x5c chain, a will message and
// the rest fit with room to spare; a larger packet is refused before it is
// read.
const MaxConnectBytes = 128 << 10

// MQTT CONNECT outcomes: the "reason" of fleetca_proxy_mqtt_connects_total
// and of the log lines, beside the JWT check's own reasons
// (verify.Reason*). The set is closed.
const (
	mqttReasonNotConnect = "not_connect"         // the first packet is not a CONNECT
	mqttReasonTooLarge   = "too_large"           // the CONNECT is larger than MaxConnectBytes
	mqttReasonMalformed  = "malformed_connect"   // the CONNECT does not decode or breaks the protocol
	mqttReasonVersion    = "unsupported_version" // not MQTT 3.1.1 or 5
	mqttReasonNoPassword = "no_password"         // no JWT in the password field
	mqttReasonClientID   = "client_id_mismatch"  // the token's or certificate's device is not the client ID
	mqttReasonVerifier   = "verify_error"        // the verifier failed without a reason of its own
	// mqttReasonExpired is not a CONNECT's: an accepted session closed
	// when its token's exp plus verify.JWTSkew passed (outcome "closed").
	mqttReasonExpired = "session_expired"
)

var mqttReasons = []string{reasonOK, reasonTimeout, reasonEOF, mqttReasonNotConnect, mqttReasonTooLarge, mqttReasonMalformed,
	mqttReasonVersion, mqttReasonNoPassword, mqttReasonClientID, mqttReasonVerifier,
	verify.ReasonMalformed, verify.ReasonBadAlgorithm, verify.ReasonExpired, verify.ReasonNotYetValid, verify.ReasonLifetime,
	verify.ReasonBadAudience, verify.ReasonUnknownKey, verify.ReasonBadSignature, verify.ReasonRevoked, verify.ReasonBadChain,
	verify.ReasonUnavailable, mqttReasonExpired}

// connectError is why a client's CONNECT was not let through.
type connectError struct {
	reason  string
	version byte         // the client's protocol version (4 or 5) if known, else 0: no CONNACK is sent
	code    packets.Code // the CONNACK reason code (MQTT 5's; connackBytes maps it for 3.1.1)
	err     error
}

func (e *connectError) Error() string {
	if e.err == nil {
		return "mqtt connect refused: " + e.reason
	}
	return "mqtt connect refused: " + e.reason + ": " + e.err.Error()
}

func (e *connectError) Unwrap() error { return e.err }

// readConnect reads the first packet of an MQTT session from r, which must
// be a CONNECT of MQTT 3.1.1 or 5 of at most max bytes, and decodes it
// with the packet library. It reads no byte past the packet, so that what
// the client sends next (it need not wait for the CONNACK) is piped as it
// is. Its errors are *connectError.
func readConnect(r io.Reader, max int) (*packets.Packet, error) {
	var hb [1]byte
	if _, err := io.ReadFull(r, hb[:]); err != nil {
		return nil, readFailed(err)
	}
	pk := &packets.Packet{}
	if err := pk.FixedHeader.Decode(hb[0]); err != nil || pk.FixedHeader.Type != packets.Connect {
		return nil, &connectError{reason: mqttReasonNotConnect,
			err: fmt.Errorf("the first packet is of type %d (%s)", hb[0]>>4, packets.PacketNames[hb[0]>>4])}
	}
	// The remaining length is a variable byte integer of at most 4
	// bytes; the library's decoder would read on while the continuation
	// bit is set, so it gets no more than 4.
	lr := &byteReader{r: r, left: 4}
	remaining, _, err := packets.DecodeLength(lr)
	if err != nil {
		if lr.err != nil {
			return nil, readFailed(lr.err)
		}
		return nil, &connectError{reason: mqttReasonMalformed, err: fmt.Errorf("remaining length: %w", err)}
	}
	if 1+lr.n+remaining > max {
		return nil, &connectError{reason: mqttReasonTooLarge, err: fmt.Errorf("the CONNECT packet has %d bytes, more than %d", 1+lr.n+remaining, max)}
	}
	pk.FixedHeader.Remaining = remaining
	body := make([]byte, remaining)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, readFailed(err)
	}
	if err := pk.ConnectDecode(body); err != nil {
		return nil, connectDecodeError(pk, err)
	}
	if code := pk.ConnectValidate(); code != packets.CodeSuccess {
		if code == packets.ErrProtocolViolationProtocolVersion {
			return nil, &connectError{reason: mqttReasonVersion, version: 4, code: packets.ErrUnsupportedProtocolVersion,
				err: fmt.Errorf("protocol %q version %d: the proxy speaks MQTT 3.1.1 and 5", pk.Connect.ProtocolName, pk.ProtocolVersion)}
		}
		return nil, &connectError{reason: mqttReasonMalformed, version: knownVersion(pk), code: packets.ErrProtocolViolation, err: code}
	}
	if pk.ProtocolVersion != 4 && pk.ProtocolVersion != 5 { // MQTT 3.1 (MQIsdp): the library accepts it, the proxy does not
		return nil, &connectError{reason: mqttReasonVersion, version: 4, code: packets.ErrUnsupportedProtocolVersion,
			err: fmt.Errorf("protocol %q version %d: the proxy speaks MQTT 3.1.1 and 5", pk.Connect.ProtocolName, pk.ProtocolVersion)}
	}
	return pk, nil
}

// connectDecodeError classifies ConnectDecode's error.
func connectDecodeError(pk *packets.Packet, err error) error {
	if errors.Is(err, packets.ErrMalformedProtocolName) || errors.Is(err, packets.ErrMalformedProtocolVersion) {
		return &connectError{reason: mqttReasonMalformed, err: err}
	}
	if v := knownVersion(pk); v == 0 {
		return &connectError{reason: mqttReasonVersion, version: 4, code: packets.ErrUnsupportedProtocolVersion,
			err: fmt.Errorf("protocol %q version %d: the proxy speaks MQTT 3.1.1 and 5: %w", pk.Connect.ProtocolName, pk.ProtocolVersion, err)}
	}
	code := packets.ErrMalformedPacket
	if errors.Is(err, packets.ErrClientIdentifierNotValid) {
		code = packets.ErrClientIdentifierNotValid
	}
	return &connectError{reason: mqttReasonMalformed, version: knownVersion(pk), code: code, err: err}
}

// knownVersion is pk's protocol version if it is one the proxy answers
// (4 for 3.1.1, 5), else 0.
func knownVersion(pk *packets.Packet) byte {
	if string(pk.Connect.ProtocolName) == "MQTT" && (pk.ProtocolVersion == 4 || pk.ProtocolVersion == 5) {
		return pk.ProtocolVersion
	}
	return 0
}

// readFailed classifies a read error: the deadline, or the client gone.
func readFailed(err error) error {
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return &connectError{reason: reasonTimeout, err: err}
	}
	return &connectError{reason: reasonEOF, err: err}
}

// byteReader reads single bytes from r, at most left of them.
type byteReader struct {
	r    io.Reader
	left int
	n    int
	err  error // the read error, if reading failed (not the limit)
}

var errLengthTooLong = errors.New("the remaining length has more than 4 bytes")

func (b *byteReader) ReadByte() (byte, error) {
	if b.left == 0 {
		return 0, errLengthTooLong
	}
	var c [1]byte
	if _, err := io.ReadFull(b.r, c[:]); err != nil {
		b.err = err
		return 0, err
	}
	b.left--
	b.n++
	return c[0], nil
}

// verifyConnect checks pk's password as a device JWT for audienceBase,
// and that its device is the client ID.
func verifyConnect(ctx context.Context, v JWTVerifier, pk *packets.Packet, audienceBase string) (verify.DeviceJWT, error) {
	if !pk.Connect.PasswordFlag || len(pk.Connect.Password) == 0 {
		return verify.DeviceJWT{}, &connectError{reason: mqttReasonNoPassword, version: pk.ProtocolVersion, code: packets.ErrBadUsernameOrPassword,
			err: errors.New("the CONNECT has no password: it must carry the device's JWT")}
	}
	dj, err := v.VerifyDeviceJWT(ctx, string(pk.Connect.Password), audienceBase)
	if err != nil {
		je, ok := errors.AsType[*verify.JWTError](err)
		switch {
		case !ok:
			return dj, &connectError{reason: mqttReasonVerifier, version: pk.ProtocolVersion, code: packets.ErrServerUnavailable, err: err}
		case je.Reason == verify.ReasonMalformed:
			return dj, &connectError{reason: je.Reason, version: pk.ProtocolVersion, code: packets.ErrBadUsernameOrPassword, err: err}
		case je.Reason == verify.ReasonUnavailable:
			return dj, &connectError{reason: je.Reason, version: pk.ProtocolVersion, code: packets.ErrServerUnavailable, err: err}
		}
		return dj, &connectError{reason: je.Reason, version: pk.ProtocolVersion, code: packets.ErrNotAuthorized, err: err}
	}
	if dj.DeviceID != pk.Connect.ClientIdentifier {
		return dj, &connectError{reason: mqttReasonClientID, version: pk.ProtocolVersion, code: packets.ErrNotAuthorized,
			err: fmt.Errorf("the token is device %q's, the client ID is %q", dj.DeviceID, pk.Connect.ClientIdentifier)}
	}
	return dj, nil
}

// connackBytes is the CONNACK refusing a client of protocol version
// (4 or 5) with code, encoded by the packet library: MQTT 5's reason code
// with the reason string, or its MQTT 3.1.1 return code.
func connackBytes(version byte, code packets.Code, reasonString string) []byte {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ProtocolVersion: version, ReasonCode: code.Code}
	if version == 5 {
		pk.Properties.ReasonString = reasonString
	} else {
		pk.ReasonCode = connackCode3(code)
	}
	var buf bytes.Buffer
	pk.ConnackEncode(&buf)
	return buf.Bytes()
}

// connackCode3 is MQTT 3.1.1's CONNACK return code for an MQTT 5 reason
// code (3.1.1 §3.2.2.3).
func connackCode3(code packets.Code) byte {
	switch code.Code {
	case packets.ErrUnsupportedProtocolVersion.Code:
		return packets.Err3UnsupportedProtocolVersion.Code // 0x01
	case packets.ErrClientIdentifierNotValid.Code:
		return packets.Err3ClientIdentifierNotValid.Code // 0x02
	case packets.ErrServerUnavailable.Code:
		return packets.Err3ServerUnavailable.Code // 0x03
	case packets.ErrBadUsernameOrPassword.Code:
		return packets.ErrMalformedUsernameOrPassword.Code // 0x04 bad user name or password
	}
	return packets.Err3NotAuthorized.Code // 0x05
}

// rewriteConnect is pk, encoded by the packet library, with the password
// removed and the username set to deviceID: what the broker gets. All
// else (clean start, keep-alive, will, MQTT 5 properties) is kept.
func rewriteConnect(pk *packets.Packet, deviceID string) []byte {
	out := *pk
	out.Connect.Password, out.Connect.PasswordFlag = nil, false
	out.Connect.Username, out.Connect.UsernameFlag = []byte(deviceID), true
	// AllowResponseInfo: the library drops a will's response topic and
	// correlation data without it.
	out.Mods = packets.Mods{AllowResponseInfo: true}
	out.FixedHeader = packets.FixedHeader{Type: packets.Connect}
	var buf bytes.Buffer
	out.ConnectEncode(&buf)
	return buf.Bytes()
}

// serveMQTTJWT runs a TCP-mode MQTT connection that presented no client
// certificate: its CONNECT must carry a device JWT in the password. It
// reads the CONNECT (within Config.HandshakeTimeout), checks the token,
// answers a refusal with a CONNACK and closes; otherwise it registers the
// connection under the serial of the token's certificate, so that its
// revocation closes it, arms a timer that closes it when the token
// expires (see expireSession), and pipes the rewritten CONNECT and the
// rest of the session to the upstream.
func (s *Server) serveMQTTJWT(ctx context.Context, client *tls.Conn, c *trackedConn, start time.Time) {
	s.m.handshake(reasonJWT) // as for HTTP: a handshake without a certificate, the JWT to come
	deadline := time.Now().Add(s.cfg.HandshakeTimeout)
	c.SetDeadline(deadline)
	pk, err := readConnect(client, MaxConnectBytes)
	if err != nil {
		s.mqttRefused(client, c, nil, err)
		return
	}
	epoch0 := s.conns.currentEpoch()
	vctx, cancel := context.WithDeadline(ctx, deadline)
	dj, err := verifyConnect(vctx, s.jwt, pk, s.cfg.JWTAudience)
	cancel()
	if err != nil {
		s.mqttRefused(client, c, pk, err)
		return
	}
	c.id = &identity{deviceID: dj.DeviceID, serial: dj.Certificate.SerialNumber.Text(16), serialKey: string(dj.Certificate.SerialNumber.Bytes()), keyID: dj.KeyID}
	open, recheck := s.conns.register(c, c.id.serialKey, epoch0)
	if !open {
		c.Close() // the Server is stopping
		return
	}
	if recheck {
		// A serial was announced while the token was checked; it may
		// have been this one, checked before and registered after.
		if err := s.checker.Check(ctx, dj.Certificate); err != nil {
			s.mqttRefused(client, c, pk, &connectError{reason: verify.ReasonRevoked, version: pk.ProtocolVersion, code: packets.ErrNotAuthorized, err: err})
			return
		}
	}
	c.SetDeadline(time.Time{})
	s.m.mqttConnect(reasonOK)
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.Debug("mqtt client connected with a device jwt", "remote_addr", c.RemoteAddr().String(), "device_id", dj.DeviceID,
			"serial", c.id.serial, "kid", dj.KeyID, "mqtt_version", pk.ProtocolVersion)
	}
	// The check allowed exp plus the skew; the session gets no more.
	timer := s.afterFunc(dj.Expiry.Add(verify.JWTSkew).Sub(s.now()), func() {
		s.expireSession(client, c, pk.ProtocolVersion, dj)
	})
	s.pipe(ctx, client, c, start, rewriteConnect(pk, dj.DeviceID))
	timer.Stop()
}

// expireSession closes the MQTT session c, authenticated by the device
// JWT dj, because the token expired, unless c is closed already: a
// client of MQTT 5 first gets a DISCONNECT with reason code 0xA0
// (maximum connect time) and the reason as reason string. The write is
// bounded by Config.HandshakeTimeout, as c is no longer in the connSet
// for a shutdown to close. It is logged and counted once, whoever else
// closes c meanwhile.
func (s *Server) expireSession(client *tls.Conn, c *trackedConn, version byte, dj verify.DeviceJWT) {
	if !s.conns.remove(c) {
		return // the session ended, or revocation or shutdown closed it
	}
	s.m.mqttConnect(mqttReasonExpired)
	s.log.Info("mqtt session expired", "device_id", dj.DeviceID, "kid", dj.KeyID, "serial", c.id.serial,
		"remote_addr", c.RemoteAddr().String(), "exp", dj.Expiry, "mqtt_version", version)
	if version == 5 {
		// tls.Conn serializes writes: the DISCONNECT cannot split one
		// that the pipe makes. The deadline also ends one of those stuck
		// on a client that does not read.
		c.Conn.SetWriteDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
		client.Write(disconnectBytes(packets.ErrMaxConnectTime, mqttReasonExpired))
	}
	c.closeSocket()
}

// disconnectBytes is an MQTT 5 DISCONNECT with code and reasonString,
// encoded by the packet library.
func disconnectBytes(code packets.Code, reasonString string) []byte {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ProtocolVersion: 5, ReasonCode: code.Code}
	pk.Properties.ReasonString = reasonString
	var buf bytes.Buffer
	pk.DisconnectEncode(&buf)
	return buf.Bytes()
}

// serveMQTTCert runs a TCP-mode MQTT connection whose device presented a
// valid certificate: its CONNECT's client ID must be the certificate's
// device ID, and the broker gets the CONNECT rewritten as for a JWT
// (username = device ID, no password), so that a broker's ACLs keyed on
// the username hold whichever way a device proved who it is: a device
// cannot name another in its CONNECT.
func (s *Server) serveMQTTCert(ctx context.Context, client *tls.Conn, c *trackedConn, start time.Time) {
	c.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	pk, err := readConnect(client, MaxConnectBytes)
	if err != nil {
		s.mqttRefused(client, c, nil, err)
		return
	}
	if pk.Connect.ClientIdentifier != c.id.deviceID {
		s.mqttRefused(client, c, pk, &connectError{reason: mqttReasonClientID, version: pk.ProtocolVersion, code: packets.ErrNotAuthorized,
			err: fmt.Errorf("the certificate is device %q's, the client ID is %q", c.id.deviceID, pk.Connect.ClientIdentifier)})
		return
	}
	c.SetDeadline(time.Time{})
	s.m.mqttConnect(reasonOK)
	s.pipe(ctx, client, c, start, rewriteConnect(pk, c.id.deviceID))
}

// mqttRefused counts and logs a refused CONNECT, sends the CONNACK that
// says why when the client's protocol version is known, and closes.
func (s *Server) mqttRefused(client *tls.Conn, c *trackedConn, pk *packets.Packet, err error) {
	ce, ok := errors.AsType[*connectError](err)
	if !ok {
		ce = &connectError{reason: mqttReasonVerifier, err: err}
	}
	s.m.mqttConnect(ce.reason)
	attrs := []any{"remote_addr", c.RemoteAddr().String(), "reason", ce.reason, "err", err}
	if pk != nil {
		attrs = append(attrs, "client_id", pk.Connect.ClientIdentifier, "mqtt_version", pk.ProtocolVersion)
	}
	if ce.version != 0 {
		attrs = append(attrs, "connack_code", fmt.Sprintf("0x%02x", connackCodeFor(ce)))
		// A bounded write: the deadline set for the CONNECT still runs.
		client.Write(connackBytes(ce.version, ce.code, ce.reason))
	}
	switch ce.reason {
	case reasonTimeout, reasonEOF:
		s.log.Debug("mqtt connect failed", attrs...)
	default:
		s.log.Info("mqtt client refused", attrs...)
	}
	c.Close()
}

// connackCodeFor is the code of the CONNACK sent for ce.
func connackCodeFor(ce *connectError) byte {
	if ce.version == 5 {
		return ce.code.Code
	}
	return connackCode3(ce.code)
}
