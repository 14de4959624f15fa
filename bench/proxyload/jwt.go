package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"go.step.sm/crypto/jose"

	"github.com/fleetca/fleetca/bench/benchutil"
)

// The jwt phase (issue 17): fleetca proxy --auth jwt beside the mTLS
// fleetca proxy, in the same run.
const (
	targetJWTKeepAliveRatio = 0.9 // keep-alive requests/s with a JWT over with mTLS
	targetJWTHandshakeRatio = 1.0 // new connections/s each with a fresh JWT over full mTLS handshakes/s

	jwtAudience = "https://bench.example"
	jwtTTL      = time.Hour
	// jwtTargetName is the JWT proxy's name in the tables.
	jwtTargetName = "fleetca proxy --auth jwt"
)

// jwtDevice is what a device needs to authenticate by JWT.
type jwtDevice struct {
	signer jose.Signer
	kid    string
	// kaReq is the keep-alive request with a token signed at setup.
	kaReq []byte
	// tls: no client certificate, the proxies' certificate pinned.
	tls *tls.Config
}

// jti makes every token the handshake phase signs a new one.
var jti atomic.Int64

// sign returns a new token of d for the JWT proxy's audience.
func (d *device) signJWT(now time.Time) (string, error) {
	claims := jose.Claims{Audience: jose.Audience{jwtAudience + "/devices/" + d.id}, Subject: d.id,
		IssuedAt: jose.NewNumericDate(now), Expiry: jose.NewNumericDate(now.Add(jwtTTL)), ID: strconv.FormatInt(jti.Add(1), 36)}
	return jose.Signed(d.jwt.signer).Claims(claims).Serialize()
}

// setUpJWT prepares every device's signer and keep-alive request, and
// starts the JWT proxy.
func (e *env) setUpJWT(ctx context.Context, logf func(string, ...any)) error {
	for _, d := range e.devices {
		sum := sha256.Sum256(d.cert.Raw)
		kid := hex.EncodeToString(sum[:])
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: d.key},
			new(jose.SignerOptions).WithType("JWT").WithHeader("kid", kid))
		if err != nil {
			return err
		}
		d.jwt = &jwtDevice{signer: s, kid: kid, tls: benchutil.PinnedTLS(nil, e.serverLeaf, "the proxies' certificate")}
		tok, err := d.signJWT(time.Now())
		if err != nil {
			return err
		}
		d.jwt.kaReq = bearerRequest(tok, false)
	}
	c, err := startChild(jwtTargetName, filepath.Join(e.tmp, "fleetca-proxy-jwt.log"), e.o.proxyEnv, e.bin, "proxy", "--listen", "127.0.0.1:0",
		"--upstream", "http://"+e.upstreamAddr, "--ca", e.bundle, "--cert", e.certPath, "--key", e.keyPath,
		"--crl-url", e.srv.HTTPURL, "--revocation-feed", e.srv.HTTPSURL, "--auth", "jwt", "--jwt-audience", jwtAudience)
	if err != nil {
		return err
	}
	e.addStop(func() error { return c.stop(15 * time.Second) }, func() (benchutil.CPUTimes, error) { return benchutil.ProcCPU(c.pid()) })
	addr, err := c.waitForLog(ctx, 30*time.Second, `"listening"`, parseProxyListening)
	if err != nil {
		return err
	}
	e.jwtTarget = &target{name: jwtTargetName, addr: addr, tls: true, jwt: true, cpu: func() (benchutil.CPUTimes, error) { return benchutil.ProcCPU(c.pid()) }}
	e.info.jwtPID = c.pid()
	logf("%s is pid %d on %s", jwtTargetName, c.pid(), addr)
	// The first request: the proxy fetches the device's key set.
	conn := newConn(e.jwtTarget, e.devices[0].jwt.tls)
	defer conn.Close()
	if status, err := conn.do(e.devices[0].jwt.kaReq); err != nil || status != 200 {
		return fmt.Errorf("%s: first request: status %d, %v; want 200", jwtTargetName, status, err)
	}
	return nil
}

// bearerRequest is GET / with the token, and with Connection: close if
// close.
func bearerRequest(token string, close bool) []byte {
	req := "GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: proxyload\r\nAuthorization: Bearer " + token + "\r\n"
	if close {
		req += "Connection: close\r\n"
	}
	return []byte(req + "\r\n")
}

// jwtResult is the jwt phase: keep-alive and new-connection levels, each
// with the mTLS proxy and the JWT proxy.
type jwtResult struct {
	keepalive, handshake []levelResult
}

// runJWTPhase measures the JWT proxy beside the mTLS one.
func runJWTPhase(ctx context.Context, o options, e *env, logf func(string, ...any)) (*jwtResult, error) {
	targets := []*target{e.fleet, e.jwtTarget}
	var r jwtResult
	var err error
	logf("jwt phase, keep-alive: %d x %v per target and concurrency %v", o.reps, o.duration, o.kaConc)
	if r.keepalive, err = runLevels(ctx, o, e, targets, o.kaConc, modeKeepAlive, logf); err != nil {
		return nil, err
	}
	logf("jwt phase, new connections: %d x %v per target and concurrency %v", o.reps, o.duration, o.hsConc)
	if r.handshake, err = runLevels(ctx, o, e, targets, o.hsConc, modeHandshake, logf); err != nil {
		return nil, err
	}
	return &r, nil
}
