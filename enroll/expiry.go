package enroll

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetca/fleetca/store"
)

// ExpiryRefresh is how often Run recounts the devices by the time to
// expiry of their certificates (fleetca_enroll_device_certificates): a
// scrape reads the last count, never the store.
const ExpiryRefresh = 5 * time.Minute

// Buckets of fleetca_enroll_device_certificates, by the time left before
// a device's newest unrevoked certificate expires.
const (
	bucketExpired        = "expired"          // past ca.renew_after_expiry: the device must enroll again
	bucketExpiredInGrace = "expired_in_grace" // may still renew with a renewal token
	bucketDay            = "lt_1d"
	bucketWeek           = "lt_7d"
	bucketMonth          = "lt_30d"
	bucketLater          = "ge_30d"
)

var expiryBuckets = []string{bucketExpired, bucketExpiredInGrace, bucketDay, bucketWeek, bucketMonth, bucketLater}

func newExpiryGauge() *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "fleetca_enroll_device_certificates",
		Help: "Active devices by the time to expiry of their newest unrevoked certificate: expired (past ca.renew_after_expiry), " +
			"expired_in_grace, lt_1d, lt_7d, lt_30d, ge_30d. Recounted every 5 minutes; alert on devices that stopped renewing.",
	}, []string{"expires_in"})
}

// expiryBucket names the bucket of a certificate that expires at notAfter.
func expiryBucket(notAfter, now time.Time, grace time.Duration) string {
	left := notAfter.Sub(now)
	switch {
	case left <= 0 && -left <= grace && grace > 0:
		return bucketExpiredInGrace
	case left <= 0:
		return bucketExpired
	case left < 24*time.Hour:
		return bucketDay
	case left < 7*24*time.Hour:
		return bucketWeek
	case left < 30*24*time.Hour:
		return bucketMonth
	}
	return bucketLater
}

// Run keeps fleetca_enroll_device_certificates current until ctx ends: it
// counts at once, then every ExpiryRefresh. A failed count is logged at
// Warn and the last one kept. It also re-reads the manufacturers every
// ManufacturerRefresh and tells Deps.ManufacturerCAs of a change (one
// made through another replica). It returns nil when ctx ends.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { s.manufacturerLoop(ctx) })
	for {
		if err := s.countExpiry(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.WarnContext(ctx, "count certificates by expiry", "err", err)
		}
		t := time.NewTimer(ExpiryRefresh)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// countExpiry reads every active device's certificates, a page at a time,
// and sets the gauge from its newest unrevoked one (devices without one
// are not counted).
func (s *Service) countExpiry(ctx context.Context) error {
	now := s.now()
	counts := make(map[string]float64, len(expiryBuckets))
	for after := ""; ; {
		devs, err := s.store.ListDevices(ctx, store.Page{After: after, Limit: store.MaxPageLimit})
		if err != nil {
			return fmt.Errorf("list devices: %w", err)
		}
		for _, d := range devs {
			if d.Status != store.DeviceActive {
				continue
			}
			c, ok, err := s.newest(ctx, d)
			if err != nil {
				return err
			}
			if ok {
				counts[expiryBucket(c.NotAfter, now, s.cfg.RenewAfterExpiry)]++
			}
		}
		if len(devs) < store.MaxPageLimit {
			break
		}
		after = devs[len(devs)-1].ID
	}
	for _, b := range expiryBuckets {
		s.expiry.WithLabelValues(b).Set(counts[b])
	}
	return nil
}
