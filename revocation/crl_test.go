package revocation

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/verify"
)

// oidCRLReason is id-ce-cRLReasons (RFC 5280 §5.3.1).
var oidCRLReason = asn1.ObjectIdentifier{2, 5, 29, 21}

func TestCRLPublication(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	inter := f.ca.Intermediate()
	first := f.svc.CRL()
	rl := parseCRL(t, first, inter)
	if rl.Number.Sign() <= 0 || len(rl.RevokedCertificateEntries) != 0 {
		t.Fatalf("first CRL: number %v, %d entries, want >= 1 and none", rl.Number, len(rl.RevokedCertificateEntries))
	}
	if !rl.ThisUpdate.Equal(testNow) || !rl.NextUpdate.Equal(testNow.Add(24*time.Hour)) {
		t.Errorf("first CRL valid %v to %v, want %v to %v", rl.ThisUpdate, rl.NextUpdate, testNow, testNow.Add(24*time.Hour))
	}
	if first.Number.Cmp(rl.Number) != 0 || first.Entries != 0 || !first.ThisUpdate.Equal(rl.ThisUpdate) || !first.NextUpdate.Equal(rl.NextUpdate) {
		t.Errorf("Published = number %v, %d entries, %v..%v; the CRL says %v, 0, %v..%v",
			first.Number, first.Entries, first.ThisUpdate, first.NextUpdate, rl.Number, rl.ThisUpdate, rl.NextUpdate)
	}
	if block, _ := pem.Decode(first.PEM()); block == nil || block.Type != "X509 CRL" || !bytes.Equal(block.Bytes, first.DER) {
		t.Error("Published.PEM is not the DER as an X509 CRL block")
	}
	if want := `"` + first.Number.Text(16) + `"`; first.ETag != want {
		t.Errorf("ETag = %s, want %s", first.ETag, want)
	}
	numbers := []*big.Int{first.Number}

	reasons := []api.Reason{api.ReasonUnspecified, api.ReasonKeyCompromise, api.ReasonSuperseded, api.ReasonCessationOfOperation, api.ReasonAACompromise}
	revoked := map[string]store.Revocation{}
	for i, r := range reasons {
		cert := f.issue(t, "dev-crl-"+string(rune('a'+i)))
		f.clock.Add(time.Second)
		rev := f.revoke(t, cert, r)
		revoked[hexSerial(rev.Serial)] = rev
	}
	untouched := f.issue(t, "dev-crl-live")
	if f.svc.CRL() != first {
		t.Error("Revoke published a CRL itself; publishing is Run's job")
	}
	f.clock.Add(time.Minute)
	if err := f.svc.publishCRL(t.Context()); err != nil {
		t.Fatalf("publishCRL: %v", err)
	}
	p := f.svc.CRL()
	rl = parseCRL(t, p, inter)
	numbers = append(numbers, rl.Number)
	checkEntries(t, rl, revoked)
	if _, ok := serials(rl)[hexSerial(untouched.SerialNumber)]; ok {
		t.Error("the CRL lists a certificate that was not revoked")
	}
	if p.Entries != len(revoked) || !rl.ThisUpdate.Equal(f.now()) {
		t.Errorf("Published: %d entries, thisUpdate %v, want %d, %v", p.Entries, rl.ThisUpdate, len(revoked), f.now())
	}
	if got := metricValue(t, f.reg, "fleetca_revocation_crl_number", nil); got != float64(rl.Number.Int64()) {
		t.Errorf("fleetca_revocation_crl_number = %v, want %v", got, rl.Number)
	}
	if got := metricValue(t, f.reg, "fleetca_revocation_crl_entries", nil); got != float64(len(revoked)) {
		t.Errorf("fleetca_revocation_crl_entries = %v, want %d", got, len(revoked))
	}
	if got := metricValue(t, f.reg, "fleetca_revocation_certificates_revoked_total", nil); got != float64(len(revoked)) {
		t.Errorf("fleetca_revocation_certificates_revoked_total = %v, want %d", got, len(revoked))
	}

	// Nothing new: the CRL is still re-signed with a new number.
	if err := f.svc.publishCRL(t.Context()); err != nil {
		t.Fatal(err)
	}
	numbers = append(numbers, f.svc.CRL().Number)

	// A restart: the new Service numbers on from the store and reads the
	// revocation log.
	s2 := f.restart(t)
	rl2 := parseCRL(t, s2.CRL(), inter)
	numbers = append(numbers, rl2.Number)
	checkEntries(t, rl2, revoked)
	for i := 1; i < len(numbers); i++ {
		if numbers[i].Cmp(numbers[i-1]) <= 0 {
			t.Errorf("CRL numbers %v do not strictly increase", numbers)
			break
		}
	}
	for hex, rev := range revoked {
		leaf := certOf(t, f, rev.Serial)
		ans := respond(t, s2, newOCSPRequest(t, leaf, inter, 0))
		resp, err := verify.VerifyOCSPResponse(ans.DER, leaf, inter, f.now())
		if err != nil {
			t.Fatalf("after a restart: OCSP about %s: %v", hex, err)
		}
		if resp.Status != ocsp.Revoked || !resp.RevokedAt.Equal(rev.RevokedAt) || resp.RevocationReason != rev.Reason {
			t.Errorf("after a restart: OCSP about %s = status %d at %v reason %d, want revoked at %v reason %d",
				hex, resp.Status, resp.RevokedAt, resp.RevocationReason, rev.RevokedAt, rev.Reason)
		}
	}
}

// checkEntries checks that rl lists exactly the revocations in want, with
// their times and reasons, and no reason code extension for unspecified
// (RFC 5280 §5.3.1).
func checkEntries(t *testing.T, rl *x509.RevocationList, want map[string]store.Revocation) {
	t.Helper()
	got := serials(rl)
	if len(got) != len(rl.RevokedCertificateEntries) {
		t.Errorf("CRL %v lists a serial twice", rl.Number)
	}
	if len(got) != len(want) {
		t.Errorf("CRL %v has %d entries, want %d", rl.Number, len(got), len(want))
	}
	for hex, rev := range want {
		e, ok := got[hex]
		if !ok {
			t.Errorf("CRL %v does not list revoked %s", rl.Number, hex)
			continue
		}
		if !e.RevocationTime.Equal(rev.RevokedAt) || e.ReasonCode != rev.Reason {
			t.Errorf("CRL %v entry %s: revoked at %v reason %d, want %v reason %d", rl.Number, hex, e.RevocationTime, e.ReasonCode, rev.RevokedAt, rev.Reason)
		}
		hasExt := slices.ContainsFunc(e.Extensions, func(x pkix.Extension) bool { return x.Id.Equal(oidCRLReason) })
		if hasExt != (rev.Reason != int(api.ReasonUnspecified)) {
			t.Errorf("CRL %v entry %s (reason %d): reason code extension present = %v, want %v", rl.Number, hex, rev.Reason, hasExt, rev.Reason != 0)
		}
	}
}

// certOf returns the certificate with the serial from the store.
func certOf(t testing.TB, f *fixture, serial *big.Int) *x509.Certificate {
	t.Helper()
	c, err := f.st.GetCertificate(t.Context(), serial)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(c.DER)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestCRLDropsExpired(t *testing.T) {
	f := newFixture(t, fixtureOptions{caCfg: ca.Config{DeviceValidity: time.Hour}})
	inter := f.ca.Intermediate()
	short := f.issue(t, "dev-short")
	f.clock.Add(30 * time.Minute)
	long := f.issue(t, "dev-long")
	revShort := f.revoke(t, short, api.ReasonKeyCompromise)
	revLong := f.revoke(t, long, api.ReasonSuperseded)
	if err := f.svc.publishCRL(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkEntries(t, parseCRL(t, f.svc.CRL(), inter), map[string]store.Revocation{
		hexSerial(short.SerialNumber): revShort, hexSerial(long.SerialNumber): revLong})

	// RFC 5280 §3.3: past NotAfter, the entry stays on one more CRL (the
	// first issued beyond the certificate's validity), then leaves.
	both := map[string]store.Revocation{hexSerial(short.SerialNumber): revShort, hexSerial(long.SerialNumber): revLong}
	onlyLong := map[string]store.Revocation{hexSerial(long.SerialNumber): revLong}
	f.clock.Set(short.NotAfter.Add(time.Second))
	publish := func() {
		t.Helper()
		if err := f.svc.publishCRL(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	publish()
	checkEntries(t, parseCRL(t, f.svc.CRL(), inter), both)
	publish()
	checkEntries(t, parseCRL(t, f.svc.CRL(), inter), onlyLong)
	// OCSP still knows, from the store.
	resp, err := ocsp.ParseResponseForCert(respond(t, f.svc, newOCSPRequest(t, short, inter, 0)).DER, short, inter)
	if err != nil || resp.Status != ocsp.Revoked || resp.RevocationReason != int(api.ReasonKeyCompromise) {
		t.Errorf("OCSP about an expired revoked certificate = %+v, %v, want revoked keyCompromise", resp, err)
	}

	f.clock.Set(long.NotAfter.Add(time.Second))
	publish()
	checkEntries(t, parseCRL(t, f.svc.CRL(), inter), onlyLong)
	publish()
	checkEntries(t, parseCRL(t, f.svc.CRL(), inter), nil)
	// After a restart, an expired entry of the log is listed once more
	// (whether it was listed after expiry is not stored), then leaves.
	again := f.restart(t)
	checkEntries(t, parseCRL(t, again.CRL(), inter), both)
	if err := again.publishCRL(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkEntries(t, parseCRL(t, again.CRL(), inter), nil)
}

// TestCRLClockSteppedBack: a clock stepped back (NTP, a restored VM) to
// before the latest revocation must not stop CRLs or OCSP: RFC 5280
// §5.1.2.6 wants no revocation date after thisUpdate.
func TestCRLClockSteppedBack(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	inter := f.ca.Intermediate()
	cert := f.issue(t, "dev-step")
	f.clock.Add(10 * time.Second)
	rev := f.revoke(t, cert, api.ReasonKeyCompromise)
	f.clock.Add(-5 * time.Second)
	if err := f.svc.publishCRL(t.Context()); err != nil {
		t.Fatalf("publishCRL with the clock 5s behind the last revocation: %v", err)
	}
	rl := parseCRL(t, f.svc.CRL(), inter)
	checkEntries(t, rl, map[string]store.Revocation{hexSerial(cert.SerialNumber): rev})
	if rl.ThisUpdate.Before(rev.RevokedAt) {
		t.Errorf("CRL thisUpdate %v is before revocation date %v", rl.ThisUpdate, rev.RevokedAt)
	}
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		ans, err := f.svc.RespondOCSP(t.Context(), newOCSPRequest(t, cert, inter, h))
		if err != nil || ans.Status != ocsp.Revoked {
			t.Fatalf("RespondOCSP(%v) with the clock behind = %+v, %v, want revoked", h, ans, err)
		}
	}
	if err := f.restart(t).publishCRL(t.Context()); err != nil {
		t.Errorf("after a restart with the clock behind: publishCRL = %v", err)
	}
}

// TestPublishCoalesced runs Run on synctest's fake clock: a burst of
// revocations is published in one CRL, CRLPublishDelay after the first,
// with no second CRL for the same burst; without revocations a new CRL
// comes when half of CRLValidity has passed.
func TestPublishCoalesced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// synctest's fake clock starts in 2000; shift it to the test CA's era.
		start := time.Now()
		now := func() time.Time { return testNow.Add(time.Since(start)) }
		const delay = 200 * time.Millisecond
		cfg := Config{CRLPublishDelay: delay, CRLValidity: 24 * time.Hour}
		f := newFixture(t, fixtureOptions{now: now, cfg: cfg})
		inter := f.ca.Intermediate()
		certs := make([]*x509.Certificate, 50)
		for i := range certs {
			certs[i] = f.issue(t, "dev-burst")
		}
		first := f.svc.CRL()

		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- f.svc.Run(ctx) }()
		synctest.Wait()
		if f.svc.CRL() != first {
			t.Fatal("Run published a CRL at start with nothing due")
		}

		burst := time.Now()
		var wg sync.WaitGroup
		for _, c := range certs {
			wg.Go(func() {
				if _, err := f.svc.Revoke(ctx, RevokeRequest{Serial: c.SerialNumber, Reason: api.ReasonKeyCompromise}); err != nil {
					t.Errorf("Revoke(%x): %v", c.SerialNumber, err)
				}
			})
		}
		wg.Wait()
		synctest.Wait()
		if took := time.Since(burst); took >= delay {
			t.Fatalf("50 concurrent revocations took %v of fake time, not less than the publish delay %v", took, delay)
		}
		if f.svc.CRL() != first {
			t.Fatal("a CRL was published before CRLPublishDelay")
		}
		time.Sleep(delay)
		synctest.Wait()
		p := f.svc.CRL()
		if want := new(big.Int).Add(first.Number, big.NewInt(1)); p.Number.Cmp(want) != 0 {
			t.Fatalf("CRLPublishDelay after the burst: CRL number %v, want %v (one new CRL)", p.Number, want)
		}
		rl := parseCRL(t, p, inter)
		if len(rl.RevokedCertificateEntries) != len(certs) {
			t.Errorf("the burst's CRL lists %d certificates, want %d", len(rl.RevokedCertificateEntries), len(certs))
		}
		time.Sleep(5 * delay)
		synctest.Wait()
		if got := f.svc.CRL(); got != p {
			t.Errorf("a second CRL (%v) was published for the same burst", got.Number)
		}

		// No revocations: a new CRL at half of CRLValidity, not before.
		half := p.ThisUpdate.Add(cfg.CRLValidity / 2)
		time.Sleep(half.Sub(now()) - time.Second)
		synctest.Wait()
		if f.svc.CRL() != p {
			t.Fatalf("a CRL was published before half of CRLValidity (at %v, due %v)", f.svc.CRL().ThisUpdate, half)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		refreshed := f.svc.CRL()
		if refreshed.Number.Cmp(p.Number) <= 0 || refreshed.Entries != len(certs) {
			t.Errorf("after half of CRLValidity: CRL %v with %d entries, want a new number after %v, %d entries",
				refreshed.Number, refreshed.Entries, p.Number, len(certs))
		}

		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run after cancel = %v, want nil", err)
		}
	})
}

func TestRootCRLWithRootKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "root.crl")
	f := newFixture(t, fixtureOptions{rootCRLPath: path})
	if !f.ca.HasRootKey() {
		t.Fatal("the shared CA has no root key")
	}
	p, err := f.svc.RootCRL()
	if err != nil {
		t.Fatalf("RootCRL: %v", err)
	}
	rl, err := x509.ParseRevocationList(p.DER)
	if err != nil {
		t.Fatal(err)
	}
	if err := rl.CheckSignatureFrom(f.ca.Root()); err != nil {
		t.Errorf("root CRL CheckSignatureFrom(root) = %v", err)
	}
	want := testNow.Add(720 * time.Hour)
	if !rl.ThisUpdate.Equal(testNow) || !rl.NextUpdate.Equal(want) || rl.Number.Int64() != testNow.Unix() || len(rl.RevokedCertificateEntries) != 0 {
		t.Errorf("root CRL number %v valid %v to %v with %d entries, want %d, %v to %v, none",
			rl.Number, rl.ThisUpdate, rl.NextUpdate, len(rl.RevokedCertificateEntries), testNow.Unix(), testNow, want)
	}
	onDisk, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(onDisk, p.DER) {
		t.Errorf("%s holds %d bytes (%v), want the served root CRL", path, len(onDisk), err)
	}

	// Not re-signed before half its validity; re-signed after.
	f.clock.Add(359 * time.Hour)
	if err := f.svc.refreshRootCRL(t.Context()); err != nil {
		t.Fatal(err)
	}
	if q, _ := f.svc.RootCRL(); q != p {
		t.Error("root CRL re-signed before half of its validity")
	}
	f.clock.Add(time.Hour)
	if err := f.svc.refreshRootCRL(t.Context()); err != nil {
		t.Fatal(err)
	}
	q, err := f.svc.RootCRL()
	if err != nil || q.Number.Cmp(p.Number) <= 0 {
		t.Errorf("after half its validity: RootCRL = %v, %v, want a new number after %v", q, err, p.Number)
	}
}

func TestRootCRLOffline(t *testing.T) {
	// The authority that holds the root key signs the files an operator
	// would copy over with 'fleetca crl sign-root'.
	online := newFixture(t, fixtureOptions{})
	sign := func(at time.Time, validity time.Duration) []byte {
		der, err := SignRootCRL(t.Context(), online.ca, at, validity)
		if err != nil {
			t.Fatalf("SignRootCRL: %v", err)
		}
		return der
	}
	current := sign(testNow.Add(-time.Hour), 720*time.Hour)
	for _, tc := range []struct {
		name string
		file []byte // nil: no file
		want []byte // the DER served, or nil for Unavailable
	}{
		{"fail/no-file", nil, nil},
		{"ok/der", current, current},
		{"ok/pem", pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: current}), current},
		{"fail/expired", sign(testNow.Add(-2*time.Hour), time.Hour), nil},
		{"fail/garbage", []byte("not a CRL"), nil},
		{"fail/device-crl", online.svc.CRL().DER, nil}, // signed by the intermediate, not the root
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "root.crl")
			if tc.file != nil {
				if err := os.WriteFile(path, tc.file, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			f := newFixture(t, fixtureOptions{caDir: offlineCADir, rootCRLPath: path})
			if f.ca.HasRootKey() {
				t.Fatal("HasRootKey = true without secrets/root.key")
			}
			p, err := f.svc.RootCRL()
			if tc.want == nil {
				wantKind(t, "RootCRL", err, fault.Unavailable)
				return
			}
			if err != nil {
				t.Fatalf("RootCRL: %v", err)
			}
			if !bytes.Equal(p.DER, tc.want) {
				t.Error("RootCRL served something else than the file's CRL")
			}
			if _, err := verify.ParseCRL(p.DER, f.ca.Root()); err != nil {
				t.Errorf("served root CRL: %v", err)
			}
			// Once the file's CRL runs out, it is no longer served.
			f.clock.Set(p.NextUpdate)
			_, err = f.svc.RootCRL()
			wantKind(t, "RootCRL at its nextUpdate", err, fault.Unavailable)
		})
	}

	t.Run("ok/newer-file-picked-up", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "root.crl")
		if err := os.WriteFile(path, current, 0o644); err != nil {
			t.Fatal(err)
		}
		f := newFixture(t, fixtureOptions{caDir: offlineCADir, rootCRLPath: path})
		newer := sign(testNow, 720*time.Hour)
		if err := os.WriteFile(path, newer, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.refreshRootCRL(t.Context()); err != nil {
			t.Fatal(err)
		}
		if p, err := f.svc.RootCRL(); err != nil || !bytes.Equal(p.DER, newer) {
			t.Errorf("after a newer root.crl was copied in: RootCRL = %v, want the newer CRL", err)
		}
		// An older file does not replace it.
		if err := os.WriteFile(path, current, 0o644); err != nil {
			t.Fatal(err)
		}
		f.svc.refreshRootCRL(t.Context())
		if p, err := f.svc.RootCRL(); err != nil || !bytes.Equal(p.DER, newer) {
			t.Errorf("after an older root.crl was copied in: RootCRL = %v, want the newer CRL kept", err)
		}
	})
}
