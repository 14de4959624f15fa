package revocation

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ocsp"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/verify"
)

func TestRevokeSerial(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	cert := f.issue(t, "dev-1")
	other := f.issue(t, "dev-2")
	f.clock.Add(1500 * time.Millisecond) // revocation times are whole seconds

	revs, err := f.svc.Revoke(t.Context(), RevokeRequest{Serial: cert.SerialNumber, Reason: api.ReasonSuperseded})
	if err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	want := []store.Revocation{{Seq: 1, Serial: cert.SerialNumber, DeviceID: "dev-1",
		RevokedAt: testNow.Add(time.Second), Reason: int(api.ReasonSuperseded), NotAfter: cert.NotAfter}}
	if diff := cmp.Diff(want, revs, cmp.Comparer(func(a, b *big.Int) bool { return a.Cmp(b) == 0 })); diff != "" {
		t.Errorf("Revoke revocations (-want +got):\n%s", diff)
	}
	got, err := f.st.GetCertificate(t.Context(), cert.SerialNumber)
	if err != nil {
		t.Fatal(err)
	}
	if !got.RevokedAt.Equal(testNow.Add(time.Second)) || got.Reason != int(api.ReasonSuperseded) {
		t.Errorf("stored certificate revoked at %v reason %d, want %v reason %d", got.RevokedAt, got.Reason, testNow.Add(time.Second), api.ReasonSuperseded)
	}
	audit, err := f.st.ListAudit(t.Context(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	last := audit[len(audit)-1]
	if last.Action != "certificate.revoke" || last.Serial != hexSerial(cert.SerialNumber) || last.Detail != "reason=superseded" || last.DeviceID != "dev-1" {
		t.Errorf("last audit event = %+v, want certificate.revoke of %x (dev-1) with reason=superseded", last, cert.SerialNumber)
	}
	if d, err := f.st.GetDevice(t.Context(), "dev-1"); err != nil || d.Status != store.DeviceActive {
		t.Errorf("device after revoking one of its certificates = %+v, %v, want active", d, err)
	}

	for _, tc := range []struct {
		name string
		req  RevokeRequest
		want fault.Kind
	}{
		{"fail/again", RevokeRequest{Serial: cert.SerialNumber}, fault.AlreadyRevoked},
		{"fail/again-other-reason", RevokeRequest{Serial: cert.SerialNumber, Reason: api.ReasonKeyCompromise}, fault.AlreadyRevoked},
		{"fail/unknown-serial", RevokeRequest{Serial: big.NewInt(0x1234567)}, fault.NotFound},
		{"fail/zero-serial", RevokeRequest{Serial: big.NewInt(0)}, fault.NotFound},
		{"fail/both", RevokeRequest{Serial: other.SerialNumber, DeviceID: "dev-2"}, fault.Malformed},
		{"fail/neither", RevokeRequest{Reason: api.ReasonKeyCompromise}, fault.Malformed},
		{"fail/removeFromCRL", RevokeRequest{Serial: other.SerialNumber, Reason: api.ReasonRemoveFromCRL}, fault.Malformed},
		{"fail/reason-7", RevokeRequest{Serial: other.SerialNumber, Reason: 7}, fault.Malformed},
		{"fail/reason-11", RevokeRequest{Serial: other.SerialNumber, Reason: 11}, fault.Malformed},
		{"fail/reason-negative", RevokeRequest{Serial: other.SerialNumber, Reason: -1}, fault.Malformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			revs, err := f.svc.Revoke(t.Context(), tc.req)
			wantKind(t, "Revoke", err, tc.want)
			if len(revs) != 0 {
				t.Errorf("Revoke returned %d revocations with the error, want none", len(revs))
			}
		})
	}
	if c, err := f.st.GetCertificate(t.Context(), other.SerialNumber); err != nil || !c.RevokedAt.IsZero() {
		t.Errorf("after refused revocations: certificate %x revoked at %v (%v), want not revoked", other.SerialNumber, c.RevokedAt, err)
	}
	if revs, _ := f.st.ListRevocations(t.Context(), 0, 0); len(revs) != 1 {
		t.Errorf("revocation log has %d entries, want 1", len(revs))
	}
}

func TestParseReason(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want api.Reason
		kind fault.Kind
	}{
		{"ok/empty", "", api.ReasonUnspecified, 0},
		{"ok/keyCompromise", "keyCompromise", api.ReasonKeyCompromise, 0},
		{"ok/case-insensitive", "CESSATIONOFOPERATION", api.ReasonCessationOfOperation, 0},
		{"ok/aACompromise", "aACompromise", api.ReasonAACompromise, 0},
		{"fail/removeFromCRL", "removeFromCRL", 0, fault.Malformed},
		{"fail/unknown", "lost", 0, fault.Malformed},
		{"fail/number", "1", 0, fault.Malformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseReason(tc.in)
			if tc.kind != 0 {
				wantKind(t, "ParseReason("+tc.in+")", err, tc.kind)
				// The hint lists what is accepted, and removeFromCRL is not.
				if fe, ok := errors.AsType[*fault.Error](err); !ok || strings.Contains(fe.Hint, "removeFromCRL") || !strings.Contains(fe.Hint, "keyCompromise") {
					t.Errorf("ParseReason(%q) hint = %q, want the accepted reasons, without removeFromCRL", tc.in, fe.Hint)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("ParseReason(%q) = %v, %v, want %v", tc.in, got, err, tc.want)
			}
			if again, err := ParseReason(got.String()); err != nil || again != got {
				t.Errorf("ParseReason(%q) = %v, %v, want %v", got.String(), again, err, got)
			}
		})
	}
}

// TestReasonNames: the names a revocation may give are RFC 5280's but
// removeFromCRL, and each parses to itself.
func TestReasonNames(t *testing.T) {
	names := ReasonNames()
	if len(names) != 9 || slices.Contains(names, "removeFromCRL") {
		t.Errorf("ReasonNames() = %v, want the 9 RFC 5280 reasons other than removeFromCRL", names)
	}
	for _, n := range names {
		if r, err := ParseReason(n); err != nil || r.String() != n {
			t.Errorf("ParseReason(%q) = %v, %v", n, r, err)
		}
	}
}

func TestRevokeDevice(t *testing.T) {
	f := newFixture(t, fixtureOptions{caCfg: ca.Config{DeviceValidity: time.Hour}})
	expired := f.issue(t, "dev-a")
	f.clock.Add(2 * time.Hour)
	live := []*x509.Certificate{f.issue(t, "dev-a"), f.issue(t, "dev-a")}
	bystander := f.issue(t, "dev-b")
	slices.SortFunc(live, func(a, b *x509.Certificate) int { return a.SerialNumber.Cmp(b.SerialNumber) })

	revs, err := f.svc.Revoke(t.Context(), RevokeRequest{DeviceID: "dev-a", Reason: api.ReasonCessationOfOperation})
	if err != nil {
		t.Fatalf("Revoke(device): %v", err)
	}
	var got []string
	for _, r := range revs {
		got = append(got, hexSerial(r.Serial))
		if r.Reason != int(api.ReasonCessationOfOperation) || !r.RevokedAt.Equal(f.now()) {
			t.Errorf("revocation of %x: reason %d at %v, want %d at %v", r.Serial, r.Reason, r.RevokedAt, api.ReasonCessationOfOperation, f.now())
		}
	}
	want := []string{hexSerial(live[0].SerialNumber), hexSerial(live[1].SerialNumber)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("revoked serials (-want +got):\n%s", diff)
	}
	if d, err := f.st.GetDevice(t.Context(), "dev-a"); err != nil || d.Status != store.DeviceRevoked {
		t.Errorf("device after Revoke = %+v, %v, want revoked", d, err)
	}
	inter := f.ca.Intermediate()
	for _, tc := range []struct {
		name string
		cert *x509.Certificate
		want int
	}{
		{"live-1", live[0], ocsp.Revoked},
		{"live-2", live[1], ocsp.Revoked},
		{"expired-before", expired, ocsp.Good},
		{"other-device", bystander, ocsp.Good},
	} {
		ans := respond(t, f.svc, newOCSPRequest(t, tc.cert, inter, 0))
		if ans.Status != tc.want {
			t.Errorf("%s: OCSP status = %d, want %d", tc.name, ans.Status, tc.want)
		}
	}
	if c, err := f.st.GetCertificate(t.Context(), expired.SerialNumber); err != nil || !c.RevokedAt.IsZero() {
		t.Errorf("expired certificate revoked at %v (%v), want not revoked", c.RevokedAt, err)
	}

	_, err = f.svc.Revoke(t.Context(), RevokeRequest{DeviceID: "dev-a", Reason: api.ReasonKeyCompromise})
	wantKind(t, "Revoke(revoked device)", err, fault.AlreadyRevoked)
	_, err = f.svc.Revoke(t.Context(), RevokeRequest{DeviceID: "nobody"})
	wantKind(t, "Revoke(unknown device)", err, fault.NotFound)

	f.clock.Add(time.Minute)
	d, err := f.svc.ResetDevice(t.Context(), "dev-a")
	if err != nil || d.Status != store.DeviceActive || !d.UpdatedAt.Equal(f.now()) {
		t.Errorf("ResetDevice = %+v, %v, want active, updated at %v", d, err, f.now())
	}
	_, err = f.svc.ResetDevice(t.Context(), "dev-a")
	wantKind(t, "ResetDevice(active device)", err, fault.Conflict)
	_, err = f.svc.ResetDevice(t.Context(), "nobody")
	wantKind(t, "ResetDevice(unknown device)", err, fault.NotFound)
	if ans := respond(t, f.svc, newOCSPRequest(t, live[0], inter, 0)); ans.Status != ocsp.Revoked {
		t.Errorf("after ResetDevice: OCSP status of a revoked certificate = %d, want revoked", ans.Status)
	}
	// The device may enroll again, and be revoked again.
	f.issue(t, "dev-a")
	if revs, err := f.svc.Revoke(t.Context(), RevokeRequest{DeviceID: "dev-a"}); err != nil || len(revs) != 1 {
		t.Errorf("Revoke(reset device) = %d revocations, %v, want 1", len(revs), err)
	}
}

func TestRevokeNoLiveCertificates(t *testing.T) {
	f := newFixture(t, fixtureOptions{caCfg: ca.Config{DeviceValidity: time.Hour}})
	f.issue(t, "dev-old")
	f.clock.Add(2 * time.Hour)
	before := f.svc.CRL()
	revs, err := f.svc.Revoke(t.Context(), RevokeRequest{DeviceID: "dev-old"})
	if err != nil || len(revs) != 0 {
		t.Fatalf("Revoke(device without live certificates) = %d revocations, %v, want none, nil", len(revs), err)
	}
	if d, _ := f.st.GetDevice(t.Context(), "dev-old"); d.Status != store.DeviceRevoked {
		t.Errorf("device status = %q, want revoked", d.Status)
	}
	select {
	case <-f.svc.kick:
		t.Error("a revocation of nothing asked for a new CRL")
	default:
	}
	if f.svc.CRL() != before {
		t.Error("the CRL changed")
	}
}

func TestKeyCompromiseBlocksKey(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	for i, tc := range []struct {
		name     string
		byDevice bool
		reason   api.Reason
		want     bool
	}{
		{"device/keyCompromise", true, api.ReasonKeyCompromise, true},
		{"device/cessationOfOperation", true, api.ReasonCessationOfOperation, false},
		{"device/unspecified", true, api.ReasonUnspecified, false},
		{"serial/keyCompromise", false, api.ReasonKeyCompromise, true},
		{"serial/superseded", false, api.ReasonSuperseded, false},
		{"serial/cACompromise", false, api.ReasonCACompromise, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("dev-key-%d", i)
			cert := f.issue(t, id)
			req := RevokeRequest{Serial: cert.SerialNumber, Reason: tc.reason}
			if tc.byDevice {
				req = RevokeRequest{DeviceID: id, Reason: tc.reason}
			}
			if _, err := f.svc.Revoke(t.Context(), req); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			got, err := f.st.KeyBlocked(t.Context(), keyHash(cert))
			if err != nil || got != tc.want {
				t.Errorf("KeyBlocked after revoking with %v = %v, %v, want %v", tc.reason, got, err, tc.want)
			}
		})
	}
}

// TestRunRenewsResponder: Run replaces the delegated OCSP responder
// certificate at two thirds of its lifetime, and answers keep verifying.
func TestRunRenewsResponder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		now := func() time.Time { return testNow.Add(time.Since(start)) }
		cfg := Config{ResponderValidity: 3 * time.Hour, OCSPValidity: time.Minute}
		f := newFixture(t, fixtureOptions{now: now, cfg: cfg})
		inter := f.ca.Intermediate()
		leaf := f.issue(t, "dev-resp")
		first := f.svc.responder.Load().Certificate()
		req := newOCSPRequest(t, leaf, inter, 0)
		respond(t, f.svc, req) // cached, signed by the first responder

		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- f.svc.Run(ctx) }()
		due := first.NotBefore.Add(first.NotAfter.Sub(first.NotBefore) * 2 / 3)
		time.Sleep(due.Sub(now()) - time.Second)
		synctest.Wait()
		if f.svc.responder.Load().Certificate() != first {
			t.Fatal("responder renewed before two thirds of its lifetime")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		second := f.svc.responder.Load().Certificate()
		if second == first {
			t.Fatal("responder not renewed at two thirds of its lifetime")
		}
		resp, err := verify.VerifyOCSPResponse(respond(t, f.svc, req).DER, leaf, inter, now())
		if err != nil || resp.Certificate == nil || !resp.Certificate.Equal(second) {
			t.Errorf("OCSP after renewal: %v; want a response signed by the new responder", err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	})
}

func TestNewDeps(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	for _, tc := range []struct {
		name string
		cfg  Config
		deps Deps
		kind fault.Kind // 0: internal error
	}{
		{"fail/no-store", Config{}, Deps{CA: f.ca}, 0},
		{"fail/no-ca", Config{}, Deps{Store: f.st}, 0},
		{"fail/bad-config", Config{OCSPValidity: time.Second}, Deps{Store: f.st, CA: f.ca}, fault.Malformed},
		{"fail/metrics-registered-twice", Config{}, Deps{Store: f.st, CA: f.ca, Metrics: f.reg}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(t.Context(), tc.cfg, tc.deps)
			if err == nil {
				t.Fatalf("New = %v, nil; want an error", s)
			}
			if tc.kind != 0 {
				wantKind(t, "New", err, tc.kind)
			} else if _, ok := fault.KindOf(err); ok {
				t.Errorf("New error = %v, a fault; want an internal error", err)
			}
		})
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := New(ctx, Config{}, Deps{Store: f.st, CA: f.ca}); !errors.Is(err, context.Canceled) {
		t.Errorf("New with a canceled context = %v, want context.Canceled", err)
	}
}

// TestApplied: revocations recorded by another transaction (a renewal's
// superseded certificates) reach OCSP, the CRL and the feed once applied.
func TestApplied(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	cert := f.issue(t, "dev-1")
	f.clock.Add(time.Second)
	// A verifier long-polls the feed: nothing has been revoked yet. If it
	// polls after the store's write below, it reads the entry at once;
	// before, only Applied wakes it (the wait outlasts the test's
	// patience otherwise, and then answers nothing).
	polled := make(chan []store.Revocation)
	go func() {
		got, _ := f.svc.Feed(t.Context(), 0, 0, time.Minute)
		polled <- got
	}()
	req := newOCSPRequest(t, cert, f.ca.Intermediate(), 0)
	if ans := respond(t, f.svc, req); ans.Status != ocsp.Good {
		t.Fatalf("OCSP status %d, want good", ans.Status)
	}
	at := f.now().Truncate(time.Second)
	revs, err := f.st.Revoke(t.Context(), store.RevokeRequest{Serial: cert.SerialNumber, At: at, Reason: int(api.ReasonSuperseded),
		Audit: store.AuditEvent{Time: at, Action: "certificate.renew", Actor: "device:dev-1"}})
	if err != nil || len(revs) != 1 {
		t.Fatalf("store.Revoke: %v, %v", revs, err)
	}
	if ans := respond(t, f.svc, req); ans.Status != ocsp.Good {
		t.Fatalf("before Applied: OCSP status %d, want the cached good answer (the Service has not heard)", ans.Status)
	}
	f.svc.Applied(t.Context(), revs)
	f.svc.Applied(t.Context(), revs) // twice is harmless
	if ans := respond(t, f.svc, req); ans.Status != ocsp.Revoked {
		t.Errorf("after Applied: OCSP status %d, want revoked", ans.Status)
	}
	if got := <-polled; len(got) != 1 || got[0].Serial.Cmp(cert.SerialNumber) != 0 {
		t.Errorf("the feed's long-poll answered %+v, want the superseded certificate", got)
	}
	if err := f.svc.publishCRL(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, ok := serials(parseCRL(t, f.svc.CRL(), f.ca.Intermediate()))[hexSerial(cert.SerialNumber)]; !ok {
		t.Errorf("the CRL after Applied does not list %x", cert.SerialNumber)
	}
	if got := metricValue(t, f.reg, "fleetca_revocation_certificates_revoked_total", nil); got != 1 {
		t.Errorf("revocations counted = %v, want 1 (applied twice, counted once)", got)
	}
}
