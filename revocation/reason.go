package revocation

import (
	"fmt"
	"strings"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
)

// acceptedReasons are the reasons a revocation may give, in RFC 5280
// §5.3.1 order: all of them but removeFromCRL, which RFC 5280 keeps for
// delta CRLs, to undo a certificateHold; fleetca publishes full CRLs only.
var acceptedReasons = []api.Reason{
	api.ReasonUnspecified, api.ReasonKeyCompromise, api.ReasonCACompromise, api.ReasonAffiliationChanged,
	api.ReasonSuperseded, api.ReasonCessationOfOperation, api.ReasonCertificateHold,
	api.ReasonPrivilegeWithdrawn, api.ReasonAACompromise,
}

// ReasonNames returns the names of the reasons a revocation may give (RFC
// 5280's, removeFromCRL excepted), in RFC 5280 order.
func ReasonNames() []string {
	names := make([]string, len(acceptedReasons))
	for i, r := range acceptedReasons {
		names[i] = r.String()
	}
	return names
}

// accepted reports whether a revocation may give r.
func accepted(r api.Reason) bool {
	for _, a := range acceptedReasons {
		if a == r {
			return true
		}
	}
	return false
}

// ParseReason reads a reason name, case-insensitively ("" means
// unspecified). Anything but one of ReasonNames is fault.Malformed, listing
// them; removeFromCRL says why it is refused.
func ParseReason(s string) (api.Reason, error) {
	if s == "" {
		return api.ReasonUnspecified, nil
	}
	for _, r := range acceptedReasons {
		if strings.EqualFold(s, r.String()) {
			return r, nil
		}
	}
	if strings.EqualFold(s, api.ReasonRemoveFromCRL.String()) {
		return 0, fault.New(fault.Malformed, "removeFromCRL is not a reason to revoke: RFC 5280 keeps it for delta CRLs",
			"to let a device enroll again after a revocation, reset the device; to revoke, use one of "+strings.Join(ReasonNames(), ", "))
	}
	return 0, fault.New(fault.Malformed, fmt.Sprintf("%q is not an RFC 5280 revocation reason", s),
		"use one of "+strings.Join(ReasonNames(), ", "))
}
