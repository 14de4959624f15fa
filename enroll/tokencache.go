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
// against Spent (an entry with no use left is dropped), RevokeToken drops
// the entry, and so does any refusal of the token by Issue. With one CA
// process (bbolt) it therefore refuses a revoked, used-up or expired
// token before signing, as the store read did. A token revoked or spent
// through another replica sharing the store is refused by Issue after
// the CSR is checked and a certificate signed (and discarded), so such a
// request with a bad CSR is refused for its CSR rather than its token;
// Issue's refusal drops the entry.
//
// It is safe for concurrent use.
type tokenCache struct {
	mu sync.Mutex
	m  map[store.TokenHash]store.Token
}

func newTokenCache() *tokenCache {
	return &tokenCache{m: make(map[store.TokenHash]store.Token)}
}

// get returns the cached token with hash h if it is unexpired at now and
// has a use left as far as this Service knows.
func (c *tokenCache) get(h store.TokenHash, now time.Time) (store.Token, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[h]
	if !ok {
		return store.Token{}, false
	}
	if usable(t, now) != nil {
		delete(c.m, h)
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
	if _, ok := c.m[t.Hash]; !ok && len(c.m) >= maxCachedTokens {
		for h := range c.m { // drop one, whichever
			delete(c.m, h)
			break
		}
	}
	c.m[t.Hash] = t
}

// spent counts one use of the token with hash h, spent by Issue.
func (c *tokenCache) spent(h store.TokenHash) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[h]
	if !ok {
		return
	}
	t.Spent++
	if t.Spent >= t.Uses {
		delete(c.m, h)
		return
	}
	c.m[h] = t
}

// drop forgets the token with hash h.
func (c *tokenCache) drop(h store.TokenHash) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, h)
}

// dropID forgets the token with the given ID.
func (c *tokenCache) dropID(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for h, t := range c.m {
		if t.ID == id {
			delete(c.m, h)
		}
	}
}
