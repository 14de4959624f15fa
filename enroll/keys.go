package enroll

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// DeviceKeys returns the certificates whose keys device id may sign its
// JWTs with (issue 17): its live certificates (unrevoked, unexpired now),
// newest first, at most max_active_certificates of them; none for a
// revoked device. The CA publishes their keys as the device's JWK Set.
//
// Errors: fault.NotFound for an unknown device.
func (s *Service) DeviceKeys(ctx context.Context, id api.DeviceID) ([]store.Certificate, error) {
	d, err := s.store.GetDevice(ctx, string(id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fault.Wrap(err, fault.NotFound, fmt.Sprintf("no device has ID %q", id), "check the device ID")
	}
	if err != nil {
		return nil, fmt.Errorf("device keys of %q: %w", id, err)
	}
	if d.Status == store.DeviceRevoked {
		return nil, nil
	}
	now := s.now()
	var live []store.Certificate
	for p := (store.Page{Limit: store.MaxPageLimit}); ; {
		certs, err := s.store.ListCertificates(ctx, d.ID, p)
		if err != nil {
			return nil, fmt.Errorf("device keys of %q: %w", id, err)
		}
		for _, c := range certs {
			if c.Live(now) {
				live = append(live, c)
			}
		}
		if len(certs) < p.Limit {
			break
		}
		p.After = certs[len(certs)-1].Serial.Text(16)
	}
	slices.SortFunc(live, func(a, b store.Certificate) int { return b.IssuedAt.Compare(a.IssuedAt) })
	if len(live) > s.cfg.MaxActiveCertificates {
		live = live[:s.cfg.MaxActiveCertificates]
	}
	return live, nil
}
