package revocation

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"sync"
	"time"

	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/internal/atomicfile"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// Published is a signed CRL ready to serve.
type Published struct {
	DER                    []byte
	Number                 *big.Int
	ThisUpdate, NextUpdate time.Time
	Entries                int
	// ETag is a strong validator for conditional GETs.
	ETag string

	pem func() []byte
}

func newPublished(der []byte, number *big.Int, thisUpdate, nextUpdate time.Time, entries int) *Published {
	return &Published{
		DER: der, Number: number, ThisUpdate: thisUpdate, NextUpdate: nextUpdate, Entries: entries,
		ETag: `"` + number.Text(16) + `"`,
		pem: sync.OnceValue(func() []byte {
			return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
		}),
	}
}

// PEM returns the CRL as PEM ("X509 CRL"). It is encoded at the first
// call, not when the CRL is published: a device CRL of a million entries
// is 50 MB of DER, and pem.EncodeToMemory takes a tenth of the time its
// signing took, for a form most verifiers never ask for.
func (p *Published) PEM() []byte { return p.pem() }

// CRL returns the current device CRL.
func (s *Service) CRL() *Published { return s.crl.Load() }

// RootCRL returns the current root CRL, or a fault.Unavailable saying why
// there is none (the root key is offline and no usable root.crl exists).
func (s *Service) RootCRL() (*Published, error) {
	p := s.rootCRL.Load()
	if p == nil || !s.now().Before(p.NextUpdate) {
		return nil, fault.New(fault.Unavailable, "this server has no current root CRL",
			"run 'fleetca crl sign-root' where the root key is and copy root.crl into the data directory")
	}
	return p, nil
}

// crlNumberCounter is the store counter of device CRL numbers: they only
// grow, across restarts and replicas too (RFC 5280 §5.2.3): only the
// holder of the CRL lease draws from it, and the store records a CRL only
// if its number is greater than the latest's.
const crlNumberCounter = "crl_number"

// crlOutcome is what buildCRL did.
type crlOutcome int

const (
	crlBuilt     crlOutcome = iota // signed, recorded in the store and served
	crlNotHolder                   // another replica holds the lease: its CRL is served
	crlNotDue                      // after catching up, no CRL was due
)

// publishCRL builds a new device CRL if this Service gets the CRL lease
// (see buildCRL), whether or not one is due.
func (s *Service) publishCRL(ctx context.Context) error {
	_, err := s.buildCRL(ctx, true)
	return err
}

// buildCRL catches up with the store (the revocation log, and the latest
// CRL, adopted if newer; forced, only if it does not get the lease), then,
// if force or a CRL is due (crlDue), takes
// the CRL lease and signs a new device CRL over the revoked certificates,
// numbered from the store's counter, records it (PutCRL) and serves it.
// Another replica holding the lease, or winning it while this one signed
// (store.ErrLeaseLost, store.ErrCRLNotNewer), is crlNotHolder, not an
// error: its CRL is served once the store has it.
//
// An expired certificate's entry leaves the CRL (and the index) only once
// it has appeared on one CRL issued after the certificate expired
// (RFC 5280 §3.3); after a restart it appears on one more.
func (s *Service) buildCRL(ctx context.Context, force bool) (crlOutcome, error) {
	s.buildMu.Lock()
	defer s.buildMu.Unlock()
	// Forced, the store's latest CRL matters only if this Service does not
	// get the lease (a CRL of a million entries takes a second to check).
	if err := s.catchUp(ctx, !force); err != nil {
		return 0, err
	}
	start := s.now()
	if !force && !s.crlDue(start) {
		return crlNotDue, nil
	}
	until := start.Add(s.cfg.CRLLease)
	held, err := s.deps.Store.LeaseCRL(ctx, s.holder, start, until)
	if err != nil {
		return 0, fmt.Errorf("take the CRL lease: %w", err)
	}
	if !held {
		s.leaseUntil.Store(0)
		if force {
			if err := s.catchUp(ctx, true); err != nil {
				return 0, err
			}
		}
		return crlNotHolder, nil
	}
	s.leaseUntil.Store(until.UnixNano())
	now := start.UTC().Truncate(time.Second)
	// The entries to list, to mark as listed past their expiry, and to
	// drop (listed past expiry before). Positions stay valid until this
	// build ends: entries are only appended meanwhile (buildMu).
	s.mu.RLock()
	list := make([]x509.RevocationListEntry, 0, len(s.entries))
	var mark, drop []int
	var latest time.Time
	for i, e := range s.entries {
		if e.listedExpired {
			drop = append(drop, i)
			continue
		}
		if !e.notAfter.After(now) {
			mark = append(mark, i) // this CRL is issued beyond its validity
		}
		list = append(list, e.entry)
		if e.entry.RevocationTime.After(latest) {
			latest = e.entry.RevocationTime
		}
	}
	s.mu.RUnlock()
	// RFC 5280 §5.1.2.6: no revocation date after thisUpdate. The clock
	// may be behind a revocation (stepped back, or read just before a
	// concurrent Revoke was indexed): date the CRL at that revocation.
	if latest.After(now) {
		s.log.WarnContext(ctx, "the clock is behind the latest revocation; dating the CRL at the revocation", "clock", now, "revoked_at", latest)
		now = latest.Truncate(time.Second)
	}
	n, err := s.deps.Store.NextCounter(ctx, crlNumberCounter)
	if err != nil {
		return 0, fmt.Errorf("next CRL number: %w", err)
	}
	number := new(big.Int).SetUint64(n)
	next := now.Add(s.cfg.CRLValidity)
	der, err := s.deps.CA.SignCRL(ctx, ca.CRLTemplate{Number: number, ThisUpdate: now, NextUpdate: next, Entries: list})
	if err != nil {
		return 0, fmt.Errorf("sign CRL %d: %w", n, err)
	}
	// Renew the lease before recording, so that a signing that took
	// longer than the lease still records its CRL when no other replica
	// took the lease meanwhile; one that did makes PutCRL refuse.
	signed := s.now()
	if held, err = s.deps.Store.LeaseCRL(ctx, s.holder, signed, signed.Add(s.cfg.CRLLease)); err != nil {
		return 0, fmt.Errorf("renew the CRL lease: %w", err)
	}
	if held {
		s.leaseUntil.Store(signed.Add(s.cfg.CRLLease).UnixNano())
	}
	// Record and serve under followMu, so that catchUp does not adopt
	// this very CRL from the store in between.
	s.followMu.Lock()
	err = s.deps.Store.PutCRL(ctx, s.holder, signed, store.CRL{Number: n, ThisUpdate: now, NextUpdate: next, DER: der})
	if errors.Is(err, store.ErrLeaseLost) || errors.Is(err, store.ErrCRLNotNewer) {
		s.followMu.Unlock()
		s.leaseUntil.Store(0)
		s.log.InfoContext(ctx, "another replica took the CRL lease while this one signed; serving its CRL", "number", n, "err", err)
		if err := s.catchUp(ctx, true); err != nil {
			return 0, err
		}
		return crlNotHolder, nil
	}
	if err != nil {
		s.followMu.Unlock()
		return 0, fmt.Errorf("record CRL %d: %w", n, err)
	}
	s.mu.Lock()
	for _, i := range mark {
		s.entries[i].listedExpired = true
	}
	for _, e := range list {
		delete(s.pending, string(e.SerialNumber.Bytes()))
	}
	if len(drop) > 0 {
		kept, d := s.entries[:0], 0
		for i, e := range s.entries {
			if d < len(drop) && drop[d] == i {
				d++
				continue
			}
			kept = append(kept, e)
		}
		clear(s.entries[len(kept):])
		s.entries = kept
		clear(s.index)
		for i, e := range s.entries {
			s.index[string(e.entry.SerialNumber.Bytes())] = i
		}
	}
	s.mu.Unlock()
	s.serveCRL(newPublished(der, number, now, next, len(list)))
	s.followMu.Unlock()
	s.m.crlBuild.Observe(s.now().Sub(start).Seconds())
	s.log.InfoContext(ctx, "CRL published", "number", n, "entries", len(list), "bytes", len(der), "next_update", next)
	return crlBuilt, nil
}

// crlDue reports whether a new device CRL is due at now: a revocation is
// not on the CRL served, or half of its validity has passed.
func (s *Service) crlDue(now time.Time) bool {
	cur := s.crl.Load()
	if cur == nil || !now.Before(cur.ThisUpdate.Add(s.cfg.CRLValidity/2)) {
		return true
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.pending) > 0
}

// startCRL gives New its first device CRL: it signs one if it gets the
// lease, and otherwise serves the store's current one. With none there
// yet, another replica holds the lease and is signing it (or died holding
// it): it waits, checking every PollInterval, for that CRL or the lease.
func (s *Service) startCRL(ctx context.Context) error {
	for {
		out, err := s.buildCRL(ctx, true)
		if err != nil {
			return err
		}
		if out == crlBuilt || s.crl.Load() != nil {
			return nil
		}
		s.log.InfoContext(ctx, "another replica holds the CRL lease and the store has no current CRL yet; waiting for it")
		if err := sleep(ctx, s.cfg.PollInterval); err != nil {
			return err
		}
	}
}

// crlLoop publishes a new CRL CRLPublishDelay after a revocation (several
// revocations in that window share one CRL), and at the latest when half
// of the current CRL's validity has passed, if this Service gets the CRL
// lease; while another replica holds it and a CRL is due here, it tries
// again every PollInterval, so that a holder that died is replaced once
// its lease runs out. A failure is retried in 5 s.
func (s *Service) crlLoop(ctx context.Context) error {
	for {
		cur := s.crl.Load()
		wait := cur.ThisUpdate.Add(s.cfg.CRLValidity / 2).Sub(s.now())
		if s.lostLease.Load() {
			// A CRL is due and another replica holds the lease: look
			// again in a while (not at once: it is due already).
			wait = s.cfg.PollInterval
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-s.kick:
			t.Stop()
			if err := sleep(ctx, s.cfg.CRLPublishDelay); err != nil {
				return err
			}
		case <-t.C:
		}
		// Every revocation indexed so far goes on the CRL built now: drop
		// its kick, or one burst would publish a second, identical CRL.
		select {
		case <-s.kick:
		default:
		}
		for {
			out, err := s.buildCRL(ctx, false)
			if err == nil {
				s.lostLease.Store(out == crlNotHolder)
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.log.ErrorContext(ctx, "CRL publication failed; retrying", "err", err, "current_next_update", s.crl.Load().NextUpdate)
			if err := sleep(ctx, 5*time.Second); err != nil {
				return err
			}
		}
	}
}

// SignRootCRL signs a root CRL (no intermediates revoked) valid for the
// given time, numbered by its thisUpdate in Unix seconds so that numbers
// grow without a shared counter (the root key may live on another machine).
func SignRootCRL(ctx context.Context, signer interface {
	SignRootCRL(context.Context, ca.CRLTemplate) ([]byte, error)
}, now time.Time, validity time.Duration) ([]byte, error) {
	now = now.UTC().Truncate(time.Second)
	return signer.SignRootCRL(ctx, ca.CRLTemplate{Number: big.NewInt(now.Unix()), ThisUpdate: now, NextUpdate: now.Add(validity)})
}

// refreshRootCRL signs a fresh root CRL when the root key is here and half
// of the current one's validity has passed, writing it to RootCRLPath; or,
// without the root key, (re)reads RootCRLPath. It warns when the root CRL
// will run out within a quarter of its validity.
func (s *Service) refreshRootCRL(ctx context.Context) error {
	now := s.now()
	if s.deps.CA.HasRootKey() {
		if cur := s.rootCRL.Load(); cur != nil && now.Before(cur.ThisUpdate.Add(cur.NextUpdate.Sub(cur.ThisUpdate)/2)) {
			return nil
		}
		der, err := SignRootCRL(ctx, s.deps.CA, now, s.cfg.RootCRLValidity)
		if err != nil {
			return err
		}
		p, err := s.parseRootCRL(der)
		if err != nil {
			return err
		}
		if s.deps.RootCRLPath != "" {
			if err := atomicfile.Write(s.deps.RootCRLPath, der, 0o644); err != nil {
				return err
			}
		}
		s.rootCRL.Store(p)
		s.log.InfoContext(ctx, "root CRL published", "number", p.Number.String(), "next_update", p.NextUpdate)
		return nil
	}
	if s.deps.RootCRLPath == "" {
		return errors.New("the root key is offline and no root CRL file is configured")
	}
	der, err := os.ReadFile(s.deps.RootCRLPath)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("the root key is offline and %s does not exist: run 'fleetca crl sign-root'", s.deps.RootCRLPath)
	}
	if err != nil {
		return fmt.Errorf("read root CRL: %w", err)
	}
	p, err := s.parseRootCRL(der)
	if err != nil {
		return fmt.Errorf("%s: %w", s.deps.RootCRLPath, err)
	}
	if cur := s.rootCRL.Load(); cur == nil || p.Number.Cmp(cur.Number) > 0 {
		s.rootCRL.Store(p)
	}
	cur := s.rootCRL.Load()
	left := cur.NextUpdate.Sub(now)
	switch {
	case left <= 0:
		return fmt.Errorf("the root CRL expired at %s: run 'fleetca crl sign-root' where the root key is", cur.NextUpdate.Format(time.RFC3339))
	case left < cur.NextUpdate.Sub(cur.ThisUpdate)/4:
		s.log.WarnContext(ctx, "the root CRL runs out soon; sign a new one with 'fleetca crl sign-root' where the root key is",
			"next_update", cur.NextUpdate, "left", left.Round(time.Minute).String())
	}
	return nil
}

// parseRootCRL reads a root CRL (DER, or PEM "X509 CRL") and checks it
// against the root: its signature, a CRL number and a nextUpdate
// (RFC 5280 §5.2.3, §5.1.2.5). It comes from this server or from the
// operator's copy of 'fleetca crl sign-root', and lists few entries, so
// x509.ParseRevocationList does.
func (s *Service) parseRootCRL(der []byte) (*Published, error) {
	if block, _ := pem.Decode(der); block != nil {
		if block.Type != "X509 CRL" {
			return nil, fmt.Errorf("PEM block is %s, not X509 CRL", block.Type)
		}
		der = block.Bytes
	}
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("parse root CRL: %w", err)
	}
	root := s.deps.CA.Root()
	if err := rl.CheckSignatureFrom(root); err != nil {
		return nil, fmt.Errorf("root CRL is not signed by %s: %w", root.Subject, err)
	}
	if rl.Number == nil {
		return nil, errors.New("root CRL has no CRL number (RFC 5280 §5.2.3)")
	}
	if rl.NextUpdate.IsZero() || rl.NextUpdate.Before(rl.ThisUpdate) {
		return nil, errors.New("root CRL has no valid nextUpdate")
	}
	return newPublished(der, rl.Number, rl.ThisUpdate, rl.NextUpdate, len(rl.RevokedCertificateEntries)), nil
}

// rootCRLLoop refreshes the root CRL every minute (cheap when nothing is due).
func (s *Service) rootCRLLoop(ctx context.Context) error {
	for {
		if err := sleep(ctx, time.Minute); err != nil {
			return err
		}
		if err := s.refreshRootCRL(ctx); err != nil {
			s.log.ErrorContext(ctx, "root CRL", "err", err)
		}
	}
}
