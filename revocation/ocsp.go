package revocation

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// oidNonce is id-pkix-ocsp-nonce (RFC 6960 §4.4.1).
var oidNonce = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}

// maxNonceLen bounds an echoed nonce (RFC 8954 §2.1 allows 1 to 32 octets;
// we echo up to 128 for older clients).
const maxNonceLen = 128

// ocspEntry is a signed response in the cache.
type ocspEntry struct {
	der                    []byte
	thisUpdate, nextUpdate time.Time
	status                 int
	digest                 string
	// cached is the entry as a cacheable OCSPAnswer, built once when it
	// was signed: a cache hit hands it out without allocating.
	cached *OCSPAnswer
}

// OCSPAnswer is what to send for an OCSP request. An answer from the cache
// is shared by every request it answers: callers treat it as read-only.
type OCSPAnswer struct {
	// DER is the OCSPResponse: a signed one, or an error status
	// (malformedRequest, unauthorized) that is not signed (RFC 6960 §2.3).
	DER []byte
	// Status is ocsp.Good, ocsp.Revoked or ocsp.Unknown for a signed
	// answer, -1 for an error status.
	Status int
	// ThisUpdate and NextUpdate of a signed answer; Cacheable is false when
	// the answer echoes a nonce (RFC 5019 §6.2 caching applies otherwise).
	ThisUpdate, NextUpdate time.Time
	Cacheable              bool
	// Digest identifies DER (hex of a SHA-256 prefix), computed once when
	// the answer was signed: a strong validator for caches.
	Digest string
}

// ocspRequest is the part of an OCSPRequest (RFC 6960 §4.1.1) that
// x/crypto/ocsp does not expose: the request extensions, for the nonce.
type ocspRequest struct {
	TBS struct {
		Version       int           `asn1:"explicit,tag:0,default:0,optional"`
		RequestorName asn1.RawValue `asn1:"explicit,tag:1,optional"`
		RequestList   []asn1.RawValue
		Extensions    []pkix.Extension `asn1:"explicit,tag:2,optional"`
	}
	Signature asn1.RawValue `asn1:"explicit,tag:0,optional"`
}

// ParseOCSPRequest parses an OCSP request and its nonce extension, if any
// (the extension's value, the DER of the Nonce OCTET STRING). Anything
// that is not a well-formed request for exactly one certificate is a
// fault.Malformed.
func ParseOCSPRequest(der []byte) (*ocsp.Request, []byte, error) {
	const hint = "send one DER OCSPRequest (RFC 6960 §4.1.1) about one certificate, as 'openssl ocsp' makes it"
	req, err := ocsp.ParseRequest(der)
	if err != nil {
		return nil, nil, fault.Wrap(err, fault.Malformed, "the body is not an OCSP request", hint)
	}
	var raw ocspRequest
	if rest, err := asn1.Unmarshal(der, &raw); err != nil || len(rest) != 0 {
		return nil, nil, fault.Wrap(err, fault.Malformed, "the OCSP request's extensions do not parse", hint)
	}
	if len(raw.TBS.RequestList) != 1 {
		return nil, nil, fault.New(fault.Malformed, fmt.Sprintf("the OCSP request asks about %d certificates; fleetca answers one per request (RFC 5019 §2.1.1)", len(raw.TBS.RequestList)), hint)
	}
	if req.SerialNumber == nil || req.SerialNumber.Sign() <= 0 {
		return nil, nil, fault.New(fault.Malformed, "the OCSP request has no positive serial number", hint)
	}
	for _, ext := range raw.TBS.Extensions {
		if !ext.Id.Equal(oidNonce) {
			continue
		}
		var nonce []byte
		if rest, err := asn1.Unmarshal(ext.Value, &nonce); err != nil || len(rest) != 0 || len(nonce) == 0 || len(nonce) > maxNonceLen {
			return nil, nil, fault.New(fault.Malformed, "the OCSP nonce is not an OCTET STRING of 1 to 128 octets (RFC 8954 §2.1)", hint)
		}
		return req, ext.Value, nil
	}
	return req, nil, nil
}

// RespondOCSP answers an OCSP request (RFC 6960, RFC 5019 profile): good
// for a certificate this CA issued and has not revoked, revoked with time
// and reason, unknown for a serial it never issued, the unauthorized
// status for another issuer's certificate, malformedRequest for garbage. A
// nonce is echoed. Answers without a nonce come from the cache while at
// least half their validity remains; a revocation replaces them. It returns
// an error only for internal failures.
func (s *Service) RespondOCSP(ctx context.Context, der []byte) (*OCSPAnswer, error) {
	now := s.now()
	// Fast path: a client asks with the same bytes each time, so a request
	// seen before (and found valid, for this issuer, without a nonce) maps
	// straight to its cached answer, without parsing. A revocation replaces
	// the answer behind the key, so this never serves a stale status.
	if len(der) <= maxIndexedRequest {
		s.mu.RLock()
		e := s.cache[s.requests[string(der)]]
		s.mu.RUnlock()
		if e != nil && s.fresh(e, now) {
			s.m.hit(e.status)
			return e.answer(), nil
		}
	}
	req, nonce, err := ParseOCSPRequest(der)
	if err != nil {
		s.m.ocsp.WithLabelValues("malformed", "none").Inc()
		return &OCSPAnswer{DER: ocsp.MalformedRequestErrorResponse, Status: -1}, nil
	}
	if !s.deps.CA.MatchesIssuer(req) {
		s.m.ocsp.WithLabelValues("unauthorized", "none").Inc()
		return &OCSPAnswer{DER: ocsp.UnauthorizedErrorResponse, Status: -1}, nil
	}
	key := cacheKey(req.HashAlgorithm, req.SerialNumber)
	if nonce == nil {
		s.mu.RLock()
		e := s.cache[key]
		s.mu.RUnlock()
		if e != nil && s.fresh(e, now) {
			s.indexRequest(der, key)
			s.m.hit(e.status)
			return e.answer(), nil
		}
	}
	status, revokedAt, reason, err := s.statusOf(ctx, req.SerialNumber)
	if err != nil {
		return nil, err
	}
	e, err := s.signEntry(req.HashAlgorithm, status, req.SerialNumber, revokedAt, reason, now, nonce)
	if err != nil {
		return nil, err
	}
	cacheable := nonce == nil
	if cacheable && status != ocsp.Unknown {
		s.mu.Lock()
		// A revocation that landed while this was signed wins: never
		// replace a revoked answer with a good one.
		if _, revoked := s.index[string(req.SerialNumber.Bytes())]; status == ocsp.Revoked || !revoked {
			if len(s.cache) >= s.cfg.OCSPCacheEntries {
				for k := range s.cache { // evict one arbitrary entry
					delete(s.cache, k)
					break
				}
			}
			s.cache[key] = e
		}
		s.mu.Unlock()
		s.indexRequest(der, key)
	}
	s.m.ocsp.WithLabelValues(statusName(status), "miss").Inc()
	return &OCSPAnswer{DER: e.der, Status: status, ThisUpdate: e.thisUpdate, NextUpdate: e.nextUpdate, Cacheable: cacheable, Digest: e.digest}, nil
}

// maxIndexedRequest bounds the requests kept as keys of the fast path (a
// one-certificate request without a nonce is about 80 bytes).
const maxIndexedRequest = 256

// fresh reports whether a cached answer may still be served: it is not
// from the future and at least half its validity remains.
func (s *Service) fresh(e *ocspEntry, now time.Time) bool {
	return now.Before(e.thisUpdate.Add(s.cfg.OCSPValidity/2)) && !now.Before(e.thisUpdate)
}

// answer is the cached entry as an OCSPAnswer (shared, read-only).
func (e *ocspEntry) answer() *OCSPAnswer { return e.cached }

// indexRequest remembers that the request bytes der, valid and without a
// nonce, ask for the answer cached under key.
func (s *Service) indexRequest(der []byte, key string) {
	if len(der) > maxIndexedRequest {
		return
	}
	s.mu.Lock()
	if _, ok := s.requests[string(der)]; !ok {
		if len(s.requests) >= s.cfg.OCSPCacheEntries {
			for k := range s.requests { // evict one arbitrary entry
				delete(s.requests, k)
				break
			}
		}
		s.requests[string(der)] = key
	}
	s.mu.Unlock()
}

// statusOf looks a serial up: the revoked index first, then the store.
func (s *Service) statusOf(ctx context.Context, serial *big.Int) (status int, revokedAt time.Time, reason int, err error) {
	s.mu.RLock()
	i, ok := s.index[string(serial.Bytes())]
	var e indexed
	if ok {
		e = s.entries[i]
	}
	s.mu.RUnlock()
	if ok {
		return ocsp.Revoked, e.entry.RevocationTime, e.entry.ReasonCode, nil
	}
	cert, err := s.deps.Store.GetCertificate(ctx, serial)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return ocsp.Unknown, time.Time{}, 0, nil
	case err != nil:
		return 0, time.Time{}, 0, fmt.Errorf("OCSP lookup %s: %w", serial.Text(16), err)
	case !cert.RevokedAt.IsZero():
		return ocsp.Revoked, cert.RevokedAt, cert.Reason, nil
	}
	return ocsp.Good, time.Time{}, 0, nil
}

// cacheHashes are the CertID hash algorithms a cached response may be for
// (RFC 6960 §4.1.1): the response's CertID must match the request's.
var cacheHashes = []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512}

// cacheKey names a cached response: the CertID hash and the serial.
func cacheKey(h crypto.Hash, serial *big.Int) string {
	return string(rune(h)) + string(serial.Bytes())
}

// signEntry signs a response for a CertID hashed with h, with the current
// delegated responder.
func (s *Service) signEntry(h crypto.Hash, status int, serial *big.Int, revokedAt time.Time, reason int, now time.Time, nonce []byte) (*ocspEntry, error) {
	this := now.UTC().Truncate(time.Second)
	if status == ocsp.Revoked && revokedAt.After(this) {
		// The clock is behind the revocation (stepped back): thisUpdate
		// may not precede it: ca.OCSPResponder.Sign refuses a revocation
		// time after thisUpdate, as RFC 5280 §5.1.2.6 does for CRLs.
		this = revokedAt.UTC().Truncate(time.Second)
	}
	tmpl := ocsp.Response{
		Status: status, SerialNumber: serial, ThisUpdate: this, NextUpdate: this.Add(s.cfg.OCSPValidity),
		RevokedAt: revokedAt, RevocationReason: reason, IssuerHash: h, ProducedAt: this,
	}
	if nonce != nil {
		tmpl.ExtraExtensions = []pkix.Extension{{Id: oidNonce, Value: nonce}}
	}
	der, err := s.responder.Load().Sign(tmpl)
	if err != nil {
		return nil, fmt.Errorf("sign OCSP response for %s: %w", serial.Text(16), err)
	}
	sum := sha256.Sum256(der)
	e := &ocspEntry{der: der, thisUpdate: tmpl.ThisUpdate, nextUpdate: tmpl.NextUpdate, status: status,
		digest: hex.EncodeToString(sum[:16])}
	e.cached = &OCSPAnswer{DER: e.der, Status: e.status, ThisUpdate: e.thisUpdate, NextUpdate: e.nextUpdate, Cacheable: true, Digest: e.digest}
	return e, nil
}

// ResponderCertificate returns the delegated OCSP responder certificate
// that signs responses now (the console shows its expiry).
func (s *Service) ResponderCertificate() *x509.Certificate { return s.responder.Load().Certificate() }

// renewResponder issues a new delegated responder certificate and key.
func (s *Service) renewResponder(ctx context.Context) error {
	r, err := s.deps.CA.NewOCSPResponder(ctx, s.cfg.ResponderValidity)
	if err != nil {
		return fmt.Errorf("issue OCSP responder certificate: %w", err)
	}
	// ca.Authority.NewOCSPResponder logs the issuance.
	s.responder.Store(r)
	return nil
}

// responderLoop renews the responder certificate at two thirds of its
// lifetime (cached responses it signed stay valid: they expire long
// before it does); failures are retried every minute.
func (s *Service) responderLoop(ctx context.Context) error {
	for {
		c := s.responder.Load().Certificate()
		due := c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) * 2 / 3)
		if err := sleep(ctx, due.Sub(s.now())); err != nil {
			return err
		}
		for {
			err := s.renewResponder(ctx)
			if err == nil {
				break
			}
			s.log.ErrorContext(ctx, "OCSP responder renewal failed; retrying", "err", err)
			if err := sleep(ctx, time.Minute); err != nil {
				return err
			}
		}
	}
}

func statusName(status int) string {
	switch status {
	case ocsp.Good:
		return "good"
	case ocsp.Revoked:
		return "revoked"
	case ocsp.Unknown:
		return "unknown"
	}
	return "error"
}
