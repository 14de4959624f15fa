package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/redact"
)

// maxFeedAnswer bounds one feed answer: api.FeedBatch entries of about
// 150 bytes of JSON each, with room to spare.
const maxFeedAnswer = 16 << 20

// fetchFeed makes one long-poll request to the CA's revocation feed at
// base (its HTTPS listener) for the revocations after since, asking for
// api.FeedBatch of them and a wait of api.FeedWait. The CA answers at once
// if there are any, and otherwise after the wait.
func fetchFeed(ctx context.Context, client *http.Client, base string, since uint64) ([]api.FeedEntry, error) {
	// The request's own deadline is past the wait, so that the CA, not
	// this deadline, ends an idle poll.
	rctx, cancel := context.WithTimeout(ctx, api.FeedWait+15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, api.FeedURL(base, since, api.FeedBatch, api.FeedWait), nil)
	if err != nil {
		return nil, fmt.Errorf("feed URL: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch revocation feed: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("revocation feed %s answered %s", redact.URL(base+api.FeedPath), resp.Status)
	}
	var out api.FeedResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxFeedAnswer)).Decode(&out); err != nil {
		return nil, fmt.Errorf("decode revocation feed: %w", err)
	}
	return out.Revocations, nil
}

// followFeed calls poll (one feed request, applied; it reports whether
// the feed said anything new) until ctx ends. Failures are logged at Warn,
// saying what still applies (fallback), and retried with backoff: 1 s
// doubling to 30 s. An answer with nothing new that came back within a
// second (a CA shutting down, or something that is not a long-poll at all)
// is followed by a second's pause, so that the loop never spins.
func followFeed(ctx context.Context, log *slog.Logger, base, fallback string, poll func(context.Context) (bool, error)) {
	backoff := time.Second
	for ctx.Err() == nil {
		start := time.Now()
		news, err := poll(ctx)
		if err == nil {
			backoff = time.Second
			if !news && time.Since(start) < time.Second && sleep(ctx, time.Second) != nil {
				return
			}
			continue
		}
		if ctx.Err() != nil {
			return
		}
		log.WarnContext(ctx, "revocation feed failed; "+fallback, "feed", redact.URL(base), "err", err)
		if sleep(ctx, backoff) != nil {
			return
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// followFeed long-polls the CA's revocation feed until ctx ends, adding
// what it learns to the revoked set and telling subscribers.
func (c *Checker) followFeed(ctx context.Context) {
	followFeed(ctx, c.log, c.cfg.Feed, "the CRL still applies", c.pollFeed)
}

// pollFeed makes one feed request and applies its answer. It reports
// whether the feed said anything new.
func (c *Checker) pollFeed(ctx context.Context) (bool, error) {
	c.feedMu.RLock()
	since := c.feedSeq
	c.feedMu.RUnlock()
	entries, err := fetchFeed(ctx, c.client, c.cfg.Feed, since)
	if err != nil {
		return false, err
	}
	news := false
	var added []*big.Int
	c.feedMu.Lock()
	for _, r := range entries {
		serial, ok := new(big.Int).SetString(r.Serial, 16)
		if !ok || r.Seq <= c.feedSeq {
			continue
		}
		c.feedSeq, news = r.Seq, true
		key := string(serial.Bytes())
		if _, seen := c.feedSeen[key]; !seen {
			c.feedSeen[key] = CRLEntry{RevokedAt: r.RevokedAt, Reason: r.Reason}
			added = append(added, serial)
		}
	}
	c.feedMu.Unlock()
	c.notify(added)
	return news, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
