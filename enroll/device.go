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
