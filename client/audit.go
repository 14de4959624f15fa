package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
)

// AuditEvents returns at most limit audit rows with Seq > after, in Seq
// order (GET /v1/admin/audit, viewer).
func (c *Client) AuditEvents(ctx context.Context, after uint64, limit int) ([]api.AuditEvent, error) {
	var p api.AuditEventPage
	err := c.admin(ctx, "GET", fmt.Sprintf("/audit?after=%d&limit=%d", after, limit), nil, &p)
	return p.Events, err
}

// AuditTree returns the audit tree's size and root (GET /v1/admin/audit/tree).
func (c *Client) AuditTree(ctx context.Context) (api.AuditTree, error) {
	var t api.AuditTree
	err := c.admin(ctx, "GET", "/audit/tree", nil, &t)
	return t, err
}

// AuditHashes returns the stored tree hashes [from, to), at most
// api.MaxAuditHashes (GET /v1/admin/audit/hashes).
func (c *Client) AuditHashes(ctx context.Context, from, to int64) ([]string, error) {
	var h api.AuditHashes
	if err := c.admin(ctx, "GET", fmt.Sprintf("/audit/hashes?from=%d&to=%d", from, to), nil, &h); err != nil {
		return nil, err
	}
	if h.From != from || int64(len(h.Hashes)) != to-from {
		return nil, fmt.Errorf("the CA answered %d hashes from %d for [%d, %d)", len(h.Hashes), h.From, from, to)
	}
	return h.Hashes, nil
}

// AuditCheckpoints returns at most limit checkpoints with Size > after, in
// Size order (GET /v1/admin/audit/checkpoints).
func (c *Client) AuditCheckpoints(ctx context.Context, after int64, limit int) ([]api.AuditCheckpoint, error) {
	var p api.AuditCheckpointPage
	err := c.admin(ctx, "GET", fmt.Sprintf("/audit/checkpoints?after=%d&limit=%d", after, limit), nil, &p)
	return p.Checkpoints, err
}

// maxAuditPublicBytes bounds the answers of the public audit routes.
const maxAuditPublicBytes = 64 << 10

// AuditPublic reads the audit routes of a CA's plain-HTTP listener
// (http://HOST:8080): no secret is sent, and what it gets is checked by
// signature and proof, not by TLS.
type AuditPublic struct {
	base string
	hc   *http.Client
}

// NewAuditPublic returns a reader of the audit routes at base, an http(s)
// URL, with requests bounded by timeout (<= 0: DefaultTimeout).
func NewAuditPublic(base string, timeout time.Duration) (*AuditPublic, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.User != nil {
		return nil, fault.New(fault.Malformed, fmt.Sprintf("the CA URL %q is not an http(s) URL", base), "give the CA's HTTP listener, like http://ca.example:8080")
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &AuditPublic{base: strings.TrimRight(u.String(), "/"), hc: &http.Client{Timeout: timeout}}, nil
}

// get fetches path and returns its body (at most maxAuditPublicBytes).
func (p *AuditPublic) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", p.base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return nil, unreachable(p.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAuditPublicBytes))
	if err != nil {
		return nil, fault.Wrap(err, fault.Unavailable, "the CA's answer to "+path+" broke off", "try again")
	}
	if resp.StatusCode != http.StatusOK {
		return nil, problemError(resp, b)
	}
	return b, nil
}

// Checkpoint returns the latest checkpoint note (GET /v1/audit/checkpoint).
func (p *AuditPublic) Checkpoint(ctx context.Context) ([]byte, error) {
	return p.get(ctx, api.AuditCheckpointPath)
}

// Key returns the audit key's verifier key text (GET /v1/audit/key).
func (p *AuditPublic) Key(ctx context.Context) (string, error) {
	b, err := p.get(ctx, api.AuditKeyPath)
	return strings.TrimSpace(string(b)), err
}

// Proof returns the consistency proof from the tree of size from to the
// tree of size to (GET /v1/audit/proof), base64 hashes.
func (p *AuditPublic) Proof(ctx context.Context, from, to int64) ([]string, error) {
	b, err := p.get(ctx, fmt.Sprintf("%s?from=%d&to=%d", api.AuditProofPath, from, to))
	if err != nil {
		return nil, err
	}
	var ap api.AuditProof
	if err := json.Unmarshal(b, &ap); err != nil || ap.From != from || ap.To != to {
		return nil, fault.New(fault.Malformed, "the CA's answer to "+api.AuditProofPath+" is not the proof asked for", "")
	}
	return ap.Proof, nil
}
