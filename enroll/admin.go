package enroll

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

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
// in constant time, and audits a failure (one row per call): it is
// CheckAdmin, then AuditAdminAuthFailures for the one failure. from is the
// caller's address, for the audit row. A server facing the network uses
// the two halves instead, to summarise floods (package web does).
func (s *Service) AuthenticateAdmin(ctx context.Context, presented, from string) error {
	err := s.CheckAdmin(ctx, presented)
	if fe, ok := err.(*fault.Error); ok && fe.Kind == fault.Unauthorized {
		if aerr := s.AuditAdminAuthFailures(ctx, AdminAuthFailures{From: from, Failed: 1, Since: s.now(), Last: fe.Detail}); aerr != nil {
			return aerr
		}
	}
	return err
}

// CheckAdmin checks a presented admin token against the stored hash, in
// constant time, and writes nothing. A wrong, malformed or missing token is
// fault.Unauthorized whose Detail says which (never echoing the token);
// no admin token yet is fault.Unavailable; a store failure is internal.
func (s *Service) CheckAdmin(ctx context.Context, presented string) error {
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
	return fault.New(fault.Unauthorized, reason, hint)
}

// AdminAuthFailures summarises failed admin authentications from one
// address, for one audit row.
type AdminAuthFailures struct {
	// From is the caller's address.
	From string
	// Failed counts credentials checked and refused; Refused counts
	// requests turned away unchecked because From had failed too often.
	Failed, Refused int
	// Since is when the first of them happened.
	Since time.Time
	// Last is the last failure's reason (CheckAdmin's Detail).
	Last string
}

// AuditAdminAuthFailures appends one admin.auth_failed audit row for f, with
// actor "remote:<From>", and logs it at Info. A single failure's detail is
// its reason, as it always was; a summary's says how many failed and how
// many were refused since when, and the last reason.
func (s *Service) AuditAdminAuthFailures(ctx context.Context, f AdminAuthFailures) error {
	detail := f.Last
	if f.Failed != 1 || f.Refused != 0 {
		detail = fmt.Sprintf("%d failed admin authentications and %d requests refused for too many failures since %s; last: %s",
			f.Failed, f.Refused, f.Since.UTC().Format(time.RFC3339), f.Last)
	}
	ev := store.AuditEvent{Time: s.now().UTC(), Action: "admin.auth_failed", Actor: "remote:" + f.From, Detail: detail}
	if err := s.store.AppendAudit(ctx, ev); err != nil {
		return fmt.Errorf("audit admin authentication failure: %w", err)
	}
	s.log.InfoContext(ctx, "admin authentication failed", "remote_ip", f.From, "kind", fault.Unauthorized.String(),
		"failed", f.Failed, "refused", f.Refused, "err", f.Last)
	return nil
}
