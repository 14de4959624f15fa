package enroll

import (
	"sync"
	"time"

	"github.com/fleetca/fleetca/store"
)

// maxCachedTokens bounds the token cache: a factory line's pattern tokens
// number in the tens.
const maxCachedTokens = 1024

// tokenCache remembers the tokens with more than one use left that
// redeem read from the store, so that the next enrollment with the same
// token skips the store read before it signs. What it saves is the read
// only: store.Store.Issue checks the token again (exists, unrevoked,
// unexpired, a use left) in the transaction that spends it, and refuses
// what the cache let through, so a cached token is never trusted to
// grant anything. What a token allows (its device or pattern, uses,
// expiry) never changes once it is made, so the cache cannot give a
// stale binding.
//
// The cache follows what this Service does to a token: a spend counts
// against Spent (an entry with no use left stays, refused by get),
// RevokeToken drops the entry, and any refusal of the token by Issue
// marks it used up. With one CA
// process (bbolt) it therefore refuses a revoked, used-up or expired
// token before signing, as the store read did. A token revoked or spent
// through another replica sharing the store is refused by Issue after
// the CSR is checked and a certificate signed (and discarded), so such a
// request with a bad CSR is refused for its CSR rather than its token;
// Issue's refusal marks the entry used up.
//
// A request that read a token from the store before a revocation or a
// spend may put it after: put keeps the entry with the most uses spent,
// and never caches a token whose ID RevokeToken dropped (revoked holds
// those IDs: a revoked token never becomes usable again).
//
// It is safe for concurrent use.
type tokenCache struct {
	mu      sync.Mutex
	m       map[store.TokenHash]store.Token
	revoked map[string]struct{}
}

// maxRevokedIDs bounds tokenCache.revoked. Forgetting an old ID matters
// only to a read that started before its revocation and is put after
// maxRevokedIDs later revocations.
const maxRevokedIDs = 4096

func newTokenCache() *tokenCache {
	return &tokenCache{m: make(map[store.TokenHash]store.Token), revoked: make(map[string]struct{})}
}

// get returns the cached token with hash h if it is unexpired at now and
// has a use left as far as this Service knows. An entry that is not
// usable stays, so that put sees its spends.
func (c *tokenCache) get(h store.TokenHash, now time.Time) (store.Token, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[h]
	if !ok || usable(t, now) != nil {
		return store.Token{}, false
	}
	return t, true
}

// put caches t, read from the store and usable, if it has more than one
// use left: a token with one left is spent by the request that read it.
func (c *tokenCache) put(t store.Token) {
	if t.Uses-t.Spent < 2 || !t.RevokedAt.IsZero() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.revoked[t.ID]; ok {
		return
	}
	old, ok := c.m[t.Hash]
	if ok && old.Spent >= t.Spent {
		return // a spend this Service counted after t was read
	}
	if !ok && len(c.m) >= maxCachedTokens {
		for h := range c.m { // drop one, whichever
			delete(c.m, h)
			break
		}
	}
	c.m[t.Hash] = t
}

// spent counts one use of the token with hash h, spent by Issue. A used-up
// entry stays (get refuses it) until the cache drops it for room, so that a
// read from before the spend, put after it, is not cached as usable.
func (c *tokenCache) spent(h store.TokenHash) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.m[h]; ok {
		t.Spent++
		c.m[h] = t
	}
}

// drop marks the token with hash h, which Issue refused, as used up: get
// refuses it and put does not bring it back.
func (c *tokenCache) drop(h store.TokenHash) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.m[h]; ok {
		t.Spent = max(t.Spent, t.Uses)
		c.m[h] = t
	}
}

// dropID forgets the token with the given ID, revoked, and keeps it from
// being cached again.
func (c *tokenCache) dropID(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.revoked) >= maxRevokedIDs {
		for old := range c.revoked { // forget one, whichever
			delete(c.revoked, old)
			break
		}
	}
	c.revoked[id] = struct{}{}
	for h, t := range c.m {
		if t.ID == id {
			delete(c.m, h)
		}
	}
}
