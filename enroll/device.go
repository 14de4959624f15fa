package enroll

import (
	"fmt"
	"path"
	"strings"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
)

// checkPattern checks a device-ID glob (path.Match syntax): non-empty, at
// most api.MaxDeviceIDLen bytes, well formed, and with no '/' (device IDs have
// none, so such a pattern could match nothing).
func checkPattern(p string) error {
	const hint = "use a glob of device-ID characters with * ? and [...], like 'line3-*'"
	switch {
	case p == "":
		return fault.New(fault.Malformed, "the device pattern is empty", hint)
	case len(p) > api.MaxDeviceIDLen:
		return fault.New(fault.Malformed, fmt.Sprintf("the device pattern is longer than %d characters", api.MaxDeviceIDLen), hint)
	case strings.ContainsAny(p, "/\\"):
		return fault.New(fault.Malformed, fmt.Sprintf("the device pattern %q contains a slash", p), hint)
	}
	if _, err := path.Match(p, ""); err != nil {
		return fault.Wrap(err, fault.Malformed, fmt.Sprintf("the device pattern %q is not a valid glob", p), hint)
	}
	return nil
}

// matchPattern reports whether id matches the checked pattern p.
func matchPattern(p string, id api.DeviceID) bool {
	ok, err := path.Match(p, string(id))
	return err == nil && ok
}

// checkAnyDevice refuses a checked pattern that matches every device ID
// unless the admin said so with anyDevice, and anyDevice with a pattern
// that does not: a request means what it says, or it is refused.
func checkAnyDevice(p string, anyDevice bool) error {
	switch all := AnyDevice(p); {
	case all && !anyDevice:
		return fault.WithField(fault.New(fault.Malformed,
			fmt.Sprintf("the device pattern %q matches every device ID: the token would enroll any new device", p),
			"narrow the pattern (like 'line3-*'), or set any_device to true if any new device may enroll with it"), "any_device")
	case !all && anyDevice:
		return fault.WithField(fault.New(fault.Malformed,
			fmt.Sprintf("any_device is set, but the device pattern %q does not match every device ID", p),
			"leave any_device unset for a pattern that names some devices only"), "any_device")
	}
	return nil
}

// idFirst and idRest are the characters a device ID may start with and
// the characters it may continue with (api.ParseDeviceID).
const (
	idFirst = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	idRest  = idFirst + "._-"
)

// AnyDevice reports whether the glob p (as checkPattern accepts it)
// matches every device ID, so that a token with it enrolls any new device.
// The answer is exact, by analysis of the glob rather than by probing:
// every token of a glob but '*' matches exactly one character, so a glob
// with two or more such tokens misses the IDs of one character, and one
// with none is all stars and matches everything. A glob with exactly one
// single-character token T, and one star or more, matches every ID
// exactly when
//   - T is followed by a star (T*, *T*): T holds every character an ID
//     may start with (for *T*, the ID made of one character T lacks
//     would otherwise get through);
//   - T only follows stars (*T): T holds every character an ID may end
//     with, which for IDs of two or more characters is any ID character.
//
// A glob with one token and no star matches only one-character IDs. "" is
// not a pattern and matches nothing.
func AnyDevice(p string) bool {
	if p == "" || checkPattern(p) != nil {
		return false
	}
	var single []string // the single-character tokens
	stars := 0
	starAfter := false // a star follows the first single-character token
	for rest := p; rest != ""; {
		n := 1
		switch rest[0] {
		case '*':
			stars++
			if len(single) > 0 {
				starAfter = true
			}
			rest = rest[1:]
			continue
		case '[':
			// checkPattern accepted p: the class ends at the first ']' after
			// its first character (Go's path.Match takes no ']' first, and p
			// has no escapes).
			n = 2 + strings.IndexByte(rest[2:], ']') + 1
		}
		single = append(single, rest[:n])
		rest = rest[n:]
	}
	switch {
	case len(single) == 0:
		return true
	case len(single) > 1 || stars == 0:
		return false
	case starAfter:
		return matchesAll(single[0], idFirst)
	default:
		return matchesAll(single[0], idRest)
	}
}

// matchesAll reports whether the one-character glob tok matches each
// character of chars.
func matchesAll(tok, chars string) bool {
	for _, c := range chars {
		if ok, err := path.Match(tok, string(c)); err != nil || !ok {
			return false
		}
	}
	return true
}
