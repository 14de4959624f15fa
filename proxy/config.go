package proxy

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"
)

// Defaults of Config. A zero field of Config means its default.
const (
	DefaultHandshakeTimeout  = 10 * time.Second
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultUpstreamTimeout   = 30 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultShutdownGrace     = 10 * time.Second
	DefaultHalfCloseTimeout  = 30 * time.Second
	DefaultMaxIdleUpstream   = 1024
	DefaultVerifyCacheSize   = 65536
)

// Config is the proxy's settings; fleetca proxy fills it from its flags.
// The zero value of every
// field but Upstream means its default; WithDefaults fills them in,
// Validate checks them.
type Config struct {
	// Upstream is where verified clients are sent:
	//   - "http://host:port[/prefix]" or "https://...": HTTP mode, a
	//     reverse proxy (HTTP/1.1 and HTTP/2 from clients, upgrades such
	//     as WebSocket passed through); a path is a prefix joined to the
	//     request's path.
	//   - "tcp://host:port": TCP mode, TLS terminated and the bytes piped
	//     (MQTT and other non-HTTP protocols).
	// Required.
	Upstream string `yaml:"upstream"`
	// ProxyProtocol, in TCP mode, sends a PROXY protocol v2 header with
	// the client's address and port and the proxy's local address and port
	// before any byte of the client's. Refused in HTTP mode, where the
	// client address travels in X-Forwarded-For.
	ProxyProtocol bool `yaml:"proxy_protocol,omitempty"`
	// MQTT, in TCP mode, says the upstream is an MQTT broker: a client
	// without a certificate (Auth jwt or any) then authenticates with a
	// device JWT in its CONNECT packet's password, the client ID being
	// its device ID; the broker gets the CONNECT with the password
	// removed and the username set to the device ID. A client with a
	// certificate must use its device ID as client ID too, and its CONNECT
	// is rewritten the same way. Refused in HTTP mode.
	MQTT bool `yaml:"mqtt,omitempty"`
	// HandshakeTimeout bounds a client's TLS handshake, from accept to
	// verified, and in MQTT mode a JWT client's CONNECT packet (read and
	// checked) after it. Default 10s; range 1s..1m.
	HandshakeTimeout time.Duration `yaml:"handshake_timeout,omitempty"`
	// ReadHeaderTimeout bounds reading one HTTP/1 request's headers.
	// Default 10s; range 1s..5m.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout,omitempty"`
	// IdleTimeout is how long an HTTP keep-alive (or HTTP/2) client
	// connection may sit without a request before it is closed. Default
	// 120s; range 1s..24h. TCP mode has no idle timeout: its protocols
	// (MQTT) keep their own.
	IdleTimeout time.Duration `yaml:"idle_timeout,omitempty"`
	// UpstreamTimeout bounds connecting to the upstream (dial and, for
	// https, its handshake) and, in HTTP mode, waiting for a response's
	// headers once the request is sent. Bodies and upgraded connections
	// are not bounded by it. Default 30s; range 1s..10m.
	UpstreamTimeout time.Duration `yaml:"upstream_timeout,omitempty"`
	// MaxHeaderBytes bounds the headers of a client's request and of the
	// upstream's response, in bytes. Default 65536 (64 KiB); range
	// 4096..1048576.
	MaxHeaderBytes int `yaml:"max_header_bytes,omitempty"`
	// ShutdownGrace is how long Serve, once its context ends, lets HTTP
	// requests in flight finish before it closes their connections.
	// Default 10s; range 1s..10m.
	ShutdownGrace time.Duration `yaml:"shutdown_grace,omitempty"`
	// HalfCloseTimeout, in TCP mode, is how long one direction of a pipe
	// may stay open after the other direction has closed cleanly. Default
	// 30s; range 1s..1h.
	HalfCloseTimeout time.Duration `yaml:"half_close_timeout,omitempty"`
	// MaxIdleUpstream bounds the idle keep-alive connections kept to the
	// upstream in HTTP mode. Default 1024; range 1..65536.
	MaxIdleUpstream int `yaml:"max_idle_upstream,omitempty"`
	// VerifyCacheSize bounds the cache of client certificates whose chain
	// has been verified, so that a device that reconnects does not pay
	// for chain building again (revocation is checked on every handshake
	// regardless). Default 65536 certificates; range 1..16777216.
	VerifyCacheSize int `yaml:"verify_cache_size,omitempty"`
	// DisableHTTP1FastPath, in HTTP mode, sends every request through
	// net/http: http.Server, httputil.ReverseProxy and http.Transport.
	// By default (false) the plain requests of HTTP/1.1 clients to an
	// http:// upstream (body-less GET, HEAD, OPTIONS and TRACE) take the
	// proxy's fast path, which answers them as net/http would at a
	// fraction of the CPU, and reach the upstream over the proxy's own
	// connection pool; see package doc. Set it to rule the fast path out
	// when something looks wrong. It changes nothing in TCP mode or for an
	// https:// upstream, which never take the fast path.
	DisableHTTP1FastPath bool `yaml:"disable_http1_fast_path,omitempty"`
	// Auth is how clients prove who they are (issue 17):
	//   - "mtls" (default): a client certificate of the fleet, checked in
	//     the handshake;
	//   - "jwt": a device JWT on every request (Authorization: Bearer),
	//     checked by Deps.JWT; no client certificate is asked for;
	//   - "any": a client certificate if the client sends one, else a JWT
	//     on every request.
	// "jwt" and "any" need an HTTP upstream, or a tcp:// one with MQTT
	// (the token is then the CONNECT packet's password, once per
	// connection).
	Auth string `yaml:"auth,omitempty"`
	// JWTAudience is the audience base of device JWTs: a token must carry
	// aud = <JWTAudience>/devices/<device ID>. Required with Auth "jwt"
	// or "any"; an absolute URL such as https://api.example.com.
	JWTAudience string `yaml:"jwt_audience,omitempty"`
}

// Auth modes (Config.Auth).
const (
	AuthMTLS = "mtls"
	AuthJWT  = "jwt"
	AuthAny  = "any"
)

// WithDefaults returns a copy of c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	c.HandshakeTimeout = cmp.Or(c.HandshakeTimeout, DefaultHandshakeTimeout)
	c.ReadHeaderTimeout = cmp.Or(c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	c.IdleTimeout = cmp.Or(c.IdleTimeout, DefaultIdleTimeout)
	c.UpstreamTimeout = cmp.Or(c.UpstreamTimeout, DefaultUpstreamTimeout)
	c.MaxHeaderBytes = cmp.Or(c.MaxHeaderBytes, DefaultMaxHeaderBytes)
	c.ShutdownGrace = cmp.Or(c.ShutdownGrace, DefaultShutdownGrace)
	c.HalfCloseTimeout = cmp.Or(c.HalfCloseTimeout, DefaultHalfCloseTimeout)
	c.MaxIdleUpstream = cmp.Or(c.MaxIdleUpstream, DefaultMaxIdleUpstream)
	c.VerifyCacheSize = cmp.Or(c.VerifyCacheSize, DefaultVerifyCacheSize)
	c.Auth = cmp.Or(c.Auth, AuthMTLS)
	return c
}

// Validate checks c and returns an error naming the first bad key and
// what it may be. Zero values are valid (they mean the default), except
// for Upstream. It never changes c.
func (c Config) Validate() error {
	if _, _, err := parseUpstream(c.Upstream); err != nil {
		return err
	}
	switch c.Auth {
	case "", AuthMTLS:
	case AuthJWT, AuthAny:
		if isTCPUpstream(c.Upstream) && !c.MQTT {
			return fmt.Errorf("proxy.auth %q needs an http:// or https:// upstream, or a tcp:// one with proxy.mqtt (device JWTs travel in the MQTT CONNECT)", c.Auth)
		}
		u, err := url.Parse(c.JWTAudience)
		if c.JWTAudience == "" || err != nil || u.Scheme == "" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("proxy.jwt_audience %q must be an absolute URL without a query (https://api.example.com): tokens carry aud = <jwt_audience>/devices/<device ID>", c.JWTAudience)
		}
	default:
		return fmt.Errorf("proxy.auth %q must be mtls, jwt or any", c.Auth)
	}
	if c.ProxyProtocol && !isTCPUpstream(c.Upstream) {
		return errors.New("proxy.proxy_protocol needs a tcp:// upstream: in HTTP mode the client address is sent in X-Forwarded-For")
	}
	if c.MQTT && !isTCPUpstream(c.Upstream) {
		return errors.New("proxy.mqtt needs a tcp:// upstream (the MQTT broker)")
	}
	durations := []struct {
		key      string
		v        time.Duration
		min, max time.Duration
	}{
		{"handshake_timeout", c.HandshakeTimeout, time.Second, time.Minute},
		{"read_header_timeout", c.ReadHeaderTimeout, time.Second, 5 * time.Minute},
		{"idle_timeout", c.IdleTimeout, time.Second, 24 * time.Hour},
		{"upstream_timeout", c.UpstreamTimeout, time.Second, 10 * time.Minute},
		{"shutdown_grace", c.ShutdownGrace, time.Second, 10 * time.Minute},
		{"half_close_timeout", c.HalfCloseTimeout, time.Second, time.Hour},
	}
	for _, d := range durations {
		if d.v != 0 && (d.v < d.min || d.v > d.max) {
			return fmt.Errorf("proxy.%s %s is outside %s..%s (leave it unset for the default)", d.key, d.v, d.min, d.max)
		}
	}
	ints := []struct {
		key      string
		v        int
		min, max int
	}{
		{"max_header_bytes", c.MaxHeaderBytes, 4096, 1 << 20},
		{"max_idle_upstream", c.MaxIdleUpstream, 1, 65536},
		{"verify_cache_size", c.VerifyCacheSize, 1, 1 << 24},
	}
	for _, n := range ints {
		if n.v != 0 && (n.v < n.min || n.v > n.max) {
			return fmt.Errorf("proxy.%s %d is outside %d..%d (leave it unset for the default)", n.key, n.v, n.min, n.max)
		}
	}
	return nil
}

// mode is how the proxy talks to its upstream.
type mode int

const (
	modeHTTP mode = iota + 1
	modeTCP
)

func isTCPUpstream(s string) bool {
	m, _, err := parseUpstream(s)
	return err == nil && m == modeTCP
}

// parseUpstream reads Config.Upstream.
func parseUpstream(s string) (mode, *url.URL, error) {
	if s == "" {
		return 0, nil, errors.New("proxy.upstream is required: http://host:port, https://host:port or tcp://host:port")
	}
	u, err := url.Parse(s)
	if err != nil {
		return 0, nil, fmt.Errorf("proxy.upstream %q is not a URL: %w", s, err)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return 0, nil, fmt.Errorf("proxy.upstream %q may not carry credentials, a query or a fragment", u.Redacted())
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return 0, nil, fmt.Errorf("proxy.upstream %q names no host", s)
		}
		return modeHTTP, u, nil
	case "tcp":
		if u.Path != "" && u.Path != "/" {
			return 0, nil, fmt.Errorf("proxy.upstream %q: a tcp upstream has no path", s)
		}
		if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" {
			return 0, nil, fmt.Errorf("proxy.upstream %q: a tcp upstream needs host:port", s)
		}
		return modeTCP, u, nil
	}
	return 0, nil, fmt.Errorf("proxy.upstream %q: the scheme must be http, https or tcp", s)
}
