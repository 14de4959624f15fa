package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/client"
)

// tokenMinter creates pattern tokens through the running server's admin
// API (client.CreateToken), between the timed phases.
type tokenMinter struct {
	admin *client.Client

	mu   sync.Mutex
	cur  string
	left int
}

// Token parameters: b-* matches the CSRs' CNs; 100,000 uses is
// enroll.max_token_uses' default ceiling.
const (
	tokenPattern = devicePrefix + "*"
	tokenUses    = 100_000
	tokenTTL     = "1h"
)

// take returns n tokens, one per enrollment, minting a new token whenever
// the current one's uses are all handed out. Requests that fail spend no
// use, so a token is never overspent.
func (m *tokenMinter) take(ctx context.Context, n int) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, n)
	for i := range out {
		if m.left == 0 {
			t, err := m.admin.CreateToken(ctx, api.TokenRequest{DevicePattern: tokenPattern, Uses: tokenUses, TTL: tokenTTL})
			if err != nil {
				return nil, fmt.Errorf("create an enrollment token: %w", err)
			}
			if t.Token == "" {
				return nil, fmt.Errorf("the CA created token %s without its secret", t.ID)
			}
			m.cur, m.left = t.Token, tokenUses
		}
		out[i] = m.cur
		m.left--
	}
	return out, nil
}
