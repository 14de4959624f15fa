package enroll

import (
	"context"
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

// gateStore pauses the first GetToken after its read until gate is closed,
// having closed read: a request that read a token before a revocation.
type gateStore struct {
	store.Store
	read, gate chan struct{}
}

func (g *gateStore) GetToken(ctx context.Context, h store.TokenHash) (store.Token, error) {
	t, err := g.Store.GetToken(ctx, h)
	if g.read != nil {
		r := g.read
		g.read = nil
		close(r)
		<-g.gate
	}
	return t, err
}

// TestTokenCacheRevokedDuringRead checks that a request that read a token
// from the store before RevokeToken, and would cache it after, does not
// leave the revoked token usable in the cache: the next request is refused
// as Unauthorized before its CSR is looked at (its CN does not match the
// pattern, which would be Forbidden).
func TestTokenCacheRevokedDuringRead(t *testing.T) {
	f := newFixture(t, Config{})
	secret, tok := f.token(t, TokenRequest{DevicePattern: "line9-*", Uses: 5, TTL: new(time.Hour)})
	g := &gateStore{Store: f.store, read: make(chan struct{}), gate: make(chan struct{})}
	read := g.read
	f.svc.store = g
	done := make(chan error)
	wrong1, _ := newCSR(t, "other-0001")
	go func() {
		_, err := f.svc.Enroll(context.WithoutCancel(t.Context()), string(secret), wrong1)
		done <- err
	}()
	<-read
	if _, err := f.svc.RevokeToken(t.Context(), tok.ID); err != nil {
		t.Fatal(err)
	}
	close(g.gate)
	<-done // read before the revocation: refused for its CSR or its token, either way
	wrong2, _ := newCSR(t, "other-0002")
	if _, err := f.svc.Enroll(t.Context(), string(secret), wrong2); kindOf(err) != fault.Unauthorized {
		t.Errorf("Enroll with a token revoked before this request: kind = %v (err %v), want Unauthorized", kindOf(err), err)
	}
}

// TestTokenCachePutKeepsMostSpent checks that a token read before a spend
// and put after it does not take back the spend the cache counted.
func TestTokenCachePutKeepsMostSpent(t *testing.T) {
	c := newTokenCache()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	read := store.Token{ID: "t1", Hash: store.TokenHash{1}, Uses: 3, Spent: 1, ExpiresAt: now.Add(time.Hour)}
	c.put(read)
	c.spent(read.Hash) // 2 of 3
	c.put(read)        // a read from before that spend
	got, ok := c.get(read.Hash, now)
	if !ok || got.Spent != 2 {
		t.Fatalf("cached token after a stale put = %+v, %v; want Spent 2", got, ok)
	}
	c.spent(read.Hash) // 3 of 3: used up
	c.put(read)
	if got, ok := c.get(read.Hash, now); ok {
		t.Errorf("a used-up token came back into the cache with a stale put: %+v", got)
	}
}
