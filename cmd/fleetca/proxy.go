package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"go.step.sm/crypto/pemutil"
	"golang.org/x/sync/errgroup"

	"github.com/fleetca/fleetca/internal/certutil"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/internal/redact"
	"github.com/fleetca/fleetca/internal/tlsconf"
	"github.com/fleetca/fleetca/proxy"
	"github.com/fleetca/fleetca/verify"
)

// proxyOptions are the inputs of `fleetca proxy`. Tests may pass a listener
// and a SIGHUP channel of their own.
type proxyOptions struct {
	listen, upstream, caFile, certFile, keyFile string
	crlURL, ocsp, feed, metricsAddr             string
	upstreamCA                                  string
	proxyProtocol                               bool
	http1FastPath                               bool
	grace                                       time.Duration
	mqtt                                        bool
	auth, jwtAudience, jwtKeys                  string
	jwtMaxLifetime                              time.Duration

	listener net.Listener
	// hup, if set, replaces SIGHUP: each value reloads.
	hup <-chan os.Signal
	// ready, if set, receives the address the proxy listens on.
	ready func(addr string)
}

// checkerClientTimeout bounds one CRL fetch. It is longer than a feed
// long-poll (the Checker holds those open about 20 s, under their own
// deadline), which shares the client.
const checkerClientTimeout = time.Minute

func newProxyCmd(e env) *cobra.Command {
	var o proxyOptions
	cmd := &cobra.Command{
		Use:   "proxy --listen ADDR --upstream URL --ca FILE --cert F --key F (--crl-url URL | --ocsp[=URL])",
		Short: "Run the reference mTLS proxy: only valid, unrevoked devices reach the upstream",
		Long: `proxy terminates TLS in front of a service and lets through only devices that
present a valid, unrevoked certificate of the fleet: chained to a root of
--ca, EKU clientAuth, in its validity period, and not revoked. The revocation
check runs at every handshake, resumed sessions included.

--upstream http://HOST:PORT (or https://) proxies HTTP/1.1, HTTP/2 and
WebSocket upgrades, adding X-Device-ID, X-Client-Cert-Serial and
X-Forwarded-Client-Cert (Envoy's format) and removing any the client sent.
--upstream tcp://HOST:PORT pipes bytes (MQTT and other protocols), with a
PROXY protocol v2 header first if --proxy-protocol is given.

With an http:// upstream, plain HTTP/1.1 requests (GET, HEAD, OPTIONS and
TRACE without a body) take the proxy's fast path, which answers them as
Go's net/http would with less CPU; --http1-fast-path=false sends every
request through net/http, to rule the fast path out when something looks
wrong. fleetca_proxy_fast_path_requests_total counts what it serves.

--ca is the fleet's trust bundle: the root and the intermediate, as PEM:
  curl -s http://CA:8080/roots.pem  > fleet-ca.pem
  curl -s http://CA:8080/chain.pem >> fleet-ca.pem
Self-signed certificates in it are the roots; the other CA certificate is the
intermediate, which signs the CRL and issues the devices' certificates.
--cert and --key are the proxy's own server certificate (fleetca cert server).

Revocation: --crl-url http://CA:8080, the base URL of the CA's HTTP listener
(as crl sync --url takes it), fetches the CA's device CRL from
http://CA:8080/crl (checked against the intermediate, refetched every minute
and before half its validity passes); --crl-url FILE reads a CRL file
instead. Add --revocation-feed https://CA:8443 to follow the CA's
revocation feed, which cuts a revoked device off within a second, closing
its open connections too. The CRL stays the signed fallback. --ocsp asks the
responder named in each certificate (--ocsp=URL names one). The proxy fails
closed: until a first CRL loads, and once the CRL is past its nextUpdate by
more than --grace (default 1h; --grace 0s allows no time past nextUpdate),
every device is refused, and at that instant every open connection is
closed too (logged once at Error, counted in
fleetca_proxy_stale_connections_closed_total).

Device JWTs (--auth jwt or any, HTTP upstreams): devices that cannot
present a client certificate (behind a TLS-terminating load balancer, say)
send 'Authorization: Bearer <JWT>' on every request, a token they sign with
the key of their fleetca certificate ('fleetca jwt'). With --auth jwt the
proxy asks for no client certificate; with --auth any it takes one when a
client sends it and a JWT otherwise; --auth mtls (the default) is as above.
A token needs aud = <--jwt-audience>/devices/<device ID>, an exp at most
--jwt-max-lifetime (default 24h) after its iat, alg ES256, ES384, RS256 or
EdDSA, and the key of a live, unrevoked certificate of that device: named
by its kid (the certificate's SHA-256) in the key set the CA publishes at
<--jwt-keys-url>/v1/devices/{id}/keys (default: --crl-url when it is a
URL), or carried in the token's x5c header. The upstream gets the same
headers as for a certificate plus X-Device-Key-Id (the kid), never the
token. A refused token gets 401 with WWW-Authenticate: Bearer
error="invalid_token" and its reason (expired, bad_audience, unknown_key,
revoked, ...) in error_description, the log and
fleetca_proxy_jwt_total{outcome,reason}. A revocation closes the
connections that carried the certificate's tokens.

MQTT (--upstream tcp://BROKER:PORT --mqtt --auth jwt or any): a device
without a certificate connects with its device ID as the MQTT client ID
and its JWT as the password (mosquitto_pub -i dev-1 -u x -P "$JWT"); the
proxy reads the CONNECT packet (MQTT 3.1.1 or 5) and checks the token as
above and that its device is the client ID. A refused client gets a
CONNACK saying why (3.1.1: 0x05 not authorized, 0x04 bad user name or
password for a missing or unreadable token, 0x03 server unavailable; 5:
0x87, 0x86 or 0x88 with the reason as reason string), counted in
fleetca_proxy_mqtt_connects_total{outcome,reason}; the broker gets the
CONNECT with the password removed and the username set to the device ID.
Revoking the device closes its connections. A session is closed when its
token's exp plus the 10 minutes of clock skew allowed passes (MQTT 5 first
gets a DISCONNECT 0xa0 maximum connect time), logged as "mqtt session
expired" and counted as {outcome="closed",reason="session_expired"}: the
device reconnects with a fresh token. A device with a certificate
(--auth mtls or any) must use its device ID as client ID too, and its
CONNECT is rewritten the same way.

SIGHUP rereads --ca, --cert and --key (open connections are kept; a new
intermediate needs a restart) and refetches the CRL. SIGINT or SIGTERM drain
connections and stop. Logs are JSON lines on stderr; --metrics-addr serves
Prometheus metrics at /metrics (keep it on loopback).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runProxy(cmd.Context(), e, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "127.0.0.1:9443", "address to accept devices' TLS connections on")
	f.StringVar(&o.upstream, "upstream", "", "the service: http://HOST:PORT, https://HOST:PORT or tcp://HOST:PORT")
	f.StringVar(&o.caFile, "ca", "", "PEM bundle of the fleet root and intermediate")
	f.StringVar(&o.certFile, "cert", "", "the proxy's server certificate and chain (PEM)")
	f.StringVar(&o.keyFile, "key", "", "the proxy's private key (PEM)")
	f.StringVar(&o.crlURL, "crl-url", "", "the CA's HTTP listener, e.g. http://CA:8080, to fetch its device CRL from /crl (or a CRL file)")
	f.StringVar(&o.ocsp, "ocsp", "", "check with OCSP: the responder in each certificate, or --ocsp=URL")
	f.Lookup("ocsp").NoOptDefVal = "aia"
	f.StringVar(&o.feed, "revocation-feed", "", "the CA's HTTPS listener, e.g. https://CA:8443, to follow its revocation feed (with --crl-url)")
	f.BoolVar(&o.proxyProtocol, "proxy-protocol", false, "send a PROXY protocol v2 header to a tcp:// upstream")
	f.BoolVar(&o.http1FastPath, "http1-fast-path", true, "serve plain HTTP/1.1 requests to an http:// upstream on the proxy's fast path (=false: all through net/http)")
	f.StringVar(&o.upstreamCA, "upstream-ca", "", "PEM file of the CA(s) an https:// upstream's certificate must chain to (default the system's)")
	f.DurationVar(&o.grace, "grace", verify.DefaultGrace, "how long past its nextUpdate a CRL is still used when no new one can be had (0s: not at all; up to 168h)")
	f.BoolVar(&o.mqtt, "mqtt", false, "with a tcp:// upstream (an MQTT broker) and --auth jwt|any: JWT clients send their token as the CONNECT password")
	f.StringVar(&o.auth, "auth", proxy.AuthMTLS, "how devices authenticate: mtls (client certificate), jwt (a device JWT on every request) or any")
	f.StringVar(&o.jwtAudience, "jwt-audience", "", "with --auth jwt|any: the audience base URL; tokens carry aud = <URL>/devices/<device ID>")
	f.DurationVar(&o.jwtMaxLifetime, "jwt-max-lifetime", verify.DefaultJWTMaxLifetime, "with --auth jwt|any: the longest a token may be valid after its iat (1m to 720h)")
	f.StringVar(&o.jwtKeys, "jwt-keys-url", "", "with --auth jwt|any: the CA's HTTP listener, e.g. http://CA:8080, for the devices' key sets (default --crl-url if a URL)")
	f.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://ADDR/metrics (default off), e.g. 127.0.0.1:9090")
	return cmd
}

// runProxy is the composition root of the proxy.
func runProxy(ctx context.Context, e env, o proxyOptions) error {
	switch {
	case o.upstream == "":
		return usagef("proxy needs --upstream http://HOST:PORT or tcp://HOST:PORT")
	case o.caFile == "":
		return usagef("proxy needs --ca FILE with the fleet root and intermediate")
	case o.certFile == "" || o.keyFile == "":
		return usagef("proxy needs --cert FILE and --key FILE (its server certificate; fleetca cert server issues one)")
	case (o.crlURL == "") == (o.ocsp == ""):
		return usagef("give exactly one of --crl-url URL and --ocsp")
	case o.feed != "" && o.crlURL == "":
		return usagef("--revocation-feed needs --crl-url: the CRL is its signed fallback")
	case o.grace < 0 || o.grace > 168*time.Hour:
		return usagef("--grace %s is outside 0s..168h", o.grace)
	case o.auth == proxy.AuthMTLS && (o.jwtAudience != "" || o.jwtKeys != ""):
		return usagef("--jwt-audience and --jwt-keys-url need --auth jwt or --auth any")
	case o.auth != proxy.AuthMTLS && o.jwtAudience == "":
		return usagef("--auth %s needs --jwt-audience URL (tokens carry aud = <URL>/devices/<device ID>)", o.auth)
	}
	if o.auth != proxy.AuthMTLS && o.jwtKeys == "" && isHTTPURL(o.crlURL) {
		o.jwtKeys = o.crlURL
	}
	if err := checkCAURLs(o.crlURL, o.feed); err != nil {
		return err
	}
	setGCPercent(e)

	upstreamTLS, err := loadUpstreamTLS(o)
	if err != nil {
		return err
	}
	// Timeouts and limits are proxy.Config's defaults (10 s handshakes and
	// request headers, 2 min idle, 30 s to reach the upstream, 64 KiB of
	// headers, 10 s to drain on shutdown).
	pcfg := proxy.Config{Upstream: o.upstream, ProxyProtocol: o.proxyProtocol, DisableHTTP1FastPath: !o.http1FastPath,
		MQTT: o.mqtt, Auth: o.auth, JWTAudience: o.jwtAudience}
	if err := pcfg.Validate(); err != nil {
		return usage(err)
	}
	logger := newDaemonLogger(e)
	now := time.Now

	bundle, err := loadTrustBundle(o.caFile, now())
	if err != nil {
		return err
	}
	cert, err := loadServerCert(o.certFile, o.keyFile, now())
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// The Checker reaches the CA's HTTPS listener (feed, an https CRL)
	// trusting the fleet roots only.
	client := &http.Client{Timeout: checkerClientTimeout, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: bundle.roots, MinVersion: tlsconf.MinVersion, CipherSuites: tlsconf.CipherSuites()},
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
	}}
	defer client.CloseIdleConnections()
	checker, err := verify.NewChecker(verify.CheckerConfig{CRL: o.crlURL, OCSP: o.ocsp, Feed: o.feed, Issuer: bundle.issuer, Grace: new(o.grace)},
		verify.CheckerDeps{Client: client, Now: now, Logger: logger})
	if err != nil {
		return err
	}
	if o.crlURL != "" {
		// Fail closed but keep running: without a CRL every handshake is
		// refused (no_data) until Run loads one, so a proxy started before
		// its CA comes up serves as soon as the CA does.
		if err := checker.Refresh(ctx); err != nil {
			logger.Error("no CRL could be loaded: every device is refused until one is", "crl", redact.URL(o.crlURL), "err", err)
		} else if crl := checker.CurrentCRL(); crl != nil {
			logger.Info("CRL loaded", "crl", redact.URL(o.crlURL), "number", crl.Number.String(), "entries", crl.Len(), "next_update", crl.NextUpdate)
		}
	}

	var jwtVerifier proxy.JWTVerifier
	if o.auth != proxy.AuthMTLS {
		v, err := verify.NewJWTVerifier(verify.JWTConfig{Checker: checker, Roots: bundle.roots, Intermediates: bundle.intermediates,
			KeysURL: o.jwtKeys, MaxLifetime: o.jwtMaxLifetime, Now: now, Logger: logger,
			Client: &http.Client{Timeout: 10 * time.Second, Transport: client.Transport}})
		if err != nil {
			return err
		}
		jwtVerifier = v
	}
	srv, err := proxy.New(pcfg, proxy.Deps{Roots: bundle.roots, Intermediates: bundle.intermediates, Certificate: cert, Checker: checker,
		JWT: jwtVerifier, UpstreamTLS: upstreamTLS, Logger: logger, Metrics: reg, Now: now})
	if err != nil {
		return err
	}

	ln := o.listener
	if ln == nil {
		if ln, err = net.Listen("tcp", o.listen); err != nil {
			return fmt.Errorf("listen on %s: %w", o.listen, err)
		}
	}
	defer ln.Close()
	var metricsLn net.Listener
	if o.metricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", o.metricsAddr); err != nil {
			return fmt.Errorf("listen for metrics on %s: %w", o.metricsAddr, err)
		}
		defer metricsLn.Close()
	}
	hup := o.hup
	if hup == nil {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGHUP)
		defer signal.Stop(ch)
		hup = ch
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(gctx, ln) })
	g.Go(func() error {
		if err := checker.Run(gctx); err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		return nil
	})
	if metricsLn != nil {
		msrv := &http.Server{Handler: metricsHandler(reg), ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout,
			WriteTimeout: writeTimeout, IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes}
		g.Go(func() error { return serveUntil(gctx, msrv, func() error { return msrv.Serve(metricsLn) }) })
	}
	r := &proxyReloader{o: o, srv: srv, checker: checker, issuer: bundle.issuer, log: logger, now: now}
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-hup:
				r.reload(gctx)
			}
		}
	})

	attrs := []any{"addr", ln.Addr().String(), "upstream", redact.URL(o.upstream), "server_serial", cert.Leaf.SerialNumber.Text(16),
		"server_not_after", cert.Leaf.NotAfter}
	if metricsLn != nil {
		attrs = append(attrs, "metrics", "http://"+metricsLn.Addr().String()+"/metrics")
	}
	logger.Info("listening", attrs...)
	if o.ready != nil {
		o.ready(ln.Addr().String())
	}
	err = g.Wait()
	logger.Info("stopped")
	return err
}

// newDaemonLogger is the logger of the long-running verifiers (proxy, crl
// sync): JSON lines on stderr at Info, as serve writes them.
func newDaemonLogger(e env) *slog.Logger {
	return slog.New(slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// metricsHandler serves the registry at /metrics.
func metricsHandler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

// proxyReloader rereads the trust bundle and the server certificate.
type proxyReloader struct {
	o       proxyOptions
	srv     *proxy.Server
	checker *verify.Checker
	issuer  *x509.Certificate // the Checker's, fixed at start
	log     *slog.Logger
	now     func() time.Time
}

// reload swaps in the files as they are now on disk, and refetches the CRL.
// A file that cannot be used keeps the old bundle and certificate, logged
// at Error: the proxy goes on serving with what it had.
func (r *proxyReloader) reload(ctx context.Context) {
	bundle, err := loadTrustBundle(r.o.caFile, r.now())
	if err != nil {
		r.log.ErrorContext(ctx, "reload failed; keeping the CA bundle and certificate in use", "err", err)
		return
	}
	cert, err := loadServerCert(r.o.certFile, r.o.keyFile, r.now())
	if err != nil {
		r.log.ErrorContext(ctx, "reload failed; keeping the CA bundle and certificate in use", "err", err)
		return
	}
	if !bundle.issuer.Equal(r.issuer) {
		r.log.WarnContext(ctx, "the intermediate in the CA bundle changed: revocation is still checked against the old one, so its devices are refused; restart the proxy",
			"issuer", bundle.issuer.Subject.String())
	}
	r.srv.Reload(bundle.roots, bundle.intermediates, cert)
	r.log.InfoContext(ctx, "reloaded", "ca", r.o.caFile, "server_serial", cert.Leaf.SerialNumber.Text(16), "server_not_after", cert.Leaf.NotAfter)
	if r.o.crlURL != "" {
		if err := r.checker.Refresh(ctx); err != nil && ctx.Err() == nil {
			r.log.WarnContext(ctx, "CRL refresh after reload failed; the CRL in use still applies", "crl", redact.URL(r.o.crlURL), "err", err)
		}
	}
}

// loadUpstreamTLS returns the TLS client configuration towards an https
// upstream: its certificate must chain to --upstream-ca (a service with a
// certificate from 'fleetca cert server', say), or to the system's roots
// when the flag is not given (nil).
func loadUpstreamTLS(o proxyOptions) (*tls.Config, error) {
	if o.upstreamCA == "" {
		return nil, nil
	}
	if u, err := url.Parse(o.upstream); err != nil || u.Scheme != "https" { // url.Parse lowercases the scheme
		return nil, usagef("--upstream-ca applies to an https:// upstream, not %q", o.upstream)
	}
	const hint = "pass a PEM file of the CA certificate(s) that issued the upstream's certificate (for a fleetca-issued one: the CA's roots.pem)"
	b, err := os.ReadFile(o.upstreamCA)
	if err != nil {
		return nil, fault.Wrap(err, fault.NotFound, "cannot read the upstream CA file "+o.upstreamCA, hint)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fault.New(fault.Malformed, o.upstreamCA+" holds no PEM certificate", hint)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tlsconf.MinVersion, CipherSuites: tlsconf.CipherSuites()}, nil
}

// trustBundle is the fleet's CA bundle as the proxy uses it.
type trustBundle struct {
	roots, intermediates *x509.CertPool
	// issuer is the one intermediate: it issues device certificates and
	// signs the CRL.
	issuer *x509.Certificate
	// certs are all the bundle's certificates, roots and intermediate.
	certs []*x509.Certificate
}

// loadTrustBundle reads a PEM bundle of the fleet root(s) and exactly one
// intermediate that chains to one of them and is valid at now.
func loadTrustBundle(file string, now time.Time) (*trustBundle, error) {
	const hint = "build it from the CA: curl http://CA:8080/roots.pem > FILE; curl http://CA:8080/chain.pem >> FILE"
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fault.Wrap(err, fault.NotFound, "cannot read the CA bundle "+file, hint)
	}
	certs, err := pemutil.ParseCertificateBundle(b)
	if err != nil || len(certs) == 0 {
		return nil, fault.New(fault.Malformed, file+" holds no PEM certificate", hint)
	}
	tb := &trustBundle{roots: x509.NewCertPool(), intermediates: x509.NewCertPool(), certs: certs}
	var inters []*x509.Certificate
	for _, c := range certs {
		switch {
		case !c.IsCA:
			return nil, fault.New(fault.Malformed, fmt.Sprintf("%s holds %q, which is not a CA certificate", file, c.Subject), hint)
		case certutil.SelfSigned(c):
			tb.roots.AddCert(c)
		default:
			tb.intermediates.AddCert(c)
			inters = append(inters, c)
		}
	}
	switch {
	case len(inters) == 0:
		return nil, fault.New(fault.Malformed, file+" holds no intermediate: the device CRL is checked against it", hint)
	case len(inters) > 1:
		return nil, fault.New(fault.Malformed, fmt.Sprintf("%s holds %d intermediates; revocation is checked against one", file, len(inters)),
			"keep the intermediate of the CA that issues the devices")
	}
	tb.issuer = inters[0]
	if _, err := tb.issuer.Verify(x509.VerifyOptions{Roots: tb.roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		detail := fmt.Sprintf("the intermediate %q in %s does not chain to a root in it", tb.issuer.Subject, file)
		if invalid, ok := errors.AsType[x509.CertificateInvalidError](err); ok && invalid.Reason == x509.Expired {
			detail = fmt.Sprintf("the intermediate %q in %s, or its root, is not valid at %s", tb.issuer.Subject, file, now.UTC().Format(time.RFC3339))
		}
		return nil, fault.Wrap(err, fault.Malformed, detail, hint)
	}
	return tb, nil
}

// loadServerCert reads the proxy's certificate (leaf first, then its
// chain) and key, and refuses one that has expired.
func loadServerCert(certFile, keyFile string, now time.Time) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		const hint = "issue one with fleetca cert server --dns HOST --cert FILE --key FILE"
		if pe, ok := errors.AsType[*fs.PathError](err); ok {
			return nil, fault.Wrap(err, fault.NotFound, fmt.Sprintf("cannot read %s, for the server certificate", pe.Path), hint)
		}
		return nil, fault.Wrap(err, fault.Malformed,
			fmt.Sprintf("%s and %s are not a certificate (with its chain) and its key", certFile, keyFile), hint)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fault.Wrap(err, fault.Malformed, "cannot parse the server certificate "+certFile, "")
		}
	}
	if now.After(cert.Leaf.NotAfter) {
		return nil, fault.New(fault.Forbidden, fmt.Sprintf("the server certificate %s expired at %s", certFile, cert.Leaf.NotAfter.UTC().Format(time.RFC3339)),
			"issue a new one with fleetca cert server, then start the proxy (or send it SIGHUP)")
	}
	return &cert, nil
}

// checkCAURLs checks the verifier's URLs of the CA, shared by proxy and
// crl sync: crlURL, if it is a URL, must be the base URL of the CA's HTTP
// listener (not a file under it), and feed, if set, the base URL of its
// HTTPS listener. The error names the flag and says which URL was
// expected.
func checkCAURLs(crlURL, feed string) error {
	if strings.HasPrefix(crlURL, "http://") || strings.HasPrefix(crlURL, "https://") {
		if _, err := verify.BaseURL(crlURL, "http", "https"); err != nil {
			return flagUsage("--crl-url", err)
		}
	}
	if feed != "" {
		if _, err := verify.BaseURL(feed, "https"); err != nil {
			return flagUsage("--revocation-feed", err)
		}
	}
	return nil
}

// isHTTPURL reports whether s is an http:// or https:// URL (not a file).
func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
