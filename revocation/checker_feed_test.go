package revocation

import (
	"context"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// feedHandler serves the Service's feed in the JSON of web's
// GET /v1/revocations (the contract the Checker follows), and the CRL.
func feedHandler(svc *Service) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/revocations", func(w http.ResponseWriter, r *http.Request) {
		since, _ := strconv.ParseUint(r.URL.Query().Get("since"), 10, 64)
		wait, _ := time.ParseDuration(r.URL.Query().Get("wait"))
		revs, err := svc.Feed(r.Context(), since, 0, min(wait, 2*time.Second))
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		type entry struct {
			Seq       uint64    `json:"seq"`
			Serial    string    `json:"serial"`
			RevokedAt time.Time `json:"revoked_at"`
			Reason    int       `json:"reason"`
		}
		out := struct {
			Revocations []entry `json:"revocations"`
		}{Revocations: []entry{}}
		for _, rv := range revs {
			out.Revocations = append(out.Revocations, entry{rv.Seq, rv.Serial.Text(16), rv.RevokedAt, rv.Reason})
		}
		json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("GET /crl", func(w http.ResponseWriter, r *http.Request) { w.Write(svc.CRL().DER) })
	return mux
}

// TestCheckerFeed: with a feed, a revocation is refused and announced to
// subscribers without waiting for the next CRL.
func TestCheckerFeed(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	hs := httptest.NewServer(feedHandler(f.svc))
	defer hs.Close()
	leaf, other := f.issue(t, "dev-1"), f.issue(t, "dev-2")
	c, err := NewChecker(CheckerConfig{CRL: hs.URL + "/crl", Feed: hs.URL, Issuer: f.ca.Intermediate(), Refresh: time.Hour},
		CheckerDeps{Client: hs.Client(), Now: f.now})
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
	f.revoke(t, leaf, KeyCompromise) // no CRL refresh: Refresh is an hour
	select {
	case s := <-announced:
		if s.Cmp(leaf.SerialNumber) != 0 {
			t.Errorf("announced %x, want %x", s, leaf.SerialNumber)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the feed did not announce the revocation")
	}
	if got := refusal(c.Check(t.Context(), leaf)); got != Revoked {
		t.Errorf("Check(revoked, from the feed) refusal = %v, want revoked", got)
	}
	if err := c.Check(t.Context(), other); err != nil {
		t.Errorf("Check(other) = %v", err)
	}
	if _, err := NewChecker(CheckerConfig{OCSP: "aia", Feed: hs.URL, Issuer: f.ca.Intermediate()}, CheckerDeps{}); err == nil {
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
	c, err := NewChecker(CheckerConfig{CRL: hs.URL + "/crl", Issuer: f.ca.Intermediate()}, CheckerDeps{Client: hs.Client(), Now: f.now})
	if err != nil {
		t.Fatal(err)
	}
	var got []*big.Int
	c.Subscribe(func(serial *big.Int) { got = append(got, serial) })
	if err := c.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	f.revoke(t, leaf, Superseded)
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
