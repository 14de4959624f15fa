package enroll

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/adminctx"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// When to renew, in the manner of ACME ARI (RFC 9773) as Let's Encrypt's
// boulder answers it: a window around two thirds of the validity, one
// hundredth of the validity wide on either side; a certificate that must
// be replaced at once (revoked, or an admin asked for it) gets a short
// window that starts at that moment.
const (
	// urgentWindow is the width of the window of a certificate to replace
	// at once.
	urgentWindow = time.Hour
	// RenewalInfoRetryAfter is how long a client should wait before it
	// asks for a certificate's renewal info again, less a jitter of up to
	// RenewalInfoJitter, so that a fleet's agents do not ask in step.
	RenewalInfoRetryAfter = 6 * time.Hour
	RenewalInfoJitter     = 30 * time.Minute
)

// naturalWindow is the renewal window of a certificate valid over
// [notBefore, notAfter); the store keeps its end as Device.RenewBy.
func naturalWindow(notBefore, notAfter time.Time) (start, end time.Time) {
	return store.RenewalWindow(notBefore, notAfter)
}

// renewAfter is when the holder of a certificate should renew it: two
// thirds of the validity after notBefore, moved by a jitter of up to 1 %
// of the validity either way, whole seconds. The jitter comes from the
// serial, so the same certificate always gets the same answer, and a
// fleet enrolled in one hour does not renew in one minute.
func renewAfter(serial *big.Int, notBefore, notAfter time.Time) time.Time {
	v := notAfter.Sub(notBefore)
	span := 2*(v/100) + 1
	sum := sha256.Sum256(serial.Bytes())
	jitter := time.Duration(binary.BigEndian.Uint64(sum[:8])%uint64(span)) - v/100
	return notBefore.Add(v / 3 * 2).Add(jitter).Truncate(time.Second)
}

// window is a certificate's suggested renewal window at a moment: the
// natural one, unless urgent (the earliest of its revocation and an
// admin's renew-now after it was issued; zero if none) comes before its
// start: then a short window starting at urgent.
func window(c store.Certificate, urgent time.Time) api.Window {
	start, end := naturalWindow(c.NotBefore, c.NotAfter)
	if !urgent.IsZero() && urgent.Before(start) {
		start, end = urgent.Truncate(time.Second), urgent.Add(urgentWindow).Truncate(time.Second)
	}
	return api.Window{Start: start.UTC(), End: end.UTC()}
}

// urgentSince returns the earliest moment after c was issued from which it
// should be replaced at once: its revocation, its device's renew-now or
// the fleet's; zero if none.
func urgentSince(c store.Certificate, device store.Device, fleet time.Time) time.Time {
	var first time.Time
	for _, t := range []time.Time{c.RevokedAt, device.RenewNowAt, fleet} {
		if t.IsZero() || !t.After(c.IssuedAt) {
			continue
		}
		if first.IsZero() || t.Before(first) {
			first = t
		}
	}
	return first
}

// RenewalInfo is a certificate's suggested renewal window.
type RenewalInfo struct {
	Info api.RenewalInfo
	// RetryAfter is when to ask again: RenewalInfoRetryAfter less a
	// random jitter of up to RenewalInfoJitter.
	RetryAfter time.Duration
}

// RenewalInfo returns the renewal window of the certificate with the
// serial (GET /v1/renewal-info/{serial}, RFC 9773 §4.2): two thirds
// through its validity, ±1 %; or a window of an hour that started when it
// was revoked or an admin asked its device (or the whole fleet) to renew
// now, if that came after the certificate was issued and before the
// natural window. Anyone may ask: a serial is no secret. An unknown serial
// is fault.NotFound.
func (s *Service) RenewalInfo(ctx context.Context, serial *big.Int) (RenewalInfo, error) {
	c, err := s.store.GetCertificate(ctx, serial)
	if errors.Is(err, store.ErrNotFound) {
		return RenewalInfo{}, fault.Wrap(err, fault.NotFound, fmt.Sprintf("no certificate has serial %s", serial.Text(16)),
			"ask about a certificate this CA issued, by its serial in hex")
	}
	if err != nil {
		return RenewalInfo{}, fmt.Errorf("renewal info of %s: %w", serial.Text(16), err)
	}
	urgent, err := s.urgent(ctx, c)
	if err != nil {
		return RenewalInfo{}, err
	}
	return RenewalInfo{
		Info:       api.RenewalInfo{SuggestedWindow: window(c, urgent)},
		RetryAfter: RenewalInfoRetryAfter - rand.N(RenewalInfoJitter),
	}, nil
}

// urgent reads what urgentSince needs: the device and the fleet's
// renew-now.
func (s *Service) urgent(ctx context.Context, c store.Certificate) (time.Time, error) {
	d, err := s.store.GetDevice(ctx, c.DeviceID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return time.Time{}, fmt.Errorf("renewal info: read device %q: %w", c.DeviceID, err)
	}
	fleet, err := s.store.FleetRenewNow(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("renewal info: read the fleet's renew-now: %w", err)
	}
	return urgentSince(c, d, fleet), nil
}

// schedule fills in when the holder of res.Certificate should renew it,
// as a freshly issued certificate: RenewAfter, and the natural window.
func schedule(res *Result) {
	c := res.Certificate
	res.RenewAfter = renewAfter(c.SerialNumber, c.NotBefore, c.NotAfter).UTC()
	start, end := naturalWindow(c.NotBefore, c.NotAfter)
	res.RenewalInfo = api.RenewalInfo{SuggestedWindow: api.Window{Start: start.UTC(), End: end.UTC()}}
}

// RenewNow asks a device to renew now: from now on the renewal window of
// every certificate it holds starts at once, and its agent renews at its
// next check of the renewal info. Audited. An unknown device is
// fault.NotFound. It returns the moment recorded.
func (s *Service) RenewNow(ctx context.Context, id api.DeviceID) (time.Time, error) {
	now := s.now().UTC()
	err := s.store.RenewNow(ctx, string(id), now, store.AuditEvent{Time: now, Action: "device.renew_now", Actor: adminctx.Actor(ctx), DeviceID: string(id)})
	if errors.Is(err, store.ErrNotFound) {
		return time.Time{}, fault.Wrap(err, fault.NotFound, fmt.Sprintf("no device has ID %q", id), "list the devices to find its ID")
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("renew-now of device %q: %w", id, err)
	}
	s.log.InfoContext(ctx, "device asked to renew now", "device_id", string(id))
	return now, nil
}

// FleetRenewNow asks every device to renew now, as RenewNow does one
// (after an intermediate rotation or an incident). Audited.
func (s *Service) FleetRenewNow(ctx context.Context) (time.Time, error) {
	now := s.now().UTC()
	if err := s.store.RenewNow(ctx, "", now, store.AuditEvent{Time: now, Action: "fleet.renew_now", Actor: adminctx.Actor(ctx)}); err != nil {
		return time.Time{}, fmt.Errorf("renew-now of the fleet: %w", err)
	}
	s.log.InfoContext(ctx, "fleet asked to renew now")
	return now, nil
}
