package revocation

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

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
	c, err := NewChecker(CheckerConfig{OCSP: hs.URL, Issuer: f.ca.Intermediate(), Grace: 10 * time.Minute},
		CheckerDeps{Client: hs.Client(), Now: f.now})
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
	f.revoke(t, bad, KeyCompromise)
	// The Checker honours its cached good answer until its nextUpdate
	// (OCSP's contract); after that it asks again and learns.
	f.clock.Add(f.svc.cfg.OCSPValidity)
	err = c.Check(t.Context(), bad)
	var re *RefusedError
	if !errors.As(err, &re) || re.Refusal != Revoked || re.Reason != KeyCompromise {
		t.Errorf("Check(bad) after its answer expired = %v, want revoked keyCompromise", err)
	}
	if got := refusal(c.Check(t.Context(), unknown)); got != UnknownCert {
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
	if got := refusal(c.Check(t.Context(), good)); got != Stale {
		t.Errorf("responder down, past grace: refusal = %v, want stale", got)
	}
	fresh := f.issue(t, "dev-fresh")
	if got := refusal(c.Check(t.Context(), fresh)); got != NoData {
		t.Errorf("responder down, nothing cached: refusal = %v, want no_data", got)
	}
}

// TestCheckerOCSPRejectsForeignResponder: an answer signed by another CA's
// responder is not trusted.
func TestCheckerOCSPRejectsForeignResponder(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	other := newTestCA(t)
	leaf := f.issue(t, "dev-1")
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ans, _ := f.svc.RespondOCSP(r.Context(), body)
		w.Write(ans.DER)
	}))
	defer hs.Close()
	c, err := NewChecker(CheckerConfig{OCSP: hs.URL, Issuer: other.Intermediate}, CheckerDeps{Client: hs.Client(), Now: f.now})
	if err != nil {
		t.Fatal(err)
	}
	if got := refusal(c.Check(t.Context(), leaf)); got != WrongIssuer {
		t.Errorf("certificate of another issuer: refusal = %v, want wrong_issuer", got)
	}
	if _, err := VerifyOCSPResponse(respond(t, f.svc, newOCSPRequest(t, leaf, f.ca.Intermediate(), 0)).DER, leaf, other.Intermediate, f.now()); err == nil {
		t.Error("VerifyOCSPResponse accepted an answer whose responder another CA certified")
	}
}
