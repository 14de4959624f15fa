package backend

import (
	"context"
	"fmt"
	"math/big"

	"github.com/fleetca/fleetca/store"
)

// ParseSerialCursor parses a Page.After of ListCertificates, a serial in
// hex (either case, no prefix); "" is 0, the beginning. Anything else is
// an error wrapping no sentinel.
func ParseSerialCursor(after string) (*big.Int, error) {
	if after == "" {
		return new(big.Int), nil
	}
	for _, r := range after {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F') {
			return nil, fmt.Errorf("page cursor %q is not a hex serial", after)
		}
	}
	n, ok := new(big.Int).SetString(after, 16)
	if !ok {
		return nil, fmt.Errorf("page cursor %q is not a hex serial", after)
	}
	return n, nil
}

// LoadRecords is the loop of a store.Loader's Load: it passes each record
// next returns to add, until next says there are no more, and checks ctx
// every 1024 records. An error of add is wrapped with the record's number
// (from 1) and kind; one of next or ctx is returned as it is.
func LoadRecords(ctx context.Context, next func() (store.Record, bool, error), add func(store.Record) error) error {
	for n := 1; ; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		r, ok, err := next()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if err := add(r); err != nil {
			return fmt.Errorf("record %d (%s): %w", n, r.Kind(), err)
		}
	}
}
