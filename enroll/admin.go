package enroll

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// adminHashKey is the store meta key of the admin token's SHA-256.
const adminHashKey = "admin_token_sha256"

// MintAdminToken makes a new admin token, stores only its hash (replacing
// any earlier admin token) and returns the token, its only copy.
func (s *Service) MintAdminToken(ctx context.Context) (Secret, error) {
	secret, err := newSecret(AdminTokenPrefix)
	if err != nil {
		return "", err
	}
	h := hashSecret(secret)
	if err := s.store.PutMeta(ctx, adminHashKey, h[:]); err != nil {
		return "", fmt.Errorf("store admin token hash: %w", err)
	}
	now := s.now().UTC()
	if err := s.store.AppendAudit(ctx, store.AuditEvent{Time: now, Action: "admin.token_create", Actor: "admin", TokenID: TokenID(h)}); err != nil {
		return "", fmt.Errorf("audit admin token: %w", err)
	}
	return secret, nil
}

// AuthenticateAdmin checks a presented admin token against the stored hash,
// in constant time. A failure is fault.Unauthorized and is audited; from is
// the caller's address, for the audit row.
func (s *Service) AuthenticateAdmin(ctx context.Context, presented, from string) error {
	const hint = "send Authorization: Bearer <the token in DATA_DIR/admin-token>"
	stored, err := s.store.GetMeta(ctx, adminHashKey)
	if errors.Is(err, store.ErrNotFound) {
		return fault.New(fault.Unavailable, "this CA has no admin token yet", "initialise the CA first: that creates the admin token")
	}
	if err != nil {
		return fmt.Errorf("read admin token hash: %w", err)
	}
	reason := ""
	h, perr := ParseToken(AdminTokenPrefix, presented)
	switch {
	case presented == "":
		reason = "no admin token was sent"
	case perr != nil:
		reason = "the admin token is malformed"
	case subtle.ConstantTimeCompare(h[:], stored) != 1:
		reason = "the admin token is not this CA's"
	default:
		return nil
	}
	ev := store.AuditEvent{Time: s.now().UTC(), Action: "admin.auth_failed", Actor: "remote:" + from, Detail: reason}
	if err := s.store.AppendAudit(ctx, ev); err != nil {
		return fmt.Errorf("audit admin authentication failure: %w", err)
	}
	s.log.InfoContext(ctx, "admin authentication failed", "remote_ip", from, "kind", fault.Unauthorized.String(), "err", reason)
	return fault.New(fault.Unauthorized, reason, hint)
}
