package backend

import (
	"encoding/base64"
	"fmt"
	"time"

	"github.com/fleetca/fleetca/store"
)

// CheckDeviceQuery refuses the combinations store.DeviceQuery does not
// allow, with an error wrapping store.ErrBadQuery, and returns q with its
// Sort defaulted (SortID).
func CheckDeviceQuery(q store.DeviceQuery) (store.DeviceQuery, error) {
	if q.Sort == "" {
		q.Sort = store.SortID
	}
	switch q.Sort {
	case store.SortID, store.SortIDDesc, store.SortRenewBy, store.SortCreatedDesc:
	default:
		return q, fmt.Errorf("sort %q: %w", q.Sort, store.ErrBadQuery)
	}
	switch q.Status {
	case "", store.DeviceActive, store.DeviceRevoked:
	default:
		return q, fmt.Errorf("status %q: %w", q.Status, store.ErrBadQuery)
	}
	switch {
	case q.Prefix != "" && q.Sort != store.SortID && q.Sort != store.SortIDDesc:
		return q, fmt.Errorf("a prefix with sort %q: %w", q.Sort, store.ErrBadQuery)
	case q.Sort == store.SortRenewBy && q.Status == store.DeviceRevoked:
		return q, fmt.Errorf("sort %q lists active devices only: %w", q.Sort, store.ErrBadQuery)
	case !q.RenewByBefore.IsZero() && q.Sort != store.SortRenewBy:
		return q, fmt.Errorf("renew-by bound with sort %q: %w", q.Sort, store.ErrBadQuery)
	}
	return q, nil
}

// EncodeCursor makes an opaque, printable ASCII cursor of a backend's
// position (URL-safe base64, unpadded).
func EncodeCursor(pos []byte) string {
	return base64.RawURLEncoding.EncodeToString(pos)
}

// DecodeCursor is the inverse of EncodeCursor (strict: one spelling per
// cursor); "" is nil (the
// beginning). A cursor that is not one is an error wrapping
// store.ErrBadQuery.
func DecodeCursor(after string) ([]byte, error) {
	if after == "" {
		return nil, nil
	}
	for _, r := range after {
		// The decoder skips newlines: refuse them with the rest.
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_') {
			return nil, fmt.Errorf("cursor %q: %w", after, store.ErrBadQuery)
		}
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(after)
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("cursor %q: %w", after, store.ErrBadQuery)
	}
	return b, nil
}

// MatchAudit reports whether e matches every filter of q but BeforeSeq.
func MatchAudit(q store.AuditQuery, e store.AuditEvent) bool {
	return (q.Actor == "" || e.Actor == q.Actor) &&
		(q.Action == "" || e.Action == q.Action) &&
		(q.DeviceID == "" || e.DeviceID == q.DeviceID) &&
		(q.Since.IsZero() || !e.Time.Before(q.Since)) &&
		(q.Until.IsZero() || e.Time.Before(q.Until))
}

// AuditQueryLimits returns how many events one QueryAudit call of q
// returns at most (q.Limit bounded like store.Page.PageLimit), and how many
// a call that no index answers examines at most: scanLimit, the store's,
// or store.AuditScanLimit when that is not positive.
func AuditQueryLimits(q store.AuditQuery, scanLimit int) (limit, scan int) {
	if scanLimit <= 0 {
		scanLimit = store.AuditScanLimit
	}
	return store.Page{Limit: q.Limit}.PageLimit(), scanLimit
}

// DeviceCertificate returns the NotAfter and RenewBy a device takes from
// its newest certificate c (store.Device's doc).
func DeviceCertificate(c store.Certificate) (notAfter, renewBy time.Time) {
	_, end := store.RenewalWindow(c.NotBefore, c.NotAfter)
	return c.NotAfter, end
}
