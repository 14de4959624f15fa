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

// adminHashKey is the store meta key of the SHA-256 of the admin token
// that init wrote, from before admins had names: UpgradeAdminToken makes
// it the owner named FirstAdmin.
const adminHashKey = "admin_token_sha256"

// FirstAdmin is the name of the owner whose token init writes.
const FirstAdmin = "admin"

// adminTokenHint is the hint of a refused admin token.
const adminTokenHint = "send Authorization: Bearer <your admin token>; the first owner's is in DATA_DIR/admin-token"

// MintAdminToken makes the token of the first owner, named FirstAdmin (a
// new token for it if it exists), stores only its hash, and returns the
// token, its only copy.
func (s *Service) MintAdminToken(ctx context.Context) (Secret, error) {
	secret, err := newSecret(AdminTokenPrefix)
	if err != nil {
		return "", err
	}
	h := hashSecret(secret)
	now := s.now().UTC()
	// The first owner makes itself (init, on the CA's machine).
	const actor = "admin:" + FirstAdmin
	err = s.store.CreateAdmin(ctx, store.Admin{Name: FirstAdmin, Role: store.RoleOwner, TokenHash: h, CreatedAt: now},
		store.AuditEvent{Time: now, Action: "admin.create", Actor: actor, TokenID: TokenID(h), Detail: "name=" + FirstAdmin + " role=owner"})
	if errors.Is(err, store.ErrConflict) {
		_, err = s.store.RotateAdmin(ctx, FirstAdmin, h, now,
			store.AuditEvent{Time: now, Action: "admin.rotate", Actor: actor, TokenID: TokenID(h), Detail: "name=" + FirstAdmin})
	}
	if err != nil {
		return "", fmt.Errorf("store admin token hash: %w", err)
	}
	// The meta key marks an initialised CA (serve's readiness reads it).
	if err := s.store.PutMeta(ctx, adminHashKey, h[:]); err != nil {
		return "", fmt.Errorf("store admin token hash: %w", err)
	}
	return secret, nil
}

// UpgradeAdminToken makes the admin token of a CA initialised before
// admins had names (its hash in the store meta) the owner named
// FirstAdmin, once: if an admin of that name exists (made by init, by an
// earlier upgrade, or by another replica upgrading at the same time) it
// does nothing. It reports whether it made the owner.
func (s *Service) UpgradeAdminToken(ctx context.Context) (bool, error) {
	stored, err := s.store.GetMeta(ctx, adminHashKey)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read admin token hash: %w", err)
	}
	var h store.TokenHash
	if len(stored) != len(h) {
		return false, fmt.Errorf("the stored admin token hash is %d bytes long, not %d", len(stored), len(h))
	}
	copy(h[:], stored)
	if _, err := s.store.GetAdminByTokenHash(ctx, h); err == nil {
		return false, nil
	}
	now := s.now().UTC()
	err = s.store.CreateAdmin(ctx, store.Admin{Name: FirstAdmin, Role: store.RoleOwner, TokenHash: h, CreatedAt: now},
		store.AuditEvent{Time: now, Action: "admin.create", Actor: "admin:" + FirstAdmin, TokenID: TokenID(h),
			Detail: "name=" + FirstAdmin + " role=owner upgraded from the admin token of an earlier fleetca"})
	if errors.Is(err, store.ErrConflict) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("upgrade the admin token: %w", err)
	}
	s.log.InfoContext(ctx, "the admin token became the owner "+FirstAdmin)
	return true, nil
}

// AuthenticateAdmin checks a presented admin token (CheckAdmin) and audits
// a failure (one row per call): it is CheckAdmin, then
// AuditAdminAuthFailures for the one failure. from is the caller's
// address, for the audit row. A server facing the network uses the two
// halves instead, to summarise floods (package web does).
func (s *Service) AuthenticateAdmin(ctx context.Context, presented, from string) error {
	_, err := s.CheckAdmin(ctx, presented)
	if fe, ok := err.(*fault.Error); ok && fe.Kind == fault.Unauthorized {
		if aerr := s.AuditAdminAuthFailures(ctx, AdminAuthFailures{From: from, Failed: 1, Since: s.now(), Last: fe.Detail}); aerr != nil {
			return aerr
		}
	}
	return err
}

// CheckAdmin returns the active admin whose token was presented, and
// writes nothing. The token's hash finds the admin, and is compared with
// its stored hash in constant time. A wrong, malformed or missing token,
// or a disabled admin's, is fault.Unauthorized whose Detail says which
// (never echoing the token; a disabled admin's token reads as a wrong
// one); no admin token yet is fault.Unavailable; a store failure is
// internal.
func (s *Service) CheckAdmin(ctx context.Context, presented string) (store.Admin, error) {
	h, perr := ParseToken(AdminTokenPrefix, presented)
	reason := ""
	switch {
	case presented == "":
		reason = "no admin token was sent"
	case perr != nil:
		reason = "the admin token is malformed"
	default:
		a, err := s.store.GetAdminByTokenHash(ctx, h)
		switch {
		case err == nil && subtle.ConstantTimeCompare(a.TokenHash[:], h[:]) == 1 && a.Active():
			return a, nil
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return store.Admin{}, fmt.Errorf("read admin: %w", err)
		}
		reason = "the admin token is not this CA's"
	}
	if _, err := s.store.GetMeta(ctx, adminHashKey); errors.Is(err, store.ErrNotFound) {
		return store.Admin{}, fault.New(fault.Unavailable, "this CA has no admin token yet", "initialise the CA first: that creates the admin token")
	} else if err != nil {
		return store.Admin{}, fmt.Errorf("read admin token hash: %w", err)
	}
	return store.Admin{}, fault.New(fault.Unauthorized, reason, adminTokenHint)
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
