package web

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/enroll"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// Config is the web section of fleetca.yaml. Zero values mean the defaults.
type Config struct {
	// MaxBodyBytes bounds every request body. Default 65536; range 1024..1048576.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// TrustedProxies lists the reverse proxies (IP addresses or CIDR
	// prefixes) whose X-Forwarded-For is believed: a request from one of
	// them is taken to come from the right-most untrusted address of its
	// X-Forwarded-For. Default empty: the client is the connection's peer,
	// and no header can change that.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// AuthFailureLimit is how many failed admin authentications one client
	// address may make within AuthFailureWindow; past it, its admin
	// requests are answered 429 with Retry-After, unchecked (a right token
	// included), until the window ends. Default 10; range 1..10000.
	AuthFailureLimit int `yaml:"auth_failure_limit"`
	// AuthFailureWindow is the limit's window, which starts at an
	// address's first failure, and the audit log's: an address's failures
	// are recorded at most once per window, the first at once and the rest
	// as one row with their count. Default 1m; range 1s..1h.
	AuthFailureWindow time.Duration `yaml:"auth_failure_window"`
	// AuthFailureAddresses bounds how many client addresses the limit
	// tracks at once; addresses beyond it are limited together, as one.
	// Default 10000; range 100..1000000.
	AuthFailureAddresses int `yaml:"auth_failure_addresses"`
	// ESTLabel is the one EST label (RFC 7030 §3.2.2) served: EST answers
	// at /.well-known/est/ and /.well-known/est/<ESTLabel>/, and any other
	// label is 404. Default "fleet"; a device ID's characters.
	ESTLabel string `yaml:"est_label"`
}

// WithDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 64 << 10
	}
	if c.AuthFailureLimit == 0 {
		c.AuthFailureLimit = 10
	}
	if c.AuthFailureWindow == 0 {
		c.AuthFailureWindow = time.Minute
	}
	if c.AuthFailureAddresses == 0 {
		c.AuthFailureAddresses = 10000
	}
	if c.ESTLabel == "" {
		c.ESTLabel = "fleet"
	}
	return c
}

// Validate checks a Config that WithDefaults filled. It changes nothing.
func (c Config) Validate() error {
	if c.MaxBodyBytes < 1024 || c.MaxBodyBytes > 1<<20 {
		return fault.New(fault.Malformed, fmt.Sprintf("web.max_body_bytes is %d, outside 1024..1048576", c.MaxBodyBytes),
			"set web.max_body_bytes in fleetca.yaml to a value in that range")
	}
	for _, r := range []struct {
		key       string
		v, lo, hi int64
		unit      string
	}{
		{"auth_failure_limit", int64(c.AuthFailureLimit), 1, 10000, ""},
		{"auth_failure_window", int64(c.AuthFailureWindow), int64(time.Second), int64(time.Hour), "duration"},
		{"auth_failure_addresses", int64(c.AuthFailureAddresses), 100, 1000000, ""},
	} {
		if r.v >= r.lo && r.v <= r.hi {
			continue
		}
		got, lo, hi := strconv.FormatInt(r.v, 10), strconv.FormatInt(r.lo, 10), strconv.FormatInt(r.hi, 10)
		if r.unit == "duration" {
			got, lo, hi = time.Duration(r.v).String(), time.Duration(r.lo).String(), time.Duration(r.hi).String()
		}
		return fault.WithKey(fault.New(fault.Malformed, fmt.Sprintf("web.%s is %s, outside %s..%s", r.key, got, lo, hi),
			fmt.Sprintf("set web.%s in fleetca.yaml to a value in that range, or leave it unset for the default", r.key)), "web."+r.key)
	}
	if _, err := parseTrustedProxies(c.TrustedProxies); err != nil {
		return err
	}
	if _, err := api.ParseDeviceID(c.ESTLabel); err != nil {
		return fault.WithKey(fault.Wrap(err, fault.Malformed, fmt.Sprintf("web.est_label %q is not a valid label", c.ESTLabel),
			"set web.est_label in fleetca.yaml to letters, digits, '.', '_' or '-', or leave it unset for \"fleet\""), "web.est_label")
	}
	return nil
}

// Enroller is the registration authority as web uses it; *enroll.Service is one.
type Enroller interface {
	Enroll(ctx context.Context, token string, csrDER []byte) (*enroll.Result, error)
	EnrollStep(ctx context.Context, req enroll.StepSignRequest) (*enroll.Result, error)
	CreateToken(ctx context.Context, req enroll.TokenRequest) (enroll.Secret, store.Token, error)
	CreateTokens(ctx context.Context, req enroll.TokenBatchRequest) ([]enroll.Secret, []store.Token, error)
	ParseStepRevokeToken(tok string) (*big.Int, store.TokenHash, string, error)
	ListTokens(ctx context.Context, p store.Page) ([]store.Token, error)
	RevokeToken(ctx context.Context, id string) (store.Token, error)
	CheckAdmin(ctx context.Context, presented string) (store.Admin, error)
	CreateAdmin(ctx context.Context, name, role string) (enroll.Secret, store.Admin, error)
	ListAdmins(ctx context.Context) ([]store.Admin, error)
	DisableAdmin(ctx context.Context, name string) (store.Admin, error)
	RotateAdmin(ctx context.Context, name string) (enroll.Secret, store.Admin, error)
	AuditAdminAuthFailures(ctx context.Context, f enroll.AdminAuthFailures) error
	IssueServer(ctx context.Context, req enroll.ServerRequest) (*x509.Certificate, error)
	Renew(ctx context.Context, req enroll.RenewRequest) (*enroll.Result, error)
	RenewalInfo(ctx context.Context, serial *big.Int) (enroll.RenewalInfo, error)
	RenewNow(ctx context.Context, id api.DeviceID) (time.Time, error)
	FleetRenewNow(ctx context.Context) (time.Time, error)
	EnrollWithManufacturer(ctx context.Context, chain []*x509.Certificate, csrDER []byte) (*enroll.Result, error)
	AddManufacturer(ctx context.Context, req enroll.ManufacturerRequest) (store.Manufacturer, error)
	ListManufacturers(ctx context.Context) ([]store.Manufacturer, error)
	RemoveManufacturer(ctx context.Context, name string) error
	DeviceKeys(ctx context.Context, id api.DeviceID) ([]store.Certificate, error)
}

// Authority publishes the CA certificates; *ca.Authority is one.
type Authority interface {
	Root() *x509.Certificate
	Intermediate() *x509.Certificate
	RootPEM() []byte
	ChainPEM() []byte
	IntermediateDER() []byte
}

// Records is the read side of the store that the admin API and the
// console show; store.Store is one.
type Records interface {
	GetDevice(ctx context.Context, id string) (store.Device, error)
	ListDevices(ctx context.Context, p store.Page) ([]store.Device, error)
	GetCertificate(ctx context.Context, serial *big.Int) (store.Certificate, error)
	ListCertificates(ctx context.Context, deviceID string, p store.Page) ([]store.Certificate, error)
	ListAudit(ctx context.Context, afterSeq uint64, limit int) ([]store.AuditEvent, error)
	QueryDevices(ctx context.Context, q store.DeviceQuery) ([]store.Device, string, error)
	Stats(ctx context.Context, now time.Time) (store.Stats, error)
	QueryAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditEvent, uint64, error)
}

// Deps are the Server's collaborators.
type Deps struct {
	Enroll     Enroller
	CA         Authority
	Records    Records
	Revocation Revoker
	// Audit publishes the audit log (checkpoints, key, proofs); nil
	// serves none of its routes.
	Audit AuditLog
	// Now is the clock (for cache lifetimes); nil means time.Now.
	Now func() time.Time
	// Ready reports whether the service can take requests (for /healthz);
	// nil means always.
	Ready func(ctx context.Context) error
	// Version is what GET /version (a step CLI route) reports: what
	// `fleetca version` prints.
	Version string
	// Logger; nil discards.
	Logger *slog.Logger
	// Metrics registers request metrics; nil registers none. Neither
	// handler serves them: /metrics belongs on a listener of its own
	// (serve's metrics_addr), never on the public ones.
	Metrics prometheus.Registerer
}

// Server holds fleetca's two HTTP handlers.
type Server struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	now  func() time.Time
	// clientIP is echo's IPExtractor: c.RealIP() is the client's address.
	clientIP func(*http.Request) string
	// limiter limits and summarises failed admin authentications.
	limiter *authLimiter
	// authFailed and authRefused count what limiter sees.
	authFailed, authRefused prometheus.Counter
	requests                *prometheus.CounterVec
	latency                 *prometheus.HistogramVec
	https                   *echo.Echo
	http                    *echo.Echo
	// reqMetrics caches requests' and latency's children.
	reqMetrics requestMetrics
	// ocspHeaders formats OCSP answers' caching headers once per answer.
	ocspHeaders ocspHeaderCache
	// draining is closed by Drain.
	draining  chan struct{}
	drainOnce sync.Once
}

// New builds the handlers.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Enroll == nil || deps.CA == nil || deps.Records == nil || deps.Revocation == nil {
		return nil, errors.New("web.New: Enroll, CA, Records and Revocation are required")
	}
	trusted, err := parseTrustedProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, deps: deps, log: deps.Logger, now: deps.Now, draining: make(chan struct{}),
		clientIP: clientIPExtractor(trusted),
		limiter:  newAuthLimiter(cfg.AuthFailureLimit, cfg.AuthFailureWindow, cfg.AuthFailureAddresses)}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.authFailed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "fleetca_web_admin_auth_failures_total", Help: "Admin API requests whose admin token was missing, malformed or wrong.",
	})
	s.authRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "fleetca_web_admin_auth_refused_total", Help: "Admin API requests refused unchecked (429) because their address failed too often.",
	})
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fleetca_web_requests_total", Help: "HTTP requests by listener, route pattern, method and status code.",
	}, []string{"listener", "route", "method", "code"})
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "fleetca_web_request_duration_seconds", Help: "HTTP request latency by listener and route pattern.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"listener", "route"})
	if deps.Metrics != nil {
		for _, c := range []prometheus.Collector{s.requests, s.latency, s.authFailed, s.authRefused} {
			if err := deps.Metrics.Register(c); err != nil {
				return nil, fmt.Errorf("register web metrics: %w", err)
			}
		}
	}
	s.https = s.newEcho("https")
	s.http = s.newEcho("http")
	s.routes()
	if err := s.consoleRoutes(); err != nil {
		return nil, err
	}
	return s, nil
}

// HTTPSHandler serves the TLS listener.
func (s *Server) HTTPSHandler() http.Handler { return s.https }

// HTTPHandler serves the plain-HTTP listener.
func (s *Server) HTTPHandler() http.Handler { return s.http }

func (s *Server) newEcho(listener string) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = s.clientIP
	e.Use(headWithoutBody)
	e.Use(middleware.RequestID())
	e.Use(middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		HandleError: true, LogLatency: true, LogMethod: true, LogRoutePath: true, LogStatus: true,
		// remote_ip is taken below, once the line is known to be written.
		LogRequestID: true, LogError: true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			route := v.RoutePath
			if route == "" {
				route = "unmatched"
			}
			s.reqMetrics.count(s, listener, route, v.Method, v.Status, v.Latency)
			ctx := c.Request().Context()
			level := slog.LevelInfo
			if quiet, _ := c.Get(ctxQuietLog).(bool); quiet && v.Error == nil {
				level = slog.LevelDebug
			}
			if !s.log.Enabled(ctx, level) {
				return nil
			}
			attrs := []slog.Attr{
				slog.String("listener", listener), slog.String("method", v.Method), slog.String("route", route),
				slog.Int("status", v.Status), slog.Float64("duration_ms", float64(v.Latency.Microseconds())/1000),
				slog.String("request_id", v.RequestID), slog.String("remote_ip", c.RealIP()),
			}
			if id, ok := c.Get(ctxDeviceID).(string); ok {
				attrs = append(attrs, slog.String("device_id", id))
			}
			if name, ok := c.Get(ctxAdmin).(string); ok {
				attrs = append(attrs, slog.String("admin", name))
			}
			if v.Error != nil {
				attrs = append(attrs, logAttrErr(v.Error))
			}
			s.log.LogAttrs(ctx, level, "request", attrs...)
			return nil
		},
	}))
	return e
}

// ctxDeviceID is the echo context key under which handlers leave the device
// ID for the request log.
const ctxDeviceID = "device_id"

// ctxAdmin is the echo context key under which requireAdmin leaves the
// authenticated admin's name for the request log.
const ctxAdmin = "admin"

// ctxQuietLog is the echo context key under which a handler marks a
// request whose log line goes at Debug rather than Info: a signed OCSP
// answer (see writeOCSP). Metrics count it all the same.
const ctxQuietLog = "quiet_log"

// routes registers the handlers. Every GET of a document (not the feed's
// long-poll, not the admin API) also answers HEAD.
func (s *Server) routes() {
	for _, e := range []*echo.Echo{s.https, s.http} {
		getAndHead(e, api.HealthPath, s.healthz)
	}
	s.https.POST(api.EnrollPath, s.enroll)
	s.https.POST(api.RenewPath, s.renew)
	getAndHead(s.https, api.RenewalInfoPath+":serial", s.renewalInfo)
	getAndHead(s.https, api.RootsPEMPath, s.rootsPEM)
	s.https.GET(api.FeedPath, s.revocationFeed)
	s.stepRoutes()
	s.estRoutes()

	admin := s.https.Group(api.AdminPrefix, s.requireAdmin, s.requireRole)
	for _, r := range adminRoutes {
		admin.Add(r.method, r.path, r.handler(s))
	}

	getAndHead(s.http, api.RootsPEMPath, s.rootsPEM)
	getAndHead(s.http, api.ChainPEMPath, s.chainPEM)
	getAndHead(s.http, api.IntermediatePath, s.intermediateDER)
	getAndHead(s.http, api.CRLPath, s.crlDER)
	getAndHead(s.http, api.CRLPEMPath, s.crlPEM)
	getAndHead(s.http, api.RootCRLPath, s.rootCRL)
	getAndHead(s.http, api.PartitionsPath, s.crlPartitions)
	getAndHead(s.http, api.CRLPath+"/:partition", s.partitionCRL)
	getAndHead(s.http, api.DeviceKeysRoute, s.deviceKeys)
	s.http.POST(api.OCSPPath, s.ocspPost)
	getAndHead(s.http, api.OCSPPath+"/*", s.ocspGet)
	s.auditRoutes()
}

// healthz answers 200 {"status":"ok"} while the service can work, and 503
// with a problem otherwise.
func (s *Server) healthz(c echo.Context) error {
	if s.deps.Ready != nil {
		if err := s.deps.Ready(c.Request().Context()); err != nil {
			return fault.Wrap(err, fault.Unavailable, "the CA is not ready", "check the server log")
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) rootsPEM(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/x-pem-file", s.deps.CA.RootPEM())
}

func (s *Server) chainPEM(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/x-pem-file", s.deps.CA.ChainPEM())
}

// intermediateDER serves the caIssuers target of device certificates
// (RFC 5280 §4.2.2.1: a DER certificate, application/pkix-cert).
func (s *Server) intermediateDER(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/pkix-cert", s.deps.CA.IntermediateDER())
}

// readBody reads the request body through the size limit.
func (s *Server) readBody(c echo.Context) ([]byte, error) {
	return s.readLimited(c, s.cfg.MaxBodyBytes)
}

// readLimited reads a request body of at most limit bytes.
func (s *Server) readLimited(c echo.Context, limit int64) ([]byte, error) {
	if c.Request().ContentLength > limit {
		return nil, tooLarge(limit)
	}
	b, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, tooLarge(limit)
	}
	if err != nil {
		return nil, fault.Wrap(err, fault.Malformed, "the request body could not be read", "send the whole body")
	}
	return b, nil
}

func tooLarge(limit int64) error {
	return fault.New(fault.TooLarge, fmt.Sprintf("the request body is larger than %d bytes", limit),
		"send one request; a CSR from fleetca or openssl is under 16 KiB")
}

// jsonEncode writes v as JSON.
func jsonEncode(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

// timeAPI is a time as the API carries it in a time.Time field (RFC 3339
// once encoded): UTC, in whole seconds, as timeJSON writes it.
func timeAPI(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }

// timeJSON formats times at the API edge: RFC 3339, UTC.
func timeJSON(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// requestMetrics caches the children of Server.requests and
// Server.latency by their label values, so that a request does not hash
// them again: a hot route (OCSP) answers in a few microseconds. At most
// maxRequestMetrics label sets are cached; past that, requests look their
// children up as before.
type requestMetrics struct {
	m sync.Map // requestLabels -> *requestChildren
	n atomic.Int64
}

// maxRequestMetrics bounds requestMetrics (the method label comes from
// the client).
const maxRequestMetrics = 1024

// requestLabels are the label values of one request.
type requestLabels struct {
	listener, route, method string
	status                  int
}

// requestChildren are the collectors of one label set.
type requestChildren struct {
	requests prometheus.Counter
	latency  prometheus.Observer
}

// count counts a request in s.requests and s.latency.
func (r *requestMetrics) count(s *Server, listener, route, method string, status int, latency time.Duration) {
	k := requestLabels{listener, route, method, status}
	var ch *requestChildren
	if v, ok := r.m.Load(k); ok {
		ch = v.(*requestChildren)
	} else {
		ch = &requestChildren{s.requests.WithLabelValues(listener, route, method, strconv.Itoa(status)), s.latency.WithLabelValues(listener, route)}
		if r.n.Add(1) <= maxRequestMetrics {
			r.m.Store(k, ch)
		}
	}
	ch.requests.Inc()
	ch.latency.Observe(latency.Seconds())
}
