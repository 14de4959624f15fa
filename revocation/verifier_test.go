package revocation

// These tests drive the verifier side (package verify) against this
// Service, served as web serves it: what the CA publishes is what a
// verifier reads.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"go.step.sm/crypto/minica"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/verify"
)

// feedHandler serves the Service's feed as web does (api.FeedPath, the JSON
// of api.FeedResponse: the contract the Checker follows) and the CRL.
func feedHandler(svc *Service) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.FeedPath, func(w http.ResponseWriter, r *http.Request) {
		since, _ := strconv.ParseUint(r.URL.Query().Get(api.FeedParamSince), 10, 64)
		wait, _ := time.ParseDuration(r.URL.Query().Get(api.FeedParamWait))
		revs, err := svc.Feed(r.Context(), since, 0, min(wait, 2*time.Second))
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		out := api.FeedResponse{Revocations: []api.FeedEntry{}, Last: since}
		for _, rv := range revs {
			out.Revocations = append(out.Revocations, api.FeedEntry{Seq: rv.Seq, Serial: rv.Serial.Text(16), RevokedAt: rv.RevokedAt,
				Reason: api.Reason(rv.Reason), NotAfter: rv.NotAfter})
			out.Last = rv.Seq
		}
		json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("GET "+api.CRLPath, func(w http.ResponseWriter, r *http.Request) { w.Write(svc.CRL().DER) })
	return mux
}

// refusal is the Refusal of a Checker's error, or 0.
func refusal(err error) verify.Refusal {
	if re, ok := errors.AsType[*verify.RefusedError](err); ok {
		return re.Refusal
	}
	return 0
}

// TestCheckerFeed: with a feed, a revocation is refused and announced to
// subscribers without waiting for the next CRL.
func TestCheckerFeed(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	hs := httptest.NewTLSServer(feedHandler(f.svc)) // the feed is HTTPS only
	defer hs.Close()
	leaf, other := f.issue(t, "dev-1"), f.issue(t, "dev-2")
	c, err := verify.NewChecker(verify.CheckerConfig{CRL: hs.URL, Feed: hs.URL, Issuer: f.ca.Intermediate(), Refresh: time.Hour},
		verify.CheckerDeps{Client: hs.Client(), Now: f.now})
	if err != nil {
		t.Fatal(err)
	}
	announced := make(chan *big.Int, 8)
	c.Subscribe(func(serial *big.Int) { announced <- serial })
	if err := c.Refresh(t.Context()); err != nil { // the first CRL, before Run
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	if err := c.Check(t.Context(), leaf); err != nil {
		t.Fatalf("Check before revocation = %v", err)
	}
	f.revoke(t, leaf, api.ReasonKeyCompromise) // no CRL refresh: Refresh is an hour
	select {
	case s := <-announced:
		if s.Cmp(leaf.SerialNumber) != 0 {
			t.Errorf("announced %x, want %x", s, leaf.SerialNumber)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the feed did not announce the revocation")
	}
	if got := refusal(c.Check(t.Context(), leaf)); got != verify.Revoked {
		t.Errorf("Check(revoked, from the feed) refusal = %v, want revoked", got)
	}
	if err := c.Check(t.Context(), other); err != nil {
		t.Errorf("Check(other) = %v", err)
	}
	if _, err := verify.NewChecker(verify.CheckerConfig{OCSP: "aia", Feed: hs.URL, Issuer: f.ca.Intermediate()}, verify.CheckerDeps{}); err == nil {
		t.Error("a feed without a CRL was accepted")
	}
}

// TestCheckerCRLAnnounces: without a feed, a new CRL that lists a serial is
// announced to subscribers too.
func TestCheckerCRLAnnounces(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	hs := httptest.NewServer(feedHandler(f.svc))
	defer hs.Close()
	leaf := f.issue(t, "dev-1")
	c, err := verify.NewChecker(verify.CheckerConfig{CRL: hs.URL, Issuer: f.ca.Intermediate()}, verify.CheckerDeps{Client: hs.Client(), Now: f.now})
	if err != nil {
		t.Fatal(err)
	}
	var got []*big.Int
	c.Subscribe(func(serial *big.Int) { got = append(got, serial) })
	if err := c.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	f.revoke(t, leaf, api.ReasonSuperseded)
	if err := f.svc.publishCRL(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("announced %v, want [%x]", got, leaf.SerialNumber)
	}
}

// ocspServer serves the Service's responder over HTTP, as web does, and
// can be switched off to act as an unreachable responder.
type ocspServer struct {
	svc   *Service
	down  atomic.Bool
	calls atomic.Int32
}

func (o *ocspServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.calls.Add(1)
	if o.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
	ans, err := o.svc.RespondOCSP(r.Context(), body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Write(ans.DER)
}

// TestCheckerOCSP drives the Checker's OCSP mode against the real responder:
// good, then revoked once its cached answer expires; a stale answer is used
// within the grace period only; an unknown certificate is refused.
func TestCheckerOCSP(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	srv := &ocspServer{svc: f.svc}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	good, bad := f.issue(t, "dev-good"), f.issue(t, "dev-bad")
	unknown := f.sign(t, "dev-unknown") // signed, never recorded
	c, err := verify.NewChecker(verify.CheckerConfig{OCSP: hs.URL, Issuer: f.ca.Intermediate(), Grace: new(10 * time.Minute)},
		verify.CheckerDeps{Client: hs.Client(), Now: f.now})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check(t.Context(), good); err != nil {
		t.Fatalf("Check(good) = %v", err)
	}
	if err := c.Check(t.Context(), bad); err != nil {
		t.Fatalf("Check(bad, before revocation) = %v", err)
	}
	calls := srv.calls.Load()
	if err := c.Check(t.Context(), good); err != nil || srv.calls.Load() != calls {
		t.Errorf("second Check(good) = %v with %d responder calls, want a cached answer", err, srv.calls.Load()-calls)
	}
	f.revoke(t, bad, api.ReasonKeyCompromise)
	// The Checker honours its cached good answer until its nextUpdate
	// (OCSP's contract); after that it asks again and learns.
	f.clock.Add(f.svc.cfg.OCSPValidity)
	err = c.Check(t.Context(), bad)
	var re *verify.RefusedError
	if !errors.As(err, &re) || re.Refusal != verify.Revoked || re.Reason != api.ReasonKeyCompromise {
		t.Errorf("Check(bad) after its answer expired = %v, want revoked keyCompromise", err)
	}
	if got := refusal(c.Check(t.Context(), unknown)); got != verify.UnknownCert {
		t.Errorf("Check(unknown) refusal = %v, want unknown", got)
	}

	if err := c.Check(t.Context(), good); err != nil { // refreshes good's answer now
		t.Fatalf("Check(good) = %v", err)
	}
	srv.down.Store(true)
	f.clock.Add(f.svc.cfg.OCSPValidity + 5*time.Minute) // past nextUpdate, within grace
	if err := c.Check(t.Context(), good); err != nil {
		t.Errorf("responder down, within grace: Check(good) = %v, want the cached answer", err)
	}
	f.clock.Add(10 * time.Minute) // past grace
	if got := refusal(c.Check(t.Context(), good)); got != verify.Stale {
		t.Errorf("responder down, past grace: refusal = %v, want stale", got)
	}
	fresh := f.issue(t, "dev-fresh")
	if got := refusal(c.Check(t.Context(), fresh)); got != verify.NoData {
		t.Errorf("responder down, nothing cached: refusal = %v, want no_data", got)
	}
}

// TestCheckerOCSPRejectsForeignResponder: an answer signed by another CA's
// responder is not trusted.
func TestCheckerOCSPRejectsForeignResponder(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	other, err := minica.New()
	if err != nil {
		t.Fatal(err)
	}
	leaf := f.issue(t, "dev-1")
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ans, _ := f.svc.RespondOCSP(r.Context(), body)
		w.Write(ans.DER)
	}))
	defer hs.Close()
	c, err := verify.NewChecker(verify.CheckerConfig{OCSP: hs.URL, Issuer: other.Intermediate}, verify.CheckerDeps{Client: hs.Client(), Now: f.now})
	if err != nil {
		t.Fatal(err)
	}
	if got := refusal(c.Check(t.Context(), leaf)); got != verify.WrongIssuer {
		t.Errorf("certificate of another issuer: refusal = %v, want wrong_issuer", got)
	}
	if _, err := verify.VerifyOCSPResponse(respond(t, f.svc, newOCSPRequest(t, leaf, f.ca.Intermediate(), 0)).DER, leaf, other.Intermediate, f.now()); err == nil {
		t.Error("VerifyOCSPResponse accepted an answer whose responder another CA certified")
	}
}
