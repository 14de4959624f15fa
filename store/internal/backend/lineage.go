package backend

import (
	"math/big"
	"slices"
	"time"

	"github.com/fleetca/fleetca/store"
)

// Entry is what the renewal rules read of one certificate of a device:
// the fields they need, not the DER.
type Entry struct {
	Serial    *big.Int
	KeyHash   store.KeyHash
	NotAfter  time.Time
	IssuedAt  time.Time
	RevokedAt time.Time
	Parent    *big.Int // nil if none
	Partition *int     // store.Certificate.Partition
}

// Before reports whether e was issued before o: by IssuedAt, then serial.
func (e Entry) Before(o Entry) bool {
	if !e.IssuedAt.Equal(o.IssuedAt) {
		return e.IssuedAt.Before(o.IssuedAt)
	}
	return e.Serial.Cmp(o.Serial) < 0
}

// compare orders entries as Before does.
func compare(a, b Entry) int {
	switch {
	case a.Before(b):
		return -1
	case b.Before(a):
		return 1
	}
	return 0
}

// live reports whether e is live at now, as store.Certificate.Live says.
func (e Entry) live(now time.Time) bool {
	return store.Certificate{NotAfter: e.NotAfter, RevokedAt: e.RevokedAt}.Live(now)
}

// Lineage is what Renew learns from a device's certificates under the
// rules of a store.Renewal. Its pointers point into the entries given to
// Judge.
type Lineage struct {
	// Parent is the renewal's parent, nil if it is not among the entries.
	Parent *Entry
	// Retry is the certificate a retry returns, nil if none: the newest
	// (by Before) unrevoked certificate whose Parent is the renewal's and
	// whose KeyHash is the new certificate's, issued less than the retry
	// window before the renewal's Now.
	Retry *Entry
	// Newer is an unrevoked certificate issued after the parent (by
	// Before), the first of the entries' order; nil if none, or if Parent
	// is nil.
	Newer *Entry
	// Live are the certificates live at the renewal's Now, oldest first
	// (by Before).
	Live []*Entry
}

// Judge applies the renewal rules of r to entries, the certificates of
// r.Certificate's device (the parent among them), in any order. It keeps
// no reference to r.
func Judge(r store.Renewal, entries []Entry) Lineage {
	var lin Lineage
	for i := range entries {
		if entries[i].Serial.Cmp(r.Parent) == 0 {
			lin.Parent = &entries[i]
			break
		}
	}
	for i := range entries {
		e := &entries[i]
		unrevoked := e.RevokedAt.IsZero()
		if unrevoked && e.Parent != nil && e.Parent.Cmp(r.Parent) == 0 && e.KeyHash == r.Certificate.KeyHash &&
			r.Now.Sub(e.IssuedAt) < r.RetryWindow && (lin.Retry == nil || lin.Retry.Before(*e)) {
			lin.Retry = e
		}
		if unrevoked && lin.Newer == nil && lin.Parent != nil && lin.Parent.Before(*e) {
			lin.Newer = e
		}
		if e.live(r.Now) {
			lin.Live = append(lin.Live, e)
		}
	}
	slices.SortFunc(lin.Live, func(a, b *Entry) int { return compare(*a, *b) })
	return lin
}

// Superseded returns the oldest of lin.Live that a renewal under r
// revokes (as superseded), so that the device keeps at most r.MaxActive
// live certificates with r.Certificate (counted if it is live at r.Now);
// none if r.MaxActive is not positive.
func (lin Lineage) Superseded(r store.Renewal) []*Entry {
	if r.MaxActive <= 0 {
		return nil
	}
	n := len(lin.Live)
	if r.Certificate.Live(r.Now) {
		n++
	}
	k := min(max(n-r.MaxActive, 0), len(lin.Live))
	return lin.Live[:k]
}
