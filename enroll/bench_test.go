package enroll

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkEnrollAndRenew sets the RA's cost of a renewal beside that of an
// enrollment, on a real bbolt store (without fsync, so that the crypto and
// the rules show), 32 requests at once as the store's group commit expects:
// issue 11 wants renewals at 0.9x the rate of enrollments. It prints
// figures; it asserts nothing on speed.
func BenchmarkEnrollAndRenew(b *testing.B) {
	parallel := func(b *testing.B, op func(i int) error) {
		var next atomic.Int64
		b.SetParallelism(16) // 32 goroutines on 2 CPUs
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := op(int(next.Add(1) - 1)); err != nil {
					b.Error(err)
				}
			}
		})
	}
	b.Run("enroll", func(b *testing.B) {
		f := newFixture(b, Config{})
		secret, _ := f.token(b, TokenRequest{DevicePattern: "b-*", Uses: max(b.N, 1)})
		csrs := make([][]byte, b.N)
		for i := range csrs {
			csrs[i], _ = newCSR(b, fmt.Sprintf("b-%d", i))
		}
		parallel(b, func(i int) error {
			_, err := f.svc.Enroll(b.Context(), string(secret), csrs[i])
			return err
		})
	})
	for _, form := range []string{"mtls", "token"} {
		b.Run("renew-"+form, func(b *testing.B) {
			f := newFixture(b, Config{RenewMinInterval: time.Second})
			devs := make([]device, b.N)
			for i := range devs {
				devs[i] = f.enrollDevice(b, fmt.Sprintf("d-%d", i))
			}
			reqs := make([]RenewRequest, b.N)
			for i, d := range devs { // tokens minted at the clock the renewals see
				reqs[i].PeerCertificates = f.chain(d)
				if form == "token" {
					reqs[i] = RenewRequest{Token: mint(b, d.key, f.chain(d), f.claims(d), false)}
				}
			}
			parallel(b, func(i int) error {
				_, err := f.svc.Renew(b.Context(), reqs[i])
				return err
			})
		})
	}
}
