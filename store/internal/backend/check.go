package backend

import (
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/fleetca/fleetca/store"
)

// MaxSerialBytes is the longest serial, in big-endian bytes, a store
// records. RFC 5280 allows 20 octets; fleetca's are 17, and longer ones
// come only from a caller's mistake.
const MaxSerialBytes = 255

// ValidSerial reports whether n is a serial a store can record: positive
// and at most MaxSerialBytes long.
func ValidSerial(n *big.Int) bool {
	return n != nil && n.Sign() > 0 && (n.BitLen()+7)/8 <= MaxSerialBytes
}

// CheckRevoke checks the arguments of Revoke: exactly one of r.Serial and
// r.DeviceID, and a non-zero r.At. It returns wrap, which prefixes an
// error of Revoke with what r revokes; err, when not nil, is complete
// (wrapped already) and wraps no sentinel. A serial that no store can
// hold is not refused here: it is never found.
func CheckRevoke(r store.RevokeRequest) (wrap func(error) error, err error) {
	switch {
	case r.Serial != nil && r.DeviceID != "":
		return nil, fmt.Errorf("revoke certificate %x of device %q: set a serial or a device ID, not both", r.Serial, r.DeviceID)
	case r.Serial != nil:
		wrap = func(err error) error { return fmt.Errorf("revoke certificate %x: %w", r.Serial, err) }
	case r.DeviceID != "":
		wrap = func(err error) error { return fmt.Errorf("revoke device %q: %w", r.DeviceID, err) }
	default:
		return nil, errors.New("revoke: a serial or a device ID is required")
	}
	if r.At.IsZero() {
		// A zero RevokedAt would record the certificate as unrevoked.
		return wrap, wrap(errors.New("revocation time is required"))
	}
	return wrap, nil
}

// CheckIssuance checks that is has the fields Issue requires: of
// is.Certificate a valid Serial (ValidSerial), a DeviceID without a NUL
// byte, KeyHash, NotAfter and DER, and a valid Parent if one is set. The
// error wraps no sentinel.
func CheckIssuance(is store.Issuance) error {
	c := is.Certificate
	switch {
	case c.Serial == nil:
		return errors.New("certificate serial is required")
	case !ValidSerial(c.Serial):
		return fmt.Errorf("serial %v is not positive or is longer than %d bytes", c.Serial, MaxSerialBytes)
	case c.DeviceID == "":
		return errors.New("certificate device ID is required")
	case strings.IndexByte(c.DeviceID, 0) >= 0:
		return errors.New("certificate device ID contains a NUL byte")
	case c.KeyHash == store.KeyHash{}:
		return errors.New("certificate key hash is required")
	case c.NotAfter.IsZero():
		return errors.New("certificate not-after time is required")
	case len(c.DER) == 0:
		return errors.New("certificate DER is required")
	case c.Parent != nil && !ValidSerial(c.Parent):
		return fmt.Errorf("parent serial %v is not positive or is longer than %d bytes", c.Parent, MaxSerialBytes)
	}
	return nil
}

// CheckRenewal checks that r has the fields Renew requires: r.Parent,
// r.Now, and of r.Certificate a valid Serial (ValidSerial), DeviceID,
// KeyHash, NotAfter, IssuedAt and DER. The error wraps no sentinel. A
// parent that no store can hold is not refused here: it is never found.
func CheckRenewal(r store.Renewal) error {
	c := r.Certificate
	switch {
	case r.Parent == nil:
		return errors.New("parent serial is required")
	case r.Now.IsZero():
		// It becomes LastRenewalAt and the RevokedAt of what is
		// superseded, where zero means "never".
		return errors.New("renewal time is required")
	case c.Serial == nil:
		return errors.New("certificate serial is required")
	case !ValidSerial(c.Serial):
		return fmt.Errorf("serial %v is not positive or is longer than %d bytes", c.Serial, MaxSerialBytes)
	case c.DeviceID == "":
		return errors.New("certificate device ID is required")
	case c.KeyHash == store.KeyHash{}:
		return errors.New("certificate key hash is required")
	case c.NotAfter.IsZero():
		return errors.New("certificate not-after time is required")
	case c.IssuedAt.IsZero():
		return errors.New("certificate issued-at time is required")
	case len(c.DER) == 0:
		return errors.New("certificate DER is required")
	}
	return nil
}

// CheckToken checks the fields CreateToken requires of t: an ID.
func CheckToken(t store.Token) error {
	if t.ID == "" {
		return errors.New("token ID is required")
	}
	return nil
}

// CheckTokens checks the arguments of CreateTokens: an audit event for
// each token, and each token as CheckToken does.
func CheckTokens(ts []store.Token, audits []store.AuditEvent) error {
	if len(ts) != len(audits) {
		return fmt.Errorf("%d tokens but %d audit events", len(ts), len(audits))
	}
	for _, t := range ts {
		if err := CheckToken(t); err != nil {
			return err
		}
	}
	return nil
}
