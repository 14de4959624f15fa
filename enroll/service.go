package enroll

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/smallstep/certificates/policy"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/internal/adminctx"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// Signer signs device and server certificates; *ca.Authority is one. Root
// and Intermediate are the fleet's trust anchors, to which a renewing
// device's certificate must chain.
type Signer interface {
	SignDevice(ctx context.Context, req ca.DeviceRequest) (*x509.Certificate, error)
	SignServer(ctx context.Context, dns []string, ips []net.IP, pub crypto.PublicKey) (*x509.Certificate, error)
	Root() *x509.Certificate
	Intermediate() *x509.Certificate
}

// Deps are the Service's collaborators.
type Deps struct {
	Store store.Store
	CA    Signer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
	// Metrics registers the Service's collectors; nil registers none.
	Metrics prometheus.Registerer
	// Revoked is told of the certificates a renewal revoked as superseded
	// (to keep a device within max_active_certificates), after they are
	// durable, so that OCSP, the CRL and the revocation feed learn of them
	// as of any revocation; cmd/fleetca gives revocation.Service.Applied.
	// nil: nobody is told.
	Revoked func(ctx context.Context, revs []store.Revocation)
	// Step is the step JWK provisioner; nil: no step tokens.
	Step *StepProvisioner
	// ManufacturerCAs is told the CA certificates of every manufacturer
	// after each AddManufacturer and RemoveManufacturer, and, while Run
	// runs, within ManufacturerRefresh (10s) of a change made through
	// another replica sharing the store, so that the HTTPS listener
	// accepts their devices' certificates; cmd/fleetca gives
	// web.ServerCert.SetManufacturerCAs. nil: nobody is told.
	ManufacturerCAs func(cas []*x509.Certificate)
}

// Service is the registration authority. It is safe for concurrent use.
type Service struct {
	cfg     Config
	store   store.Store
	ca      Signer
	now     func() time.Time
	log     *slog.Logger
	revoked func(context.Context, []store.Revocation)
	mfrCAs  func([]*x509.Certificate)
	// mfrMu serialises telling mfrCAs; mfrTold is the SHA-256 of the CA
	// certificates told last (nil: none yet).
	mfrMu   sync.Mutex
	mfrTold []byte
	tokens  *tokenVerifier
	step    *stepVerifier
	// names is the name-policy engine of CSRs (newNamePolicy).
	names *policy.NamePolicyEngine
	// tokenCache holds tokens with uses left, to skip the store read
	// before signing (tokencache.go).
	tokenCache *tokenCache
	issued     prometheus.Counter
	refused    *prometheus.CounterVec
	renewals   *prometheus.CounterVec
	expiry     *prometheus.GaugeVec
}

// New returns a Service for a Config that Validate accepts after
// WithDefaults.
func New(cfg Config, deps Deps) (*Service, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil || deps.CA == nil {
		return nil, errors.New("enroll.New: Store and CA are required")
	}
	s := &Service{cfg: cfg, store: deps.Store, ca: deps.CA, now: deps.Now, log: deps.Logger, revoked: deps.Revoked, mfrCAs: deps.ManufacturerCAs,
		tokenCache: newTokenCache()}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.revoked == nil {
		s.revoked = func(context.Context, []store.Revocation) {}
	}
	names, err := newNamePolicy(cfg.TrustDomain)
	if err != nil {
		return nil, err
	}
	s.names = names
	auds, err := parseAudiences(cfg.RenewURLs)
	if err != nil {
		return nil, err
	}
	root, inter := deps.CA.Root(), deps.CA.Intermediate()
	if root == nil || inter == nil {
		return nil, errors.New("enroll.New: the CA has no root or intermediate")
	}
	s.tokens = newTokenVerifier(inter, auds)
	if deps.Step != nil {
		if s.step, err = newStepVerifier(deps.Step, root.Raw); err != nil {
			return nil, err
		}
	}
	s.issued = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "fleetca_enroll_certificates_total", Help: "Device certificates issued by enrollment.",
	})
	s.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fleetca_enroll_refusals_total", Help: "Enrollments refused, by fault kind.",
	}, []string{"kind"})
	s.renewals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fleetca_enroll_renewals_total",
		Help: "Renewals by kind (renew, rekey, after_expiry) and outcome (issued, retry, or the fault kind of a refusal, or error).",
	}, []string{"kind", "outcome"})
	s.expiry = newExpiryGauge()
	if deps.Metrics != nil {
		for _, c := range []prometheus.Collector{s.issued, s.refused, s.renewals, s.expiry} {
			if err := deps.Metrics.Register(c); err != nil {
				return nil, fmt.Errorf("register enroll metrics: %w", err)
			}
		}
	}
	return s, nil
}

// TokenRequest asks for an enrollment token. Exactly one of DeviceID and
// DevicePattern is set.
type TokenRequest struct {
	DeviceID      string
	DevicePattern string
	// AnyDevice confirms that DevicePattern matches every device ID (like
	// "*"): such a pattern is refused without it, and AnyDevice is refused
	// with any other pattern or with a DeviceID.
	AnyDevice bool
	// TTL is the token's lifetime: nil means Config.DefaultTokenTTL; a
	// given TTL must be within 1m..Config.MaxTokenTTL (zero and negative
	// are refused, never read as the default).
	TTL *time.Duration
	// Uses is how many certificates the token may obtain; 0 means 1.
	Uses int
	// Format is "" for a fleetca token, or StepTokenFormat for a step
	// token (one device ID, one use).
	Format string
	// RevokeSerial, with StepTokenFormat and neither DeviceID nor
	// DevicePattern, asks for a one-use step revocation token for the
	// certificate with this serial (step ca revoke SERIAL --token): the
	// certificate must be known and unrevoked, and the token is recorded
	// for its device.
	RevokeSerial *big.Int
}

// CreateToken mints an enrollment token, stores its hash and audits it. The
// returned Secret is the only copy of the token.
func (s *Service) CreateToken(ctx context.Context, req TokenRequest) (Secret, store.Token, error) {
	if req.RevokeSerial != nil {
		var err error
		if req, err = s.revokeTokenRequest(ctx, req); err != nil {
			return "", store.Token{}, err
		}
	}
	secret, t, audit, err := s.mintToken(req)
	audit.Actor = adminctx.Actor(ctx)
	if err != nil {
		return "", store.Token{}, err
	}
	if err := s.store.CreateToken(ctx, t, audit); err != nil {
		return "", store.Token{}, fmt.Errorf("create token: %w", err)
	}
	s.log.InfoContext(ctx, "token created", "token_id", t.ID, "device_id", t.DeviceID, "device_pattern", t.DevicePattern, "any_device", AnyDevice(t.DevicePattern), "uses", t.Uses, "expires_at", t.ExpiresAt)
	return secret, t, nil
}

// mintToken checks req and mints its token: the secret, the record to
// store and its audit row, whose Actor the caller sets. It writes nothing.
func (s *Service) mintToken(req TokenRequest) (Secret, store.Token, store.AuditEvent, error) {
	var none store.AuditEvent
	t, err := s.tokenRecord(req)
	if err != nil {
		return "", store.Token{}, none, err
	}
	var secret Secret
	switch req.Format {
	case "":
		if secret, err = newSecret(EnrollTokenPrefix); err == nil {
			t.Hash = hashSecret(secret)
		}
	case StepTokenFormat:
		if err := s.stepTokenRequest(t); err != nil {
			return "", store.Token{}, none, err
		}
		if req.RevokeSerial != nil {
			secret, t.Hash, err = s.step.mintRevoke(t, req.RevokeSerial)
		} else {
			secret, t.Hash, err = s.step.mint(t)
		}
	default:
		return "", store.Token{}, none, fault.WithField(fault.New(fault.Malformed, fmt.Sprintf("the token format %q is not known", truncate(req.Format)),
			`give format "step" for a step CLI token, or none for a fleetca token`), "format")
	}
	if err != nil {
		return "", store.Token{}, none, err
	}
	t.ID = TokenID(t.Hash)
	detail := fmt.Sprintf("uses=%d expires_at=%s", t.Uses, t.ExpiresAt.Format(time.RFC3339))
	if req.RevokeSerial != nil {
		detail = "revoke_serial=" + req.RevokeSerial.Text(16) + " " + detail
	}
	if req.Format != "" {
		detail = "format=" + req.Format + " " + detail
	}
	if t.DevicePattern != "" {
		detail = "pattern=" + t.DevicePattern + " " + detail
	}
	if AnyDevice(t.DevicePattern) {
		detail = "any_device " + detail
	}
	audit := store.AuditEvent{Time: t.CreatedAt, Action: "token.create", DeviceID: t.DeviceID, TokenID: t.ID, Detail: detail}
	return secret, t, audit, nil
}

// TokenBatchRequest asks for one-use tokens of one device each, for many
// devices at once (a factory station's batch).
type TokenBatchRequest struct {
	// DeviceIDs are the devices, one token each; 1 to api.MaxTokenBatch
	// of them, no repeats.
	DeviceIDs []string
	// TTL and Format are as in TokenRequest.
	TTL    *time.Duration
	Format string
}

// CreateTokens mints a one-use token for each device of req, in the order
// given, and stores them with their audit rows in one store transaction:
// all of them or none. A bad device ID refuses the whole batch and names
// its index (field device_ids).
func (s *Service) CreateTokens(ctx context.Context, req TokenBatchRequest) ([]Secret, []store.Token, error) {
	const field = "device_ids"
	switch n := len(req.DeviceIDs); {
	case n == 0:
		return nil, nil, fault.WithField(fault.New(fault.Malformed, "the token batch names no device ID", "give 1 or more device_ids"), field)
	case n > api.MaxTokenBatch:
		return nil, nil, fault.WithField(fault.New(fault.Malformed, fmt.Sprintf("the token batch names %d device IDs, more than %d", n, api.MaxTokenBatch),
			fmt.Sprintf("send at most %d device_ids a request", api.MaxTokenBatch)), field)
	}
	seen := make(map[string]int, len(req.DeviceIDs))
	secrets := make([]Secret, len(req.DeviceIDs))
	ts := make([]store.Token, len(req.DeviceIDs))
	audits := make([]store.AuditEvent, len(req.DeviceIDs))
	for i, id := range req.DeviceIDs {
		if j, ok := seen[id]; ok {
			return nil, nil, fault.WithField(fault.New(fault.Malformed, fmt.Sprintf("device_ids[%d] %q repeats device_ids[%d]", i, truncate(id), j),
				"give each device ID once"), field)
		}
		seen[id] = i
		secret, t, audit, err := s.mintToken(TokenRequest{DeviceID: id, TTL: req.TTL, Format: req.Format})
		if err != nil {
			var fe *fault.Error
			if errors.As(err, &fe) && fe.Field == "device_id" {
				return nil, nil, fault.WithField(fault.New(fe.Kind, fmt.Sprintf("device_ids[%d]: %s", i, fe.Detail), fe.Hint), field)
			}
			return nil, nil, err
		}
		audit.Actor = adminctx.Actor(ctx)
		secrets[i], ts[i], audits[i] = secret, t, audit
	}
	if err := s.store.CreateTokens(ctx, ts, audits); err != nil {
		return nil, nil, fmt.Errorf("create %d tokens: %w", len(ts), err)
	}
	s.log.InfoContext(ctx, "tokens created", "count", len(ts), "first_token_id", ts[0].ID, "format", req.Format, "expires_at", ts[0].ExpiresAt)
	return secrets, ts, nil
}

// tokenRecord checks req and returns the token to store, without its hash.
func (s *Service) tokenRecord(req TokenRequest) (store.Token, error) {
	const hint = "give exactly one of device_id and device_pattern"
	t := store.Token{Uses: req.Uses, CreatedAt: s.now().UTC()}
	switch {
	case req.DeviceID != "" && req.DevicePattern != "":
		return t, fault.New(fault.Malformed, "a token is for one device ID or for a device pattern, not both", hint)
	case req.DeviceID != "":
		id, err := api.ParseDeviceID(req.DeviceID)
		if err != nil {
			return t, fault.WithField(err, "device_id")
		}
		t.DeviceID = string(id)
	case req.DevicePattern != "":
		if err := checkPattern(req.DevicePattern); err != nil {
			return t, fault.WithField(err, "device_pattern")
		}
		if err := checkAnyDevice(req.DevicePattern, req.AnyDevice); err != nil {
			return t, err
		}
		t.DevicePattern = req.DevicePattern
	default:
		return t, fault.New(fault.Malformed, "the token request names no device ID and no device pattern", hint)
	}
	if req.AnyDevice && req.DeviceID != "" {
		return t, fault.WithField(fault.New(fault.Malformed, fmt.Sprintf("any_device is set, but the token is for the one device %q", req.DeviceID),
			"leave any_device unset for a token of one device"), "any_device")
	}
	ttl := s.cfg.DefaultTokenTTL
	if req.TTL != nil {
		ttl = *req.TTL
	}
	if ttl < minTokenTTL || ttl > s.cfg.MaxTokenTTL {
		return t, fault.WithField(fault.New(fault.Malformed,
			fmt.Sprintf("the token TTL %s is outside %s to %s", ttl, minTokenTTL, s.cfg.MaxTokenTTL),
			fmt.Sprintf("give a ttl in that range, or none for the default %s (enroll.default_token_ttl), or raise enroll.max_token_ttl", s.cfg.DefaultTokenTTL)), "ttl")
	}
	if t.Uses == 0 {
		t.Uses = 1
	}
	if t.Uses < 1 || t.Uses > s.cfg.MaxTokenUses {
		return t, fault.WithField(fault.New(fault.Malformed, fmt.Sprintf("the token uses %d are outside 1 to %d", t.Uses, s.cfg.MaxTokenUses),
			"give uses in that range, or raise enroll.max_token_uses"), "uses")
	}
	t.ExpiresAt = t.CreatedAt.Add(ttl)
	return t, nil
}

// ListTokens lists tokens by ID.
func (s *Service) ListTokens(ctx context.Context, p store.Page) ([]store.Token, error) {
	return s.store.ListTokens(ctx, p)
}

// RevokeToken stops a token from enrolling anything more. Unknown IDs are
// fault.NotFound; a token revoked before is fault.AlreadyRevoked.
func (s *Service) RevokeToken(ctx context.Context, id string) (store.Token, error) {
	now := s.now().UTC()
	t, err := s.store.RevokeToken(ctx, id, now, store.AuditEvent{Time: now, Action: "token.revoke", Actor: adminctx.Actor(ctx), TokenID: id})
	s.tokenCache.dropID(id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return t, fault.Wrap(err, fault.NotFound, fmt.Sprintf("no token has ID %q", id), "list the tokens to find its ID")
	case errors.Is(err, store.ErrTokenRevoked):
		return t, fault.Wrap(err, fault.AlreadyRevoked, fmt.Sprintf("token %q was already revoked at %s", id, t.RevokedAt.Format(time.RFC3339)), "")
	case err != nil:
		return t, fmt.Errorf("revoke token %q: %w", id, err)
	}
	s.log.InfoContext(ctx, "token revoked", "token_id", id)
	return t, nil
}

// Result is an issued device certificate.
type Result struct {
	DeviceID    api.DeviceID
	Certificate *x509.Certificate
	// Parent, for a renewal, is the serial of the certificate renewed;
	// nil for an enrollment.
	Parent *big.Int
	// Replayed is set when a renewal was a retry: Certificate was issued
	// by an earlier request, and nothing was written.
	Replayed bool
	// RenewAfter is when the device should renew Certificate (two thirds
	// of its validity, with a jitter of ±1 % of the validity, the same for
	// the same certificate), and RenewalInfo its renewal window, as
	// RenewalInfo answers for a certificate just issued.
	RenewAfter  time.Time
	RenewalInfo api.RenewalInfo
}

// Enroll redeems an enrollment token for a device certificate from a DER
// CSR. On any refusal nothing is written and the token keeps its use.
func (s *Service) Enroll(ctx context.Context, token string, csrDER []byte) (*Result, error) {
	res, tokenID, err := s.enroll(ctx, token, csrDER)
	if err != nil {
		if kind, ok := fault.KindOf(err); ok {
			s.refused.WithLabelValues(kind.String()).Inc()
			s.log.InfoContext(ctx, "enrollment refused", "token_id", tokenID, "kind", kind.String(), "err", err)
		}
		return nil, err
	}
	s.issued.Inc()
	s.log.InfoContext(ctx, "certificate issued", "device_id", res.DeviceID, "serial", SerialHex(res.Certificate), "token_id", tokenID)
	return res, nil
}

func (s *Service) enroll(ctx context.Context, token string, csrDER []byte) (*Result, string, error) {
	h, err := ParseToken(EnrollTokenPrefix, token)
	if err != nil {
		return nil, "", err
	}
	return s.redeem(ctx, h, csrDER, false)
}

// redeem issues a certificate for the token whose hash is h; step allows
// the DNS SAN equal to the device ID that the step CLI puts in its CSR.
func (s *Service) redeem(ctx context.Context, h store.TokenHash, csrDER []byte, step bool) (*Result, string, error) {
	tokenID := TokenID(h)
	now := s.now().UTC()
	t, ok := s.tokenCache.get(h, now)
	if !ok {
		var err error
		if t, err = s.store.GetToken(ctx, h); err != nil {
			return nil, tokenID, tokenError(err, t, now)
		}
		if err := usable(t, now); err != nil {
			return nil, tokenID, tokenError(err, t, now)
		}
		s.tokenCache.put(t)
	}
	// The token's device ID was parsed when the token was made.
	req, err := checkCSR(csrDER, binding{deviceID: api.DeviceID(t.DeviceID), pattern: t.DevicePattern, stepDNS: step, names: s.names}, s.cfg.TrustDomain)
	if err != nil {
		return nil, tokenID, err
	}
	cert, err := s.ca.SignDevice(ctx, ca.DeviceRequest{DeviceID: req.deviceID, PublicKey: req.csr.PublicKey})
	if err != nil {
		return nil, tokenID, fmt.Errorf("sign certificate for %q: %w", req.deviceID, err)
	}
	is := store.Issuance{
		Certificate: store.Certificate{
			Serial: cert.SerialNumber, DeviceID: string(req.deviceID), KeyHash: req.keyHash,
			NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, IssuedAt: now, DER: cert.Raw,
			Partition: ca.PartitionOf(cert),
		},
		Token:            h,
		Now:              now,
		RequireNewDevice: t.DevicePattern != "",
		MaxActive:        s.cfg.MaxActiveCertificates,
		Audit: store.AuditEvent{
			Time: now, Action: "certificate.issue", Actor: "token:" + tokenID,
			DeviceID: string(req.deviceID), Serial: SerialHex(cert), TokenID: tokenID,
		},
	}
	if err := s.store.Issue(ctx, is); err != nil {
		if tokenRefused(err) {
			s.tokenCache.drop(h)
		}
		return nil, tokenID, s.issueError(err, t, req.deviceID, now)
	}
	s.tokenCache.spent(h)
	res := &Result{DeviceID: req.deviceID, Certificate: cert}
	schedule(res)
	return res, tokenID, nil
}

// usable checks a token read before the transaction, so that a doomed
// request is refused before anything is signed. The store checks again.
func usable(t store.Token, now time.Time) error {
	switch {
	case !t.RevokedAt.IsZero():
		return store.ErrTokenRevoked
	case !now.Before(t.ExpiresAt):
		return store.ErrTokenExpired
	case t.Spent >= t.Uses:
		return store.ErrTokenUsedUp
	}
	return nil
}

// tokenRefused reports whether Issue refused the token itself (unknown,
// revoked, expired or used up).
func tokenRefused(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrTokenRevoked) ||
		errors.Is(err, store.ErrTokenExpired) || errors.Is(err, store.ErrTokenUsedUp)
}

// tokenError turns a store condition on the token into fault.Unauthorized.
func tokenError(err error, t store.Token, now time.Time) error {
	const hint = "ask an admin for a new enrollment token"
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fault.Wrap(err, fault.Unauthorized, "the enrollment token is not known to this CA", hint)
	case errors.Is(err, store.ErrTokenRevoked):
		return fault.Wrap(err, fault.Unauthorized, "the enrollment token was revoked", hint)
	case errors.Is(err, store.ErrTokenExpired):
		return fault.Wrap(err, fault.Unauthorized, fmt.Sprintf("the enrollment token expired at %s", t.ExpiresAt.UTC().Format(time.RFC3339)), hint)
	case errors.Is(err, store.ErrTokenUsedUp):
		return fault.Wrap(err, fault.Unauthorized, fmt.Sprintf("the enrollment token is used up (%d of %d uses)", t.Uses, t.Uses), hint)
	}
	return fmt.Errorf("read token: %w", err)
}

// issueError turns the store's condition errors of Issue into faults.
func (s *Service) issueError(err error, t store.Token, id api.DeviceID, now time.Time) error {
	switch {
	case tokenRefused(err):
		return tokenError(err, t, now)
	case errors.Is(err, store.ErrDeviceExists):
		return fault.Wrap(err, fault.Conflict, fmt.Sprintf("device %q is already enrolled, and a pattern token enrolls only new devices", id),
			fmt.Sprintf("ask an admin for a token whose device_id is %q", id))
	case errors.Is(err, store.ErrDeviceRevoked):
		return fault.Wrap(err, fault.Forbidden, fmt.Sprintf("device %q is revoked", id), "an admin must reset the device before it can enroll again")
	case errors.Is(err, store.ErrTooManyCertificates):
		return fault.Wrap(err, fault.Conflict, fmt.Sprintf("device %q already has %d live certificates, the most allowed", id, s.cfg.MaxActiveCertificates),
			"revoke one of them, let one expire, or raise enroll.max_active_certificates")
	case errors.Is(err, store.ErrKeyBlocked):
		return fault.Wrap(err, fault.Forbidden, "the CSR's public key was reported compromised and is blocked",
			"generate a new key pair on this device")
	case errors.Is(err, store.ErrKeyInUse):
		return fault.Wrap(err, fault.Conflict, "the CSR's public key is already certified for another device",
			"generate a new key pair on this device; every device needs its own key")
	}
	return fmt.Errorf("record certificate for %q: %w", id, err)
}

// SerialHex formats a certificate serial as fleetca does at every edge:
// lowercase hex without colons.
func SerialHex(c *x509.Certificate) string { return c.SerialNumber.Text(16) }
