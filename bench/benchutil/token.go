package benchutil

import (
	"context"
	"fmt"
	"sync"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/client"
)

// TokenUses is how many enrollments one token of a TokenMinter allows:
// enroll.max_token_uses' default ceiling.
const TokenUses = 100_000

// TokenMinter hands out pattern tokens for the benchmarks' enrollments,
// creating them through the running server's admin API
// (client.CreateToken) between the timed phases. Set Admin and Pattern
// (a glob of the device IDs, such as "b-*"); TTL "" is an hour. It is safe
// for concurrent use.
type TokenMinter struct {
	Admin   *client.Client
	Pattern string
	TTL     string

	mu   sync.Mutex
	cur  string
	left int
}

// Take returns n tokens, one per enrollment, creating a new token whenever
// the current one's uses are all handed out. Requests that fail spend no
// use, so a token is never overspent.
func (m *TokenMinter) Take(ctx context.Context, n int) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, n)
	for i := range out {
		if m.left == 0 {
			ttl := m.TTL
			if ttl == "" {
				ttl = "1h"
			}
			t, err := m.Admin.CreateToken(ctx, api.TokenRequest{DevicePattern: m.Pattern, Uses: TokenUses, TTL: ttl})
			if err != nil {
				return nil, fmt.Errorf("create an enrollment token: %w", err)
			}
			if t.Token == "" {
				return nil, fmt.Errorf("the CA created token %s without its secret", t.ID)
			}
			m.cur, m.left = t.Token, TokenUses
		}
		out[i] = m.cur
		m.left--
	}
	return out, nil
}
