package verify

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"

	gojose "github.com/go-jose/go-jose/v4"
	"go.step.sm/crypto/jose"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
)

// Reasons a device JWT is refused (JWTError.Reason), for logs, metric
// labels and the RFC 6750 error_description.
const (
	ReasonMalformed    = "malformed"         // not a compact JWS with the claims we need
	ReasonBadAlgorithm = "bad_algorithm"     // alg off the allow-list, or not the key's
	ReasonExpired      = "expired"           // exp past (beyond the skew)
	ReasonNotYetValid  = "not_yet_valid"     // nbf or iat in the future (beyond the skew)
	ReasonLifetime     = "lifetime_too_long" // exp too far after iat/nbf (or now)
	ReasonBadAudience  = "bad_audience"      // aud not <base>/devices/<id>, or sub another device
	ReasonUnknownKey   = "unknown_key"       // no live certificate of the device has that key
	ReasonBadSignature = "bad_signature"     // the signature does not verify
	ReasonRevoked      = "revoked"           // the certificate is revoked
	ReasonBadChain     = "bad_chain"         // the certificate does not chain to the fleet root now
	ReasonUnavailable  = "unavailable"       // revocation data or the key set missing or stale
)

// Reasons lists every Reason, for metrics that want each label present.
var Reasons = []string{ReasonMalformed, ReasonBadAlgorithm, ReasonExpired, ReasonNotYetValid, ReasonLifetime,
	ReasonBadAudience, ReasonUnknownKey, ReasonBadSignature, ReasonRevoked, ReasonBadChain, ReasonUnavailable}

// JWTSkew is the clock skew allowed on each of a device JWT's times.
const JWTSkew = 10 * time.Minute

// DefaultJWTMaxLifetime is JWTConfig.MaxLifetime when it is zero.
const DefaultJWTMaxLifetime = 24 * time.Hour

// MaxJWTBytes bounds a token: an x5c of two RSA-8192 certificates fits.
const MaxJWTBytes = 32 << 10

// jwtAlgorithms are the signature algorithms a device JWT may use: those of
// the keys fleetca certifies. Never none, never HMAC.
var jwtAlgorithms = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.RS256, jose.EdDSA}

// DeviceJWT is a device token that passed every check.
type DeviceJWT struct {
	// DeviceID is aud's last segment, the certificate's CN.
	DeviceID string
	// Certificate is the live certificate whose key signed the token.
	Certificate *x509.Certificate
	// KeyID is the kid of the key used: api.KeyID(Certificate.Raw), the
	// lowercase hex SHA-256 of the certificate's DER (also when the token
	// named the key by its RFC 7638 thumbprint or named none).
	KeyID string
	// Expiry is the token's exp.
	Expiry time.Time
}

// JWTError is why a device JWT was refused.
type JWTError struct {
	// Reason is one of the Reason constants.
	Reason string
	// Detail says what was wrong, for the verifier's log; it may name the
	// device and the key but never holds the token.
	Detail string
}

func (e *JWTError) Error() string { return "device JWT refused: " + e.Reason + ": " + e.Detail }

func refuse(reason, format string, args ...any) *JWTError {
	return &JWTError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// JWTConfig configures a JWTVerifier.
type JWTConfig struct {
	// Checker tells whether a certificate is revoked: the same CRL, feed
	// and freshness rules as mTLS (stale data fails closed: unavailable).
	// Required. The verifier subscribes to it to drop cached results.
	Checker *Checker
	// Roots is the fleet root: x5c chains and key-set certificates must
	// verify to it at the current time. Required.
	Roots *x509.CertPool
	// Intermediates are the fleet's intermediates; nil takes them from
	// each x5c and key (its x5c after the certificate).
	Intermediates *x509.CertPool
	// KeysURL is the base URL of the CA's HTTP listener
	// (http://ca.example:8080): the verifier fetches
	// <KeysURL>/v1/devices/{id}/keys (api.DeviceKeysPath). Empty means
	// tokens must carry x5c.
	KeysURL string
	// MaxLifetime bounds exp after iat or nbf (after now without either).
	// Default DefaultJWTMaxLifetime (24h); range 1m..720h.
	MaxLifetime time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// KeysRefetch is the least time between two fetches of one device's
	// key set prompted by an unknown kid (or a failed fetch). Default 10s.
	KeysRefetch time.Duration
	// KeysMaxAge is how long a fetched key set is used before it is
	// revalidated (a conditional GET). Default 5m. If the CA cannot be
	// reached, the set last fetched serves until KeysMaxAge+1h after that
	// fetch; then the device's tokens are refused (unavailable).
	KeysMaxAge time.Duration
	// MaxCacheEntries bounds the result cache and the key-set cache, each.
	// Default 100000.
	MaxCacheEntries int
	// Client fetches key sets; nil means a client with a 10 s timeout.
	Client *http.Client
	// Logger; nil discards.
	Logger *slog.Logger
}

// keysStaleAfter is how long past KeysMaxAge a key set is still used when
// it cannot be revalidated.
const keysStaleAfter = time.Hour

// maxKeySetBytes bounds a fetched key set (three keys with their x5c).
const maxKeySetBytes = 256 << 10

// JWTVerifier checks device JWTs (VerifyDeviceJWT). It is safe for
// concurrent use.
type JWTVerifier struct {
	cfg    JWTConfig
	now    func() time.Time
	client *http.Client
	log    *slog.Logger

	setsMu sync.Mutex
	sets   map[api.DeviceID]*keySet

	resMu   sync.Mutex
	results map[string]cachedJWT // by token
}

// cachedJWT is a token that passed, for the audience base it passed for.
type cachedJWT struct {
	aud string
	DeviceJWT
}

// keySet is one device's key set as last fetched from the CA.
type keySet struct {
	mu        sync.Mutex // one fetch at a time; guards the rest
	keys      []liveKey
	etag      string
	fetchedAt time.Time // last good answer (200 or 304); zero before one
	triedAt   time.Time // last attempt
	err       error     // last attempt's failure, nil after a good answer
}

// liveKey is a key of a device's key set, its certificate verified.
type liveKey struct {
	kid, thumbprint string
	cert            *x509.Certificate
}

// NewJWTVerifier returns a JWTVerifier.
//
// Errors: fault.Malformed for a Config it cannot use (no Checker or Roots,
// a KeysURL that is not a listener's base URL, a duration out of range).
func NewJWTVerifier(cfg JWTConfig) (*JWTVerifier, error) {
	if cfg.Checker == nil || cfg.Roots == nil {
		return nil, errors.New("verify.NewJWTVerifier: Checker and Roots are required")
	}
	if cfg.KeysURL != "" {
		base, err := BaseURL(cfg.KeysURL, "http", "https")
		if err != nil {
			return nil, err
		}
		cfg.KeysURL = base
	}
	if cfg.MaxLifetime == 0 {
		cfg.MaxLifetime = DefaultJWTMaxLifetime
	}
	if cfg.KeysRefetch == 0 {
		cfg.KeysRefetch = 10 * time.Second
	}
	if cfg.KeysMaxAge == 0 {
		cfg.KeysMaxAge = 5 * time.Minute
	}
	if cfg.MaxCacheEntries == 0 {
		cfg.MaxCacheEntries = 100_000
	}
	switch {
	case cfg.MaxLifetime < time.Minute || cfg.MaxLifetime > 720*time.Hour:
		return nil, fault.New(fault.Malformed, fmt.Sprintf("the JWT maximum lifetime %s is outside 1m..720h", cfg.MaxLifetime), "")
	case cfg.KeysRefetch < 0 || cfg.KeysMaxAge < 0 || cfg.MaxCacheEntries < 0:
		return nil, errors.New("verify.NewJWTVerifier: negative KeysRefetch, KeysMaxAge or MaxCacheEntries")
	}
	v := &JWTVerifier{cfg: cfg, now: cfg.Now, client: cfg.Client, log: cfg.Logger,
		sets: map[api.DeviceID]*keySet{}, results: map[string]cachedJWT{}}
	if v.now == nil {
		v.now = time.Now
	}
	if v.client == nil {
		v.client = &http.Client{Timeout: 10 * time.Second}
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	cfg.Checker.Subscribe(v.forget)
	return v, nil
}

// forget drops the cached results of a revoked certificate.
func (v *JWTVerifier) forget(serial *big.Int) {
	v.resMu.Lock()
	defer v.resMu.Unlock()
	for tok, r := range v.results {
		if r.Certificate.SerialNumber.Cmp(serial) == 0 {
			delete(v.results, tok)
		}
	}
}

// VerifyDeviceJWT checks token, a compact JWS, as a device JWT for a
// service whose audience base is audienceBase (https://api.example.com:
// aud must be https://api.example.com/devices/<id>). It returns the device
// and the certificate whose key signed it, or a *JWTError saying why not.
// Results are cached by token until its exp; a cached result is checked
// again for its times and against the Checker (revocation, freshness).
func (v *JWTVerifier) VerifyDeviceJWT(ctx context.Context, token, audienceBase string) (DeviceJWT, error) {
	now := v.now()
	v.resMu.Lock()
	c, ok := v.results[token]
	v.resMu.Unlock()
	if ok && c.aud == audienceBase {
		if err := v.stillGood(ctx, c.DeviceJWT, now); err != nil {
			return DeviceJWT{}, err
		}
		return c.DeviceJWT, nil
	}
	r, err := v.verify(ctx, token, audienceBase, now)
	if err != nil {
		return DeviceJWT{}, err
	}
	v.resMu.Lock()
	if len(v.results) >= v.cfg.MaxCacheEntries {
		for k, c := range v.results {
			if !now.Before(c.Expiry.Add(JWTSkew)) {
				delete(v.results, k)
			}
		}
		if len(v.results) >= v.cfg.MaxCacheEntries {
			clear(v.results)
		}
	}
	v.results[token] = cachedJWT{aud: audienceBase, DeviceJWT: r}
	v.resMu.Unlock()
	return r, nil
}

// stillGood checks again what may have changed since r was cached.
func (v *JWTVerifier) stillGood(ctx context.Context, r DeviceJWT, now time.Time) error {
	if !now.Before(r.Expiry.Add(JWTSkew)) {
		return refuse(ReasonExpired, "the token expired at %s", r.Expiry.UTC().Format(time.RFC3339))
	}
	if err := certValidAt(r.Certificate, now); err != nil {
		return err
	}
	return v.checkRevocation(ctx, r.Certificate)
}

func (v *JWTVerifier) verify(ctx context.Context, token, audienceBase string, now time.Time) (DeviceJWT, error) {
	if len(token) > MaxJWTBytes {
		return DeviceJWT{}, refuse(ReasonMalformed, "the token is %d bytes long, more than %d", len(token), MaxJWTBytes)
	}
	if strings.HasPrefix(strings.TrimSpace(token), "{") {
		return DeviceJWT{}, refuse(ReasonMalformed, "the token is not in the compact serialization")
	}
	tok, err := jose.ParseSigned(token)
	if err != nil {
		if u, ok := errors.AsType[*gojose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return DeviceJWT{}, refuse(ReasonBadAlgorithm, "alg %q is not allowed", u.Got)
		}
		return DeviceJWT{}, refuse(ReasonMalformed, "the token is not a JWS: %v", jose.TrimPrefix(err))
	}
	if len(tok.Headers) != 1 {
		return DeviceJWT{}, refuse(ReasonMalformed, "the token has %d signatures, want 1", len(tok.Headers))
	}
	h := tok.Headers[0]
	alg := jose.SignatureAlgorithm(h.Algorithm)
	if !algAllowed(alg) {
		return DeviceJWT{}, refuse(ReasonBadAlgorithm, "alg %q is not allowed; use ES256, ES384, RS256 or EdDSA", h.Algorithm)
	}
	var claims jose.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&claims); err != nil {
		return DeviceJWT{}, refuse(ReasonMalformed, "the claims are not a JSON object of JWT claims: %v", jose.TrimPrefix(err))
	}
	id, err := audienceDevice(claims, audienceBase)
	if err != nil {
		return DeviceJWT{}, err
	}
	expiry, err := v.checkTimes(claims, now)
	if err != nil {
		return DeviceJWT{}, err
	}
	k, err := v.signingKey(ctx, h, id, now)
	if err != nil {
		return DeviceJWT{}, err
	}
	if !algFits(alg, k.cert.PublicKey) {
		return DeviceJWT{}, refuse(ReasonBadAlgorithm, "alg %s does not fit the certificate's %s key", alg, k.cert.PublicKeyAlgorithm)
	}
	if err := jose.Verify(tok, k.cert.PublicKey); err != nil {
		return DeviceJWT{}, refuse(ReasonBadSignature, "the signature does not verify with the key %s of device %s", k.kid, id)
	}
	if err := certValidAt(k.cert, now); err != nil {
		return DeviceJWT{}, err
	}
	if err := v.checkRevocation(ctx, k.cert); err != nil {
		return DeviceJWT{}, err
	}
	return DeviceJWT{DeviceID: string(id), Certificate: k.cert, KeyID: k.kid, Expiry: expiry}, nil
}

func algAllowed(alg jose.SignatureAlgorithm) bool {
	for _, a := range jwtAlgorithms {
		if a == alg {
			return true
		}
	}
	return false
}

// algFits reports whether alg is the algorithm of pub's key type.
func algFits(alg jose.SignatureAlgorithm, pub crypto.PublicKey) bool {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return alg == jose.ES256 && k.Curve == elliptic.P256() || alg == jose.ES384 && k.Curve == elliptic.P384()
	case *rsa.PublicKey:
		return alg == jose.RS256
	case ed25519.PublicKey:
		return alg == jose.EdDSA
	}
	return false
}

// audienceDevice returns the device aud names under base: exactly one
// <base>/devices/<id>, and sub, if present, the same id.
func audienceDevice(c jose.Claims, base string) (api.DeviceID, error) {
	prefix := strings.TrimRight(base, "/") + api.JWTDevicesSegment
	var id api.DeviceID
	for _, a := range c.Audience {
		rest, ok := strings.CutPrefix(a, prefix)
		if !ok {
			continue
		}
		d, err := api.ParseDeviceID(rest)
		if err != nil {
			return "", refuse(ReasonBadAudience, "aud %q does not end in a device ID", a)
		}
		if id != "" && id != d {
			return "", refuse(ReasonBadAudience, "aud names two devices, %s and %s", id, d)
		}
		id = d
	}
	if id == "" {
		return "", refuse(ReasonBadAudience, "aud %q is not %s<device ID>", []string(c.Audience), prefix)
	}
	if c.Subject != "" && c.Subject != string(id) {
		return "", refuse(ReasonBadAudience, "sub %q is not the device %s that aud names", c.Subject, id)
	}
	return id, nil
}

// checkTimes applies the rules on exp, nbf and iat and returns exp.
func (v *JWTVerifier) checkTimes(c jose.Claims, now time.Time) (time.Time, error) {
	if c.Expiry == nil {
		return time.Time{}, refuse(ReasonMalformed, "the token has no exp")
	}
	exp := c.Expiry.Time()
	if !now.Before(exp.Add(JWTSkew)) {
		return time.Time{}, refuse(ReasonExpired, "the token expired at %s", exp.UTC().Format(time.RFC3339))
	}
	start := now
	if c.NotBefore != nil {
		nbf := c.NotBefore.Time()
		if nbf.After(now.Add(JWTSkew)) {
			return time.Time{}, refuse(ReasonNotYetValid, "nbf %s is in the future", nbf.UTC().Format(time.RFC3339))
		}
		start = nbf
	}
	if c.IssuedAt != nil {
		iat := c.IssuedAt.Time()
		if iat.After(now.Add(JWTSkew)) {
			return time.Time{}, refuse(ReasonNotYetValid, "iat %s is in the future", iat.UTC().Format(time.RFC3339))
		}
		if c.NotBefore == nil || iat.Before(start) {
			start = iat
		}
	}
	if exp.Sub(start) > v.cfg.MaxLifetime {
		return time.Time{}, refuse(ReasonLifetime, "exp %s is more than %s after %s",
			exp.UTC().Format(time.RFC3339), v.cfg.MaxLifetime, start.UTC().Format(time.RFC3339))
	}
	return exp, nil
}

// certValidAt refuses a certificate outside its validity.
func certValidAt(cert *x509.Certificate, now time.Time) error {
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return refuse(ReasonBadChain, "certificate %s is valid from %s to %s", cert.SerialNumber.Text(16),
			cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// checkRevocation asks the Checker, failing closed.
func (v *JWTVerifier) checkRevocation(ctx context.Context, cert *x509.Certificate) error {
	err := v.cfg.Checker.Check(ctx, cert)
	if err == nil {
		return nil
	}
	if re, ok := errors.AsType[*RefusedError](err); ok {
		switch re.Refusal {
		case Revoked:
			return &JWTError{Reason: ReasonRevoked, Detail: re.Error()}
		case WrongIssuer:
			return &JWTError{Reason: ReasonBadChain, Detail: re.Error()}
		case UnknownCert:
			return &JWTError{Reason: ReasonUnknownKey, Detail: re.Error()}
		}
	}
	return &JWTError{Reason: ReasonUnavailable, Detail: err.Error()}
}

// chainOpts are the options a device certificate must verify with. With
// no configured Intermediates they are extra's; for an x5c (extra nil)
// the header's own certificates after the first.
func (v *JWTVerifier) chainOpts(now time.Time, extra []*x509.Certificate) x509.VerifyOptions {
	inter := v.cfg.Intermediates
	if inter == nil && len(extra) > 0 {
		inter = x509.NewCertPool()
		for _, c := range extra {
			inter.AddCert(c)
		}
	}
	return x509.VerifyOptions{Roots: v.cfg.Roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
}

// deviceCert checks that cert, verified, is a signing certificate of id.
func deviceCert(cert *x509.Certificate, id api.DeviceID) error {
	if cert.Subject.CommonName != string(id) {
		return refuse(ReasonUnknownKey, "certificate %s is of device %q, not %s", cert.SerialNumber.Text(16), cert.Subject.CommonName, id)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return refuse(ReasonBadChain, "certificate %s does not allow digitalSignature", cert.SerialNumber.Text(16))
	}
	return nil
}

// signingKey finds the key that should have signed a token of device id:
// the x5c's certificate if the header has one, else a key of the device's
// key set by kid (or its only key).
func (v *JWTVerifier) signingKey(ctx context.Context, h jose.Header, id api.DeviceID, now time.Time) (liveKey, error) {
	chains, err := h.Certificates(v.chainOpts(now, nil))
	if err == nil {
		cert := chains[0][0]
		if err := deviceCert(cert, id); err != nil {
			return liveKey{}, err
		}
		k := newLiveKey(cert)
		if h.KeyID != "" && h.KeyID != k.kid && h.KeyID != k.thumbprint {
			return liveKey{}, refuse(ReasonUnknownKey, "kid %q is not the x5c certificate's %s", h.KeyID, k.kid)
		}
		return k, nil
	}
	if !errors.Is(err, gojose.ErrMissingX5cHeader) {
		return liveKey{}, refuse(ReasonBadChain, "the x5c chain does not verify: %v", err)
	}
	if v.cfg.KeysURL == "" {
		return liveKey{}, refuse(ReasonUnknownKey, "the token has no x5c and this verifier has no key-set URL")
	}
	set := v.keySetOf(id)
	set.mu.Lock()
	defer set.mu.Unlock()
	if err := v.refresh(ctx, set, id, now, false); err != nil {
		return liveKey{}, err
	}
	k, ok, err := pickKey(set.keys, h.KeyID, id)
	if ok || err != nil {
		return k, err
	}
	// An unknown kid may be a key certified since the last fetch.
	if err := v.refresh(ctx, set, id, now, true); err != nil {
		return liveKey{}, err
	}
	k, ok, err = pickKey(set.keys, h.KeyID, id)
	if ok || err != nil {
		return k, err
	}
	return liveKey{}, refuse(ReasonUnknownKey, "device %s has no live key %q", id, h.KeyID)
}

// pickKey returns the key named kid (or the only key when kid is empty).
func pickKey(keys []liveKey, kid string, id api.DeviceID) (liveKey, bool, error) {
	if kid == "" {
		if len(keys) == 1 {
			return keys[0], true, nil
		}
		return liveKey{}, false, refuse(ReasonUnknownKey, "the token has no kid and device %s has %d live keys", id, len(keys))
	}
	for _, k := range keys {
		if k.kid == kid || k.thumbprint == kid {
			return k, true, nil
		}
	}
	return liveKey{}, false, nil
}

func newLiveKey(cert *x509.Certificate) liveKey {
	k := liveKey{kid: api.KeyID(cert.Raw), cert: cert}
	jwk := jose.JSONWebKey{Key: cert.PublicKey}
	if tp, err := jwk.Thumbprint(crypto.SHA256); err == nil {
		k.thumbprint = base64.RawURLEncoding.EncodeToString(tp)
	}
	return k
}

func (v *JWTVerifier) keySetOf(id api.DeviceID) *keySet {
	v.setsMu.Lock()
	defer v.setsMu.Unlock()
	s, ok := v.sets[id]
	if !ok {
		if len(v.sets) >= v.cfg.MaxCacheEntries {
			for k := range v.sets { // evict an arbitrary entry
				delete(v.sets, k)
				break
			}
		}
		s = &keySet{}
		v.sets[id] = s
	}
	return s
}

// keysFetchTimeout bounds one fetch of a device's key set.
const keysFetchTimeout = 10 * time.Second

// refresh fetches set when it is needed: never fetched, older than
// KeysMaxAge, or (unknownKid) a kid was not found; never more often than
// KeysRefetch. It returns the refusal to give when no usable set remains.
// Called with set.mu held.
func (v *JWTVerifier) refresh(ctx context.Context, set *keySet, id api.DeviceID, now time.Time, unknownKid bool) error {
	due := set.fetchedAt.IsZero() || now.Sub(set.fetchedAt) >= v.cfg.KeysMaxAge || unknownKid
	if due && (set.triedAt.IsZero() || now.Sub(set.triedAt) >= v.cfg.KeysRefetch || now.Before(set.triedAt)) {
		set.triedAt = now
		// The fetch does not end with the request that caused it: a
		// client hanging up must not leave the device's key set failed
		// (its tokens refused as unavailable) until KeysRefetch passes.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), keysFetchTimeout)
		set.err = v.fetchKeys(fctx, set, id, now)
		cancel()
		if set.err == nil {
			set.fetchedAt = now
		} else {
			v.log.LogAttrs(ctx, slog.LevelWarn, "device key set fetch failed", slog.String("device_id", string(id)), slog.Any("error", set.err))
		}
	}
	if set.fetchedAt.IsZero() || now.Sub(set.fetchedAt) >= v.cfg.KeysMaxAge+keysStaleAfter {
		if set.err == nil {
			set.err = errors.New("no key set fetched")
		}
		if jerr, ok := errors.AsType[*JWTError](set.err); ok {
			return jerr
		}
		return refuse(ReasonUnavailable, "the key set of device %s: %v", id, set.err)
	}
	return nil
}

// fetchKeys GETs the device's key set (conditionally) and keeps its keys
// whose certificates verify. A 404 (unknown device) is an empty set.
func (v *JWTVerifier) fetchKeys(ctx context.Context, set *keySet, id api.DeviceID, now time.Time) error {
	url := v.cfg.KeysURL + api.DeviceKeysPath(id)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("key set URL: %w", err)
	}
	if set.etag != "" && !set.fetchedAt.IsZero() {
		req.Header.Set("If-None-Match", set.etag)
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch key set: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		return nil
	case http.StatusNotFound:
		set.keys, set.etag = nil, ""
		return nil
	case http.StatusOK:
	default:
		return fmt.Errorf("fetch key set %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxKeySetBytes+1))
	if err != nil {
		return fmt.Errorf("fetch key set %s: %w", url, err)
	}
	if len(b) > maxKeySetBytes {
		return fmt.Errorf("key set at %s is larger than %d bytes", url, maxKeySetBytes)
	}
	keys, err := v.parseKeySet(b, id, now)
	if err != nil {
		return fmt.Errorf("key set %s: %w", url, err)
	}
	set.keys, set.etag = keys, resp.Header.Get("ETag")
	return nil
}

// parseKeySet reads a JWK Set and keeps the keys whose x5c certificate
// verifies to the root now, is the device's, and whose kid is its
// fingerprint. The key used is the certificate's.
func (v *JWTVerifier) parseKeySet(b []byte, id api.DeviceID, now time.Time) ([]liveKey, error) {
	var ks jose.JSONWebKeySet
	if err := json.Unmarshal(b, &ks); err != nil {
		return nil, err
	}
	var out []liveKey
	for _, jwk := range ks.Keys {
		if len(jwk.Certificates) == 0 {
			continue
		}
		cert := jwk.Certificates[0]
		if _, err := cert.Verify(v.chainOpts(now, jwk.Certificates[1:])); err != nil {
			v.log.Warn("device key set: certificate does not verify", slog.String("device_id", string(id)), slog.Any("error", err))
			continue
		}
		if err := deviceCert(cert, id); err != nil {
			continue
		}
		k := newLiveKey(cert)
		if jwk.KeyID != k.kid {
			continue
		}
		out = append(out, k)
	}
	return out, nil
}
