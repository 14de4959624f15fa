package revocation

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// feedWait is how long one feed request is held open by the CA.
const feedWait = 20 * time.Second

// feedBatch is how many revocations one feed request asks for.
const feedBatch = 10_000

// feedEntry is one revocation as GET /v1/revocations gives it.
type feedEntry struct {
	Seq       uint64    `json:"seq"`
	Serial    string    `json:"serial"`
	RevokedAt time.Time `json:"revoked_at"`
	Reason    int       `json:"reason"`
}

// fetchFeed makes one long-poll request to the CA's revocation feed at
// base (its HTTPS URL) for the revocations after since. The CA answers at
// once if there are any, and otherwise after up to feedWait.
func fetchFeed(ctx context.Context, client *http.Client, base string, since uint64) ([]feedEntry, error) {
	u := fmt.Sprintf("%s/v1/revocations?since=%d&limit=%d&wait=%s", strings.TrimRight(base, "/"), since, feedBatch, feedWait)
	rctx, cancel := context.WithTimeout(ctx, feedWait+15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("feed URL: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch revocation feed: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("revocation feed answered %s", resp.Status)
	}
	var out struct {
		Revocations []feedEntry `json:"revocations"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&out); err != nil {
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
		log.WarnContext(ctx, "revocation feed failed; "+fallback, "feed", redactURL(base), "err", err)
		if sleep(ctx, backoff) != nil {
			return
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}
