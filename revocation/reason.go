package revocation

import (
	"fmt"
	"slices"
	"strings"

	"github.com/fleetca/fleetca/internal/fault"
)

// Reason is an RFC 5280 §5.3.1 CRLReason code.
type Reason int

// The reasons of RFC 5280 §5.3.1; 7 is not used.
const (
	Unspecified          Reason = 0
	KeyCompromise        Reason = 1
	CACompromise         Reason = 2
	AffiliationChanged   Reason = 3
	Superseded           Reason = 4
	CessationOfOperation Reason = 5
	CertificateHold      Reason = 6
	RemoveFromCRL        Reason = 8
	PrivilegeWithdrawn   Reason = 9
	AACompromise         Reason = 10
)

var reasonNames = map[Reason]string{
	Unspecified: "unspecified", KeyCompromise: "keyCompromise", CACompromise: "cACompromise",
	AffiliationChanged: "affiliationChanged", Superseded: "superseded",
	CessationOfOperation: "cessationOfOperation", CertificateHold: "certificateHold",
	RemoveFromCRL: "removeFromCRL", PrivilegeWithdrawn: "privilegeWithdrawn", AACompromise: "aACompromise",
}

// String returns the RFC 5280 name of r.
func (r Reason) String() string {
	if s, ok := reasonNames[r]; ok {
		return s
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// ParseReason reads an RFC 5280 reason name, case-insensitively ("" means
// unspecified). Anything else is fault.Malformed listing the names.
// removeFromCRL is refused: RFC 5280 §5.3.1 reserves it for delta CRLs, to
// undo a certificateHold, and fleetca publishes full CRLs only.
func ParseReason(s string) (Reason, error) {
	if s == "" {
		return Unspecified, nil
	}
	for r, name := range reasonNames {
		if !strings.EqualFold(s, name) {
			continue
		}
		if r == RemoveFromCRL {
			return 0, fault.New(fault.Malformed, "removeFromCRL is not a reason to revoke: RFC 5280 keeps it for delta CRLs",
				"to let a device enroll again after a revocation, run 'fleetca devices reset ID'")
		}
		return r, nil
	}
	names := make([]string, 0, len(reasonNames))
	for _, n := range reasonNames {
		names = append(names, n)
	}
	slices.Sort(names)
	return 0, fault.New(fault.Malformed, fmt.Sprintf("%q is not an RFC 5280 revocation reason", s),
		"use one of "+strings.Join(names, ", "))
}
