package proxy

import (
	"fmt"
	"math"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetca/fleetca/verify"
)

// metrics are the Server's collectors. Labels are bounded: handshake
// outcomes and reasons come from closed sets, requests are labelled by
// status class.
type metrics struct {
	handshakes     *prometheus.CounterVec
	byReason       map[string]prometheus.Counter // reason -> its series (the reason implies the outcome)
	jwtByReason    map[string]prometheus.Counter // device JWTs checked, by reason (ok: accepted)
	requests       [6]prometheus.Counter         // by status class: 0 = other, 1 = 1xx ... 5 = 5xx
	fastRequests   prometheus.Counter            // requests served by the HTTP/1.1 fast path (also in requests)
	revokedClosed  prometheus.Counter
	staleClosed    prometheus.Counter
	upstreamErrors prometheus.Counter
	mqttConnects   map[string]prometheus.Counter // by reason: the MQTT CONNECTs checked for a device JWT
	mqttConnectVec *prometheus.CounterVec
}

// crlSource is what a Checker that keeps a CRL (verify.Checker) also
// has: the proxy then exports the CRL's age.
type crlSource interface {
	CurrentCRL() *verify.CRL
}

func (s *Server) registerMetrics(r prometheus.Registerer) error {
	m := &metrics{byReason: map[string]prometheus.Counter{}, jwtByReason: map[string]prometheus.Counter{}}
	m.handshakes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fleetca_proxy_handshakes_total",
		Help: "Client TLS handshakes by outcome (accepted, refused, failed) and reason."}, []string{"outcome", "reason"})
	m.byReason[reasonOK] = m.handshakes.WithLabelValues(outcomeAccepted, reasonOK)
	for _, r := range refusalReasons {
		m.byReason[r] = m.handshakes.WithLabelValues(outcomeRefused, r)
	}
	for _, r := range failureReasons {
		m.byReason[r] = m.handshakes.WithLabelValues(outcomeFailed, r)
	}
	jwts := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fleetca_proxy_jwt_total",
		Help: "Requests authenticated by a device JWT (Config.Auth jwt or any), by outcome (accepted, refused) and reason."}, []string{"outcome", "reason"})
	if s.cfg.Auth != AuthMTLS {
		m.byReason[reasonJWT] = m.handshakes.WithLabelValues(outcomeAccepted, reasonJWT)
		m.jwtByReason[reasonOK] = jwts.WithLabelValues(outcomeAccepted, reasonOK)
		for _, r := range jwtReasons {
			m.jwtByReason[r] = jwts.WithLabelValues(outcomeRefused, r)
		}
	}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fleetca_proxy_requests_total",
		Help: "HTTP requests proxied, by response status class."}, []string{"code"})
	for i, class := range []string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"} {
		m.requests[i] = requests.WithLabelValues(class)
	}
	m.fastRequests = prometheus.NewCounter(prometheus.CounterOpts{Name: "fleetca_proxy_fast_path_requests_total",
		Help: "HTTP requests served by the HTTP/1.1 fast path (counted in fleetca_proxy_requests_total too); none while Config.DisableHTTP1FastPath is set (fleetca proxy --http1-fast-path=false)."})
	m.revokedClosed = prometheus.NewCounter(prometheus.CounterOpts{Name: "fleetca_proxy_revoked_connections_closed_total",
		Help: "Open client connections closed because their certificate was revoked."})
	m.staleClosed = prometheus.NewCounter(prometheus.CounterOpts{Name: "fleetca_proxy_stale_connections_closed_total",
		Help: "Open client connections closed because the revocation data went stale (past its nextUpdate and grace)."})
	m.upstreamErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "fleetca_proxy_upstream_errors_total",
		Help: "Requests or TCP connections that failed because the upstream could not be reached or failed."})
	m.mqttConnectVec = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fleetca_proxy_mqtt_connects_total",
		Help: "MQTT CONNECT packets checked for a device JWT (TCP mode with mqtt, clients without a certificate), by outcome (accepted, refused, failed) and reason; outcome closed, reason session_expired: an accepted session closed when its token expired."},
		[]string{"outcome", "reason"})
	m.mqttConnects = map[string]prometheus.Counter{}
	for _, r := range mqttReasons {
		outcome := outcomeRefused
		switch r {
		case reasonOK:
			outcome = outcomeAccepted
		case reasonTimeout, reasonEOF:
			outcome = outcomeFailed
		case mqttReasonExpired:
			outcome = outcomeClosed
		}
		m.mqttConnects[r] = m.mqttConnectVec.WithLabelValues(outcome, r)
	}
	open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "fleetca_proxy_open_connections",
		Help: "Client connections open, handshaking ones included."}, func() float64 { return float64(s.OpenConnections()) })
	collectors := []prometheus.Collector{m.handshakes, jwts, requests, m.fastRequests, m.revokedClosed, m.staleClosed, m.upstreamErrors, open}
	if s.cfg.MQTT {
		collectors = append(collectors, m.mqttConnectVec)
	}
	if src, ok := s.checker.(crlSource); ok {
		collectors = append(collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "fleetca_proxy_crl_age_seconds",
			Help: "Age of the CRL the revocation checker uses (now minus its thisUpdate); +Inf before one is loaded."},
			func() float64 {
				crl := src.CurrentCRL()
				if crl == nil {
					return math.Inf(1)
				}
				return s.now().Sub(crl.ThisUpdate).Seconds()
			}))
	}
	s.m = m
	if r == nil {
		return nil
	}
	for _, c := range collectors {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("register proxy metrics: %w", err)
		}
	}
	return nil
}

// handshake counts one handshake.
func (m *metrics) handshake(reason string) {
	if c := m.byReason[reason]; c != nil {
		c.Inc()
	}
}

// jwt counts one device JWT checked.
func (m *metrics) jwt(reason string) {
	if c := m.jwtByReason[reason]; c != nil {
		c.Inc()
	}
}

// request counts one request by its status class.
func (m *metrics) request(status int) {
	class := status / 100
	if class < 1 || class > 5 {
		class = 0
	}
	m.requests[class].Inc()
}

// mqttConnect counts one CONNECT checked for a device JWT.
func (m *metrics) mqttConnect(reason string) {
	if c := m.mqttConnects[reason]; c != nil {
		c.Inc()
	}
}
