package web

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/ocsp"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/revocation"
	"github.com/fleetca/fleetca/store"
)

// Revoker is the revocation service as web uses it; *revocation.Service is one.
type Revoker interface {
	Revoke(ctx context.Context, req revocation.RevokeRequest) ([]store.Revocation, error)
	ResetDevice(ctx context.Context, id string) (store.Device, error)
	CRL() *revocation.Published
	RootCRL() (*revocation.Published, error)
	// PartitionCRL is partition p's CRL, nil if none is published;
	// Partitions the discovery document of them.
	PartitionCRL(p int) *revocation.Published
	Partitions() api.CRLPartitions
	RespondOCSP(ctx context.Context, der []byte) (*revocation.OCSPAnswer, error)
	Feed(ctx context.Context, seq uint64, limit int, wait time.Duration) ([]store.Revocation, error)
	// ResponderCertificate is the OCSP responder certificate in use (the
	// console shows its expiry).
	ResponderCertificate() *x509.Certificate
}

// revocationFeed handles GET /v1/revocations?since=N&wait=20s&limit=1000
// (api.FeedPath and its parameters; limit 1..100000, default 1000; wait
// cut to api.FeedMaxWait): the revocations after N, in order; with wait,
// the request is held until one happens or wait passes (long-poll).
// Verifiers (fleetca proxy, crl sync) follow it to cut devices off within
// seconds; it carries what the CRL does (serials, times, reasons), so it
// is as public as the CRL.
func (s *Server) revocationFeed(c echo.Context) error {
	var since uint64
	if v := c.QueryParam(api.FeedParamSince); v != "" {
		var err error
		if since, err = strconv.ParseUint(v, 10, 64); err != nil {
			return fault.Wrap(err, fault.Malformed, fmt.Sprintf("since=%q is not a sequence number", v), "pass the last seq you have, or 0")
		}
	}
	var wait time.Duration
	if v := c.QueryParam(api.FeedParamWait); v != "" {
		var err error
		if wait, err = time.ParseDuration(v); err != nil || wait < 0 {
			return fault.Wrap(err, fault.Malformed, fmt.Sprintf("wait=%q is not a duration", v), "write it like 20s")
		}
		wait = min(wait, api.FeedMaxWait)
	}
	// A verifier catching up reads the log in pages far larger than the
	// admin lists' (it asks for api.FeedBatch).
	limit := store.DefaultRevocationLimit
	if v := c.QueryParam(api.FeedParamLimit); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxRevocationLimit {
			return fault.New(fault.Malformed, fmt.Sprintf("limit=%q is not a number from 1 to %d", v, store.MaxRevocationLimit), "")
		}
		limit = n
	}
	ctx, cancel := context.WithCancel(c.Request().Context())
	defer cancel()
	go func() {
		select {
		case <-s.draining:
			cancel()
		case <-ctx.Done():
		}
	}()
	revs, err := s.deps.Revocation.Feed(ctx, since, limit, wait)
	if err != nil {
		if !s.isDraining() || !errors.Is(err, context.Canceled) {
			return err
		}
		// Shutting down: end the long-poll with nothing new, as if wait
		// had passed; the verifier polls again, elsewhere or later.
		revs = nil
	}
	out := api.FeedResponse{Revocations: make([]api.FeedEntry, len(revs)), Last: since}
	for i, r := range revs {
		out.Revocations[i] = api.FeedEntry{Seq: r.Seq, Serial: r.Serial.Text(16), RevokedAt: timeAPI(r.RevokedAt),
			Reason: api.Reason(r.Reason), NotAfter: timeAPI(r.NotAfter)}
		out.Last = r.Seq
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, out)
}

// Drain ends the revocation feed's long-polls under way, and any later one
// at once, each with what it has, so that a graceful shutdown need not wait
// up to a long-poll's wait for them. Call it when shutdown begins
// (http.Server.RegisterOnShutdown); it may be called more than once.
func (s *Server) Drain() { s.drainOnce.Do(func() { close(s.draining) }) }

func (s *Server) isDraining() bool {
	select {
	case <-s.draining:
		return true
	default:
		return false
	}
}

// maxOCSPRequest bounds an OCSP request body or GET path (a request for one
// certificate with a nonce is well under 1 KiB).
const maxOCSPRequest = 4 << 10

// revoke handles POST /v1/admin/certificates/{serial}/revoke and
// POST /v1/admin/devices/{id}/revoke with an optional {"reason": "..."}.
func (s *Server) revoke(c echo.Context) error {
	var body api.RevokeRequest
	if c.Request().ContentLength != 0 {
		if err := s.decodeJSON(c, &body); err != nil {
			return err
		}
	}
	reason, err := revocation.ParseReason(body.Reason)
	if err != nil {
		return err
	}
	req := revocation.RevokeRequest{Reason: reason}
	if c.Param("id") != "" {
		id, err := deviceParam(c)
		if err != nil {
			return err
		}
		req.DeviceID = string(id)
		c.Set(ctxDeviceID, string(id))
	} else {
		if req.Serial, err = parseSerial(c.Param("serial")); err != nil {
			return err
		}
	}
	revs, err := s.deps.Revocation.Revoke(c.Request().Context(), req)
	if err != nil {
		return err
	}
	out := make([]api.RevokedCertificate, len(revs))
	for i, r := range revs {
		out[i] = api.RevokedCertificate{Serial: r.Serial.Text(16), DeviceID: r.DeviceID, RevokedAt: timeJSON(r.RevokedAt), Reason: api.Reason(r.Reason).String()}
	}
	return c.JSON(http.StatusOK, api.RevokeResponse{Revoked: out})
}

// resetDevice handles POST /v1/admin/devices/{id}/reset.
func (s *Server) resetDevice(c echo.Context) error {
	id, err := deviceParam(c)
	if err != nil {
		return err
	}
	d, err := s.deps.Revocation.ResetDevice(c.Request().Context(), string(id))
	if err != nil {
		return err
	}
	c.Set(ctxDeviceID, d.ID)
	return c.JSON(http.StatusOK, toDeviceJSON(d))
}

// serveCRL writes a CRL with validators for conditional GETs: ETag (the CRL
// number) and Last-Modified (thisUpdate). Caches must revalidate, so that a
// revocation reaches verifiers on their next poll.
func serveCRL(c echo.Context, p *revocation.Published, body []byte, ctype string) error {
	h := c.Response().Header()
	h.Set("Content-Type", ctype)
	h.Set("ETag", p.ETag)
	h.Set("Cache-Control", "public, no-cache")
	http.ServeContent(c.Response(), c.Request(), "", p.ThisUpdate, bytes.NewReader(body))
	return nil
}

func (s *Server) crlDER(c echo.Context) error {
	p := s.deps.Revocation.CRL()
	return serveCRL(c, p, p.DER, "application/pkix-crl")
}

func (s *Server) crlPEM(c echo.Context) error {
	p := s.deps.Revocation.CRL()
	return serveCRL(c, p, p.PEM(), "application/x-pem-file")
}

// partitionCRL handles GET /crl/<p> (DER) and /crl/<p>.pem: partition
// p's CRL (revocation.crl_partitions), with the full CRL's validators.
func (s *Server) partitionCRL(c echo.Context) error {
	param := c.Param("partition")
	p, isPEM, ok := parsePartitionParam(param)
	var pub *revocation.Published
	if ok {
		pub = s.deps.Revocation.PartitionCRL(p)
	}
	if pub == nil {
		return fault.New(fault.NotFound, fmt.Sprintf("no CRL partition %q is published", param),
			"read "+api.PartitionsPath+" for the partitions and their URLs")
	}
	if isPEM {
		return serveCRL(c, pub, pub.PEM(), "application/x-pem-file")
	}
	return serveCRL(c, pub, pub.DER, "application/pkix-crl")
}

// parsePartitionParam reads the last segment of /crl/<p> or /crl/<p>.pem:
// p in canonical decimal (no sign, no leading zero) below
// api.MaxCRLPartitions, and whether PEM was asked for.
func parsePartitionParam(param string) (p int, isPEM, ok bool) {
	digits, isPEM := strings.CutSuffix(param, ".pem")
	if len(digits) == 0 || len(digits) > 3 {
		return 0, false, false
	}
	p, err := strconv.Atoi(digits)
	if err != nil || p < 0 || p >= api.MaxCRLPartitions || strconv.Itoa(p) != digits {
		return 0, false, false
	}
	return p, isPEM, true
}

// crlPartitions handles GET /crl/partitions: the discovery document of
// the partition CRLs (api.CRLPartitions). It changes with every partition
// CRL, so caches must not keep it.
func (s *Server) crlPartitions(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-cache")
	return c.JSON(http.StatusOK, s.deps.Revocation.Partitions())
}

func (s *Server) rootCRL(c echo.Context) error {
	p, err := s.deps.Revocation.RootCRL()
	if err != nil {
		return err
	}
	return serveCRL(c, p, p.DER, "application/pkix-crl")
}

// ocspPost handles POST /ocsp (RFC 6960 Appendix A.1).
func (s *Server) ocspPost(c echo.Context) error {
	if ct := c.Request().Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/ocsp-request") {
		return s.writeOCSP(c, &revocation.OCSPAnswer{DER: ocsp.MalformedRequestErrorResponse, Status: -1})
	}
	body, err := s.readOCSPBody(c)
	if err != nil {
		return err
	}
	return s.answerOCSP(c, body)
}

// readOCSPBody reads a POST /ocsp body of at most maxOCSPRequest bytes.
// A body whose Content-Length is known (every OCSP client sends one) is
// read in one allocation of its size; net/http ends the body at that
// length. Anything else goes through readLimited.
func (s *Server) readOCSPBody(c echo.Context) ([]byte, error) {
	r := c.Request()
	n := r.ContentLength
	if n <= 0 || n > maxOCSPRequest {
		return s.readLimited(c, maxOCSPRequest)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r.Body, body); err != nil {
		return nil, fault.Wrap(err, fault.Malformed, "the request body could not be read", "send the whole body")
	}
	return body, nil
}

// ocspGet handles GET /ocsp/{base64 DER, URL-encoded} (RFC 5019 §5).
func (s *Server) ocspGet(c echo.Context) error {
	raw := strings.TrimPrefix(c.Request().URL.EscapedPath(), "/ocsp/")
	if len(raw) > maxOCSPRequest {
		return s.writeOCSP(c, &revocation.OCSPAnswer{DER: ocsp.MalformedRequestErrorResponse, Status: -1})
	}
	unescaped, err := url.PathUnescape(raw)
	if err != nil {
		return s.writeOCSP(c, &revocation.OCSPAnswer{DER: ocsp.MalformedRequestErrorResponse, Status: -1})
	}
	der, err := base64.StdEncoding.DecodeString(unescaped)
	if err != nil {
		if der, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(unescaped, "=")); err != nil {
			return s.writeOCSP(c, &revocation.OCSPAnswer{DER: ocsp.MalformedRequestErrorResponse, Status: -1})
		}
	}
	return s.answerOCSP(c, der)
}

func (s *Server) answerOCSP(c echo.Context, der []byte) error {
	ans, err := s.deps.Revocation.RespondOCSP(c.Request().Context(), der)
	if err != nil {
		s.log.ErrorContext(c.Request().Context(), "OCSP", "err", err, "request_id", c.Response().Header().Get(echo.HeaderXRequestID))
		c.Response().Header().Set("Content-Type", "application/ocsp-response")
		return c.Blob(http.StatusInternalServerError, "application/ocsp-response", ocsp.InternalErrorErrorResponse)
	}
	return s.writeOCSP(c, ans)
}

// writeOCSP sends an OCSP answer with the RFC 5019 §6.2 caching headers
// when it may be cached. The headers that depend only on the answer
// (Last-Modified, Expires, ETag) are formatted once per answer
// (ocspHeaderCache) and Cache-Control once per max-age; they are put in
// the header map under their canonical keys, as Header.Set would.
//
// A signed answer (good, revoked or unknown) is logged at Debug, not
// Info: verifiers ask for one per handshake or per refresh, and at tens of
// thousands a second the request log line was a third of the responder's
// CPU per answer (issue 19). fleetca_revocation_ocsp_responses_total and
// fleetca_web_requests_total count every answer; malformedRequest and
// unauthorized answers, and failures, are still logged at Info.
func (s *Server) writeOCSP(c echo.Context, ans *revocation.OCSPAnswer) error {
	if ans.Status >= 0 {
		c.Set(ctxQuietLog, true)
	}
	h := c.Response().Header()
	if ans.Cacheable {
		v := s.ocspHeaders.get(ans)
		h["Last-Modified"], h["Expires"], h["Etag"] = v.lastModified, v.expires, v.etag
		h["Cache-Control"] = v.cacheControl(ans, s.now())
	} else {
		h["Cache-Control"] = noStore
	}
	h[echo.HeaderContentType] = ocspResponseType
	c.Response().WriteHeader(http.StatusOK)
	_, err := c.Response().Write(ans.DER)
	return err
}

// Header values shared by every OCSP answer; never modified.
var (
	ocspResponseType = []string{"application/ocsp-response"}
	noStore          = []string{"no-store"}
)

// ocspHeaderCache holds the caching headers of the cacheable answers seen
// lately, by OCSPAnswer.Digest (which names the DER, and with it
// thisUpdate and nextUpdate). It is safe for concurrent use.
type ocspHeaderCache struct {
	m sync.Map // Digest -> *ocspHeaderValues
	n atomic.Int64
}

// maxOCSPHeaderEntries bounds ocspHeaderCache; past it, the cache is
// emptied and fills again (a new answer costs a few time formats).
const maxOCSPHeaderEntries = 1 << 16

// ocspHeaderValues are one answer's header values, each a one-element
// slice shared by every response that sends them: never modified.
type ocspHeaderValues struct {
	lastModified, expires, etag []string
	// cc is the Cache-Control value made last, for its max-age.
	cc atomic.Pointer[cacheControlValue]
}

// cacheControlValue is Cache-Control with max-age maxAge.
type cacheControlValue struct {
	maxAge int64
	v      []string
}

// get returns ans's header values, formatting them on first use.
func (c *ocspHeaderCache) get(ans *revocation.OCSPAnswer) *ocspHeaderValues {
	if v, ok := c.m.Load(ans.Digest); ok {
		return v.(*ocspHeaderValues)
	}
	v := &ocspHeaderValues{
		lastModified: []string{ans.ThisUpdate.UTC().Format(http.TimeFormat)},
		expires:      []string{ans.NextUpdate.UTC().Format(http.TimeFormat)},
		etag:         []string{`"` + ans.Digest + `"`},
	}
	if c.n.Add(1) > maxOCSPHeaderEntries {
		c.m.Clear()
		c.n.Store(1)
	}
	c.m.Store(ans.Digest, v)
	return v
}

// cacheControl is Cache-Control with max-age the whole seconds from now to
// ans.NextUpdate (at least 0); the value is made again when max-age changes.
func (v *ocspHeaderValues) cacheControl(ans *revocation.OCSPAnswer, now time.Time) []string {
	maxAge := max(int64(ans.NextUpdate.Sub(now)/time.Second), 0)
	if cc := v.cc.Load(); cc != nil && cc.maxAge == maxAge {
		return cc.v
	}
	cc := &cacheControlValue{maxAge: maxAge, v: []string{"max-age=" + strconv.FormatInt(maxAge, 10) + ", public, no-transform, must-revalidate"}}
	v.cc.Store(cc)
	return cc.v
}
