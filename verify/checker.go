package verify

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/internal/redact"
)

// Refusal says why a Checker refuses a certificate.
type Refusal int

// Refusals.
const (
	_ Refusal = iota
	// Revoked: the CRL or OCSP response lists the certificate.
	Revoked
	// Stale: the revocation data is past its nextUpdate by more than the
	// grace period and no fresh data could be had: fail closed.
	Stale
	// NoData: no revocation data has been loaded yet.
	NoData
	// UnknownCert: the OCSP responder does not know the certificate.
	UnknownCert
	// WrongIssuer: the certificate was not issued by the Checker's issuer.
	WrongIssuer
)

var refusalNames = map[Refusal]string{Revoked: "revoked", Stale: "stale", NoData: "no_data", UnknownCert: "unknown", WrongIssuer: "wrong_issuer"}

// String names the refusal, for logs and metric labels.
func (r Refusal) String() string { return refusalNames[r] }

// RefusedError is a Checker's refusal of a certificate.
type RefusedError struct {
	Refusal Refusal
	Serial  *big.Int
	// RevokedAt and Reason are set for Revoked.
	RevokedAt time.Time
	Reason    api.Reason
	// Detail adds what the Checker knew (the data's age, where it learnt
	// of the revocation); may be empty.
	Detail string
	// Err is why no usable data could be had (the last fetch's error),
	// for Stale and NoData; may be nil.
	Err error
}

func (e *RefusedError) Error() string {
	s := fmt.Sprintf("certificate %s refused: %s", e.Serial.Text(16), e.Refusal)
	if e.Refusal == Revoked {
		s += fmt.Sprintf(" at %s (%s)", e.RevokedAt.UTC().Format(time.RFC3339), e.Reason)
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns Err.
func (e *RefusedError) Unwrap() error { return e.Err }

// CheckerConfig configures a Checker. Exactly one of CRL and OCSP is set;
// Feed may be added to a CRL.
type CheckerConfig struct {
	// CRL is where the device CRL comes from: the base URL of the CA's
	// HTTP listener (http://ca.example:8080; the Checker fetches
	// <CRL>/crl, api.CRLPath), or the path of a CRL file (DER or PEM).
	// A URL that names a file under the listener (…/crl) is refused: see
	// BaseURL.
	CRL string
	// OCSP is the responder URL; "aia" takes it from each certificate's
	// AIA extension.
	OCSP string
	// Issuer signs the CRL (or the OCSP responder's certificate) and issues
	// the certificates checked: the fleet's intermediate.
	Issuer *x509.Certificate
	// Grace is how long past nextUpdate revocation data is still used when
	// no fresh data can be had; after it Check fails closed (Stale). nil
	// means DefaultGrace (1h); a pointer to 0 means no grace at all: the
	// data is refused the instant it is past its nextUpdate. Range 0..168h.
	// It is a pointer because zero is a setting of its own here, not "the
	// default" as for the other fields.
	Grace *time.Duration
	// Refresh is the longest time between CRL fetches. A CRL is also
	// refetched once half its validity has passed. Default 1m; range 1s..24h.
	Refresh time.Duration
	// MaxCRLBytes bounds a fetched CRL. Default 256 MiB.
	MaxCRLBytes int64
	// MaxCacheEntries bounds the OCSP response cache. Default 100000.
	MaxCacheEntries int
	// Feed, with a CRL, is the base URL of the CA's HTTPS listener
	// (https://ca.example:8443): Run then also follows GET
	// <Feed>/v1/revocations (api.FeedPath, a long-poll), so that revocations are known
	// within the round trip rather than at the next CRL. The CRL stays the
	// signed fallback and the freshness rule applies to it. Deps.Client
	// must trust the CA's TLS certificate.
	Feed string
}

// DefaultGrace is CheckerConfig.Grace when it is nil.
const DefaultGrace = time.Hour

// CheckerDeps are a Checker's collaborators.
type CheckerDeps struct {
	// Client fetches CRLs and OCSP responses; nil means a client with a 10 s timeout.
	Client *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// AfterFunc is the timer of the clock Now reads: it calls f in its own
	// goroutine once d has passed, unless stop is called first (stop
	// reports whether it stopped the call, as time.Timer.Stop does). nil
	// means time.AfterFunc, which testing/synctest fakes along with
	// time.Now. The Checker uses it to announce the instant its CRL goes
	// stale (SubscribeStale).
	AfterFunc func(d time.Duration, f func()) (stop func() bool)
	// Logger; nil discards.
	Logger *slog.Logger
}

// Checker is the verifier side of revocation: it tells whether a
// certificate of the fleet is revoked, from the CRL (fetched, its signature
// checked against the issuer, serials indexed for O(1) lookup) or from the
// OCSP responder (responses cached until their nextUpdate). It fails
// closed: no data, stale data past the grace period, or an unknown
// certificate is a refusal. It is safe for concurrent use.
//
// From a CA that partitions its CRLs (api.PartitionsPath) it loads each
// partition's CRL independently, and the full CRL while the CA says some
// live certificate has no partition; a certificate is checked against the
// partition its CRL distribution point names, so a missing or stale
// partition CRL refuses only that partition's certificates.
type Checker struct {
	cfg       CheckerConfig
	grace     time.Duration // cfg.Grace resolved
	client    *http.Client
	now       func() time.Time
	afterFunc func(time.Duration, func()) func() bool
	log       *slog.Logger

	plan      atomic.Pointer[crlPlan] // the CRLs in use; nil before the CA's partitions are known
	fetchMu   sync.Mutex              // one refresh at a time; guards slots and each slot's valid
	slots     map[string]*crlSlot     // by path: every CRL ever planned, so numbers are kept across plans
	errMu     sync.Mutex              // guards lastErr; never held across a fetch
	lastErr   error
	ocspMu    sync.Mutex
	ocspCache map[string]*ocsp.Response

	// feedMu guards the revocations learnt from the feed and the
	// subscribers.
	feedMu   sync.RWMutex
	feedSeen map[string]CRLEntry
	feedSeq  uint64
	subs     []func(serial *big.Int)

	// staleMu guards the slots' stale timers and the subscribers.
	staleMu   sync.Mutex
	staleSubs []func(reason error)
}

// NewChecker returns a Checker. A CRL Checker has no data until Refresh (or
// Run) has loaded a CRL.
//
// Errors: fault.Malformed for a Config it cannot use (neither or both of
// CRL and OCSP, a CRL URL that is not a listener's base URL, a Feed
// without a CRL or not https, Grace or Refresh out of range).
func NewChecker(cfg CheckerConfig, deps CheckerDeps) (*Checker, error) {
	if (cfg.CRL == "") == (cfg.OCSP == "") {
		return nil, fault.New(fault.Malformed, "a revocation checker needs exactly one of a CRL source and an OCSP responder",
			"set the CRL source (CRL) or the OCSP responder (OCSP), not both")
	}
	if cfg.Issuer == nil {
		return nil, errors.New("verify.NewChecker: Issuer is required")
	}
	if isURL(cfg.CRL) {
		base, err := BaseURL(cfg.CRL, "http", "https")
		if err != nil {
			return nil, err
		}
		cfg.CRL = base
	}
	grace := DefaultGrace
	if cfg.Grace != nil {
		grace = *cfg.Grace
	}
	if cfg.Refresh == 0 {
		cfg.Refresh = time.Minute
	}
	if cfg.MaxCRLBytes == 0 {
		cfg.MaxCRLBytes = 256 << 20
	}
	if cfg.MaxCacheEntries == 0 {
		cfg.MaxCacheEntries = 100_000
	}
	switch {
	case grace < 0 || grace > 168*time.Hour:
		return nil, fault.New(fault.Malformed, fmt.Sprintf("the grace period %s is outside 0..168h", grace), "")
	case cfg.Refresh < time.Second || cfg.Refresh > 24*time.Hour:
		return nil, fault.New(fault.Malformed, fmt.Sprintf("the refresh interval %s is outside 1s..24h", cfg.Refresh), "")
	}
	if cfg.Feed != "" {
		if cfg.CRL == "" {
			return nil, fault.New(fault.Malformed, "a revocation feed needs a CRL as its signed fallback", "set the CRL source (CRL) with the feed")
		}
		base, err := BaseURL(cfg.Feed, "https")
		if err != nil {
			return nil, err
		}
		cfg.Feed = base
	}
	c := &Checker{cfg: cfg, grace: grace, client: deps.Client, now: deps.Now, afterFunc: deps.AfterFunc, log: deps.Logger,
		ocspCache: map[string]*ocsp.Response{}, feedSeen: map[string]CRLEntry{}, slots: map[string]*crlSlot{}}
	if cfg.CRL != "" && !isURL(cfg.CRL) {
		// A file holds one CRL: the full one.
		c.plan.Store(&crlPlan{full: &crlSlot{name: "CRL", path: cfg.CRL}})
	}
	if c.client == nil {
		c.client = &http.Client{Timeout: 10 * time.Second}
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.afterFunc == nil {
		c.afterFunc = func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Check returns nil if leaf is not revoked by what the Checker knows, and a
// *RefusedError otherwise (or for a fetch failure in OCSP mode, when no
// usable cached answer remains).
func (c *Checker) Check(ctx context.Context, leaf *x509.Certificate) error {
	if !issuedBy(leaf, c.cfg.Issuer) {
		return &RefusedError{Refusal: WrongIssuer, Serial: leaf.SerialNumber, Detail: "issued by " + leaf.Issuer.String()}
	}
	if c.cfg.OCSP != "" {
		return c.checkOCSP(ctx, leaf)
	}
	var crl *CRL
	if plan := c.plan.Load(); plan != nil {
		slot := plan.slotFor(leaf)
		if slot == nil {
			return &RefusedError{Refusal: NoData, Serial: leaf.SerialNumber,
				Detail: fmt.Sprintf("no CRL is loaded for its distribution point %q (the CA has %d partitions and says no certificate needs the full CRL)",
					leaf.CRLDistributionPoints, len(plan.parts))}
		}
		crl = slot.crl.Load()
	}
	now := c.now()
	if crl == nil {
		return &RefusedError{Refusal: NoData, Serial: leaf.SerialNumber, Err: c.fetchError()}
	}
	if now.After(crl.NextUpdate.Add(c.grace)) {
		return &RefusedError{Refusal: Stale, Serial: leaf.SerialNumber,
			Detail: fmt.Sprintf("CRL %s expired at %s", crl.Number, crl.NextUpdate.UTC().Format(time.RFC3339)), Err: c.fetchError()}
	}
	if e, ok := crl.Lookup(leaf.SerialNumber); ok {
		return &RefusedError{Refusal: Revoked, Serial: leaf.SerialNumber, RevokedAt: e.RevokedAt, Reason: e.Reason}
	}
	c.feedMu.RLock()
	e, ok := c.feedSeen[string(leaf.SerialNumber.Bytes())]
	c.feedMu.RUnlock()
	if ok {
		return &RefusedError{Refusal: Revoked, Serial: leaf.SerialNumber, RevokedAt: e.RevokedAt, Reason: e.Reason, Detail: "from the revocation feed"}
	}
	return nil
}

// Subscribe registers fn to be called with the serial of every certificate
// the Checker learns is revoked after it was last checked: from the feed,
// or from a new CRL that lists it when the CRL in use did not. A verifier
// uses it to close connections that are already open. fn must not block.
func (c *Checker) Subscribe(fn func(serial *big.Int)) {
	c.feedMu.Lock()
	c.subs = append(c.subs, fn)
	c.feedMu.Unlock()
}

func (c *Checker) notify(serials []*big.Int) {
	if len(serials) == 0 {
		return
	}
	c.feedMu.RLock()
	subs := c.subs
	c.feedMu.RUnlock()
	for _, fn := range subs {
		for _, s := range serials {
			fn(s)
		}
	}
}

// issuedBy is a cheap test that leaf names issuer as its issuer, by name
// and key identifier. It does not verify the signature: the TLS stack that
// built the chain did.
func issuedBy(leaf, issuer *x509.Certificate) bool {
	if !bytes.Equal(leaf.RawIssuer, issuer.RawSubject) {
		return false
	}
	return len(leaf.AuthorityKeyId) == 0 || len(issuer.SubjectKeyId) == 0 || bytes.Equal(leaf.AuthorityKeyId, issuer.SubjectKeyId)
}

// fetchError is the last CRL fetch's error, or nil.
func (c *Checker) fetchError() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.lastErr
}

// CurrentCRL returns the CRL in use, or nil. With partitions it is the
// full CRL if one is needed, else the partition CRL with the oldest
// thisUpdate; nil while any planned CRL is missing.
func (c *Checker) CurrentCRL() *CRL {
	plan := c.plan.Load()
	if plan == nil {
		return nil
	}
	var oldest *CRL
	for _, slot := range plan.all() {
		crl := slot.crl.Load()
		if crl == nil {
			return nil
		}
		if slot == plan.full {
			return crl
		}
		if oldest == nil || crl.ThisUpdate.Before(oldest.ThisUpdate) {
			oldest = crl
		}
	}
	return oldest
}

// Refresh learns the CA's partitions (a URL source), fetches each CRL
// and, if it is valid, newer or as new as the one in use, switches to it.
// A CRL with a lower number than the one in use, a bad signature, an
// expired one, or a partition CRL without the Issuing Distribution Point
// of its URL is refused and the old one kept. It returns the errors of
// every CRL it could not refresh.
func (c *Checker) Refresh(ctx context.Context) error {
	if c.cfg.CRL == "" {
		return nil
	}
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	err := c.refreshLocked(ctx)
	c.errMu.Lock()
	c.lastErr = err
	c.errMu.Unlock()
	return err
}

func (c *Checker) refreshLocked(ctx context.Context) error {
	var errs []error
	if isURL(c.cfg.CRL) {
		if err := c.replan(ctx); err != nil {
			errs = append(errs, err) // the last known partitions stand
			if c.plan.Load() == nil {
				// The full CRL lists every revoked device certificate:
				// right for every certificate until the partitions are
				// known.
				c.plan.Store(&crlPlan{full: c.slot("CRL", api.CRLPath, false)})
			}
		}
	}
	for _, slot := range c.plan.Load().all() {
		if err := c.refreshSlot(ctx, slot); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// replan reads the CA's partitions and stores the plan of CRLs to keep.
func (c *Checker) replan(ctx context.Context) error {
	d, err := fetchPartitions(ctx, c.client, c.cfg.CRL)
	if err != nil {
		return err
	}
	slot := c.slot
	plan := &crlPlan{}
	if d.Partitions > 1 {
		for p := range d.Partitions {
			plan.parts = append(plan.parts, slot(fmt.Sprintf("partition %d CRL", p), api.PartitionCRLPath(p), true))
		}
	}
	if d.Full.Needed {
		plan.full = slot("CRL", api.CRLPath, false)
	}
	old := c.plan.Swap(plan)
	// A CRL the plan no longer keeps is not refreshed any more: its stale
	// timer must not announce it (which would close every connection).
	c.staleMu.Lock()
	for _, s := range old.all() {
		if !plan.has(s) && s.staleStop != nil {
			s.staleStop()
			s.staleStop = nil
		}
	}
	c.staleMu.Unlock()
	return nil
}

// slot returns the slot of path, made on first use; the caller holds
// fetchMu.
func (c *Checker) slot(name, path string, part bool) *crlSlot {
	s := c.slots[path]
	if s == nil {
		s = &crlSlot{name: name, path: path, part: part}
		c.slots[path] = s
	}
	return s
}

// refreshSlot fetches slot's CRL and installs it if it passes.
func (c *Checker) refreshSlot(ctx context.Context, slot *crlSlot) error {
	b, notModified, err := c.fetchCRL(ctx, slot)
	if err != nil || notModified {
		return err
	}
	crl, err := ParseCRL(b, c.cfg.Issuer)
	if err != nil {
		return err
	}
	src := redact.URL(c.cfg.CRL + slot.path)
	if !isURL(c.cfg.CRL) {
		src = c.cfg.CRL
	}
	switch {
	case slot.part && !crl.scoped:
		// Without IDP it claims every certificate of the issuer.
		return fmt.Errorf("%s from %s has no issuing distribution point", slot.name, src)
	case crl.scoped && !scopeIs(crl.scope, slot.path) && isURL(c.cfg.CRL):
		return fmt.Errorf("%s from %s has the issuing distribution point %q", slot.name, src, crl.scope)
	}
	now := c.now()
	if now.After(crl.NextUpdate.Add(c.grace)) {
		return fmt.Errorf("CRL %s from %s expired at %s", crl.Number, src, crl.NextUpdate.UTC().Format(time.RFC3339))
	}
	cur := slot.crl.Load()
	if cur != nil && crl.Number.Cmp(cur.Number) < 0 {
		return fmt.Errorf("CRL %s from %s is older than CRL %s in use", crl.Number, src, cur.Number)
	}
	slot.crl.Store(crl)
	c.armStale(slot, crl)
	c.feedMu.Lock()
	for k := range c.feedSeen {
		if crl.has(k) {
			delete(c.feedSeen, k) // the signed CRL covers it now
		}
	}
	c.feedMu.Unlock()
	if cur != nil {
		c.notify(crl.addedSince(cur))
	}
	c.log.DebugContext(ctx, "CRL loaded", "crl", slot.name, "number", crl.Number.String(), "entries", crl.Len(), "next_update", crl.NextUpdate)
	return nil
}

// fetchCRL reads slot's CRL from the CA (conditionally) or the file.
func (c *Checker) fetchCRL(ctx context.Context, slot *crlSlot) (b []byte, notModified bool, err error) {
	src := c.cfg.CRL
	if !isURL(src) {
		f, err := os.Open(src)
		if err != nil {
			return nil, false, fmt.Errorf("read CRL: %w", err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, c.cfg.MaxCRLBytes+1))
		if err != nil {
			return nil, false, fmt.Errorf("read CRL %s: %w", src, err)
		}
		if int64(len(b)) > c.cfg.MaxCRLBytes {
			return nil, false, fmt.Errorf("CRL %s is larger than %d bytes", src, c.cfg.MaxCRLBytes)
		}
		return b, false, nil
	}
	var v validators
	if slot.crl.Load() != nil {
		v = slot.valid
	}
	b, next, notModified, err := fetchConditional(ctx, c.client, src, slot.path, v, c.cfg.MaxCRLBytes)
	if err != nil || notModified {
		return nil, notModified, err
	}
	slot.valid = next
	return b, false, nil
}

// Run keeps the CRL fresh until ctx ends: it refetches every Refresh, and
// at the latest once half of the current CRL's validity has passed;
// failures are logged at Warn and retried with backoff (1 s doubling to
// Refresh). In OCSP mode it returns at once.
func (c *Checker) Run(ctx context.Context) error {
	if c.cfg.CRL == "" {
		return nil
	}
	if c.cfg.Feed != "" {
		done := make(chan struct{})
		defer func() { <-done }()
		go func() { defer close(done); c.followFeed(ctx) }()
	}
	backoff := time.Second
	for {
		wait := c.cfg.Refresh
		if err := c.Refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.log.WarnContext(ctx, "CRL refresh failed", "source", redact.URL(c.cfg.CRL), "err", err)
			wait, backoff = backoff, min(backoff*2, c.cfg.Refresh)
		} else {
			backoff = time.Second
			for _, slot := range c.plan.Load().all() {
				if crl := slot.crl.Load(); crl != nil {
					half := crl.ThisUpdate.Add(crl.NextUpdate.Sub(crl.ThisUpdate) / 2)
					wait = max(min(wait, half.Sub(c.now())), time.Second)
				}
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// crlPlan is the set of CRLs a Checker keeps: the partitions' (with N > 1)
// and the full CRL (nil when the CA says no live certificate needs it).
type crlPlan struct {
	parts []*crlSlot
	full  *crlSlot
}

// crlSlot is one CRL a Checker keeps, loaded and refreshed on its own.
type crlSlot struct {
	name string // for messages: "CRL", "partition 3 CRL"
	path string // under the CA's base URL, or the file
	part bool   // a partition CRL: it must have the IDP of its path
	crl  atomic.Pointer[CRL]
	// valid are the cache validators of the last fetch; guarded by
	// Checker.fetchMu.
	valid validators
	// staleStop stops the stale timer armed for crl; guarded by
	// Checker.staleMu.
	staleStop func() bool
}

// all is every slot of the plan, the partitions first; a nil plan has none.
func (p *crlPlan) all() []*crlSlot {
	if p == nil {
		return nil
	}
	out := p.parts[:len(p.parts):len(p.parts)]
	if p.full != nil {
		out = append(out, p.full)
	}
	return out
}

// has reports whether s is one of the plan's slots.
func (p *crlPlan) has(s *crlSlot) bool {
	return slices.Contains(p.all(), s)
}

// slotFor is the CRL that covers leaf: the partition its CRL distribution
// point names (…/crl/<p>, p < N), else the full CRL, which lists every
// revoked device certificate (nil if not kept: the leaf is then refused).
// The partition is read from the distribution point, which the CA signed,
// and never computed from the serial: a change of N moves no certificate.
func (p *crlPlan) slotFor(leaf *x509.Certificate) *crlSlot {
	if len(p.parts) > 0 {
		for _, u := range leaf.CRLDistributionPoints {
			if i := partitionOf(u); i >= 0 && i < len(p.parts) {
				return p.parts[i]
			}
		}
	}
	return p.full
}

// partitionOf returns p for a distribution point URL whose path ends in
// /crl/<p> (api.PartitionCRLPath), or -1.
func partitionOf(u string) int {
	pu, err := url.Parse(u)
	if err != nil {
		return -1
	}
	dir, last := path.Split(pu.Path)
	if !strings.HasSuffix(dir, api.CRLPath+"/") || last == "" || len(last) > 3 || (len(last) > 1 && last[0] == '0') {
		return -1
	}
	n, err := strconv.Atoi(last)
	if err != nil || n < 0 || n >= api.MaxCRLPartitions || strconv.Itoa(n) != last {
		return -1
	}
	return n
}
