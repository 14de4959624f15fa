package verify

import (
	"fmt"
	"time"
)

// SubscribeStale registers fn to be called at the instant the CRL in use
// goes stale: when it is past its nextUpdate by more than the grace period
// and no fresher CRL has been loaded, so that Check now refuses every
// certificate (Stale). reason says which CRL expired when, and the last
// fetch's error if there was one. A verifier uses it to close the
// connections it let in while the data was fresh: without it, a
// keep-alive connection outlives the freshness rule. The Checker makes
// the staleness visible to Check before it calls fn; fn must not block.
//
// fn is called once per CRL that goes stale; a fresher CRL loaded before
// its deadline re-arms the deadline instead (Refresh), and a CRL loaded
// after it starts a new one. The timer runs on CheckerDeps.AfterFunc.
// An OCSP Checker never calls fn: its data is per certificate, and a
// stale answer refuses only its own certificate at the next handshake.
// NoData (before the first CRL) needs no announcement: nothing was let in.
func (c *Checker) SubscribeStale(fn func(reason error)) {
	c.staleMu.Lock()
	c.staleSubs = append(c.staleSubs, fn)
	c.staleMu.Unlock()
}

// armStale sets the stale timer for crl, which was just stored as slot's
// CRL, replacing the timer of the one before. Check refuses once now
// is after the deadline, so the timer is set for the first instant after it.
// Each partition's CRL has its own timer; a partition going stale is
// announced like the full CRL (the subscribers cannot tell which
// certificates it covers, so a proxy closes every connection).
func (c *Checker) armStale(slot *crlSlot, crl *CRL) {
	c.staleMu.Lock()
	defer c.staleMu.Unlock()
	if slot.staleStop != nil {
		slot.staleStop()
	}
	deadline := crl.NextUpdate.Add(c.grace)
	slot.staleStop = c.afterFunc(max(deadline.Sub(c.now())+time.Nanosecond, 0), func() { c.staleDue(slot, crl) })
}

// staleDue runs when crl's deadline has passed by the timer's clock. If
// crl is still in use and Now agrees that it is stale, the subscribers are
// told; if Now does not agree yet (a wall clock stepped back, or a Now
// that is not the timer's clock), the timer is armed again for what is
// left, at least a second later.
func (c *Checker) staleDue(slot *crlSlot, crl *CRL) {
	if slot.crl.Load() != crl {
		return // a fresher CRL took over; it has its own timer
	}
	if plan := c.plan.Load(); plan != nil && !plan.has(slot) {
		return // no longer kept (the CA dropped it from its partitions): nothing relies on it
	}
	deadline := crl.NextUpdate.Add(c.grace)
	if now := c.now(); !now.After(deadline) {
		c.staleMu.Lock()
		if slot.crl.Load() == crl {
			slot.staleStop = c.afterFunc(max(deadline.Sub(now)+time.Nanosecond, time.Second), func() { c.staleDue(slot, crl) })
		}
		c.staleMu.Unlock()
		return
	}
	reason := fmt.Errorf("%s %s expired at %s and its grace of %s has passed", slot.name, crl.Number,
		crl.NextUpdate.UTC().Format(time.RFC3339), c.grace)
	if err := c.fetchError(); err != nil {
		reason = fmt.Errorf("%w; the last fetch failed: %w", reason, err)
	}
	c.staleMu.Lock()
	subs := c.staleSubs
	c.staleMu.Unlock()
	for _, fn := range subs {
		fn(reason)
	}
}
