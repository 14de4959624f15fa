package enroll

import (
	"crypto/x509"
	"net"
	"slices"
	"testing"

	"github.com/fleetca/fleetca/internal/fault"
)

func TestIssueServer(t *testing.T) {
	loop := []net.IP{net.IPv4(127, 0, 0, 1)}
	tests := []struct {
		name string
		file string // CSR fixture in ../testdata
		dns  []string
		ips  []net.IP
		want fault.Kind // 0: issued
	}{
		{name: "ok/empty-subject", file: "csr-p256-empty-subject.pem", dns: []string{"proxy.example.com"}, ips: loop},
		{name: "ok/cn-requested", file: "csr-p256.pem", dns: []string{"proxy.example.com", "dev-1"}},
		{name: "ok/ed25519", file: "csr-ed25519.pem", dns: []string{"dev-1"}},
		{name: "ok/rsa2048", file: "csr-rsa2048.pem", dns: []string{"dev-1"}},
		{name: "ok/ip-only", file: "csr-p256-empty-subject.pem", ips: loop},
		{name: "ok/dns-san-requested", file: "csr-extra-dns.pem", dns: []string{"dev-1", "evil.example.com"}},
		{name: "ok/ip-san-requested", file: "csr-ip-san.pem", dns: []string{"dev-1"}, ips: []net.IP{net.ParseIP("10.0.0.1")}},
		{name: "fail/cn-not-requested", file: "csr-p256.pem", dns: []string{"proxy.example.com"}, want: fault.BadCSR},
		{name: "fail/dns-san-not-requested", file: "csr-extra-dns.pem", dns: []string{"dev-1"}, want: fault.BadCSR},
		{name: "fail/ip-san-not-requested", file: "csr-ip-san.pem", dns: []string{"dev-1"}, want: fault.BadCSR},
		{name: "fail/uri-san", file: "csr-p256-uri.pem", dns: []string{"dev-1"}, want: fault.BadCSR},
		{name: "fail/email-san", file: "csr-email-san.pem", dns: []string{"dev-1"}, want: fault.BadCSR},
		{name: "fail/extra-ou", file: "csr-extra-ou.pem", dns: []string{"dev-1"}, want: fault.BadCSR},
		{name: "fail/rsa1024", file: "csr-rsa1024.pem", dns: []string{"dev-1"}, want: fault.BadKey},
		{name: "fail/p521", file: "csr-p521.pem", dns: []string{"dev-1"}, want: fault.BadKey},
		{name: "fail/bad-signature", file: "csr-bad-signature.pem", dns: []string{"dev-1"}, want: fault.BadCSR},
		{name: "fail/not-a-csr", file: "not-a-csr.pem", dns: []string{"dev-1"}, want: fault.BadCSR},
		{name: "fail/no-names", file: "csr-p256-empty-subject.pem", want: fault.Malformed},
		{name: "fail/uppercase-name", file: "csr-p256-empty-subject.pem", dns: []string{"Proxy.Example.com"}, want: fault.Malformed},
	}
	f := newFixture(t, Config{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, err := f.store.ListAudit(t.Context(), 0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			cert, err := f.svc.IssueServer(t.Context(), ServerRequest{CSR: readCSR(t, tc.file), DNSNames: tc.dns, IPs: tc.ips})
			if got := kindOf(err); got != tc.want || (err != nil && tc.want == 0) {
				t.Fatalf("IssueServer(%s, %v, %v) kind = %v (err %v), want %v", tc.file, tc.dns, tc.ips, got, err, tc.want)
			}
			after, err := f.store.ListAudit(t.Context(), 0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != 0 {
				if len(after) != len(before) {
					t.Errorf("audit rows after a refusal = %d, want %d (unchanged)", len(after), len(before))
				}
				return
			}
			if !slices.Equal(cert.DNSNames, tc.dns) || len(cert.IPAddresses) != len(tc.ips) {
				t.Errorf("certificate names = %v %v, want %v %v", cert.DNSNames, cert.IPAddresses, tc.dns, tc.ips)
			}
			if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
				t.Errorf("certificate EKU = %v, want [serverAuth]", cert.ExtKeyUsage)
			}
			if len(after) != len(before)+1 {
				t.Fatalf("audit rows after an issue = %d, want %d", len(after), len(before)+1)
			}
			ev := after[len(after)-1]
			if ev.Action != "certificate.server_issue" || ev.Actor != "admin" || ev.Serial != SerialHex(cert) {
				t.Errorf("audit row = %+v, want certificate.server_issue by admin for serial %s", ev, SerialHex(cert))
			}
			if _, err := f.store.GetCertificate(t.Context(), cert.SerialNumber); err == nil {
				t.Errorf("server certificate %s is recorded as a device certificate, want it not to be", SerialHex(cert))
			}
		})
	}
}
