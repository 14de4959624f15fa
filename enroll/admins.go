package enroll

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/fleetca/fleetca/internal/adminctx"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// adminNameRE is what an admin's name may be.
var adminNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ParseAdminName checks an admin's name: fault.Malformed (field "name") if
// it is not [a-z0-9][a-z0-9._-]{0,63}.
func ParseAdminName(name string) error {
	if !adminNameRE.MatchString(name) {
		return fault.WithField(fault.New(fault.Malformed, fmt.Sprintf("the admin name %q is not valid", truncate(name)),
			"give a name of 1 to 64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"), "name")
	}
	return nil
}

// ParseRole reads a role name: fault.Malformed (field "role") if it is
// not one of Roles.
func ParseRole(s string) (store.Role, error) {
	r := store.Role(s)
	if r.Rank() == 0 {
		return "", fault.WithField(fault.New(fault.Malformed, fmt.Sprintf("the role %q is not known", truncate(s)),
			"give role viewer, operator or owner"), "role")
	}
	return r, nil
}

// CreateAdmin makes an admin with a new personal admin token, stores only
// its hash, and returns the token (its only copy) and the admin.
// fault.Malformed for a bad name or role, fault.Conflict if the name is
// taken.
func (s *Service) CreateAdmin(ctx context.Context, name, role string) (Secret, store.Admin, error) {
	if err := ParseAdminName(name); err != nil {
		return "", store.Admin{}, err
	}
	r, err := ParseRole(role)
	if err != nil {
		return "", store.Admin{}, err
	}
	secret, err := newSecret(AdminTokenPrefix)
	if err != nil {
		return "", store.Admin{}, err
	}
	h := hashSecret(secret)
	now := s.now().UTC()
	a := store.Admin{Name: name, Role: r, TokenHash: h, CreatedAt: now}
	err = s.store.CreateAdmin(ctx, a, store.AuditEvent{Time: now, Action: "admin.create", Actor: adminctx.Actor(ctx),
		TokenID: TokenID(h), Detail: "name=" + name + " role=" + string(r)})
	if errors.Is(err, store.ErrConflict) {
		return "", store.Admin{}, fault.Wrap(err, fault.Conflict, fmt.Sprintf("an admin named %q exists", name),
			"choose another name; list the admins (GET /v1/admin/admins) to see the names taken")
	}
	if err != nil {
		return "", store.Admin{}, err
	}
	s.log.InfoContext(ctx, "admin created", "admin", name, "role", string(r), "by", adminctx.Actor(ctx))
	return secret, a, nil
}

// ListAdmins returns every admin, ordered by name.
func (s *Service) ListAdmins(ctx context.Context) ([]store.Admin, error) {
	return s.store.ListAdmins(ctx)
}

// DisableAdmin disables an admin: its token is refused from then on.
// fault.NotFound for an unknown name; fault.Conflict if it is disabled
// already, or is the last active owner.
func (s *Service) DisableAdmin(ctx context.Context, name string) (store.Admin, error) {
	if err := ParseAdminName(name); err != nil {
		return store.Admin{}, err
	}
	now := s.now().UTC()
	a, err := s.store.DisableAdmin(ctx, name, now, store.AuditEvent{Time: now, Action: "admin.disable", Actor: adminctx.Actor(ctx), Detail: "name=" + name})
	if err != nil {
		return a, adminFault(err, name)
	}
	s.log.InfoContext(ctx, "admin disabled", "admin", name, "by", adminctx.Actor(ctx))
	return a, nil
}

// RotateAdmin gives an admin a new token, refusing the old one from then
// on, and returns the new token (its only copy). fault.NotFound for an
// unknown name; fault.Conflict if the admin is disabled.
func (s *Service) RotateAdmin(ctx context.Context, name string) (Secret, store.Admin, error) {
	if err := ParseAdminName(name); err != nil {
		return "", store.Admin{}, err
	}
	secret, err := newSecret(AdminTokenPrefix)
	if err != nil {
		return "", store.Admin{}, err
	}
	h := hashSecret(secret)
	now := s.now().UTC()
	a, err := s.store.RotateAdmin(ctx, name, h, now, store.AuditEvent{Time: now, Action: "admin.rotate", Actor: adminctx.Actor(ctx),
		TokenID: TokenID(h), Detail: "name=" + name})
	if err != nil {
		return "", store.Admin{}, adminFault(err, name)
	}
	s.log.InfoContext(ctx, "admin token rotated", "admin", name, "by", adminctx.Actor(ctx))
	return secret, a, nil
}

// adminFault turns a store refusal of DisableAdmin or RotateAdmin into a
// fault.
func adminFault(err error, name string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fault.Wrap(err, fault.NotFound, fmt.Sprintf("no admin is named %q", name), "list the admins (GET /v1/admin/admins) to find the name")
	case errors.Is(err, store.ErrLastOwner):
		return fault.Wrap(err, fault.Conflict, fmt.Sprintf("%s is the last active owner; disabling it would leave no one to manage admins", name),
			"create another admin with role owner first, then disable this one")
	case errors.Is(err, store.ErrAdminDisabled):
		return fault.Wrap(err, fault.Conflict, fmt.Sprintf("the admin %s is disabled", name), "create a new admin instead (POST /v1/admin/admins)")
	}
	return err
}

// RequireRole refuses, with fault.Forbidden naming the role missing, an
// admin whose role is below min.
func RequireRole(a store.Admin, min store.Role) error {
	if a.Role.Rank() >= min.Rank() {
		return nil
	}
	return fault.New(fault.Forbidden, fmt.Sprintf("this needs the %s role; %s is %s %s", min, a.Name, article(string(a.Role)), a.Role),
		fmt.Sprintf("ask an owner for an admin token with the %s role", min))
}

// article is "an" before a vowel, "a" otherwise.
func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}
