package revocation

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/fleetca/fleetca/store"
)

// followPage is how many revocation log entries catchUp reads at a time.
const followPage = 10_000

// presignFollowed bounds the revoked OCSP answers catchUp signs ahead for
// entries another replica revoked; past it (a replica catching up a long
// log) the cached answers are dropped and signed at their next request.
const presignFollowed = 64

// releaseTimeout bounds the lease release when Run ends.
const releaseTimeout = 5 * time.Second

// catchUp reads the revocation log after the last entry this Service has
// (by Seq: gapless and in commit order, so nothing is skipped or read
// twice) and applies what it did not know, as Applied does: the entries
// are indexed, their cached OCSP answers replaced, the feed's waiters
// woken and a CRL scheduled. Then, with adoptCRL, it adopts the store's
// latest CRL if it is newer than the one served and passes the checks of
// parseStoredCRL.
func (s *Service) catchUp(ctx context.Context, adoptCRL bool) error {
	s.followMu.Lock()
	defer s.followMu.Unlock()
	for {
		revs, err := s.deps.Store.ListRevocations(ctx, s.cursor, followPage)
		if err != nil {
			return fmt.Errorf("follow the revocation log after %d: %w", s.cursor, err)
		}
		if len(revs) == 0 {
			break
		}
		s.mu.RLock()
		fresh := make([]store.Revocation, 0, len(revs))
		for _, r := range revs {
			if _, ok := s.index[string(r.Serial.Bytes())]; !ok {
				fresh = append(fresh, r)
			}
		}
		s.mu.RUnlock()
		s.applyRevocations(ctx, fresh, len(fresh) <= presignFollowed)
		if len(fresh) > 0 {
			s.log.InfoContext(ctx, "revocations followed from the store", "certificates", len(fresh), "seq", revs[len(revs)-1].Seq)
		}
		s.cursor = revs[len(revs)-1].Seq
		s.m.followSeq.Set(float64(s.cursor))
		if len(revs) < followPage {
			break
		}
	}
	if !adoptCRL {
		return nil
	}
	var served uint64
	if cur := s.crl.Load(); cur != nil && cur.Number.IsUint64() {
		served = cur.Number.Uint64()
	}
	c, err := s.deps.Store.LatestCRL(ctx, served)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return fmt.Errorf("read the latest CRL: %w", err)
	default:
		s.adopt(ctx, c)
	}
	s.lastFollow.Store(s.now().UnixNano())
	return nil
}

// adopt serves c, a CRL another replica (or this one before a restart)
// recorded, if it passes parseStoredCRL's checks and is newer than the one
// served. The serials it lists are no longer pending here, nor are those
// of certificates expired at its thisUpdate (their signer may have listed
// and dropped them already, RFC 5280 §3.3).
func (s *Service) adopt(ctx context.Context, c store.CRL) {
	if c.Number == s.refusedCRL.Load() {
		return
	}
	p, rl, err := s.parseStoredCRL(c, s.now())
	if err != nil {
		s.refusedCRL.Store(c.Number)
		s.log.WarnContext(ctx, "the store's latest CRL fails its checks; not serving it", "number", c.Number, "err", err)
		return
	}
	if !s.serveCRL(p) {
		return
	}
	s.mu.Lock()
	for _, e := range rl.RevokedCertificateEntries {
		key := string(e.SerialNumber.Bytes())
		delete(s.pending, key)
		if i, ok := s.index[key]; ok && !s.entries[i].notAfter.After(p.ThisUpdate) {
			s.entries[i].listedExpired = true
		}
	}
	for key := range s.pending {
		if i, ok := s.index[key]; ok && !s.entries[i].notAfter.After(p.ThisUpdate) {
			delete(s.pending, key)
		}
	}
	s.mu.Unlock()
	s.log.InfoContext(ctx, "CRL adopted from the store", "number", c.Number, "entries", p.Entries, "next_update", p.NextUpdate)
}

// parseStoredCRL checks a CRL from the store as this Service's own would
// be: issued and signed by the intermediate, numbered as the store says,
// and not stale at now (RFC 5280 §5.1.2.5: before its nextUpdate).
func (s *Service) parseStoredCRL(c store.CRL, now time.Time) (*Published, *x509.RevocationList, error) {
	rl, err := x509.ParseRevocationList(c.DER)
	if err != nil {
		return nil, nil, fmt.Errorf("parse CRL: %w", err)
	}
	inter := s.deps.CA.Intermediate()
	if !bytes.Equal(rl.RawIssuer, inter.RawSubject) {
		return nil, nil, fmt.Errorf("the CRL is issued by %s, not by the intermediate %s", rl.Issuer, inter.Subject)
	}
	if err := rl.CheckSignatureFrom(inter); err != nil {
		return nil, nil, fmt.Errorf("the CRL is not signed by the intermediate: %w", err)
	}
	if rl.Number == nil || !rl.Number.IsUint64() || rl.Number.Uint64() != c.Number {
		return nil, nil, fmt.Errorf("the CRL's number is %v, the store says %d", rl.Number, c.Number)
	}
	if !now.Before(rl.NextUpdate) {
		return nil, nil, fmt.Errorf("the CRL is stale: its nextUpdate %s has passed", rl.NextUpdate.Format(time.RFC3339))
	}
	return newPublished(c.DER, rl.Number, rl.ThisUpdate, rl.NextUpdate, len(rl.RevokedCertificateEntries)), rl, nil
}

// serveCRL makes p the device CRL served if its number is greater than
// the current one's, and reports whether it did.
func (s *Service) serveCRL(p *Published) bool {
	for {
		cur := s.crl.Load()
		if cur != nil && p.Number.Cmp(cur.Number) <= 0 {
			return false
		}
		if s.crl.CompareAndSwap(cur, p) {
			s.m.crlNumber.Set(float64(p.Number.Uint64()))
			s.m.crlEntries.Set(float64(p.Entries))
			return true
		}
	}
}

// followLoop catches up with the store on each Changes signal and every
// PollInterval after the last catch-up: signals may be lost (a shared
// database's listener reconnecting), the poll is not. A failure is logged
// (at Warn once, until a catch-up succeeds again) and retried at the next
// poll.
func (s *Service) followLoop(ctx context.Context) error {
	changes := s.deps.Store.Changes(ctx)
	// At once: what committed before the subscription is on no signal.
	t := time.NewTimer(0)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case _, ok := <-changes:
			if !ok {
				changes = nil // the store is closing: the poll reports it
			}
		case <-t.C:
		}
		err := s.catchUp(ctx, true)
		if err == nil {
			err = s.followPartitions(ctx)
		}
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil && !failing:
			failing = true
			s.log.WarnContext(ctx, "cannot follow the store's revocation log; OCSP, the feed and the CRL may miss revocations made through other replicas until it can",
				"err", err)
		case err != nil:
			s.log.DebugContext(ctx, "follow the revocation log", "err", err)
		case failing:
			failing = false
			s.log.InfoContext(ctx, "following the store's revocation log again", "seq", s.followedSeq())
		}
		t.Reset(s.cfg.PollInterval)
	}
}

// followedSeq is the Seq of the last revocation log entry read.
func (s *Service) followedSeq() uint64 {
	s.followMu.Lock()
	defer s.followMu.Unlock()
	return s.cursor
}

// releaseLease gives up the CRL lease if this Service holds it, so that
// another replica need not wait for it to run out. The contract has no
// release: extending the lease to end now frees it at now (LeaseCRL
// frees a lease whose expiry is at or before now), and writes nothing if
// another holder has it.
func (s *Service) releaseLease(ctx context.Context) {
	until := s.leaseUntil.Swap(0)
	now := s.now()
	if until == 0 || now.UnixNano() >= until {
		return
	}
	if _, err := s.deps.Store.LeaseCRL(ctx, s.holder, now.Add(-time.Nanosecond), now); err != nil {
		s.log.WarnContext(ctx, "could not give up the CRL lease; another replica takes it when it runs out", "err", err)
	}
}

// leaseHeld is the fleetca_revocation_crl_lease_held gauge: 1 while the
// CRL lease this Service last took runs.
func (s *Service) leaseHeld() float64 {
	if until := s.leaseUntil.Load(); until != 0 && s.now().UnixNano() < until {
		return 1
	}
	return 0
}

// followAge is the fleetca_revocation_follow_age_seconds gauge: the
// seconds since the store's log and latest CRL were last read.
func (s *Service) followAge() float64 {
	last := s.lastFollow.Load()
	if last == 0 {
		return 0
	}
	return s.now().Sub(time.Unix(0, last)).Seconds()
}
