package enroll

import (
	"fmt"
	"path"
	"strings"

	"github.com/fleetca/fleetca/internal/fault"
)

// DeviceID names one device: [A-Za-z0-9][A-Za-z0-9._-]{0,63}. A value of
// this type has been checked by ParseDeviceID.
//
// DESIGN.md allows 128 characters, but the device ID is the certificate's
// subject CN, and RFC 5280 Appendix A bounds a CN at ub-common-name = 64
// characters (zlint e_subject_common_name_max_length), so 64 is the limit.
type DeviceID string

// MaxDeviceIDLen is the longest device ID.
const MaxDeviceIDLen = 64

const deviceIDHint = "device IDs are 1 to 64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit"

// ParseDeviceID checks s against the device ID alphabet. It returns a
// fault.Malformed error naming the problem; callers reading a CSR turn it
// into BadCSR.
func ParseDeviceID(s string) (DeviceID, error) {
	switch {
	case s == "":
		return "", fault.New(fault.Malformed, "the device ID is empty", deviceIDHint)
	case len(s) > MaxDeviceIDLen:
		return "", fault.New(fault.Malformed,
			fmt.Sprintf("the device ID is %d characters long, more than %d", len(s), MaxDeviceIDLen), deviceIDHint)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if alnum || i > 0 && (c == '.' || c == '_' || c == '-') {
			continue
		}
		return "", fault.New(fault.Malformed,
			fmt.Sprintf("the device ID %q has %q at position %d", s, rune(c), i+1), deviceIDHint)
	}
	return DeviceID(s), nil
}

// checkPattern checks a device-ID glob (path.Match syntax): non-empty, at
// most MaxDeviceIDLen bytes, well formed, and with no '/' (device IDs have
// none, so such a pattern could match nothing).
func checkPattern(p string) error {
	const hint = "use a glob of device-ID characters with * ? and [...], like 'line3-*'"
	switch {
	case p == "":
		return fault.New(fault.Malformed, "the device pattern is empty", hint)
	case len(p) > MaxDeviceIDLen:
		return fault.New(fault.Malformed, fmt.Sprintf("the device pattern is longer than %d characters", MaxDeviceIDLen), hint)
	case strings.ContainsAny(p, "/\\"):
		return fault.New(fault.Malformed, fmt.Sprintf("the device pattern %q contains a slash", p), hint)
	}
	if _, err := path.Match(p, ""); err != nil {
		return fault.Wrap(err, fault.Malformed, fmt.Sprintf("the device pattern %q is not a valid glob", p), hint)
	}
	return nil
}

// matchPattern reports whether id matches the checked pattern p.
func matchPattern(p string, id DeviceID) bool {
	ok, err := path.Match(p, string(id))
	return err == nil && ok
}

// checkTrustDomain checks a SPIFFE trust domain name: lowercase letters,
// digits, '.', '-' and '_', 1..255 characters (SPIFFE-ID §2.1).
func checkTrustDomain(td string) error {
	const hint = "set trust_domain in fleetca.yaml to a lowercase name like fleet.example.com"
	if td == "" || len(td) > 255 {
		return fault.New(fault.Malformed, fmt.Sprintf("the trust domain %q is empty or too long", td), hint)
	}
	for i := 0; i < len(td); i++ {
		c := td[i]
		if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_' {
			continue
		}
		return fault.New(fault.Malformed, fmt.Sprintf("the trust domain %q has %q, which SPIFFE does not allow", td, rune(c)), hint)
	}
	return nil
}
