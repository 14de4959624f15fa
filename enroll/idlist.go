package enroll

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
)

// maxIDListLine bounds one line of a device-ID list: an ID is at most
// api.MaxDeviceIDLen bytes, and a comment line has no business being
// longer than a screen or two.
const maxIDListLine = 4 << 10

// idListHint is the hint of every refused device-ID list.
const idListHint = "write one device ID a line; blank lines and lines starting with # are skipped"

// ParseDeviceIDList reads a factory station's list of device IDs: one ID
// a line, surrounding white space (and a Windows line end) ignored, blank
// lines and lines whose first non-blank character is # skipped, a UTF-8
// byte-order mark at the start tolerated. It returns the IDs in file order,
// or, for the first bad line (not a device ID, an ID given before, a line
// over 4 KiB), a fault.Malformed naming its line number, and no IDs: a
// list is taken whole or not at all. A list with no ID is refused too.
func ParseDeviceIDList(r io.Reader) ([]api.DeviceID, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxIDListLine)
	var ids []api.DeviceID
	first := make(map[api.DeviceID]int)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if n == 1 {
			line = bytes.TrimPrefix(line, []byte("\uFEFF"))
		}
		s := strings.TrimSpace(string(line))
		if s == "" || s[0] == '#' {
			continue
		}
		id, err := api.ParseDeviceID(s)
		if err != nil {
			var fe *fault.Error
			detail := err.Error()
			if errors.As(err, &fe) {
				detail = fe.Detail
			}
			return nil, fault.New(fault.Malformed, fmt.Sprintf("line %d: %s", n, detail), idListHint)
		}
		if m, ok := first[id]; ok {
			return nil, fault.New(fault.Malformed, fmt.Sprintf("line %d: the device ID %q was given on line %d already", n, id, m),
				"give each device ID once: one token per device")
		}
		first[id] = n
		ids = append(ids, id)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fault.New(fault.Malformed, fmt.Sprintf("line %d is longer than %d bytes", n+1, maxIDListLine), idListHint)
		}
		return nil, fmt.Errorf("read the device-ID list: %w", err)
	}
	if len(ids) == 0 {
		return nil, fault.New(fault.Malformed, "the device-ID list names no device", idListHint)
	}
	return ids, nil
}
