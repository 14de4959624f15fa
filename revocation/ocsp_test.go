package revocation

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.step.sm/crypto/minica"
	"golang.org/x/crypto/ocsp"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/verify"
)

// ocspHashes are the CertID hashes clients send: SHA-1 (openssl, most
// clients, RFC 5019) and SHA-256.
var ocspHashes = []crypto.Hash{crypto.SHA1, crypto.SHA256}

// TestOCSPRevokeReplacesCachedGood: right after Revoke returns, OCSP says
// revoked for every CertID hash, though a good answer was cached.
func TestOCSPRevokeReplacesCachedGood(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	inter := f.ca.Intermediate()
	leaf := f.issue(t, "dev-ocsp")
	good := func(status, cache string) float64 {
		return metricValue(t, f.reg, "fleetca_revocation_ocsp_responses_total", map[string]string{"status": status, "cache": cache})
	}
	for _, h := range ocspHashes {
		req := newOCSPRequest(t, leaf, inter, h)
		a1, a2 := respond(t, f.svc, req), respond(t, f.svc, req)
		if a1.Status != ocsp.Good || a2.Status != ocsp.Good {
			t.Fatalf("%v: before Revoke: statuses %d, %d, want good", h, a1.Status, a2.Status)
		}
		if !bytes.Equal(a1.DER, a2.DER) {
			t.Errorf("%v: the second answer is not the cached first one", h)
		}
	}
	if miss, hit := good("good", "miss"), good("good", "hit"); miss != 2 || hit != 2 {
		t.Fatalf("good answers: %v signed, %v from the cache; want 2 and 2", miss, hit)
	}

	f.clock.Add(90 * time.Second)
	rev := f.revoke(t, leaf, api.ReasonKeyCompromise)
	for _, h := range ocspHashes {
		t.Run(h.String(), func(t *testing.T) {
			ans := respond(t, f.svc, newOCSPRequest(t, leaf, inter, h))
			if ans.Status != ocsp.Revoked || !ans.Cacheable {
				t.Errorf("after Revoke: status %d, cacheable %v; want revoked, cacheable", ans.Status, ans.Cacheable)
			}
			resp, err := ocsp.ParseResponseForCert(ans.DER, leaf, inter)
			if err != nil {
				t.Fatalf("ocsp.ParseResponseForCert: %v", err)
			}
			if resp.Status != ocsp.Revoked || !resp.RevokedAt.Equal(rev.RevokedAt) || resp.RevocationReason != ocsp.KeyCompromise {
				t.Errorf("after Revoke: status %d at %v reason %d, want revoked at %v reason %d",
					resp.Status, resp.RevokedAt, resp.RevocationReason, rev.RevokedAt, ocsp.KeyCompromise)
			}
			if resp.IssuerHash != h {
				t.Errorf("response CertID hash = %v, want the request's %v", resp.IssuerHash, h)
			}
			if _, err := verify.VerifyOCSPResponse(ans.DER, leaf, inter, f.now()); err != nil {
				t.Errorf("VerifyOCSPResponse: %v", err)
			}
		})
	}
	if got := good("revoked", "hit"); got != 1 {
		t.Errorf("revoked answers from the cache = %v, want 1 (the SHA-1 one Revoke signed)", got)
	}
	if got := good("good", "hit"); got != 2 {
		t.Errorf("good answers from the cache = %v after Revoke, want still 2", got)
	}
}

func TestOCSPStatuses(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	inter := f.ca.Intermediate()
	issued := f.issue(t, "dev-good")
	revoked := f.issue(t, "dev-revoked")
	f.revoke(t, revoked, api.ReasonUnspecified)
	neverStored := f.sign(t, "dev-unknown")
	other, err := minica.New()
	if err != nil {
		t.Fatal(err)
	}
	// Another CA's certificate with the serial of one of ours.
	foreign, err := other.Sign(&x509.Certificate{SerialNumber: issued.SerialNumber, PublicKey: issued.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	twoCerts := joinRequests(t, newOCSPRequest(t, issued, inter, crypto.SHA1), newOCSPRequest(t, revoked, inter, crypto.SHA1))
	sha1Req := newOCSPRequest(t, issued, inter, crypto.SHA1)
	f.clock.Add(1234 * time.Millisecond)

	for _, tc := range []struct {
		name   string
		req    []byte
		leaf   *x509.Certificate // for a signed answer
		status int
		errDER []byte // for an error answer
	}{
		{"good/sha1", sha1Req, issued, ocsp.Good, nil},
		{"good/sha256", newOCSPRequest(t, issued, inter, crypto.SHA256), issued, ocsp.Good, nil},
		{"good/sha384", newOCSPRequest(t, issued, inter, crypto.SHA384), issued, ocsp.Good, nil},
		{"good/sha512", newOCSPRequest(t, issued, inter, crypto.SHA512), issued, ocsp.Good, nil},
		{"revoked/unspecified", newOCSPRequest(t, revoked, inter, crypto.SHA256), revoked, ocsp.Revoked, nil},
		{"unknown/never-issued", newOCSPRequest(t, neverStored, inter, crypto.SHA1), neverStored, ocsp.Unknown, nil},
		{"unauthorized/other-ca", newOCSPRequest(t, foreign, other.Intermediate, crypto.SHA1), nil, -1, ocsp.UnauthorizedErrorResponse},
		{"unauthorized/other-ca-sha256", newOCSPRequest(t, foreign, other.Intermediate, crypto.SHA256), nil, -1, ocsp.UnauthorizedErrorResponse},
		{"unauthorized/root-as-issuer", newOCSPRequest(t, inter, f.ca.Root(), crypto.SHA1), nil, -1, ocsp.UnauthorizedErrorResponse},
		{"malformed/empty", []byte{}, nil, -1, ocsp.MalformedRequestErrorResponse},
		{"malformed/nil", nil, nil, -1, ocsp.MalformedRequestErrorResponse},
		{"malformed/garbage", []byte("GET /ocsp HTTP/1.1\r\n"), nil, -1, ocsp.MalformedRequestErrorResponse},
		{"malformed/empty-sequence", []byte{0x30, 0x00}, nil, -1, ocsp.MalformedRequestErrorResponse},
		{"malformed/truncated", sha1Req[:len(sha1Req)-1], nil, -1, ocsp.MalformedRequestErrorResponse},
		{"malformed/trailing-data", append(bytes.Clone(sha1Req), 0), nil, -1, ocsp.MalformedRequestErrorResponse},
		{"malformed/two-certificates", twoCerts, nil, -1, ocsp.MalformedRequestErrorResponse},
		{"malformed/a-certificate", issued.Raw, nil, -1, ocsp.MalformedRequestErrorResponse},
		{"malformed/empty-nonce", withNonce(t, sha1Req, []byte{}), nil, -1, ocsp.MalformedRequestErrorResponse},
		{"malformed/long-nonce", withNonce(t, sha1Req, make([]byte, maxNonceLen+1)), nil, -1, ocsp.MalformedRequestErrorResponse},
		{"malformed/nonce-not-octet-string", withExtensions(t, sha1Req, pkix.Extension{Id: oidNonce, Value: []byte{0x02, 0x01, 0x01}}), nil, -1, ocsp.MalformedRequestErrorResponse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ans := respond(t, f.svc, tc.req)
			if ans.Status != tc.status {
				t.Fatalf("RespondOCSP status = %d, want %d", ans.Status, tc.status)
			}
			if tc.errDER != nil {
				if !bytes.Equal(ans.DER, tc.errDER) {
					t.Errorf("RespondOCSP DER = %x, want %x", ans.DER, tc.errDER)
				}
				if ans.Cacheable {
					t.Error("an error answer is cacheable")
				}
				return
			}
			now := f.now()
			if ans.ThisUpdate.After(now) || !now.Before(ans.NextUpdate) || !ans.NextUpdate.Equal(ans.ThisUpdate.Add(time.Hour)) {
				t.Errorf("answer valid %v to %v at %v; want thisUpdate <= now < nextUpdate = thisUpdate + 1h", ans.ThisUpdate, ans.NextUpdate, now)
			}
			if !ans.Cacheable {
				t.Error("an answer without a nonce is not cacheable")
			}
			resp, err := verify.VerifyOCSPResponse(ans.DER, tc.leaf, inter, now)
			if err != nil {
				t.Fatalf("VerifyOCSPResponse: %v", err)
			}
			if resp.Status != tc.status || !resp.ThisUpdate.Equal(ans.ThisUpdate) || !resp.NextUpdate.Equal(ans.NextUpdate) {
				t.Errorf("response: status %d valid %v to %v; the answer says %d, %v to %v",
					resp.Status, resp.ThisUpdate, resp.NextUpdate, tc.status, ans.ThisUpdate, ans.NextUpdate)
			}
			if !resp.ProducedAt.Equal(resp.ThisUpdate) {
				t.Errorf("producedAt %v, want thisUpdate %v", resp.ProducedAt, resp.ThisUpdate)
			}
			if tc.status == ocsp.Revoked && resp.RevocationReason != ocsp.Unspecified {
				t.Errorf("revocation reason = %d, want unspecified", resp.RevocationReason)
			}
		})
	}
}

// responseNonce returns the value of the nonce extension of a response,
// or nil. RFC 6960 §4.4.1 puts it among the responseExtensions, which
// golang.org/x/crypto/ocsp does not expose; x/crypto/ocsp.CreateResponse
// puts it among the singleExtensions (Response.Extensions), where ca
// wrote it before it followed the RFC. Either is accepted.
func responseNonce(t testing.TB, der []byte, resp *ocsp.Response) []byte {
	t.Helper()
	var outer struct {
		Status asn1.Enumerated
		Bytes  struct {
			Type     asn1.ObjectIdentifier
			Response []byte
		} `asn1:"explicit,tag:0"`
	}
	var basic struct {
		TBS struct {
			Version     int `asn1:"optional,default:0,explicit,tag:0"`
			ResponderID asn1.RawValue
			ProducedAt  asn1.RawValue
			Responses   []asn1.RawValue
			Extensions  []pkix.Extension `asn1:"explicit,tag:1,optional"`
		}
	}
	if _, err := asn1.Unmarshal(der, &outer); err != nil {
		t.Fatalf("parse OCSPResponse: %v", err)
	}
	if _, err := asn1.Unmarshal(outer.Bytes.Response, &basic); err != nil {
		t.Fatalf("parse BasicOCSPResponse: %v", err)
	}
	for _, exts := range [][]pkix.Extension{basic.TBS.Extensions, resp.Extensions} {
		for _, e := range exts {
			if e.Id.Equal(oidNonce) {
				return e.Value
			}
		}
	}
	return nil
}

func TestOCSPNonce(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	inter := f.ca.Intermediate()
	issued := f.issue(t, "dev-nonce")
	revoked := f.issue(t, "dev-nonce-revoked")
	f.revoke(t, revoked, api.ReasonSuperseded)
	unknown := f.sign(t, "dev-nonce-unknown")
	for _, tc := range []struct {
		name   string
		leaf   *x509.Certificate
		hash   crypto.Hash
		size   int
		status int
	}{
		{"good/sha1/16", issued, crypto.SHA1, 16, ocsp.Good},
		{"good/sha256/32", issued, crypto.SHA256, 32, ocsp.Good},
		{"good/sha1/1", issued, crypto.SHA1, 1, ocsp.Good},
		{"good/sha1/128", issued, crypto.SHA1, maxNonceLen, ocsp.Good},
		{"revoked/sha1/32", revoked, crypto.SHA1, 32, ocsp.Revoked},
		{"unknown/sha256/32", unknown, crypto.SHA256, 32, ocsp.Unknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain := newOCSPRequest(t, tc.leaf, inter, tc.hash)
			respond(t, f.svc, plain) // a cached answer the nonce request must not get
			for range 2 {
				nonce := make([]byte, tc.size)
				rand.Read(nonce)
				ans := respond(t, f.svc, withNonce(t, plain, nonce))
				if ans.Status != tc.status || ans.Cacheable {
					t.Fatalf("status %d, cacheable %v; want %d, not cacheable", ans.Status, ans.Cacheable, tc.status)
				}
				resp, err := verify.VerifyOCSPResponse(ans.DER, tc.leaf, inter, f.now())
				if err != nil {
					t.Fatalf("VerifyOCSPResponse: %v", err)
				}
				want, _ := asn1.Marshal(nonce)
				if got := responseNonce(t, ans.DER, resp); !bytes.Equal(got, want) {
					t.Errorf("echoed nonce = %x, want %x", got, want)
				}
			}
			ans := respond(t, f.svc, plain)
			resp, err := ocsp.ParseResponseForCert(ans.DER, tc.leaf, inter)
			if err != nil {
				t.Fatal(err)
			}
			if got := responseNonce(t, ans.DER, resp); got != nil {
				t.Errorf("answer without a nonce after nonce requests: nonce %x, want none", got)
			}
		})
	}
}

// TestOCSPCacheRefresh: cached answers are served until half of
// OCSPValidity has passed, then signed anew.
func TestOCSPCacheRefresh(t *testing.T) {
	const validity = 10 * time.Minute
	f := newFixture(t, fixtureOptions{cfg: Config{OCSPValidity: validity}})
	inter := f.ca.Intermediate()
	leaf := f.issue(t, "dev-cache")
	for _, h := range ocspHashes {
		t.Run(h.String(), func(t *testing.T) {
			req := newOCSPRequest(t, leaf, inter, h)
			first := respond(t, f.svc, req)
			signedAt := f.now()
			if !first.ThisUpdate.Equal(signedAt) || !first.NextUpdate.Equal(signedAt.Add(validity)) {
				t.Fatalf("answer valid %v to %v, want %v to %v", first.ThisUpdate, first.NextUpdate, signedAt, signedAt.Add(validity))
			}
			f.clock.Add(validity/2 - time.Second)
			if again := respond(t, f.svc, req); !bytes.Equal(again.DER, first.DER) || !again.ThisUpdate.Equal(first.ThisUpdate) {
				t.Errorf("before half of the validity: answer thisUpdate %v, want the cached %v", again.ThisUpdate, first.ThisUpdate)
			}
			f.clock.Add(time.Second)
			fresh := respond(t, f.svc, req)
			if bytes.Equal(fresh.DER, first.DER) || !fresh.ThisUpdate.Equal(f.now()) || !fresh.NextUpdate.Equal(f.now().Add(validity)) {
				t.Errorf("at half of the validity: answer valid %v to %v, want re-signed, %v to %v",
					fresh.ThisUpdate, fresh.NextUpdate, f.now(), f.now().Add(validity))
			}
			if again := respond(t, f.svc, req); !bytes.Equal(again.DER, fresh.DER) {
				t.Error("the re-signed answer was not cached")
			}
			if _, err := verify.VerifyOCSPResponse(fresh.DER, leaf, inter, f.now()); err != nil {
				t.Errorf("VerifyOCSPResponse: %v", err)
			}
		})
	}
}

// TestOCSPCacheBound: the cache holds at most OCSPCacheEntries answers;
// answers about unknown serials are not cached at all.
func TestOCSPCacheBound(t *testing.T) {
	const bound = 1000
	f := newFixture(t, fixtureOptions{cfg: Config{OCSPCacheEntries: bound}})
	inter := f.ca.Intermediate()
	leaf := f.issue(t, "dev-bound")
	respond(t, f.svc, newOCSPRequest(t, leaf, inter, crypto.SHA1))
	respond(t, f.svc, newOCSPRequest(t, f.sign(t, "dev-bound-unknown"), inter, crypto.SHA1))
	if n := len(f.svc.cache); n != 1 {
		t.Errorf("cache entries = %d after a good and an unknown answer, want 1", n)
	}
	// Fill the cache to its bound (signing a thousand answers would only
	// make the test slower), then ask about something new.
	f.svc.mu.Lock()
	for i := int64(1); len(f.svc.cache) < bound; i++ {
		f.svc.cache[cacheKey(crypto.SHA512, big.NewInt(i))] = &ocspEntry{}
	}
	f.svc.mu.Unlock()
	req := newOCSPRequest(t, leaf, inter, crypto.SHA256)
	first := respond(t, f.svc, req)
	if n := len(f.svc.cache); n != bound {
		t.Errorf("cache entries = %d, want the bound %d", n, bound)
	}
	if again := respond(t, f.svc, req); !bytes.Equal(again.DER, first.DER) {
		t.Error("the answer that found the cache full was not cached")
	}
}

// TestOCSPConcurrentRevoke (run with -race): while 32 goroutines ask about
// a certificate, it is revoked; every answer to a request sent after
// Revoke returned says revoked.
func TestOCSPConcurrentRevoke(t *testing.T) {
	raceRevoke(t, newFixture(t, fixtureOptions{}))
}

// pausingStore is the real store, with a hook run after GetCertificate
// has read, to hold an OCSP answer between its store read and its caching.
type pausingStore struct {
	Store
	afterGet func()
}

func (p *pausingStore) GetCertificate(ctx context.Context, serial *big.Int) (store.Certificate, error) {
	c, err := p.Store.GetCertificate(ctx, serial)
	p.afterGet()
	return c, err
}

// TestOCSPRevokeWhileAnswering: an answer that read "good" from the store
// just before a revocation committed, and is signed after Revoke returned,
// must not be cached over the revocation.
func TestOCSPRevokeWhileAnswering(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	inter := f.ca.Intermediate()
	leaf := f.issue(t, "dev-interleave")
	var once sync.Once
	read, release := make(chan struct{}), make(chan struct{})
	ps := &pausingStore{Store: f.st, afterGet: func() {
		once.Do(func() { close(read); <-release })
	}}
	svc, err := New(t.Context(), Config{}, Deps{Store: ps, CA: f.ca, Now: f.now})
	if err != nil {
		t.Fatal(err)
	}
	req := newOCSPRequest(t, leaf, inter, crypto.SHA256)
	answered := make(chan *OCSPAnswer, 1)
	go func() {
		ans, err := svc.RespondOCSP(t.Context(), req)
		if err != nil {
			t.Errorf("RespondOCSP: %v", err)
		}
		answered <- ans
	}()
	<-read
	_, err = svc.Revoke(t.Context(), RevokeRequest{Serial: leaf.SerialNumber, Reason: api.ReasonKeyCompromise})
	close(release)
	if err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if ans := <-answered; ans != nil && ans.Status != ocsp.Good {
		t.Errorf("the answer that read the store before the revocation: status %d, want good", ans.Status)
	}
	if ans := respond(t, svc, req); ans.Status != ocsp.Revoked {
		t.Errorf("after Revoke returned: status %d, want revoked (a good answer signed during the revocation was cached)", ans.Status)
	}
}

func raceRevoke(t *testing.T, f *fixture) {
	inter := f.ca.Intermediate()
	leaf := f.issue(t, "dev-race")
	reqs := [][]byte{newOCSPRequest(t, leaf, inter, crypto.SHA1), newOCSPRequest(t, leaf, inter, crypto.SHA256)}
	const askers, after = 32, 50

	var (
		revoked atomic.Bool
		asked   sync.WaitGroup // each asker has had one answer
		wg      sync.WaitGroup
	)
	asked.Add(askers)
	for i := range askers {
		req := reqs[i%len(reqs)]
		wg.Go(func() {
			first := true
			for n := 0; n < after; {
				wasRevoked := revoked.Load()
				ans, err := f.svc.RespondOCSP(t.Context(), req)
				if err != nil {
					t.Errorf("RespondOCSP: %v", err)
					return
				}
				if first {
					asked.Done()
					first = false
				}
				if !wasRevoked {
					continue
				}
				n++
				if ans.Status != ocsp.Revoked {
					t.Errorf("asker %d: answer %d after Revoke returned: status %d, want revoked", i, n, ans.Status)
					return
				}
			}
		})
	}
	wg.Go(func() {
		asked.Wait()
		if _, err := f.svc.Revoke(t.Context(), RevokeRequest{Serial: leaf.SerialNumber, Reason: api.ReasonKeyCompromise}); err != nil {
			t.Errorf("Revoke: %v", err)
		}
		revoked.Store(true)
	})
	wg.Wait()
	for _, req := range reqs {
		if ans := respond(t, f.svc, req); ans.Status != ocsp.Revoked {
			t.Errorf("after the race: status %d, want revoked", ans.Status)
		}
	}
}

// FuzzParseOCSPRequest: arbitrary bytes never panic ParseOCSPRequest;
// what it accepts asks about one positive serial and re-encodes to the
// same request; what it refuses is a Malformed fault. RespondOCSP on a live
// Service never fails on any input: it answers malformedRequest,
// unauthorized, or a signed answer about the request's serial.
func FuzzParseOCSPRequest(f *testing.F) {
	fx := newFixture(f, fixtureOptions{})
	inter := fx.ca.Intermediate()
	good := fx.issue(f, "dev-fuzz")
	revoked := fx.issue(f, "dev-fuzz-revoked")
	fx.revoke(f, revoked, api.ReasonKeyCompromise)
	unknown := fx.sign(f, "dev-fuzz-unknown")
	other, err := minica.New()
	if err != nil {
		f.Fatal(err)
	}
	foreign, err := other.Sign(&x509.Certificate{SerialNumber: big.NewInt(77), PublicKey: good.PublicKey})
	if err != nil {
		f.Fatal(err)
	}
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		f.Add(newOCSPRequest(f, good, inter, h))
	}
	sha1Req := newOCSPRequest(f, good, inter, crypto.SHA1)
	f.Add(withNonce(f, sha1Req, []byte("0123456789abcdef")))
	f.Add(withNonce(f, newOCSPRequest(f, revoked, inter, crypto.SHA256), make([]byte, 32)))
	f.Add(withNonce(f, sha1Req, nil))
	f.Add(newOCSPRequest(f, revoked, inter, crypto.SHA1))
	f.Add(newOCSPRequest(f, unknown, inter, crypto.SHA1))
	f.Add(newOCSPRequest(f, foreign, other.Intermediate, crypto.SHA1))
	f.Add(joinRequests(f, sha1Req, sha1Req))
	f.Add([]byte{})
	f.Add([]byte("garbage"))
	f.Add([]byte{0x30, 0x00})
	f.Add([]byte{0x30, 0x80, 0x00, 0x00})
	f.Add(good.Raw)

	f.Fuzz(func(t *testing.T, der []byte) {
		req, nonce, err := ParseOCSPRequest(der)
		if err != nil {
			if k, ok := fault.KindOf(err); !ok || k != fault.Malformed {
				t.Errorf("ParseOCSPRequest error = %v, want a Malformed fault", err)
			}
		} else {
			checkAccepted(t, req, nonce)
		}

		ans, rerr := fx.svc.RespondOCSP(t.Context(), der)
		if rerr != nil {
			t.Fatalf("RespondOCSP error = %v, want an answer", rerr)
		}
		switch {
		case err != nil:
			if ans.Status != -1 || !bytes.Equal(ans.DER, ocsp.MalformedRequestErrorResponse) {
				t.Fatalf("refused request: answer status %d %x, want malformedRequest", ans.Status, ans.DER)
			}
		case !fx.ca.MatchesIssuer(req):
			if ans.Status != -1 || !bytes.Equal(ans.DER, ocsp.UnauthorizedErrorResponse) {
				t.Fatalf("another issuer's request: answer status %d %x, want unauthorized", ans.Status, ans.DER)
			}
		default:
			resp, err := ocsp.ParseResponse(ans.DER, inter)
			if err != nil {
				t.Fatalf("signed answer: %v", err)
			}
			if resp.SerialNumber.Cmp(req.SerialNumber) != 0 || resp.Status != ans.Status || resp.IssuerHash != req.HashAlgorithm {
				t.Fatalf("answer about %x (%v) status %d, want about %x (%v) status %d",
					resp.SerialNumber, resp.IssuerHash, resp.Status, req.SerialNumber, req.HashAlgorithm, ans.Status)
			}
			if echoed := responseNonce(t, ans.DER, resp); (nonce == nil) != ans.Cacheable || !bytes.Equal(echoed, nonce) {
				t.Fatalf("nonce %x: answer cacheable %v, echoed %x", nonce, ans.Cacheable, echoed)
			}
		}
	})
}

// checkAccepted checks the invariants of a request ParseOCSPRequest
// accepted.
func checkAccepted(t *testing.T, req *ocsp.Request, nonce []byte) {
	t.Helper()
	if req.SerialNumber == nil || req.SerialNumber.Sign() <= 0 {
		t.Fatalf("accepted a request for serial %v", req.SerialNumber)
	}
	if nonce != nil {
		var n []byte
		if rest, err := asn1.Unmarshal(nonce, &n); err != nil || len(rest) != 0 || len(n) == 0 || len(n) > maxNonceLen {
			t.Fatalf("accepted nonce %x: %v", nonce, err)
		}
	}
	b, err := req.Marshal()
	if err != nil {
		t.Fatalf("re-encode the accepted request: %v", err)
	}
	again, _, err := ParseOCSPRequest(b)
	if err != nil {
		t.Fatalf("the re-encoded request is refused: %v", err)
	}
	if again.HashAlgorithm != req.HashAlgorithm || !bytes.Equal(again.IssuerNameHash, req.IssuerNameHash) ||
		!bytes.Equal(again.IssuerKeyHash, req.IssuerKeyHash) || again.SerialNumber.Cmp(req.SerialNumber) != 0 {
		t.Fatalf("re-encoded request = %s, want %s", describe(again), describe(req))
	}
}

func describe(r *ocsp.Request) string {
	return fmt.Sprintf("{%v %x %x %x}", r.HashAlgorithm, r.IssuerNameHash, r.IssuerKeyHash, r.SerialNumber)
}

func TestResponderCertificateSignsResponses(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	leaf := f.issue(t, "dev-responder")
	ans := respond(t, f.svc, newOCSPRequest(t, leaf, f.ca.Intermediate(), ocspHashes[0]))
	resp, err := ocsp.ParseResponse(ans.DER, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := f.svc.ResponderCertificate()
	if resp.Certificate == nil || got == nil || !bytes.Equal(resp.Certificate.Raw, got.Raw) {
		t.Errorf("ResponderCertificate is not the certificate in the responses")
	}
}
