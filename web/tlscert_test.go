package web

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fleetca/fleetca/ca"
)

// flakySigner fails SignServer while fail is set, and counts calls.
type flakySigner struct {
	*ca.Authority
	fail  atomic.Bool
	calls atomic.Int32
}

func (s *flakySigner) SignServer(ctx context.Context, dns []string, ips []net.IP, pub crypto.PublicKey) (*x509.Certificate, error) {
	s.calls.Add(1)
	if s.fail.Load() {
		return nil, errors.New("signer offline")
	}
	return s.Authority.SignServer(ctx, dns, ips, pub)
}

// TestServerCertRenewal runs the renewal loop on synctest's fake clock: the
// certificate is replaced at two thirds of its lifetime, a failed renewal
// keeps the old one and is retried a minute later.
func TestServerCertRenewal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// synctest's fake clock starts in 2000; shift it to the test CA's era.
		start := time.Now()
		now := func() time.Time { return testNow.Add(time.Since(start)) }
		authority, err := ca.New(t.Context(), ca.Config{ServerValidity: 3 * time.Hour}.WithDefaults(),
			ca.Deps{Dir: caDir, PublicURL: "http://127.0.0.1:8080", TrustDomain: "fleet.test", Now: now})
		if err != nil {
			t.Fatal(err)
		}
		signer := &flakySigner{Authority: authority}
		sc, err := NewServerCert(t.Context(), signer, ServerCertConfig{
			DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
			NewKey: func() (crypto.Signer, error) { return ca.GenerateKey(ca.KeyECP256) },
			Now:    now,
		})
		if err != nil {
			t.Fatal(err)
		}
		first := sc.Current()
		if err := first.Leaf.VerifyHostname("127.0.0.1"); err != nil {
			t.Errorf("HTTPS certificate does not name 127.0.0.1: %v", err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- sc.Run(ctx) }()

		due := renewAt(first.Leaf)
		time.Sleep(due.Sub(now()) - time.Second) // fake clock: just before renewal
		synctest.Wait()
		if sc.Current() != first {
			t.Fatal("certificate renewed before two thirds of its lifetime")
		}
		signer.fail.Store(true)
		time.Sleep(time.Second)
		synctest.Wait()
		if sc.Current() != first || signer.calls.Load() != 2 {
			t.Fatalf("after a failed renewal: current changed=%v calls=%d, want old certificate kept, 2 calls", sc.Current() != first, signer.calls.Load())
		}
		signer.fail.Store(false)
		time.Sleep(renewRetry)
		synctest.Wait()
		second := sc.Current()
		if second == first || signer.calls.Load() != 3 {
			t.Fatalf("renewal retry: renewed=%v calls=%d, want renewed after %v", second != first, signer.calls.Load(), renewRetry)
		}
		if second.PrivateKey == first.PrivateKey {
			t.Error("renewal reused the key")
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	})
}
