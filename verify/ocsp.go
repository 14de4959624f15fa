package verify

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/redact"
)

// checkOCSP answers from the cache while the cached response is fresh, and
// asks the responder otherwise; a response past its nextUpdate is still
// used within the grace period when the responder cannot be reached.
func (c *Checker) checkOCSP(ctx context.Context, leaf *x509.Certificate) error {
	key := string(leaf.SerialNumber.Bytes())
	now := c.now()
	c.ocspMu.Lock()
	cached := c.ocspCache[key]
	c.ocspMu.Unlock()
	if cached == nil || !now.Before(cached.NextUpdate) {
		resp, err := c.fetchOCSP(ctx, leaf, now)
		switch {
		case err == nil:
			cached = resp
			c.ocspMu.Lock()
			if len(c.ocspCache) >= c.cfg.MaxCacheEntries {
				for k := range c.ocspCache { // evict one arbitrary entry
					delete(c.ocspCache, k)
					break
				}
			}
			c.ocspCache[key] = resp
			c.ocspMu.Unlock()
		case cached != nil && now.Before(cached.NextUpdate.Add(c.grace)):
			c.log.WarnContext(ctx, "OCSP fetch failed; using the cached response within its grace", "serial", leaf.SerialNumber.Text(16), "err", err)
		case cached != nil:
			return &RefusedError{Refusal: Stale, Serial: leaf.SerialNumber, Detail: "the cached OCSP response is past its grace", Err: err}
		default:
			return &RefusedError{Refusal: NoData, Serial: leaf.SerialNumber, Err: err}
		}
	}
	switch cached.Status {
	case ocsp.Good:
		return nil
	case ocsp.Revoked:
		return &RefusedError{Refusal: Revoked, Serial: leaf.SerialNumber, RevokedAt: cached.RevokedAt, Reason: api.Reason(cached.RevocationReason)}
	}
	return &RefusedError{Refusal: UnknownCert, Serial: leaf.SerialNumber}
}

// maxOCSPResponse bounds a responder's answer.
const maxOCSPResponse = 64 << 10

// fetchOCSP asks the responder about leaf and verifies the answer: signed
// by the issuer or by a responder certificate the issuer signed that has
// EKU OCSPSigning and is valid now (RFC 6960 §4.2.2.2), for leaf's serial,
// with thisUpdate not in the future and a nextUpdate.
func (c *Checker) fetchOCSP(ctx context.Context, leaf *x509.Certificate, now time.Time) (*ocsp.Response, error) {
	responder := c.cfg.OCSP
	if responder == "aia" {
		if len(leaf.OCSPServer) == 0 {
			return nil, errors.New("the certificate names no OCSP responder")
		}
		responder = leaf.OCSPServer[0]
	}
	reqDER, err := ocsp.CreateRequest(leaf, c.cfg.Issuer, nil)
	if err != nil {
		return nil, fmt.Errorf("make OCSP request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, responder, bytes.NewReader(reqDER))
	if err != nil {
		return nil, fmt.Errorf("OCSP URL %q: %w", redact.URL(responder), err)
	}
	req.Header.Set("Content-Type", "application/ocsp-request")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ask OCSP responder: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("OCSP responder %s answered %s", redact.URL(responder), resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxOCSPResponse))
	if err != nil {
		return nil, fmt.Errorf("read OCSP response: %w", err)
	}
	return VerifyOCSPResponse(b, leaf, c.cfg.Issuer, now)
}

// VerifyOCSPResponse parses an OCSP response for leaf and checks it
// against issuer at now (see fetchOCSP for the rules).
func VerifyOCSPResponse(b []byte, leaf, issuer *x509.Certificate, now time.Time) (*ocsp.Response, error) {
	r, err := ocsp.ParseResponseForCert(b, leaf, issuer)
	if err != nil {
		return nil, fmt.Errorf("OCSP response: %w", err)
	}
	if rc := r.Certificate; rc != nil {
		if !slices.Contains(rc.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
			return nil, errors.New("OCSP responder certificate lacks EKU OCSPSigning")
		}
		if now.Before(rc.NotBefore) || now.After(rc.NotAfter) {
			return nil, errors.New("OCSP responder certificate is not valid now")
		}
	}
	if r.SerialNumber == nil || r.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		return nil, errors.New("OCSP response is for another certificate")
	}
	if r.ThisUpdate.After(now.Add(5 * time.Minute)) {
		return nil, errors.New("OCSP response thisUpdate is in the future")
	}
	if r.NextUpdate.IsZero() {
		return nil, errors.New("OCSP response has no nextUpdate, so it cannot be cached")
	}
	return r, nil
}
