package revocation

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Service's collectors.
type metrics struct {
	revocations prometheus.Counter
	crlNumber   prometheus.Gauge
	crlEntries  prometheus.Gauge
	crlBuild    prometheus.Histogram
	// leaseHeld and followAge read the Service when scraped.
	leaseHeld prometheus.GaugeFunc
	followAge prometheus.GaugeFunc
	followSeq prometheus.Gauge
	ocsp      *prometheus.CounterVec
	// hits are ocsp's cache-hit counters by status (ocsp.Good, Revoked,
	// Unknown), resolved once: a hit is the responder's hottest path.
	hits [3]prometheus.Counter
}

// hit counts a cached answer of the given status.
func (m *metrics) hit(status int) {
	if status >= 0 && status < len(m.hits) {
		m.hits[status].Inc()
		return
	}
	m.ocsp.WithLabelValues(statusName(status), "hit").Inc()
}

// register builds the collectors and registers them with r (none if r is
// nil); leaseHeld and followAge compute their gauges at each scrape.
func (m *metrics) register(r prometheus.Registerer, leaseHeld, followAge func() float64) error {
	m.revocations = prometheus.NewCounter(prometheus.CounterOpts{Name: "fleetca_revocation_certificates_revoked_total",
		Help: "Certificates revoked, through this replica or another sharing the store (each counted once per replica: aggregate replicas with max, not sum)."})
	m.crlNumber = prometheus.NewGauge(prometheus.GaugeOpts{Name: "fleetca_revocation_crl_number", Help: "Number of the device CRL being served."})
	m.crlEntries = prometheus.NewGauge(prometheus.GaugeOpts{Name: "fleetca_revocation_crl_entries", Help: "Entries on the device CRL being served."})
	m.crlBuild = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "fleetca_revocation_crl_build_seconds", Help: "Time to build and sign a device CRL.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)})
	m.leaseHeld = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "fleetca_revocation_crl_lease_held",
		Help: "1 while this replica holds the CRL signer's lease (revocation.crl_lease after it last built a CRL), else 0."}, leaseHeld)
	m.followSeq = prometheus.NewGauge(prometheus.GaugeOpts{Name: "fleetca_revocation_log_seq",
		Help: "Seq of the last revocation log entry this replica has read; replicas that follow agree on it."})
	m.followAge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "fleetca_revocation_follow_age_seconds",
		Help: "Seconds since this replica last read the store's revocation log and latest CRL (every revocation.poll_interval, and on change signals)."}, followAge)
	m.ocsp = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fleetca_revocation_ocsp_responses_total",
		Help: "OCSP responses by status and cache outcome."}, []string{"status", "cache"})
	for status := range m.hits {
		m.hits[status] = m.ocsp.WithLabelValues(statusName(status), "hit")
	}
	if r == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.revocations, m.crlNumber, m.crlEntries, m.crlBuild, m.leaseHeld, m.followSeq, m.followAge, m.ocsp} {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("register revocation metrics: %w", err)
		}
	}
	return nil
}
