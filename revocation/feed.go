package revocation

import (
	"context"
	"fmt"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/store"
)

// Feed returns the revocations after seq (the revocation log, in order), at
// most limit (<= 0 means 1000). If there are none and wait > 0, it waits up
// to wait (at most api.FeedMaxWait) for the next revocation, then answers; an
// empty answer means none happened. This is the long-poll behind
// GET /v1/revocations that verifiers follow to learn of revocations within
// seconds; the CRL stays the signed fallback.
func (s *Service) Feed(ctx context.Context, seq uint64, limit int, wait time.Duration) ([]store.Revocation, error) {
	wait = min(wait, api.FeedMaxWait)
	var timeout <-chan time.Time
	for {
		// Take the notification channel before reading, so that a
		// revocation between the read and the wait is not missed.
		s.mu.RLock()
		changed := s.changed
		s.mu.RUnlock()
		revs, err := s.deps.Store.ListRevocations(ctx, seq, limit)
		if err != nil {
			return nil, fmt.Errorf("read revocations after %d: %w", seq, err)
		}
		if len(revs) > 0 || wait <= 0 {
			return revs, nil
		}
		if timeout == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-changed:
		case <-timeout:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
