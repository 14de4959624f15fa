package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/verify"
)

const testJWTAud = "https://api.example.com"

// fakeJWT is a JWTVerifier over a table of tokens, which asks the Checker
// about each token's certificate on every call, as verify's does.
type fakeJWT struct {
	checker Checker
	tokens  map[string]verify.DeviceJWT
}

func (f *fakeJWT) VerifyDeviceJWT(ctx context.Context, tok, aud string) (verify.DeviceJWT, error) {
	if aud != testJWTAud {
		return verify.DeviceJWT{}, &verify.JWTError{Reason: verify.ReasonBadAudience, Detail: "aud " + aud}
	}
	d, ok := f.tokens[tok]
	if !ok {
		return verify.DeviceJWT{}, &verify.JWTError{Reason: verify.ReasonBadSignature, Detail: "not a token of the table"}
	}
	if err := f.checker.Check(ctx, d.Certificate); err != nil {
		return verify.DeviceJWT{}, &verify.JWTError{Reason: verify.ReasonRevoked, Detail: err.Error()}
	}
	return d, nil
}

// jwtProxy starts a proxy with cfg.Auth, a fakeJWT knowing the tokens
// "tok-<id>" of devs, and returns it with the fake.
func jwtProxy(t *testing.T, pki *testPKI, cfg Config, devs ...string) (*testProxy, *fakeJWT, map[string]verify.DeviceJWT) {
	t.Helper()
	f := &fakeJWT{tokens: map[string]verify.DeviceJWT{}}
	for _, id := range devs {
		c := pki.device(t, id)
		f.tokens["tok-"+id] = verify.DeviceJWT{DeviceID: id, Certificate: c.Leaf, KeyID: api.KeyID(c.Leaf.Raw)}
	}
	cfg.JWTAudience = testJWTAud
	p := startProxy(t, pki, cfg, func(d *Deps) {
		f.checker = d.Checker
		d.JWT = f
	})
	return p, f, f.tokens
}

// jwts is the value of fleetca_proxy_jwt_total{outcome, reason}.
func (p *testProxy) jwts(outcome, reason string) float64 {
	c := p.m.jwtByReason[reason]
	if c == nil || (reason == reasonOK) != (outcome == outcomeAccepted) {
		return -1
	}
	return testutil.ToFloat64(c)
}

// TestJWTAuth: with Config.Auth jwt, a client without a certificate gets
// in by the Bearer token of each request, over the fast path, net/http
// and HTTP/2; the upstream sees the device's identity headers and the
// kid, not the token; a missing or refused token is a 401 with an RFC
// 6750 challenge, its reason logged and counted.
func TestJWTAuth(t *testing.T) {
	pki := newPKI(t, "Fleet")
	up := newEchoUpstream(t)
	for _, tc := range []struct {
		name string
		cfg  Config
		h2   bool
	}{
		{"fast-path", Config{Upstream: up.URL, Auth: AuthJWT}, false},
		{"net-http", Config{Upstream: up.URL, Auth: AuthJWT, DisableHTTP1FastPath: true}, false},
		{"h2", Config{Upstream: up.URL, Auth: AuthJWT}, true},
		{"any-without-cert", Config{Upstream: up.URL, Auth: AuthAny}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _, toks := jwtProxy(t, pki, tc.cfg, "dev-1", "dev-2")
			client := p.httpClient(t, nil, tc.h2)
			for _, id := range []string{"dev-1", "dev-2", "dev-1"} { // two devices on one connection
				e, resp := get(t, client, "https://"+p.addr+"/x", http.Header{"Authorization": {"Bearer tok-" + id},
					HeaderKeyID: {"forged"}, "X_Device_Key_Id": {"forged"}, HeaderDeviceID: {"forged"}})
				d := toks["tok-"+id]
				if tc.h2 != (resp.ProtoMajor == 2) {
					t.Errorf("protocol %s, want h2 %v", resp.Proto, tc.h2)
				}
				if got := e.Header.Get(HeaderDeviceID); got != id {
					t.Errorf("upstream %s = %q, want %s", HeaderDeviceID, got, id)
				}
				if got := e.Header.Values(HeaderKeyID); len(got) != 1 || got[0] != d.KeyID {
					t.Errorf("upstream %s = %q, want [%s]", HeaderKeyID, got, d.KeyID)
				}
				if got := e.Header.Get(HeaderSerial); got != d.Certificate.SerialNumber.Text(16) {
					t.Errorf("upstream %s = %q, want the certificate's serial", HeaderSerial, got)
				}
				if got := e.Header.Get(HeaderXFCC); !strings.HasPrefix(got, "Hash="+d.KeyID+";") {
					t.Errorf("upstream %s = %q, want the certificate's", HeaderXFCC, got)
				}
				if got := e.Header.Get("Authorization"); got != "" {
					t.Errorf("upstream got Authorization %q, want none: the token is the proxy's", got)
				}
				if got := e.Header.Get("X_device_key_id"); got != "" {
					t.Errorf("upstream got the client's X_Device_Key_Id %q", got)
				}
			}
			// The fast path counts a request once its answer is written,
			// before its access-log line: the client may read the answer
			// first.
			p.logs.waitN(t, 3, "request")
			if fast := testutil.ToFloat64(p.m.fastRequests); (fast == 3) != (tc.name == "fast-path" || tc.name == "any-without-cert") {
				t.Errorf("fast-path requests = %v, want 3 exactly when the fast path is on and HTTP/1.1", fast)
			}
			if got := p.jwts(outcomeAccepted, reasonOK); got != 3 {
				t.Errorf("jwt{accepted,ok} = %v, want 3", got)
			}
			if got := p.handshakes(outcomeAccepted, reasonJWT); got != 1 {
				t.Errorf("handshakes{accepted,jwt} = %v, want 1", got)
			}
			for _, rc := range []struct {
				auth      []string
				reason    string
				challenge string
			}{
				{nil, jwtReasonNoToken, `Bearer realm="fleetca"`},
				{[]string{"Basic eDp5"}, jwtReasonNoToken, `Bearer realm="fleetca"`},
				{[]string{"Bearer forged"}, verify.ReasonBadSignature, `Bearer realm="fleetca", error="invalid_token", error_description="bad_signature"`},
				{[]string{"Bearer tok-dev-1", "Bearer tok-dev-2"}, verify.ReasonMalformed, `Bearer realm="fleetca", error="invalid_token", error_description="malformed"`},
			} {
				req, _ := http.NewRequestWithContext(t.Context(), "GET", "https://"+p.addr+"/refused", nil)
				req.Header["Authorization"] = rc.auth
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != rc.challenge {
					t.Errorf("Authorization %q: %d %q, want 401 %q", rc.auth, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), rc.challenge)
				}
				p.logs.wait(t, "device JWT refused", "reason", rc.reason, "path", "/refused")
				if got := p.jwts(outcomeRefused, rc.reason); got < 1 {
					t.Errorf("jwt{refused,%s} = %v, want >= 1", rc.reason, got)
				}
			}
			// The connection that saw refusals still serves tokens.
			get(t, client, "https://"+p.addr+"/again", http.Header{"Authorization": {"Bearer tok-dev-2"}})
		})
	}
}

// TestJWTAuthRevocation: a revocation closes every connection that carried
// a token of the certificate, and its tokens are refused from then on.
func TestJWTAuthRevocation(t *testing.T) {
	pki := newPKI(t, "Fleet")
	up := newEchoUpstream(t)
	for _, fast := range []bool{true, false} {
		t.Run(fmt.Sprintf("fast-path=%v", fast), func(t *testing.T) {
			p, _, toks := jwtProxy(t, pki, Config{Upstream: up.URL, Auth: AuthJWT, DisableHTTP1FastPath: !fast}, "dev-1", "dev-2")
			c1 := p.dial(t, pki.clientTLS(nil))
			c2 := p.dial(t, pki.clientTLS(nil))
			br1, br2 := bufio.NewReader(c1), bufio.NewReader(c2)
			if r := bearerGet(t, c1, br1, "tok-dev-1"); r.StatusCode != 200 {
				t.Fatalf("dev-1: %d", r.StatusCode)
			}
			if r := bearerGet(t, c2, br2, "tok-dev-2"); r.StatusCode != 200 {
				t.Fatalf("dev-2: %d", r.StatusCode)
			}
			p.checker.revoke(toks["tok-dev-1"].Certificate.SerialNumber)
			waitClosed(t, c1)
			if r := bearerGet(t, c2, br2, "tok-dev-2"); r.StatusCode != 200 {
				t.Errorf("dev-2 after dev-1's revocation: %d, want 200", r.StatusCode)
			}
			c3 := p.dial(t, pki.clientTLS(nil))
			if r := bearerGet(t, c3, bufio.NewReader(c3), "tok-dev-1"); r.StatusCode != http.StatusUnauthorized {
				t.Errorf("revoked dev-1's token: %d, want 401", r.StatusCode)
			}
			p.logs.wait(t, "device JWT refused", "reason", verify.ReasonRevoked)
		})
	}
}

// TestJWTAuthModes: mtls (the default) still requires a certificate; any
// takes one and then needs no token; jwt asks for none.
func TestJWTAuthModes(t *testing.T) {
	pki := newPKI(t, "Fleet")
	up := newEchoUpstream(t)
	dev := pki.device(t, "dev-cert")
	p, _, _ := jwtProxy(t, pki, Config{Upstream: up.URL, Auth: AuthAny}, "dev-1")
	e, _ := get(t, p.httpClient(t, &dev, false), "https://"+p.addr+"/", http.Header{"Authorization": {"Bearer upstream-own"}})
	if e.Header.Get(HeaderDeviceID) != "dev-cert" || e.Header.Get(HeaderKeyID) != "" || e.Header.Get("Authorization") != "Bearer upstream-own" {
		t.Errorf("any with a certificate: upstream saw %v, want the certificate's identity, no kid, the client's Authorization", e.Header)
	}

	m := startProxy(t, pki, Config{Upstream: up.URL})
	c := m.dial(t, pki.clientTLS(nil))
	c.SetReadDeadline(time.Now().Add(waitLimit))
	if _, err := c.Read(make([]byte, 1)); err == nil || !isRemoteAlert(err) {
		t.Errorf("mtls without a certificate: read = %v, want a TLS alert", err)
	}

	j, _, _ := jwtProxy(t, pki, Config{Upstream: up.URL, Auth: AuthJWT}, "dev-1")
	jc := j.dial(t, pki.clientTLS(&dev))
	if st := jc.ConnectionState(); len(st.PeerCertificates) == 0 {
		t.Fatal("no server certificate")
	}
	if r := bearerGet(t, jc, bufio.NewReader(jc), "tok-dev-1"); r.StatusCode != 200 {
		t.Errorf("jwt with a token: %d, want 200", r.StatusCode)
	}
}

func TestJWTConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"ok/default-mtls", Config{Upstream: "http://up:80"}, true},
		{"ok/jwt", Config{Upstream: "http://up:80", Auth: AuthJWT, JWTAudience: "https://api.example.com"}, true},
		{"ok/any", Config{Upstream: "https://up:443", Auth: AuthAny, JWTAudience: "https://api.example.com/base"}, true},
		{"fail/unknown", Config{Upstream: "http://up:80", Auth: "oauth"}, false},
		{"fail/no-audience", Config{Upstream: "http://up:80", Auth: AuthJWT}, false},
		{"fail/relative-audience", Config{Upstream: "http://up:80", Auth: AuthJWT, JWTAudience: "api.example.com"}, false},
		{"fail/tcp", Config{Upstream: "tcp://up:1883", Auth: AuthJWT, JWTAudience: "https://api.example.com"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// bearerGet writes a keep-alive GET of /jwt with a Bearer token on c.
func bearerGet(t *testing.T, c net.Conn, br *bufio.Reader, tok string) *http.Response {
	t.Helper()
	return rawGet(t, c, br, "/jwt", "Authorization: Bearer "+tok)
}
