package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/fleetca/fleetca/proxy/internal/fastpath"
	"github.com/fleetca/fleetca/verify"
)

// JWTVerifier checks device JWTs (Config.Auth "jwt" or "any");
// *verify.JWTVerifier is one. VerifyDeviceJWT runs for every request, so a
// repeated token must be cheap (verify caches results by token), and it
// must refuse a token of a revoked certificate as soon as the Checker
// knows (verify checks the Checker on every call, cached or not).
type JWTVerifier interface {
	VerifyDeviceJWT(ctx context.Context, token, audienceBase string) (verify.DeviceJWT, error)
}

// JWT outcomes' extra reasons, beside verify's Reason constants (the
// labels of fleetca_proxy_jwt_total).
const (
	jwtReasonNoToken = "no_token" // no Authorization: Bearer
	jwtReasonClosed  = "closed"   // the connection was closed meanwhile (revocation, shutdown)
	// reasonJWT labels fleetca_proxy_handshakes_total's accepted
	// handshakes without a client certificate, whose requests carry JWTs.
	reasonJWT = "jwt"
)

// jwtReasons are every label of fleetca_proxy_jwt_total's refusals.
var jwtReasons = append([]string{jwtReasonNoToken, jwtReasonClosed}, verify.Reasons...)

// jwtRefusal is why a request's JWT was refused.
type jwtRefusal struct {
	reason, detail string
}

// identityKey is the context key of a JWT request's *identity.
type identityKey struct{}

// jwtIdentities caches the identity headers of the certificates whose
// keys signed accepted tokens, by kid, so that a request costs no XFCC
// rendering. It forgets everything when full.
type jwtIdentities struct {
	mu  sync.RWMutex
	max int
	m   map[string]*identity
}

func (c *jwtIdentities) get(d verify.DeviceJWT) *identity {
	c.mu.RLock()
	id := c.m[d.KeyID]
	c.mu.RUnlock()
	if id != nil {
		return id
	}
	id = newJWTIdentity(d.Certificate, d.KeyID)
	c.mu.Lock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[d.KeyID] = id
	c.mu.Unlock()
	return id
}

// bearer returns the token of an Authorization header of the Bearer
// scheme (RFC 6750 §2.1; the scheme is case-insensitive).
func bearer(authorization string) (string, bool) {
	const scheme = "Bearer "
	if len(authorization) <= len(scheme) || !strings.EqualFold(authorization[:len(scheme)], scheme) {
		return "", false
	}
	tok := strings.TrimSpace(authorization[len(scheme):])
	return tok, tok != ""
}

// authJWT checks the token of a request on JWT connection c and files c
// under its certificate's serial, so that a revocation closes it. It
// neither logs nor counts: its caller does.
func (s *Server) authJWT(ctx context.Context, c *trackedConn, authorization string) (*identity, *jwtRefusal) {
	tok, ok := bearer(authorization)
	if !ok {
		return nil, &jwtRefusal{reason: jwtReasonNoToken, detail: "no Authorization: Bearer header"}
	}
	epoch0 := s.conns.currentEpoch()
	d, err := s.jwt.VerifyDeviceJWT(ctx, tok, s.cfg.JWTAudience)
	if err != nil {
		return nil, jwtRefusalOf(err)
	}
	open, recheck := s.conns.registerJWT(c, string(d.Certificate.SerialNumber.Bytes()), epoch0)
	if !open {
		return nil, &jwtRefusal{reason: jwtReasonClosed, detail: "the connection was closed"}
	}
	if recheck {
		// A serial was closed while the token was checked: it may have
		// been this one, revoked after the check and before the filing.
		if d, err = s.jwt.VerifyDeviceJWT(ctx, tok, s.cfg.JWTAudience); err != nil {
			return nil, jwtRefusalOf(err)
		}
	}
	return s.jwtIDs.get(d), nil
}

func jwtRefusalOf(err error) *jwtRefusal {
	if je, ok := errors.AsType[*verify.JWTError](err); ok {
		return &jwtRefusal{reason: je.Reason, detail: je.Detail}
	}
	return &jwtRefusal{reason: verify.ReasonUnavailable, detail: err.Error()}
}

// fastAuthorize is the fast path's Conn.Authorize for JWT connection c. A
// refusal goes to net/http (serveJWT), which counts, logs and answers it.
func (s *Server) fastAuthorize(c *trackedConn) func(string) ([]fastpath.Field, string, string, bool) {
	return func(authorization string) ([]fastpath.Field, string, string, bool) {
		id, ref := s.authJWT(c.ctx, c, authorization)
		if ref != nil {
			return nil, "", "", false
		}
		s.m.jwt(reasonOK)
		return id.fields, id.deviceID, id.serial, true
	}
}

// serveJWT authenticates a net/http request on JWT connection c. It
// returns the request to proxy, with its identity in its context, or nil
// once it has answered the refusal: 401 with WWW-Authenticate (RFC 6750
// §3), the reason in the log and fleetca_proxy_jwt_total.
func (s *Server) serveJWT(w http.ResponseWriter, r *http.Request, c *trackedConn) *http.Request {
	var id *identity
	var ref *jwtRefusal
	if authz := r.Header.Values("Authorization"); len(authz) > 1 {
		ref = &jwtRefusal{reason: verify.ReasonMalformed, detail: "more than one Authorization header"}
	} else {
		id, ref = s.authJWT(r.Context(), c, r.Header.Get("Authorization"))
	}
	if ref == nil {
		s.m.jwt(reasonOK)
		return r.WithContext(context.WithValue(r.Context(), identityKey{}, id))
	}
	s.m.jwt(ref.reason)
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "device JWT refused", slog.String("remote_addr", r.RemoteAddr),
		slog.String("reason", ref.reason), slog.String("detail", ref.detail), slog.String("method", r.Method), slog.String("path", r.URL.Path))
	challenge := `Bearer realm="fleetca"`
	if ref.reason != jwtReasonNoToken {
		// RFC 6750 §3: error_description is for the developer; the reason
		// is one of a closed set, safe to quote.
		challenge += `, error="invalid_token", error_description="` + ref.reason + `"`
	}
	h := w.Header()
	h.Set("WWW-Authenticate", challenge)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusUnauthorized)
	io.WriteString(w, "invalid_token: "+ref.reason+"\n")
	return nil
}

// requestIdentity is the identity of r's client: its JWT's, or its
// connection's certificate's.
func requestIdentity(r *http.Request, c *trackedConn) *identity {
	if id, ok := r.Context().Value(identityKey{}).(*identity); ok {
		return id
	}
	return c.id
}
