package revocation

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/ocsp"
	"golang.org/x/sync/errgroup"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/internal/adminctx"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// Store is what the Service needs of the store.
type Store interface {
	Revoke(ctx context.Context, r store.RevokeRequest) ([]store.Revocation, error)
	ResetDevice(ctx context.Context, id string, at time.Time, audit store.AuditEvent) (store.Device, error)
	ListRevocations(ctx context.Context, afterSeq uint64, limit int) ([]store.Revocation, error)
	GetCertificate(ctx context.Context, serial *big.Int) (store.Certificate, error)
	NextCounter(ctx context.Context, name string) (uint64, error)
	// ListCertificates, GetMeta and PutMeta serve partitioned CRLs (how
	// many are published, whether the full CRL is still needed).
	ListCertificates(ctx context.Context, deviceID string, p store.Page) ([]store.Certificate, error)
	GetMeta(ctx context.Context, key string) ([]byte, error)
	PutMeta(ctx context.Context, key string, value []byte) error
	// Replication: the CRL lease, the latest CRL and the change signals,
	// which replicas sharing the store follow.
	store.Replication
}

// Signer signs CRLs and OCSP responses; *ca.Authority is one.
type Signer interface {
	Root() *x509.Certificate
	Intermediate() *x509.Certificate
	HasRootKey() bool
	SignCRL(ctx context.Context, tmpl ca.CRLTemplate) ([]byte, error)
	SignRootCRL(ctx context.Context, tmpl ca.CRLTemplate) ([]byte, error)
	NewOCSPResponder(ctx context.Context, validity time.Duration) (*ca.OCSPResponder, error)
	MatchesIssuer(req *ocsp.Request) bool
}

// Deps are the Service's collaborators.
type Deps struct {
	Store Store
	CA    Signer
	// RootCRLPath is the file the root CRL is kept in (DIR/root.crl): the
	// server writes it when it holds the root key, and reads it otherwise.
	RootCRLPath string
	// PublicURL is the CA's public base URL (server.public_url): the
	// partition CRLs' distribution points are PublicURL+"/crl/<p>".
	// Required with Config.CRLPartitions > 1.
	PublicURL string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
	// Metrics registers the Service's collectors; nil registers none.
	Metrics prometheus.Registerer
	// Holder names this Service to the store's CRL lease
	// (store.Replication.LeaseCRL); "" means a random name, new at each
	// New. Replicas sharing a store must have names of their own. A
	// store only one process can open (bbolt locks its file) may be given
	// a fixed name, so that a restart after a crash takes the dead
	// process's lease back at once instead of waiting it out.
	Holder string
}

// Service revokes certificates and devices, and keeps the CRLs and OCSP
// responses current. It is safe for concurrent use.
type Service struct {
	cfg  Config
	deps Deps
	now  func() time.Time
	log  *slog.Logger

	// mu guards the revoked index and the OCSP cache together, so that a
	// revocation replaces a cached good response atomically.
	mu      sync.RWMutex
	index   map[string]int // serial bytes -> position in entries
	entries []indexed
	cache   map[string]*ocspEntry
	// requests maps the bytes of a valid OCSP request without a nonce to
	// its cache key: the fast path of RespondOCSP.
	requests map[string]string

	// changed is closed (and replaced) when revocations are applied, to
	// wake Feed's waiters; guarded by mu.
	changed chan struct{}

	// pending are the serials indexed and not yet on a CRL this Service
	// served (built or adopted): while there are some, a CRL is due.
	// Guarded by mu.
	pending map[string]struct{}

	// holder is this Service's name to the CRL lease (Deps.Holder).
	holder string
	// followMu serialises reading the store's revocation log and latest
	// CRL (catchUp), and recording a CRL built here; it guards cursor.
	followMu sync.Mutex
	// cursor is the Seq of the last revocation log entry read.
	cursor uint64
	// buildMu serialises CRL builds.
	buildMu sync.Mutex
	// leaseUntil is when the CRL lease this Service took runs out (Unix
	// nanoseconds), 0 when it knows it holds none.
	leaseUntil atomic.Int64
	// lostLease is set when the last build found the lease another's.
	lostLease atomic.Bool
	// lastFollow is when catchUp last succeeded (Unix nanoseconds).
	lastFollow atomic.Int64
	// refusedCRL is the number of the last CRL from the store that failed
	// its checks, so that it is reported once.
	refusedCRL atomic.Uint64

	// parts are the partition CRLs (Config.CRLPartitions).
	parts partitions

	crl       atomic.Pointer[Published]
	rootCRL   atomic.Pointer[Published]
	responder atomic.Pointer[ca.OCSPResponder]
	kick      chan struct{}

	m metrics
}

// indexed is a revoked certificate as the CRL lists it.
type indexed struct {
	entry    x509.RevocationListEntry
	notAfter time.Time
	// partition is the certificate's CRL partition, -1 if none.
	partition int
	// listedExpired is set once the entry is on a CRL issued after
	// notAfter: the next CRL may leave it out.
	listedExpired bool
}

// New loads the revocation log, issues an OCSP responder certificate and
// publishes the first CRLs. Call Run to keep them current.
func New(ctx context.Context, cfg Config, deps Deps) (*Service, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil || deps.CA == nil {
		return nil, errors.New("revocation.New: Store and CA are required")
	}
	s := &Service{cfg: cfg, deps: deps, now: deps.Now, log: deps.Logger, holder: deps.Holder,
		index: map[string]int{}, cache: map[string]*ocspEntry{}, requests: map[string]string{}, pending: map[string]struct{}{},
		kick: make(chan struct{}, 1), changed: make(chan struct{})}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.holder == "" {
		s.holder = "replica-" + rand.Text()
	}
	if err := s.m.register(deps.Metrics, s.leaseHeld, s.followAge); err != nil {
		return nil, err
	}
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	if err := s.initPartitions(ctx); err != nil {
		return nil, err
	}
	if err := s.renewResponder(ctx); err != nil {
		return nil, err
	}
	if err := s.startCRL(ctx); err != nil {
		return nil, err
	}
	if err := s.startPartitions(ctx); err != nil {
		return nil, err
	}
	if err := s.refreshRootCRL(ctx); err != nil {
		s.log.ErrorContext(ctx, "no usable root CRL", "err", err)
	}
	return s, nil
}

// load reads the whole revocation log into the index.
func (s *Service) load(ctx context.Context) error {
	const page = 100_000
	var after uint64
	for {
		revs, err := s.deps.Store.ListRevocations(ctx, after, page)
		if err != nil {
			return fmt.Errorf("load revocations: %w", err)
		}
		s.addLocked(revs)
		if len(revs) > 0 {
			after = revs[len(revs)-1].Seq
			s.cursor = after
		}
		if len(revs) < page {
			s.m.followSeq.Set(float64(s.cursor))
			s.lastFollow.Store(s.now().UnixNano())
			return nil
		}
	}
}

// addLocked adds log entries to the index, and to pending, and returns how
// many it did not have; the caller holds mu or owns s.
func (s *Service) addLocked(revs []store.Revocation) int {
	added := 0
	for _, r := range revs {
		key := string(r.Serial.Bytes())
		if _, ok := s.index[key]; ok {
			continue
		}
		added++
		s.pending[key] = struct{}{}
		s.index[key] = len(s.entries)
		part := -1
		if r.Partition != nil {
			part = *r.Partition
			s.markPartitionLocked(part, key)
		}
		s.entries = append(s.entries, indexed{
			entry:     x509.RevocationListEntry{SerialNumber: r.Serial, RevocationTime: r.RevokedAt, ReasonCode: r.Reason},
			notAfter:  r.NotAfter,
			partition: part,
		})
	}
	return added
}

// RevokeRequest names what to revoke: a certificate by Serial or a device
// by DeviceID.
type RevokeRequest struct {
	Serial   *big.Int
	DeviceID string
	// Reason is one of ReasonNames' (see ParseReason).
	Reason api.Reason
	// Actor is who revokes, for the audit log: "" means the admin of ctx
	// (adminctx.Actor: "admin:<name>"); a device
	// revoking its own certificate is "device:<id>", a step revocation
	// token "token:<id>".
	Actor string
	// Token, if non-zero, is the hash of a one-use revocation token
	// (enroll.Service.ParseStepRevokeToken) to spend in the revocation's
	// own transaction: a refused revocation keeps it, and a token spent,
	// revoked or expired is fault.Unauthorized, checked before the
	// certificate.
	Token store.TokenHash
}

// Revoke revokes a certificate or a device, durably and audited, then
// replaces the cached OCSP responses of what it revoked before it returns
// (so the very next OCSP request reads revoked) and schedules a new CRL
// within Config.CRLPublishDelay. keyCompromise also blocks the keys.
// Revoking a device revokes its live certificates and refuses its
// enrollment until ResetDevice. Errors: fault.NotFound, fault.AlreadyRevoked
// (harmless: nothing changed), fault.Malformed.
func (s *Service) Revoke(ctx context.Context, req RevokeRequest) ([]store.Revocation, error) {
	if (req.Serial == nil) == (req.DeviceID == "") {
		return nil, fault.New(fault.Malformed, "revoke names a certificate serial or a device ID, exactly one",
			"give the certificate's serial or the device's device_id, not both")
	}
	if !accepted(req.Reason) {
		return nil, fault.New(fault.Malformed, fmt.Sprintf("revocation reason %d is not allowed", req.Reason),
			"use one of "+strings.Join(ReasonNames(), ", "))
	}
	at := s.now().UTC().Truncate(time.Second)
	what, action := "", ""
	actor := req.Actor
	if actor == "" {
		actor = adminctx.Actor(ctx)
	}
	audit := store.AuditEvent{Time: at, Actor: actor, Detail: "reason=" + req.Reason.String(), DeviceID: req.DeviceID}
	if req.Serial != nil {
		what, action = "certificate "+req.Serial.Text(16), "certificate.revoke"
		audit.Serial = req.Serial.Text(16)
	} else {
		what, action = fmt.Sprintf("device %q", req.DeviceID), "device.revoke"
	}
	audit.Action = action
	revs, err := s.deps.Store.Revoke(ctx, store.RevokeRequest{Serial: req.Serial, DeviceID: req.DeviceID, At: at,
		Reason: int(req.Reason), BlockKeys: req.Reason == api.ReasonKeyCompromise, Audit: audit, Token: req.Token})
	const tokenHint = "ask an admin for a new revocation token"
	switch {
	case errors.Is(err, store.ErrTokenNotFound):
		return nil, fault.Wrap(err, fault.Unauthorized, "the revocation token is not known to this CA", tokenHint)
	case errors.Is(err, store.ErrTokenUsedUp):
		return nil, fault.Wrap(err, fault.Unauthorized, "the revocation token was used up", tokenHint)
	case errors.Is(err, store.ErrTokenExpired):
		return nil, fault.Wrap(err, fault.Unauthorized, "the revocation token expired", tokenHint)
	case errors.Is(err, store.ErrTokenRevoked):
		return nil, fault.Wrap(err, fault.Unauthorized, "the revocation token was revoked by an admin", tokenHint)
	case errors.Is(err, store.ErrNotFound):
		return nil, fault.Wrap(err, fault.NotFound, "no "+what+" is known to this CA", "list the certificates or the devices to find it")
	case errors.Is(err, store.ErrAlreadyRevoked):
		return nil, fault.Wrap(err, fault.AlreadyRevoked, what+" was already revoked; nothing changed", "")
	case err != nil:
		return nil, fmt.Errorf("revoke %s: %w", what, err)
	}
	s.applyRevocations(ctx, revs, true)
	s.log.InfoContext(ctx, "revoked", "what", what, "reason", req.Reason.String(), "certificates", len(revs))
	return revs, nil
}

// Applied tells the Service of revocations that another package recorded
// in the store's own transaction: the certificates a renewal revoked as
// superseded (store.RenewResult.Superseded), which enroll hands over
// through its Deps.Revoked. As after Revoke, their OCSP answers are
// replaced before it returns, the feed's long-polls wake and a new CRL is
// scheduled. Entries already applied are not listed twice.
func (s *Service) Applied(ctx context.Context, revs []store.Revocation) {
	if len(revs) == 0 {
		return
	}
	s.applyRevocations(ctx, revs, true)
	s.log.InfoContext(ctx, "revoked", "what", "superseded certificates", "reason", api.ReasonSuperseded.String(), "certificates", len(revs))
}

// applyRevocations indexes revocations, replaces their OCSP responses,
// wakes the feed's waiters and asks for a new CRL. With presign, the SHA-1
// CertID answer (what openssl and most clients ask with) is signed now;
// answers for other CertID hashes, and all of them without presign, are
// dropped and signed, revoked, on their next request.
func (s *Service) applyRevocations(ctx context.Context, revs []store.Revocation, presign bool) {
	if len(revs) == 0 {
		return
	}
	now := s.now()
	signed := make([]*ocspEntry, len(revs))
	for i, r := range revs {
		if !presign {
			break
		}
		e, err := s.signEntry(crypto.SHA1, ocsp.Revoked, r.Serial, r.RevokedAt, r.Reason, now, nil)
		if err != nil {
			// The revocation is durable; the next request signs from the index.
			s.log.ErrorContext(ctx, "pre-sign revoked OCSP response", "serial", r.Serial.Text(16), "err", err)
		}
		signed[i] = e
	}
	s.mu.Lock()
	added := s.addLocked(revs)
	for i, r := range revs {
		for _, h := range cacheHashes {
			delete(s.cache, cacheKey(h, r.Serial))
		}
		if signed[i] != nil {
			s.cache[cacheKey(crypto.SHA1, r.Serial)] = signed[i]
		}
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	s.m.revocations.Add(float64(added))
	select {
	case s.kick <- struct{}{}:
	default:
	}
	select {
	case s.parts.kick <- struct{}{}:
	default:
	}
}

// ResetDevice lets a revoked device enroll again. fault.NotFound for an
// unknown device, fault.Conflict if it is not revoked.
func (s *Service) ResetDevice(ctx context.Context, id string) (store.Device, error) {
	at := s.now().UTC()
	d, err := s.deps.Store.ResetDevice(ctx, id, at, store.AuditEvent{Time: at, Action: "device.reset", Actor: adminctx.Actor(ctx), DeviceID: id})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return d, fault.Wrap(err, fault.NotFound, fmt.Sprintf("no device has ID %q", id), "list the devices to find its ID")
	case errors.Is(err, store.ErrNotRevoked):
		return d, fault.Wrap(err, fault.Conflict, fmt.Sprintf("device %q is not revoked", id), "only a revoked device needs a reset")
	case err != nil:
		return d, fmt.Errorf("reset device %q: %w", id, err)
	}
	s.log.InfoContext(ctx, "device reset", "device_id", id)
	return d, nil
}

// Run keeps the device CRL, the root CRL and the OCSP responder current,
// and follows the store's revocation log and latest CRL (on each of its
// Changes signals, and every Config.PollInterval), until ctx ends. Then it
// gives up the CRL lease if it holds it, so that another replica, or this
// one restarted, signs the next CRL at once.
func (s *Service) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.crlLoop(gctx) })
	g.Go(func() error { return s.partitionLoop(gctx) })
	g.Go(func() error { return s.responderLoop(gctx) })
	g.Go(func() error { return s.rootCRLLoop(gctx) })
	g.Go(func() error { return s.followLoop(gctx) })
	err := g.Wait()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	s.releaseLease(rctx)
	s.releasePartitionLeases(rctx)
	cancel()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
