package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// tokenMinter creates pattern tokens with `fleetca token create`, through
// the admin API of the running server.
type tokenMinter struct {
	bin, dir, url string

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
			t, err := m.mint(ctx)
			if err != nil {
				return nil, err
			}
			m.cur, m.left = t, tokenUses
		}
		out[i] = m.cur
		m.left--
	}
	return out, nil
}

func (m *tokenMinter) mint(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, m.bin, "token", "create", "--dir", m.dir,
		"--device-pattern", tokenPattern, "--uses", fmt.Sprint(tokenUses), "--ttl", tokenTTL)
	cmd.Env = append(os.Environ(), "FLEETCA_URL="+m.url)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("fleetca token create: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	t := strings.TrimSpace(string(out))
	if t == "" || strings.ContainsAny(t, " \n") {
		return "", fmt.Errorf("fleetca token create printed %q, want one token", t)
	}
	return t, nil
}
