package revocation

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/store"
)

// partitionsMetaKey is the store meta key that remembers the largest
// crl_partitions any server of this store published: certificates
// assigned a partition under it may still be live after the setting
// was lowered, so their partition CRLs stay published.
const partitionsMetaKey = "crl_partitions_max"

// partitionCounter is the store counter of partition p's CRL numbers.
func partitionCounter(p int) string { return crlNumberCounter + "/" + strconv.Itoa(p) }

// partitions are the partition CRLs (Config.CRLPartitions): each is
// built, numbered, leased and recorded on its own, like the full CRL, and
// only when a revocation in it or half its validity calls for it.
type partitions struct {
	// urls are the partitions' distribution points; len(urls) is the
	// number published (0: none).
	urls []string
	pubs []atomic.Pointer[Published]
	// pending are, per partition, the serials indexed and not yet on a
	// partition CRL served; guarded by Service.mu.
	pending []map[string]struct{}
	// leaseUntil, per partition, as Service.leaseUntil.
	leaseUntil []atomic.Int64
	// refused, per partition, as Service.refusedCRL.
	refused []atomic.Uint64
	// lost is set when the last build of a due partition found its lease
	// another's.
	lost atomic.Bool
	// buildMu serialises partition builds.
	buildMu sync.Mutex
	kick    chan struct{}
	// fullNeededUntil is the latest NotAfter of an unrevoked certificate
	// without a partition, found at New (Unix nanoseconds); math.MaxInt64
	// while crl_partitions is 1 (every new certificate has none).
	fullNeededUntil int64
}

// initPartitions decides how many partition CRLs to publish (the
// configured number, or the largest the store remembers) and, with
// partitions, whether the full CRL is still needed by certificates
// without one.
func (s *Service) initPartitions(ctx context.Context) error {
	pt := &s.parts
	pt.kick = make(chan struct{}, 1)
	pt.fullNeededUntil = int64(^uint64(0) >> 1)
	n := s.cfg.CRLPartitions
	if n <= 1 {
		n = 0
	}
	v, err := s.deps.Store.GetMeta(ctx, partitionsMetaKey)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return fmt.Errorf("read %s: %w", partitionsMetaKey, err)
	default:
		if m, err := strconv.Atoi(string(v)); err == nil && m > n && m <= api.MaxCRLPartitions {
			n = m
		}
	}
	if n == 0 {
		return nil
	}
	if s.deps.PublicURL == "" {
		return errors.New("revocation.New: Deps.PublicURL is required with partitioned CRLs")
	}
	if string(v) != strconv.Itoa(n) {
		if err := s.deps.Store.PutMeta(ctx, partitionsMetaKey, []byte(strconv.Itoa(n))); err != nil {
			return fmt.Errorf("record %s: %w", partitionsMetaKey, err)
		}
	}
	pt.urls = make([]string, n)
	for p := range pt.urls {
		pt.urls[p] = ca.PartitionURL(s.deps.PublicURL, p)
	}
	pt.pubs = make([]atomic.Pointer[Published], n)
	pt.pending = make([]map[string]struct{}, n)
	for p := range pt.pending {
		pt.pending[p] = map[string]struct{}{}
	}
	pt.leaseUntil = make([]atomic.Int64, n)
	pt.refused = make([]atomic.Uint64, n)
	for _, e := range s.entries {
		if e.partition >= 0 && e.partition < n {
			pt.pending[e.partition][string(e.entry.SerialNumber.Bytes())] = struct{}{}
		}
	}
	if s.cfg.CRLPartitions > 1 {
		until, err := s.unpartitionedUntil(ctx)
		if err != nil {
			return err
		}
		pt.fullNeededUntil = until.UnixNano()
	}
	return nil
}

// unpartitionedUntil reads every certificate once and returns the latest
// NotAfter of an unrevoked one without a partition (zero if none): until
// then the full CRL is the only one that may list it.
func (s *Service) unpartitionedUntil(ctx context.Context) (time.Time, error) {
	var latest time.Time
	page := store.Page{Limit: store.MaxPageLimit}
	for {
		certs, err := s.deps.Store.ListCertificates(ctx, "", page)
		if err != nil {
			return time.Time{}, fmt.Errorf("find certificates without a CRL partition: %w", err)
		}
		for _, c := range certs {
			if c.Partition == nil && c.RevokedAt.IsZero() && c.NotAfter.After(latest) {
				latest = c.NotAfter
			}
		}
		if len(certs) < page.Limit {
			return latest, nil
		}
		page.After = certs[len(certs)-1].Serial.Text(16)
	}
}

// PartitionCRL returns partition p's current CRL, or nil if p is not
// published or its first CRL is not there yet.
func (s *Service) PartitionCRL(p int) *Published {
	if p < 0 || p >= len(s.parts.urls) {
		return nil
	}
	return s.parts.pubs[p].Load()
}

// Partitions returns the discovery document (api.PartitionsPath): the
// partition CRLs published, and whether verifiers need the full CRL too.
func (s *Service) Partitions() api.CRLPartitions {
	pt := &s.parts
	out := api.CRLPartitions{Partitions: len(pt.urls), CRLs: make([]api.PartitionCRL, 0, len(pt.urls)),
		Full: api.FullCRL{URL: s.deps.PublicURL + api.CRLPath, Needed: true}}
	for p, u := range pt.urls {
		c := api.PartitionCRL{Partition: p, URL: u}
		if cur := pt.pubs[p].Load(); cur != nil {
			c.Number, c.NextUpdate = cur.Number.String(), cur.NextUpdate.UTC().Format(time.RFC3339)
		}
		out.CRLs = append(out.CRLs, c)
	}
	if len(pt.urls) > 0 {
		out.Full.Needed = s.now().UnixNano() < pt.fullNeededUntil
	}
	return out
}

// markPartitionLocked records that the entry for key, of partition p,
// is not yet on its partition CRL; the caller holds mu.
func (s *Service) markPartitionLocked(p int, key string) bool {
	if p < 0 || p >= len(s.parts.urls) {
		return false
	}
	s.parts.pending[p][key] = struct{}{}
	return true
}

// partitionDue reports whether partition p needs a new CRL at now.
func (s *Service) partitionDue(p int, now time.Time) bool {
	cur := s.parts.pubs[p].Load()
	if cur == nil || !now.Before(cur.ThisUpdate.Add(s.cfg.CRLValidity/2)) {
		return true
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.parts.pending[p]) > 0
}

// buildPartition builds partition p's CRL as buildCRL builds the full
// one, with its own lease, counter and store record, over the entries of
// the certificates recorded in p: if this Service gets p's lease, and,
// unless force, only when one is due. Without the lease it adopts the
// store's latest CRL of p.
func (s *Service) buildPartition(ctx context.Context, p int, force bool) (crlOutcome, error) {
	pt := &s.parts
	pt.buildMu.Lock()
	defer pt.buildMu.Unlock()
	start := s.now()
	if !force && !s.partitionDue(p, start) {
		return crlNotDue, nil
	}
	until := start.Add(s.cfg.CRLLease)
	held, err := s.deps.Store.LeasePartitionCRL(ctx, p, s.holder, start, until)
	if err != nil {
		return 0, fmt.Errorf("take the lease of CRL partition %d: %w", p, err)
	}
	if !held {
		pt.leaseUntil[p].Store(0)
		return crlNotHolder, s.adoptPartition(ctx, p)
	}
	pt.leaseUntil[p].Store(until.UnixNano())
	now := start.UTC().Truncate(time.Second)
	s.mu.RLock()
	var list []x509.RevocationListEntry
	var latest time.Time
	for _, e := range s.entries {
		if e.partition != p || e.listedExpired {
			continue
		}
		list = append(list, e.entry)
		if e.entry.RevocationTime.After(latest) {
			latest = e.entry.RevocationTime
		}
	}
	s.mu.RUnlock()
	if latest.After(now) {
		now = latest.Truncate(time.Second)
	}
	n, err := s.deps.Store.NextCounter(ctx, partitionCounter(p))
	if err != nil {
		return 0, fmt.Errorf("next CRL number of partition %d: %w", p, err)
	}
	number := new(big.Int).SetUint64(n)
	next := now.Add(s.cfg.CRLValidity)
	der, err := s.deps.CA.SignCRL(ctx, ca.CRLTemplate{Number: number, ThisUpdate: now, NextUpdate: next, Entries: list,
		DistributionPoint: pt.urls[p]})
	if err != nil {
		return 0, fmt.Errorf("sign CRL %d of partition %d: %w", n, p, err)
	}
	signed := s.now()
	if held, err = s.deps.Store.LeasePartitionCRL(ctx, p, s.holder, signed, signed.Add(s.cfg.CRLLease)); err != nil {
		return 0, fmt.Errorf("renew the lease of CRL partition %d: %w", p, err)
	}
	if held {
		pt.leaseUntil[p].Store(signed.Add(s.cfg.CRLLease).UnixNano())
	}
	err = s.deps.Store.PutPartitionCRL(ctx, p, s.holder, signed, store.CRL{Number: n, ThisUpdate: now, NextUpdate: next, DER: der})
	if errors.Is(err, store.ErrLeaseLost) || errors.Is(err, store.ErrCRLNotNewer) {
		pt.leaseUntil[p].Store(0)
		s.log.InfoContext(ctx, "another replica took the lease of a CRL partition while this one signed; serving its CRL",
			"partition", p, "number", n, "err", err)
		return crlNotHolder, s.adoptPartition(ctx, p)
	}
	if err != nil {
		return 0, fmt.Errorf("record CRL %d of partition %d: %w", n, p, err)
	}
	s.servePartition(p, newPublished(der, number, now, next, len(list)), list)
	s.log.InfoContext(ctx, "partition CRL published", "partition", p, "number", n, "entries", len(list), "next_update", next)
	return crlBuilt, nil
}

// servePartition serves pub as partition p's CRL if it is newer than the
// one served, and takes the serials it lists off p's pending.
func (s *Service) servePartition(p int, pub *Published, listed []x509.RevocationListEntry) bool {
	slot := &s.parts.pubs[p]
	for {
		cur := slot.Load()
		if cur != nil && pub.Number.Cmp(cur.Number) <= 0 {
			return false
		}
		if slot.CompareAndSwap(cur, pub) {
			break
		}
	}
	s.mu.Lock()
	for _, e := range listed {
		delete(s.parts.pending[p], string(e.SerialNumber.Bytes()))
	}
	s.mu.Unlock()
	return true
}

// adoptPartition serves the store's latest CRL of partition p if it is
// newer than the one served and passes the checks of a full CRL
// (parseStoredCRL) and names p's distribution point.
func (s *Service) adoptPartition(ctx context.Context, p int) error {
	pt := &s.parts
	var served uint64
	if cur := pt.pubs[p].Load(); cur != nil && cur.Number.IsUint64() {
		served = cur.Number.Uint64()
	}
	c, err := s.deps.Store.LatestPartitionCRL(ctx, p, served)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("read the latest CRL of partition %d: %w", p, err)
	case c.Number == pt.refused[p].Load():
		return nil
	}
	pub, rl, err := s.parseStoredCRL(c, s.now())
	if err == nil {
		err = checkIDP(rl, pt.urls[p])
	}
	if err != nil {
		pt.refused[p].Store(c.Number)
		s.log.WarnContext(ctx, "the store's latest CRL of a partition fails its checks; not serving it", "partition", p, "number", c.Number, "err", err)
		return nil
	}
	if s.servePartition(p, pub, rl.RevokedCertificateEntries) {
		s.log.InfoContext(ctx, "partition CRL adopted from the store", "partition", p, "number", c.Number, "entries", pub.Entries)
	}
	return nil
}

// startPartitions gives New each partition's first CRL: signed here if
// this Service gets its lease, or the store's. A partition whose lease
// another replica holds and that has none in the store yet is left to
// partitionLoop.
func (s *Service) startPartitions(ctx context.Context) error {
	for p := range s.parts.urls {
		if _, err := s.buildPartition(ctx, p, true); err != nil {
			return err
		}
	}
	return nil
}

// partitionRetry is how soon a partition whose publication failed is
// tried again.
const partitionRetry = 5 * time.Second

// partitionLoop publishes, CRLPublishDelay after a revocation, the CRL of
// each partition it touched, and each partition's at the latest when half
// of its validity has passed; while another replica holds a due
// partition's lease it looks again every PollInterval. Failures are
// retried in 5 s.
func (s *Service) partitionLoop(ctx context.Context) error {
	pt := &s.parts
	if len(pt.urls) == 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	failed := false // a partition's publication failed last round
	for {
		wait := s.cfg.CRLValidity / 2
		if failed {
			wait = partitionRetry
		}
		now := s.now()
		for p := range pt.urls {
			cur := pt.pubs[p].Load()
			if cur == nil {
				wait = s.cfg.PollInterval
				break
			}
			wait = min(wait, cur.ThisUpdate.Add(s.cfg.CRLValidity/2).Sub(now))
		}
		if pt.lost.Load() {
			wait = min(wait, s.cfg.PollInterval)
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-pt.kick:
			t.Stop()
			if err := sleep(ctx, s.cfg.CRLPublishDelay); err != nil {
				return err
			}
		case <-t.C:
		}
		select {
		case <-pt.kick:
		default:
		}
		// Every due partition is tried each round: one that fails is
		// retried in partitionRetry and does not hold up the others.
		lost := false
		failed = false
		for p := range pt.urls {
			out, err := s.buildPartition(ctx, p, false)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				s.log.ErrorContext(ctx, "partition CRL publication failed; retrying", "partition", p, "err", err, "retry_in", partitionRetry)
				failed = true
				continue
			}
			lost = lost || out == crlNotHolder
		}
		pt.lost.Store(lost)
	}
}

// followPartitions adopts the store's newer partition CRLs (another
// replica's), as catchUp does the full CRL's, for the partitions that
// need one here: a revocation indexed here is not on the CRL served, or
// half its validity has passed. The others' CRL served is still current
// (it lists every revocation this replica knows of), and reading only
// these keeps a poll of up to 256 partitions to a few reads.
func (s *Service) followPartitions(ctx context.Context) error {
	now := s.now()
	for p := range s.parts.urls {
		if !s.partitionDue(p, now) {
			continue
		}
		if err := s.adoptPartition(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

// releasePartitionLeases gives up the partition leases this Service
// holds, as releaseLease does the full CRL's.
func (s *Service) releasePartitionLeases(ctx context.Context) {
	now := s.now()
	for p := range s.parts.urls {
		until := s.parts.leaseUntil[p].Swap(0)
		if until == 0 || now.UnixNano() >= until {
			continue
		}
		if _, err := s.deps.Store.LeasePartitionCRL(ctx, p, s.holder, now.Add(-time.Nanosecond), now); err != nil {
			s.log.WarnContext(ctx, "could not give up the lease of a CRL partition", "partition", p, "err", err)
		}
	}
}

// checkIDP checks that rl's issuing distribution point is the one
// SignCRL gives partition CRLs of url.
func checkIDP(rl *x509.RevocationList, url string) error {
	want, err := ca.IssuingDistributionPoint(url)
	if err != nil {
		return err
	}
	for _, e := range rl.Extensions {
		if e.Id.Equal(want.Id) {
			if e.Critical && bytes.Equal(e.Value, want.Value) {
				return nil
			}
			break
		}
	}
	return fmt.Errorf("the CRL's issuing distribution point is not %s", url)
}
