package main

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

func TestIndexLine(t *testing.T) {
	tests := []struct {
		name   string
		serial *big.Int
		want   string
	}{
		{"ok/two-digits-per-octet", new(big.Int).SetBytes([]byte{0x0a, 0xbc, 0x01}), "V\t270221182018Z\t\t0ABC01\tunknown\t/CN=r-00000001\n"},
		{"ok/high-bit", new(big.Int).SetBytes([]byte{0xff, 0x00}), "V\t270221182018Z\t\tFF00\tunknown\t/CN=r-00000001\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &x509.Certificate{SerialNumber: tc.serial, Subject: pkix.Name{CommonName: "r-00000001"},
				NotAfter: time.Date(2027, 2, 21, 18, 20, 18, 0, time.UTC)}
			if got := indexLine(c); got != tc.want {
				t.Errorf("indexLine() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDERInteger(t *testing.T) {
	for _, n := range []*big.Int{big.NewInt(1), big.NewInt(127), big.NewInt(128), big.NewInt(255), new(big.Int).Lsh(big.NewInt(1), 159),
		new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 160), big.NewInt(1)), new(big.Int).Lsh(big.NewInt(1), 1100)} {
		want, err := asn1.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		if got := derInteger(n.Bytes()); string(got) != string(want) {
			t.Errorf("derInteger(%x) = %x, want %x", n, got, want)
		}
	}
}

func TestOCSPSuccessful(t *testing.T) {
	tests := []struct {
		name string
		der  []byte
		want bool
	}{
		{"fail/malformed", ocsp.MalformedRequestErrorResponse, false},
		{"fail/unauthorized", ocsp.UnauthorizedErrorResponse, false},
		{"ok/short-length", []byte{0x30, 0x05, 0x0a, 0x01, 0x00, 0xa0, 0x00}, true},
		{"ok/long-length", []byte{0x30, 0x82, 0x03, 0x40, 0x0a, 0x01, 0x00, 0xa0}, true},
		{"fail/empty", nil, false},
		{"fail/not-sequence", []byte{0x31, 0x05, 0x0a, 0x01, 0x00, 0xa0, 0x00}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ocspSuccessful(tc.der); got != tc.want {
				t.Errorf("ocspSuccessful(% x) = %v, want %v", tc.der, got, tc.want)
			}
		})
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP fleetca_revocation_crl_build_seconds Time to build and sign a device CRL.
# TYPE fleetca_revocation_crl_build_seconds histogram
fleetca_revocation_crl_build_seconds_bucket{le="0.001"} 0
fleetca_revocation_crl_build_seconds_sum 1.25
fleetca_revocation_crl_build_seconds_count 12
fleetca_revocation_crl_entries 41174
`
	got, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"fleetca_revocation_crl_build_seconds_sum": 1.25, "fleetca_revocation_crl_build_seconds_count": 12,
		"fleetca_revocation_crl_entries": 41174}
	if len(got) != len(want) {
		t.Errorf("parseMetrics() = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("parseMetrics()[%s] = %v, want %v", k, got[k], v)
		}
	}
}

func TestParseSizes(t *testing.T) {
	got, err := parseSizes("10k, 100K,1M,7")
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{10_000, 100_000, 1_000_000, 7}; !slices.Equal(got, want) {
		t.Errorf("parseSizes() = %v, want %v", got, want)
	}
	for _, bad := range []string{"ten", "-1", "100M"} {
		if _, err := parseSizes(bad); err == nil {
			t.Errorf("parseSizes(%q) = nil error, want one", bad)
		}
	}
}

func TestLoopbackFor(t *testing.T) {
	for _, host := range []string{"0.0.0.0", "*"} {
		if got, err := loopbackFor(host); err != nil || got != "127.0.0.1" {
			t.Errorf("loopbackFor(%q) = %q, %v, want 127.0.0.1", host, got, err)
		}
	}
	if got, err := loopbackFor("[::]"); err != nil || (got != "127.0.0.1" && got != "::1") {
		t.Errorf("loopbackFor([::]) = %q, %v, want a loopback address", got, err)
	}
	if _, err := loopbackFor("192.0.2.1"); err == nil {
		t.Error("loopbackFor(192.0.2.1) = nil error, want one")
	}
}
