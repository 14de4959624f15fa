package verify

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cryptobyte_asn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/atomicfile"
	"github.com/fleetca/fleetca/internal/certutil"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/internal/redact"
)

// SyncConfig configures a Syncer.
type SyncConfig struct {
	// URL is the base URL of the CA's plain-HTTP listener
	// (http://ca.example:8080). The Syncer fetches URL/crl
	// (api.CRLPath), the device CRL signed by the intermediate, and
	// URL/root.crl (api.RootCRLPath), the root's CRL over intermediates:
	// verifiers built on OpenSSL's CRL_CHECK_ALL (nginx, HAProxy) want a
	// CRL for every CA in the chain. A URL that names a file under the
	// listener (…/crl) is refused: see BaseURL.
	URL string
	// Issuers are the CA certificates the CRLs must be signed by: the root
	// and the intermediate(s), as in the verifier's trust bundle.
	Issuers []*x509.Certificate
	// Out is the CRL file the verifier reads: PEM, mode 0644, replaced
	// atomically (atomicfile.Write). It holds the device CRL then the root
	// CRL; with a CA that partitions its CRLs (api.PartitionsPath),
	// every partition's CRL in partition order, then the full CRL while
	// the CA says some live certificate has no partition, then the root
	// CRL. OpenSSL picks, for each certificate, the CRL whose Issuing
	// Distribution Point names the certificate's distribution point (or
	// one without IDP, complete for the issuer): so a partition CRL
	// without the IDP of its URL is refused here.
	Out string
	// MaxCRLBytes bounds a fetched CRL. Default 64 MiB (a CRL of a million
	// entries is about 40 MB); range 1 KiB..1 GiB.
	MaxCRLBytes int64
	// Feed, if set, is the base URL of the CA's HTTPS listener
	// (https://ca.example:8443): Run then also follows GET
	// <Feed>/v1/revocations (api.FeedPath, a long-poll) and syncs as soon as a
	// revocation is announced, instead of at the next interval.
	// Deps.Client must trust the CA's TLS certificate.
	Feed string
}

// SyncDeps are a Syncer's collaborators.
type SyncDeps struct {
	// Client fetches the CRLs; nil means a client with a 30 s timeout.
	Client *http.Client
	// FeedClient follows Config.Feed; it must trust the CA's TLS
	// certificate and allow requests of about 35 s. Nil means Client.
	FeedClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger is used by Run; nil discards.
	Logger *slog.Logger
	// Reload, if set, makes the verifier read Out after it changed (runs
	// its reload command); pem is Out's new content.
	// A failed reload is retried at the next Sync, changed or not, and by
	// the next Syncer on the same file (a marker file beside it, named
	// .<name>.reload-pending, records it).
	Reload func(ctx context.Context, pem []byte) error
}

// Syncer keeps a verifier's CRL file fresh: it fetches the device and root
// CRLs, checks each against its issuer, and installs a CRL only if it is
// correctly signed, not expired, and not older (by CRL number, RFC 5280
// §5.2.3) than the one installed. A refused or unreachable CRL leaves the
// last good file in place. It is safe for concurrent use; Syncs are
// serialised.
type Syncer struct {
	cfg    SyncConfig
	client *http.Client
	now    func() time.Time
	log    *slog.Logger
	reload func(ctx context.Context, pem []byte) error

	feedClient *http.Client
	kick       chan struct{} // the feed announced a revocation: sync now
	// The feed goroutine's alone: the last entry seen, and whether it has
	// read the history up to the head once (entries before are not news).
	feedSeq      uint64
	feedCaughtUp bool
	// pending are the serials the feed announced (magnitudes, as
	// big.Int.Bytes) that no installed device CRL has listed yet: Run
	// syncs again shortly while there are some.
	pendMu  sync.Mutex
	pending map[string]bool

	mu            sync.Mutex
	sources       []*syncSource          // the file's order; nil until the CA's partitions are known
	byPath        map[string]*syncSource // every source ever planned, so that numbers are kept across plans
	parts         int                    // the CA's partitions, as last discovered
	loaded        bool                   // Out has been read
	written       []byte                 // Out's content as last read or written
	reloadPending bool
}

// syncSource is one CRL the Syncer keeps.
type syncSource struct {
	name string
	path string // under the base URL
	url  string // base and path
	root bool   // signed by a self-signed issuer
	// part says this is a partition CRL, which must have an IDP naming
	// path; a partition CRL missing from Out fails only its certificates.
	part  bool
	valid validators
	cur   *syncedCRL
}

// syncedCRL is an installed CRL: its DER and what is known of it. The
// serial index is not kept: the Syncer only compares and writes CRLs.
type syncedCRL struct {
	der                    []byte
	number                 *big.Int
	thisUpdate, nextUpdate time.Time
	entries                int
	// index is the parsed CRL, kept only until refresh has checked the
	// pending serials against it.
	index *CRL
}

// CRLStatus is what one Sync did with one CRL.
type CRLStatus struct {
	// Name is "device CRL" or "root CRL"; URL is where it is fetched.
	Name, URL string
	// Number, ThisUpdate, NextUpdate and Entries describe the installed
	// CRL (zero if there is none).
	Number                 *big.Int
	ThisUpdate, NextUpdate time.Time
	Entries                int
	// Updated reports that this Sync installed a new CRL.
	Updated bool
	// Err says why the CRL could not be refreshed (fetch failed, or the
	// fetched CRL was refused); the installed one, if any, was kept.
	Err error
}

// SyncResult is what one Sync did.
type SyncResult struct {
	// Changed reports that Out was rewritten.
	Changed bool
	// Reloaded reports that Deps.Reload ran and succeeded.
	Reloaded bool
	// CRLs has the status of each CRL in the file's order: the device
	// CRL, or the partitions' and the full CRL if needed, then the root
	// CRL's.
	CRLs []CRLStatus
	// Partitions is the CA's number of CRL partitions (1: none).
	Partitions int
	// DiscoveryErr says why the CA's partitions could not be read this
	// time; the last known ones were used.
	DiscoveryErr error
}

// NewSyncer returns a Syncer. It reads nothing until the first Sync.
//
// Errors: fault.Malformed for a Config it cannot use (a URL that is not a
// listener's base URL, no Issuers, no Out, MaxCRLBytes out of range, a
// Feed that is not an https base URL).
func NewSyncer(cfg SyncConfig, deps SyncDeps) (*Syncer, error) {
	base, err := BaseURL(cfg.URL, "http", "https")
	if err != nil {
		return nil, err
	}
	cfg.URL = base
	if len(cfg.Issuers) == 0 {
		return nil, fault.New(fault.Malformed, "no issuer certificates to check the CRLs against",
			"give the fleet's root and intermediate, the CA bundle a verifier trusts (ca.pem from 'fleetca export')")
	}
	if cfg.Out == "" {
		return nil, fault.New(fault.Malformed, "no CRL file to write", "give the file the verifier reads its CRLs from")
	}
	if cfg.MaxCRLBytes == 0 {
		cfg.MaxCRLBytes = 64 << 20
	}
	if cfg.MaxCRLBytes < 1<<10 || cfg.MaxCRLBytes > 1<<30 {
		return nil, fault.New(fault.Malformed, fmt.Sprintf("the CRL size bound %d is outside 1 KiB..1 GiB", cfg.MaxCRLBytes), "")
	}
	if cfg.Feed != "" {
		if cfg.Feed, err = BaseURL(cfg.Feed, "https"); err != nil {
			return nil, err
		}
	}
	s := &Syncer{cfg: cfg, client: deps.Client, feedClient: deps.FeedClient, now: deps.Now, log: deps.Logger, reload: deps.Reload,
		kick: make(chan struct{}, 1), pending: map[string]bool{}}
	if s.client == nil {
		s.client = &http.Client{Timeout: 30 * time.Second}
	}
	if s.feedClient == nil {
		s.feedClient = s.client
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.byPath = map[string]*syncSource{}
	return s, nil
}

// plan reads the CA's partitions and sets s.sources: the partitions' CRLs
// and the full CRL if needed (or the device CRL alone), then the root CRL.
// If the CA cannot be asked, the last plan stands (Sync falls back to the
// full CRL when there is none).
func (s *Syncer) plan(ctx context.Context) error {
	d, err := fetchPartitions(ctx, s.client, s.cfg.URL)
	if err != nil {
		return err
	}
	s.setPlan(d)
	return nil
}

// setPlan sets s.sources for the CA's partitions d.
func (s *Syncer) setPlan(d *api.CRLPartitions) {
	src := func(name, path string, root, part bool) *syncSource {
		if c := s.byPath[path]; c != nil {
			return c
		}
		c := &syncSource{name: name, path: path, url: s.cfg.URL + path, root: root, part: part}
		s.byPath[path] = c
		return c
	}
	var srcs []*syncSource
	if d.Partitions > 1 {
		for p := range d.Partitions {
			srcs = append(srcs, src(fmt.Sprintf("partition %d CRL", p), api.PartitionCRLPath(p), false, true))
		}
	}
	if d.Full.Needed {
		srcs = append(srcs, src("device CRL", api.CRLPath, false, false))
	}
	s.sources = append(srcs, src("root CRL", api.RootCRLPath, true, false))
	s.parts = d.Partitions
}

// Sync fetches both CRLs once, installs those that pass, rewrites Out if
// its content changed, and then calls Deps.Reload. Out is written only
// once both CRLs are known: a file with the device CRL alone would make a
// CRL_CHECK_ALL verifier refuse every device.
//
// A CRL that cannot be refreshed while the installed one is still valid is
// reported in its CRLStatus.Err, with a nil error. Sync returns an error
// (fault.Unavailable) when a CRL has never been installed, or the
// installed one is past its nextUpdate and no fresh one could be had:
// the verifier is then refusing every device, or trusting stale data. It
// also returns the error of a failed write or reload.
func (s *Syncer) Sync(ctx context.Context) (SyncResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var res SyncResult
	if err := s.plan(ctx); err != nil {
		res.DiscoveryErr = err
		if s.sources == nil {
			// The full CRL lists every revoked device certificate, so
			// it is right for every certificate, partitioned or not.
			s.setPlan(&api.CRLPartitions{Partitions: 1, Full: api.FullCRL{Needed: true}})
		}
	}
	res.Partitions = s.parts
	if !s.loaded {
		s.readInstalled(ctx)
		s.loaded = true
	}
	now := s.now()
	res.CRLs = make([]CRLStatus, len(s.sources))
	for i, src := range s.sources {
		st := &res.CRLs[i]
		st.Name, st.URL = src.name, src.url
		st.Updated, st.Err = s.refresh(ctx, src, now)
		if c := src.cur; c != nil {
			st.Number, st.ThisUpdate, st.NextUpdate, st.Entries = c.number, c.thisUpdate, c.nextUpdate, c.entries
		}
	}

	var errs []error
	complete := true
	for i, src := range s.sources {
		switch st := res.CRLs[i]; {
		case src.cur == nil:
			// A partition's certificates are refused until its CRL is
			// had (OpenSSL finds no CRL in their scope); the others'
			// need not wait for it.
			complete = complete && src.part
			what := "so " + s.cfg.Out + " was not written"
			if src.part {
				what = "so " + s.cfg.Out + " lacks it and its certificates are refused"
			}
			errs = append(errs, fault.Wrap(st.Err, fault.Unavailable,
				fmt.Sprintf("no %s could be had from %s, %s", src.name, redact.URL(src.url), what),
				"check that the CA's HTTP listener is reachable from here and that the issuer certificates are its root and intermediate"))
		case now.After(src.cur.nextUpdate):
			why := "the CA serves no newer one"
			if st.Err != nil {
				why = "no fresh one could be had"
			}
			errs = append(errs, fault.Wrap(st.Err, fault.Unavailable,
				fmt.Sprintf("the installed %s (number %s) in %s expired at %s and %s",
					src.name, src.cur.number, s.cfg.Out, src.cur.nextUpdate.UTC().Format(time.RFC3339), why),
				"verifiers that check CRL freshness now refuse every device; fix the CA or the network and sync again"))
		}
	}
	if complete {
		var out bytes.Buffer
		for _, src := range s.sources {
			if src.cur != nil {
				out.Write(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: src.cur.der}))
			}
		}
		if !bytes.Equal(out.Bytes(), s.written) {
			if err := atomicfile.Write(s.cfg.Out, out.Bytes(), 0o644); err != nil {
				return res, errors.Join(append(errs, err)...)
			}
			s.written = out.Bytes()
			res.Changed = true
			if s.reload != nil {
				s.setReloadPending(ctx, true)
			}
		}
	}
	if s.reloadPending {
		if err := s.reload(ctx, s.written); err != nil {
			errs = append(errs, reloadError(s.cfg.Out, err))
		} else {
			s.setReloadPending(ctx, false)
			res.Reloaded = true
		}
	}
	return res, errors.Join(errs...)
}

// reloadError says that out changed but the verifier was not reloaded,
// wrapping the reload's error. A reload that failed with a fault lends it
// its kind, hint and detail (a sentence for the user, as this one is).
func reloadError(out string, err error) error {
	detail := out + " was updated but the verifier was not reloaded (retried at the next sync)"
	if fe, ok := errors.AsType[*fault.Error](err); ok {
		return fault.Wrap(err, fe.Kind, detail+": "+fe.Detail, fe.Hint)
	}
	return fault.Wrap(err, fault.Unavailable, detail, "fix the reload command or the verifier")
}

// refresh fetches src and installs what it got if it passes. It reports
// whether it installed a CRL, and why not when it could not refresh.
func (s *Syncer) refresh(ctx context.Context, src *syncSource, now time.Time) (bool, error) {
	var v validators
	if src.cur != nil {
		v = src.valid
	}
	b, next, notModified, err := fetchConditional(ctx, s.client, s.cfg.URL, src.path, v, s.cfg.MaxCRLBytes)
	if err != nil || notModified {
		return false, err
	}
	c, err := s.verify(b, src)
	if err != nil {
		return false, fmt.Errorf("refused the %s from %s: %w", src.name, redact.URL(src.url), err)
	}
	if now.After(c.nextUpdate) {
		return false, fmt.Errorf("refused the %s from %s: CRL %s expired at %s", src.name, redact.URL(src.url), c.number,
			c.nextUpdate.UTC().Format(time.RFC3339))
	}
	if c.thisUpdate.After(now) {
		// OpenSSL-based verifiers treat a CRL from the future as not yet
		// valid and refuse every device until their clock reaches it.
		return false, fmt.Errorf("refused the %s from %s for now: CRL %s is dated %s, after this machine's clock (%s); check both clocks (NTP)",
			src.name, redact.URL(src.url), c.number, c.thisUpdate.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if cur := src.cur; cur != nil {
		switch c.number.Cmp(cur.number) {
		case -1:
			return false, fmt.Errorf("refused the %s from %s: CRL %s is older than the installed CRL %s", src.name, redact.URL(src.url), c.number, cur.number)
		case 0:
			if !bytes.Equal(c.der, cur.der) {
				// RFC 5280 §5.2.3: a CRL number names one CRL. Keep the
				// first, and fetch in full again next time, so that the
				// warning stays until the CA serves a new number.
				return false, fmt.Errorf("refused the %s from %s: CRL %s differs from the installed CRL of the same number", src.name, redact.URL(src.url), c.number)
			}
			src.valid = next
			return false, nil
		}
	}
	if !src.root {
		s.pendMu.Lock()
		for k := range s.pending {
			if c.index.has(k) {
				delete(s.pending, k)
			}
		}
		s.pendMu.Unlock()
	}
	c.index = nil
	src.cur, src.valid = c, next
	return true, nil
}

// pendingCount is how many announced serials no installed CRL lists yet.
func (s *Syncer) pendingCount() int {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	return len(s.pending)
}

// verify parses a CRL (DER, or one PEM block), checks that one of the
// issuers signed it (a self-signed one for the root CRL, another for the
// device CRL), that it has a number and a nextUpdate, and that its entries
// are well formed. Bytes after the CRL, which x509 parsing ignores and the
// signature does not cover, are refused: the CRLs come over plain HTTP,
// and the file is what verifiers load.
func (s *Syncer) verify(b []byte, src *syncSource) (*syncedCRL, error) {
	if block, rest := pem.Decode(b); block != nil {
		if i := bytes.Index(b, []byte("-----BEGIN")); len(bytes.TrimSpace(b[:i])) != 0 {
			return nil, errors.New("data before the PEM CRL")
		}
		if block.Type != "X509 CRL" {
			return nil, fmt.Errorf("PEM block is %s, not X509 CRL", block.Type)
		}
		if len(bytes.TrimSpace(rest)) != 0 {
			return nil, errors.New("data after the PEM CRL")
		}
		b = block.Bytes
	}
	if elem := cryptobyte.String(b); !elem.SkipASN1(cryptobyte_asn1.SEQUENCE) || !elem.Empty() {
		return nil, errors.New("parse CRL: not one DER SEQUENCE (data after it, or malformed)")
	}
	env, _, err := parseCRLEnvelope(b)
	if err != nil {
		return nil, fmt.Errorf("parse CRL: %w", err)
	}
	var issuer *x509.Certificate
	for _, c := range s.cfg.Issuers {
		if bytes.Equal(c.RawSubject, env.RawIssuer) && (len(env.AuthorityKeyId) == 0 || bytes.Equal(c.SubjectKeyId, env.AuthorityKeyId)) {
			issuer = c
			break
		}
	}
	if issuer == nil {
		return nil, fmt.Errorf("its issuer %q is not among the %d issuer certificate(s) given", env.Issuer, len(s.cfg.Issuers))
	}
	if certutil.SelfSigned(issuer) != src.root {
		want := "an intermediate"
		if src.root {
			want = "the root"
		}
		return nil, fmt.Errorf("it is signed by %q, not by %s", issuer.Subject, want)
	}
	if err := checkScope(env, src); err != nil {
		return nil, err
	}
	crl, err := ParseCRL(b, issuer)
	if err != nil {
		return nil, err
	}
	return &syncedCRL{der: bytes.Clone(b), number: crl.Number, thisUpdate: crl.ThisUpdate, nextUpdate: crl.NextUpdate, entries: crl.Len(), index: crl}, nil
}

// pendingMarker is the file that records, across runs (cron, one-shot syncs),
// that Out changed but the verifier has not been reloaded since.
func (s *Syncer) pendingMarker() string {
	return filepath.Join(filepath.Dir(s.cfg.Out), "."+filepath.Base(s.cfg.Out)+".reload-pending")
}

// setReloadPending records whether a reload is owed, in memory and in the
// marker file. A marker that cannot be written only loses the retry
// across runs, so it is a warning.
func (s *Syncer) setReloadPending(ctx context.Context, pending bool) {
	s.reloadPending = pending
	var err error
	if pending {
		// O_EXCL: an existing marker (or a link planted in its place) is
		// left as it is, never followed and truncated.
		var f *os.File
		if f, err = os.OpenFile(s.pendingMarker(), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644); err == nil {
			err = f.Close()
		} else if errors.Is(err, os.ErrExist) {
			err = nil
		}
	} else if err = os.Remove(s.pendingMarker()); errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	if err != nil {
		s.log.WarnContext(ctx, "cannot record whether the verifier needs a reload", "file", s.pendingMarker(), "err", err)
	}
}

// readInstalled loads the CRLs already in Out, so that an older CRL is
// refused across restarts and an unchanged file is not rewritten. A CRL in
// it that does not verify is ignored (and replaced), with a warning.
func (s *Syncer) readInstalled(ctx context.Context) {
	if _, err := os.Stat(s.pendingMarker()); err == nil && s.reload != nil {
		s.reloadPending = true // an earlier run's reload failed
	}
	b, err := os.ReadFile(s.cfg.Out)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.log.WarnContext(ctx, "cannot read the installed CRL file; it will be replaced", "file", s.cfg.Out, "err", err)
		}
		return
	}
	s.written = b
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return
		}
		placed := false
		for _, src := range s.sources {
			if src.cur != nil {
				continue
			}
			if c, err := s.verify(block.Bytes, src); err == nil {
				c.index = nil
				src.cur, placed = c, true
				break
			}
		}
		if !placed {
			s.log.WarnContext(ctx, "ignoring a CRL in the installed file that does not verify against the issuers", "file", s.cfg.Out)
		}
	}
}

// Run syncs now and then every interval until ctx ends, logging each
// outcome: Info when the file changed, Warn when a CRL could not be
// refreshed, Error when the verifier has no valid CRL (Sync's error).
// With Config.Feed it also syncs when the feed announces a revocation,
// and again shortly after (0.25 s doubling, five times, never longer
// than the interval) until an installed device CRL lists every serial
// announced: the CA publishes its new CRL a moment after the revocation.
// It returns ctx's error. Call it once per Syncer.
func (s *Syncer) Run(ctx context.Context, every time.Duration) error {
	if s.cfg.Feed != "" {
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		defer func() { cancel(); <-done }()
		go func() {
			defer close(done)
			followFeed(ctx, s.log, s.cfg.Feed, "the CRLs are still synced every "+every.String(), s.pollFeed)
		}()
	}
	const chaseFirst, chaseTries = 250 * time.Millisecond, 5
	chase, chaseWait := 0, chaseFirst // retries left after a kick, and the next wait
	for {
		res, err := s.Sync(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.logResult(ctx, res, err)
		wait := every
		switch {
		case s.pendingCount() == 0:
			chase = 0
		case chase > 0:
			wait, chaseWait, chase = min(chaseWait, every), chaseWait*2, chase-1
		default:
			// Never listed: a certificate that had expired leaves no CRL
			// entry. Stop chasing it.
			s.pendMu.Lock()
			clear(s.pending)
			s.pendMu.Unlock()
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		case <-s.kick:
			t.Stop()
			chase, chaseWait = chaseTries, chaseFirst
		}
	}
}

// pollFeed makes one feed request, records the revocations it announces
// as pending, and kicks Run. The history before the feed's head, read
// once at start-up, is not news (the start-up sync covers it): it only
// kicks once, when caught up. It reports whether the feed said anything
// new.
func (s *Syncer) pollFeed(ctx context.Context) (bool, error) {
	entries, err := fetchFeed(ctx, s.feedClient, s.cfg.Feed, s.feedSeq)
	if err != nil {
		return false, err
	}
	fresh := false
	s.pendMu.Lock()
	for _, e := range entries {
		if e.Seq <= s.feedSeq {
			continue
		}
		s.feedSeq, fresh = e.Seq, true
		if serial, ok := new(big.Int).SetString(e.Serial, 16); ok && s.feedCaughtUp {
			s.pending[string(serial.Bytes())] = true
		}
	}
	s.pendMu.Unlock()
	kick := fresh && s.feedCaughtUp
	if !s.feedCaughtUp && len(entries) < api.FeedBatch {
		s.feedCaughtUp, kick = true, true
	}
	if kick {
		select {
		case s.kick <- struct{}{}:
		default: // a sync is already due
		}
	}
	return fresh, nil
}

func (s *Syncer) logResult(ctx context.Context, res SyncResult, err error) {
	for _, st := range res.CRLs {
		switch {
		case st.Updated:
			s.log.InfoContext(ctx, "CRL installed", "crl", st.Name, "number", st.Number.String(), "entries", st.Entries,
				"next_update", st.NextUpdate.UTC().Format(time.RFC3339), "file", s.cfg.Out)
		case st.Err != nil && st.Number != nil:
			s.log.WarnContext(ctx, "CRL not refreshed; keeping the installed one", "crl", st.Name, "installed", st.Number.String(),
				"next_update", st.NextUpdate.UTC().Format(time.RFC3339), "err", st.Err)
		case st.Err != nil:
			s.log.WarnContext(ctx, "CRL not fetched; none is installed", "crl", st.Name, "url", redact.URL(st.URL), "err", st.Err)
		}
	}
	if res.DiscoveryErr != nil {
		s.log.WarnContext(ctx, "CRL partitions not refreshed; keeping the last known ones", "partitions", res.Partitions, "err", res.DiscoveryErr)
	}
	if res.Reloaded {
		s.log.InfoContext(ctx, "verifier reloaded", "file", s.cfg.Out)
	}
	if err != nil {
		s.log.ErrorContext(ctx, "CRL sync failed", "err", err)
	}
}

// checkScope refuses a CRL in the wrong place of the file: a partition
// CRL must carry an Issuing Distribution Point naming its own URL (without
// one, OpenSSL would use it for every partition's certificates, and it
// lacks their entries), and no other CRL may name a partition.
func checkScope(env *x509.RevocationList, src *syncSource) error {
	uris, has, err := crlScope(env)
	if err != nil {
		return err
	}
	switch {
	case src.part && !has:
		return errors.New("it has no issuing distribution point, so it is not a partition CRL")
	case src.part && !scopeIs(uris, src.path):
		return fmt.Errorf("its issuing distribution point %q does not name %s", uris, src.path)
	case !src.part && has && !scopeIs(uris, src.path):
		return fmt.Errorf("its issuing distribution point %q does not name %s", uris, src.path)
	}
	return nil
}
