package verify

import (
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"math/big"
	"runtime"
	"testing"
	"time"
)

// bigCRL signs a CRL of n random 20-octet serials with mixed reasons, as
// a CA's CRL looks after years of revocations.
func bigCRL(tb testing.TB, ca *testCA, n int) []byte {
	tb.Helper()
	entries := make([]x509.RevocationListEntry, n)
	buf := make([]byte, 20)
	reasons := []int{0, 1, 3, 4, 5}
	for i := range entries {
		rand.Read(buf)
		buf[0] = buf[0]&0x7f | 0x01
		entries[i] = x509.RevocationListEntry{SerialNumber: new(big.Int).SetBytes(buf), RevocationTime: t0.Add(-time.Duration(i) * time.Second),
			ReasonCode: reasons[i%len(reasons)]}
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: t0, NextUpdate: t0.Add(time.Hour),
		RevokedCertificateEntries: entries}, ca.Intermediate, ca.Signer)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

// BenchmarkParseCRL parses a large CRL as a verifier loads it, and reports
// the heap the parsed CRL keeps.
func BenchmarkParseCRL(b *testing.B) {
	ca := newTestCA(b)
	for _, n := range []int{100_000, 1_000_000} {
		der := bigCRL(b, ca, n)
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var kept uint64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				crl, err := ParseCRL(der, ca.Intermediate)
				if err != nil {
					b.Fatal(err)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				if after.HeapAlloc > before.HeapAlloc {
					kept = after.HeapAlloc - before.HeapAlloc
				}
				runtime.KeepAlive(crl)
			}
			b.ReportMetric(float64(kept)/float64(n), "kept-B/entry")
		})
	}
}
