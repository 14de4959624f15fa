package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/fleetca/fleetca/auditlog"
	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/enroll"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/revocation"
	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/web"
)

func newServeCmd(e env) *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve --dir DIR",
		Short: "Run the CA: HTTPS (enrollment, renewal, admin API) and HTTP (CA certificates, CRLs, OCSP)",
		Long: `serve runs the CA from DIR until it gets SIGINT or SIGTERM, then drains
requests under way and stops. It logs JSON lines to stderr.

serve refuses to start when a CA key file or the password file can be read by
anyone but its owner, and names the chmod 600 that fixes it.

With store.driver postgres in fleetca.yaml, serve applies the schema migrations
the database lacks (under a lock: replicas starting together migrate once)
and refuses a schema newer than it knows. Several serve replicas with copies
of one data directory may share the database behind a load balancer. /healthz
answers 503 while the database cannot be reached.

serve signs a checkpoint of the audit log (with secrets/audit.key, made if
missing; public key DIR/audit.pub) at start-up, at most every
audit.checkpoint_every while the log grows, and at shutdown.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := dataDir(o.dir, e.getenv)
			if err != nil {
				return err
			}
			o.dir = dir
			return runServe(cmd.Context(), e, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dir, "dir", "", "data directory (default $FLEETCA_DIR, or ./fleetca-data)")
	f.StringVar(&o.httpsAddr, "https-addr", "", "HTTPS listener address (overrides server.https_addr)")
	f.StringVar(&o.httpAddr, "http-addr", "", "HTTP listener address (overrides server.http_addr)")
	f.StringVar(&o.metricsAddr, "metrics-addr", "", "Prometheus metrics listener address, or off (overrides server.metrics_addr)")
	f.StringVar(&o.passwordFile, "password-file", "", "file with the CA keys' password (overrides password_file)")
	return cmd
}

// serveOptions are serve's inputs. Tests may pass listeners they opened
// instead of addresses.
type serveOptions struct {
	dir, httpsAddr, httpAddr, passwordFile string
	metricsAddr                            string
	httpsListener, httpListener            net.Listener
	// ready, if set, receives the running server's URLs once both listen.
	ready func(httpsURL, httpURL string)
	// now, if set, is the server's clock instead of time.Now: tests set
	// it back to issue certificates that are already old. No flag or
	// environment variable sets it.
	now func() time.Time
	// noAuditTree opens a bbolt store with boltstore.Options.NoAuditTree:
	// the baseline of the audit tree's benchmark (audit_bench_test.go).
	// No flag or environment variable sets it.
	noAuditTree bool
}

// serverGCPercent is the GOGC of serve and proxy unless the environment
// sets one.
const serverGCPercent = 400

// setGCPercent sets serverGCPercent unless GOGC is set. Both servers make
// much short-lived garbage (ASN.1, TLS records, bbolt pages, HTTP
// headers): at the default GOGC=100 the collector took 12% of serve's CPU;
// 400 measured +25% enrollments/s for +30 MiB peak RSS, and +13% proxied
// keep-alive requests/s (make bench). An operator's GOGC wins.
func setGCPercent(e env) {
	if e.getenv("GOGC") == "" {
		debug.SetGCPercent(serverGCPercent)
	}
}

// setMaxProcs gives serve twice as many Ps as the CPUs it may use, unless
// GOMAXPROCS is set. The store's committer spends each commit waiting in
// fdatasync and the handlers wait on it: with one P per CPU a committer
// that wakes queues behind the CPU-bound handlers (CSR checks, signing) for
// a time slice, commits grow long and both cores idle while every handler
// waits for one (84% busy at concurrency 32). With twice the Ps the kernel
// runs the woken thread at once: enrollments/s +8% and 90% busy (make
// bench, enrollload c=32, medians). An operator's GOMAXPROCS wins.
func setMaxProcs(e env) {
	if e.getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(2 * startProcs)
	}
}

// startProcs is GOMAXPROCS as the runtime chose it at start (the CPUs this
// process may use, container limits included), so that setMaxProcs is the
// same however often serve runs in one process (tests).
var startProcs = runtime.GOMAXPROCS(0)

// Server timeouts and limits, on both listeners.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
	shutdownGrace     = 10 * time.Second
)

// boltCRLHolder is serve's name to the CRL lease on a bbolt store. bbolt
// locks its file, so one process at a time serves it: a fixed name lets a
// serve restarted after a crash take its dead predecessor's lease back at
// once, and sign a CRL with what was revoked just before the crash,
// instead of waiting out revocation.crl_lease. Replicas sharing a database
// must each have their own name: leave revocation.Deps.Holder empty there.
const boltCRLHolder = "fleetca-bolt"

// crlHolder is serve's name to the CRL lease on the store sc names: the
// fixed boltCRLHolder on bbolt, and "" (a name of its own, new at each
// start) on PostgreSQL, where replicas share the lease.
func crlHolder(sc storeConfig) string {
	if sc.Driver == driverPostgres {
		return ""
	}
	return boltCRLHolder
}

// runServe is the composition root of the server.
func runServe(ctx context.Context, e env, o serveOptions) error {
	cfg, err := loadConfig(o.dir)
	if err != nil {
		return err
	}
	if o.httpsAddr != "" {
		cfg.Server.HTTPSAddr = o.httpsAddr
	}
	defaultPublic := cfg.Server.PublicURL == "http://"+cfg.Server.HTTPAddr
	if o.httpAddr != "" {
		cfg.Server.HTTPAddr = o.httpAddr
	}
	if o.metricsAddr != "" {
		cfg.Server.MetricsAddr = o.metricsAddr
		if err := cfg.validate(); err != nil {
			return err
		}
	}
	password, err := readPassword(o.passwordFile, cfg.PasswordFile, e.getenv)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	setGCPercent(e)
	setMaxProcs(e)
	now := time.Now
	if o.now != nil {
		now = o.now
	}

	httpsLn, httpLn := o.httpsListener, o.httpListener
	if httpsLn == nil {
		if httpsLn, err = net.Listen("tcp", cfg.Server.HTTPSAddr); err != nil {
			return listenError(err, "HTTPS", cfg.Server.HTTPSAddr, "--https-addr", "server.https_addr")
		}
	}
	defer httpsLn.Close()
	if httpLn == nil {
		if httpLn, err = net.Listen("tcp", cfg.Server.HTTPAddr); err != nil {
			return listenError(err, "HTTP", cfg.Server.HTTPAddr, "--http-addr", "server.http_addr")
		}
	}
	defer httpLn.Close()
	var metricsLn net.Listener
	if metricsOn(cfg.Server.MetricsAddr) {
		if metricsLn, err = net.Listen("tcp", cfg.Server.MetricsAddr); err != nil {
			return listenError(err, "metrics", cfg.Server.MetricsAddr, "--metrics-addr", "server.metrics_addr")
		}
		defer metricsLn.Close()
	}
	if defaultPublic {
		cfg.Server.PublicURL = "http://" + httpLn.Addr().String()
	}

	// On PostgreSQL, replicas starting together migrate the schema once
	// (pgstore holds an advisory lock), and a newer schema is refused.
	st, err := openStore(ctx, o.dir, cfg.Store, storeOptions{migrate: true, logger: logger, noAuditTree: o.noAuditTree})
	if err != nil {
		return err
	}
	defer st.Close()
	authority, err := ca.New(ctx, cfg.CA, ca.Deps{Dir: o.dir, Password: password, PublicURL: cfg.Server.PublicURL,
		TrustDomain: cfg.TrustDomain, CRLPartitions: cfg.Revocation.CRLPartitions, Now: now, Logger: logger})
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	revSvc, err := revocation.New(ctx, cfg.Revocation, revocation.Deps{Store: st, CA: authority, PublicURL: strings.TrimSuffix(cfg.Server.PublicURL, "/"),
		RootCRLPath: filepath.Join(o.dir, rootCRLName), Now: now, Logger: logger, Metrics: reg, Holder: crlHolder(cfg.Store)})
	if err != nil {
		return err
	}
	dns, ips := serverNames(cfg.Server)
	// A renewal token names the renew URL on one of the names the HTTPS
	// certificate carries, with the port the listener has.
	_, httpsPort, err := net.SplitHostPort(httpsLn.Addr().String())
	if err != nil {
		return fmt.Errorf("HTTPS listener address: %w", err)
	}
	cfg.Enroll.RenewURLs = enroll.RenewURLs(append(dns, ipStrings(ips)...), httpsPort)
	stepKey, created, err := ca.StepProvisionerKey(o.dir, cfg.CA, password)
	if err != nil {
		return err
	}
	caCfg := cfg.CA.WithDefaults()
	if created {
		logger.Info("created the step provisioner key", "path", caCfg.StepProvisionerKey, "provisioner", caCfg.StepProvisioner)
	}
	auditKey, auditVKey, created, err := ca.AuditKey(o.dir, cfg.CA, cfg.Name, password)
	if err != nil {
		return err
	}
	if created {
		logger.Info("created the audit key", "path", caCfg.AuditKey, "public_key", filepath.Join(o.dir, ca.AuditPublicKeyFile))
	}
	checkpointer, err := auditlog.NewCheckpointer(cfg.Audit, auditlog.Deps{Store: st, Signer: auditKey, Now: now, Logger: logger})
	if err != nil {
		return err
	}
	step := &enroll.StepProvisioner{Name: caCfg.StepProvisioner, Key: stepKey,
		SignURLs: enroll.StepSignURLs(append(dns, ipStrings(ips)...), httpsPort)}
	// The HTTPS listener learns of manufacturer CAs as admins add and
	// remove them; cert is set before the listener serves.
	var cert *web.ServerCert
	svc, err := enroll.New(cfg.Enroll, enroll.Deps{Store: st, CA: authority, Now: now, Logger: logger, Metrics: reg,
		Revoked: revSvc.Applied, Step: step, ManufacturerCAs: func(cas []*x509.Certificate) { cert.SetManufacturerCAs(cas) }})
	if err != nil {
		return err
	}
	// A CA initialised before admins had names: its admin token becomes
	// the owner "admin", once (on PostgreSQL, whichever replica is first).
	if _, err := svc.UpgradeAdminToken(ctx); err != nil {
		return err
	}
	srv, err := web.New(cfg.Web, web.Deps{Enroll: svc, CA: authority, Records: st, Revocation: revSvc, Now: now,
		Audit:   auditlog.NewPublic(st, auditVKey),
		Version: versionString(), Logger: logger, Metrics: reg,
		Ready: func(ctx context.Context) error { return storeReady(ctx, st) }})
	if err != nil {
		return err
	}
	cert, err = web.NewServerCert(ctx, authority, web.ServerCertConfig{DNSNames: dns, IPs: ips, Now: now, Logger: logger,
		NewKey:    func() (crypto.Signer, error) { return ca.GenerateKey(ca.KeyECP256) },
		ClientCAs: []*x509.Certificate{authority.Intermediate()}})
	if err != nil {
		return err
	}
	mfrCAs, err := svc.ManufacturerCAs(ctx)
	if err != nil {
		return fmt.Errorf("read manufacturer CAs: %w", err)
	}
	cert.SetManufacturerCAs(mfrCAs)

	errLog := log.New(&tlsErrorFilter{log: logger}, "", 0)
	httpsSrv := &http.Server{Handler: srv.HTTPSHandler(), TLSConfig: cert.TLSConfig(), ErrorLog: errLog,
		ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout, WriteTimeout: writeTimeout, IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes}
	// Verifiers long-poll the revocation feed; end their polls when
	// shutdown begins rather than wait out shutdownGrace for them.
	httpsSrv.RegisterOnShutdown(srv.Drain)
	httpSrv := &http.Server{Handler: srv.HTTPHandler(), ErrorLog: errLog,
		ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout, WriteTimeout: writeTimeout, IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes}

	httpsURL := "https://" + httpsLn.Addr().String()
	httpURL := "http://" + httpLn.Addr().String()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return serveUntil(gctx, httpsSrv, func() error { return httpsSrv.ServeTLS(httpsLn, "", "") })
	})
	g.Go(func() error { return serveUntil(gctx, httpSrv, func() error { return httpSrv.Serve(httpLn) }) })
	g.Go(func() error {
		if err := cert.Run(gctx); !errors.Is(err, context.Canceled) {
			return err
		}
		return nil
	})
	listening := []any{"https", httpsURL, "http", httpURL, "public_url", cfg.Server.PublicURL, "store", describeStore(o.dir, cfg.Store)}
	metricsURL := ""
	if metricsLn != nil {
		metricsURL = "http://" + metricsLn.Addr().String() + "/metrics"
		listening = append(listening, "metrics", metricsURL)
		msrv := &http.Server{Handler: metricsHandler(reg), ErrorLog: errLog, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout,
			WriteTimeout: writeTimeout, IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes}
		g.Go(func() error { return serveUntil(gctx, msrv, func() error { return msrv.Serve(metricsLn) }) })
	}
	g.Go(func() error { return revSvc.Run(gctx) })
	g.Go(func() error { return svc.Run(gctx) })
	// A checkpoint now (rows written since the last one, by a CA that
	// stopped without signing: kill -9), then every audit.checkpoint_every.
	if !o.noAuditTree { // the benchmark's baseline has no tree to sign
		g.Go(func() error { return checkpointer.Run(gctx) })
	}
	logger.Info("listening", listening...)
	printBanner(e.stderr, e.prog, o.dir, cfg, authority.RootFingerprint(), httpsURL, httpURL, metricsURL)
	if o.ready != nil {
		o.ready(httpsURL, httpURL)
	}
	err = g.Wait()
	// Admin authentication failures still counted, not yet audited.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if ferr := srv.FlushAuthFailures(fctx); ferr != nil {
		err = errors.Join(err, fmt.Errorf("audit admin authentication failures: %w", ferr))
	}
	// The last rows, now that no request is under way, get their
	// checkpoint: a CA stopped gracefully leaves no row unsigned.
	if _, serr := checkpointer.Sign(fctx); serr != nil && !o.noAuditTree {
		err = errors.Join(err, fmt.Errorf("sign the last audit checkpoint: %w", serr))
	}
	logger.Info("stopped")
	return err
}

// readyTimeout bounds the store read of a readiness check, so that an
// unreachable database makes /healthz answer 503 rather than hang.
const readyTimeout = 5 * time.Second

// storeReady is the readiness check: the store answers a read (on
// PostgreSQL, a round trip to the database) of what init wrote.
func storeReady(ctx context.Context, st store.Store) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	_, err := st.GetMeta(ctx, "admin_token_sha256")
	return err
}

// serveUntil runs serve until ctx ends, then shuts srv down gracefully.
func serveUntil(ctx context.Context, srv *http.Server, serve func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down %s: %w", srv.Addr, err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// serverNames lists the HTTPS certificate's names: the configured DNS names,
// localhost, the loopback addresses and the listener's own host if it is an IP.
func serverNames(c serverConfig) ([]string, []net.IP) {
	dns := append([]string{}, c.DNS...)
	dns = append(dns, "localhost")
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if host, _, err := net.SplitHostPort(c.HTTPSAddr); err == nil {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() && !ip.IsLoopback() {
			ips = append(ips, ip)
		} else if ip == nil && host != "" && host != "localhost" {
			dns = append(dns, host)
		}
	}
	return dns, ips
}

// ipStrings formats addresses for URLs' hosts.
func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

// tlsErrorFilter sends net/http's error log to slog, with the TLS handshake
// noise of scanners and refused clients at Debug.
type tlsErrorFilter struct{ log *slog.Logger }

func (f *tlsErrorFilter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelWarn
	if strings.Contains(msg, "TLS handshake error") {
		level = slog.LevelDebug
	}
	f.log.Log(context.Background(), level, "http server", "err", msg)
	return len(p), nil
}

// printBanner tells a newcomer what to do next.
func printBanner(w io.Writer, prog, dir string, cfg fileConfig, fingerprint, httpsURL, httpURL, metricsURL string) {
	if metricsURL == "" {
		metricsURL = "off (server.metrics_addr)"
	}
	root := filepath.Join(dir, cfg.CA.RootCert)
	if prog == "" {
		prog = "fleetca"
	}
	fmt.Fprintf(w, `
fleetca is serving CA %[1]q from %[2]s
  HTTPS (enrollment, admin API): %[3]s
  HTTP  (CA certs, CRL, OCSP):   %[4]s
  metrics (Prometheus):          %[9]s
  root certificate:              %[5]s
  root SHA-256 fingerprint:      %[6]s
  admin token:                   %[7]s
  store:                         %[10]s
Enroll a device with fleetca:
  T=$(%[8]s token create --dir %[2]s --device-id dev-1)
  %[8]s enroll --ca %[3]s --fingerprint %[6]s --token "$T" --key dev-1.key --cert dev-1.crt
Or with openssl and curl:
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout dev-2.key -subj /CN=dev-2 -out dev-2.csr
  curl --cacert %[5]s -H "Authorization: Bearer $(%[8]s token create --dir %[2]s --device-id dev-2)" --data-binary @dev-2.csr %[3]s/v1/enroll
Stop with Ctrl-C.

`, cfg.Name, dir, httpsURL, httpURL, root, fingerprint, filepath.Join(dir, adminTokenName), prog, metricsURL, describeStore(dir, cfg.Store))
}

// listenError says why serve cannot listen on addr, and what to do: for an
// address in use, stop the other server or choose another port.
func listenError(err error, what, addr, flag, key string) error {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fault.Wrap(err, fault.Conflict, fmt.Sprintf("cannot listen for %s on %s: another process already listens there", what, addr),
			fmt.Sprintf("stop it (another fleetca serve or make run?), or choose a free port with %s or %s in fleetca.yaml; 'ss -ltnp' shows who has it", flag, key))
	case errors.Is(err, syscall.EACCES):
		return fault.Wrap(err, fault.Forbidden, fmt.Sprintf("cannot listen for %s on %s: permission denied", what, addr),
			fmt.Sprintf("ports below 1024 need root or CAP_NET_BIND_SERVICE; choose a port above 1023 with %s or %s", flag, key))
	}
	return fmt.Errorf("listen %s on %s: %w", what, addr, err)
}
