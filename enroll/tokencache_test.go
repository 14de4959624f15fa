package enroll

import (
	"errors"
	"testing"
	"time"

	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// TestTokenCacheRefusesWhatTheStoreWould checks that a pattern token held
// in the token cache (it has uses left after a first enrollment) is
// refused as Unauthorized, before its CSR is looked at, once this Service
// revoked it, spent its last use, or it expired: the CSRs below would
// otherwise be refused as Forbidden (their CN does not match the pattern).
func TestTokenCacheRefusesWhatTheStoreWould(t *testing.T) {
	for _, tc := range []struct {
		name  string
		uses  int
		after func(t *testing.T, f *fixture, secret Secret, tok store.Token)
	}{
		{"revoked", 5, func(t *testing.T, f *fixture, _ Secret, tok store.Token) {
			if _, err := f.svc.RevokeToken(t.Context(), tok.ID); err != nil {
				t.Fatalf("RevokeToken: %v", err)
			}
		}},
		{"used-up", 2, func(t *testing.T, f *fixture, secret Secret, _ store.Token) {
			csr, _ := newCSR(t, "line5-0002")
			if _, err := f.svc.Enroll(t.Context(), string(secret), csr); err != nil {
				t.Fatalf("second Enroll: %v", err)
			}
		}},
		{"expired", 5, func(t *testing.T, f *fixture, _ Secret, _ store.Token) {
			f.clock.Add(time.Hour)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			secret, tok := f.token(t, TokenRequest{DevicePattern: "line5-*", Uses: tc.uses, TTL: new(time.Hour)})
			csr, _ := newCSR(t, "line5-0001")
			if _, err := f.svc.Enroll(t.Context(), string(secret), csr); err != nil {
				t.Fatalf("first Enroll: %v", err)
			}
			tc.after(t, f, secret, tok)
			spent := f.spent(t, secret)
			wrong, _ := newCSR(t, "line6-0001")
			if _, err := f.svc.Enroll(t.Context(), string(secret), wrong); kindOf(err) != fault.Unauthorized {
				t.Errorf("Enroll(CN=line6-0001) kind = %v (err %v), want Unauthorized", kindOf(err), err)
			}
			if got := f.spent(t, secret); got != spent {
				t.Errorf("spent = %d after a refusal, want %d", got, spent)
			}
		})
	}
}

// TestTokenCacheRevokedElsewhere checks that a cached token revoked in the
// store behind the Service's back (by another replica sharing it) is
// refused as Unauthorized, writes nothing and burns no use, and that the
// refusal empties the cache so the next request is refused from the store.
func TestTokenCacheRevokedElsewhere(t *testing.T) {
	f := newFixture(t, Config{})
	secret, tok := f.token(t, TokenRequest{DevicePattern: "line7-*", Uses: 5})
	csr, _ := newCSR(t, "line7-0001")
	if _, err := f.svc.Enroll(t.Context(), string(secret), csr); err != nil {
		t.Fatalf("first Enroll: %v", err)
	}
	now := f.clock.Now()
	if _, err := f.store.RevokeToken(t.Context(), tok.ID, now, store.AuditEvent{Time: now, Action: "token.revoke", Actor: "admin:other-replica", TokenID: tok.ID}); err != nil {
		t.Fatalf("store RevokeToken: %v", err)
	}
	csr2, _ := newCSR(t, "line7-0002")
	if _, err := f.svc.Enroll(t.Context(), string(secret), csr2); kindOf(err) != fault.Unauthorized {
		t.Errorf("Enroll after a revocation elsewhere: kind = %v (err %v), want Unauthorized", kindOf(err), err)
	}
	if _, err := f.store.GetDevice(t.Context(), "line7-0002"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetDevice(line7-0002) error = %v, want ErrNotFound: a refused enrollment writes nothing", err)
	}
	if got := f.spent(t, secret); got != 1 {
		t.Errorf("spent = %d, want 1: refusals must not burn uses", got)
	}
	wrong, _ := newCSR(t, "line8-0001")
	if _, err := f.svc.Enroll(t.Context(), string(secret), wrong); kindOf(err) != fault.Unauthorized {
		t.Errorf("next Enroll(CN=line8-0001) kind = %v (err %v), want Unauthorized (the store read, before the CSR)", kindOf(err), err)
	}
}
