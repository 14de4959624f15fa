package ca

import (
	"crypto/x509"
	"encoding/hex"
	"math/big"
	"net"
	"strconv"
	"strings"
	"testing"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/internal/testenv"
	"github.com/fleetca/fleetca/store"
)

// partitionedAuthority loads the shared CA of type kt issuing into n
// CRL partitions.
func partitionedAuthority(t testing.TB, kt KeyType, n int) *Authority {
	t.Helper()
	dir, _ := sharedCA(t, kt)
	deps := testDeps(dir)
	deps.CRLPartitions = n
	a, err := New(t.Context(), Config{}, deps)
	if err != nil {
		t.Fatalf("New(%s, %d partitions) error = %v", kt, n, err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func TestCheckCRLPartitions(t *testing.T) {
	if api.MaxCRLPartitions != store.MaxCRLPartitions {
		t.Fatalf("api.MaxCRLPartitions %d != store.MaxCRLPartitions %d", api.MaxCRLPartitions, store.MaxCRLPartitions)
	}
	for _, tc := range []struct {
		n  int
		ok bool
	}{
		{0, true}, {1, true}, {2, true}, {4, true}, {16, true}, {128, true}, {256, true},
		{-1, false}, {3, false}, {6, false}, {24, false}, {255, false}, {257, false}, {512, false},
	} {
		err := CheckCRLPartitions(tc.n)
		if (err == nil) != tc.ok {
			t.Errorf("CheckCRLPartitions(%d) = %v, want ok %v", tc.n, err, tc.ok)
		}
		if k, _ := fault.KindOf(err); err != nil && k != fault.Malformed {
			t.Errorf("CheckCRLPartitions(%d) kind %v, want Malformed", tc.n, k)
		}
	}
}

// TestPartitionOfSerial pins the assignment: the serial's low bits, so
// that it is stable for a serial and N, and a partition of a smaller N is
// the same serial's partition of a larger N modulo the smaller.
func TestPartitionOfSerial(t *testing.T) {
	for _, tc := range []struct {
		serial string // hex
		n      int
		want   int
	}{
		{"1", 1, 0},
		{"1", 2, 1},
		{"7ff3", 16, 3},
		{"7ff3", 4, 3},
		{"7ff3", 256, 0xf3},
		{"10", 16, 0},
		{"3a0000000000000000000000000000000000002b", 16, 0xb},
		{"3a0000000000000000000000000000000000002b", 64, 0x2b},
		{"3a0000000000000000000000000000000000ff2b", 256, 0x2b},
	} {
		s, _ := new(big.Int).SetString(tc.serial, 16)
		for range 3 {
			if got := PartitionOfSerial(s, tc.n); got != tc.want {
				t.Errorf("PartitionOfSerial(%s, %d) = %d, want %d", tc.serial, tc.n, got, tc.want)
			}
		}
	}
}

// TestPartitionURLs: the CDP URL a certificate carries and PartitionOf
// reading it back.
func TestPartitionURLs(t *testing.T) {
	if got, want := PartitionURL("http://ca.example.net:8080", 3), "http://ca.example.net:8080/crl/3"; got != want {
		t.Errorf("PartitionURL = %q, want %q", got, want)
	}
	if got, want := PartitionURL("http://ca.example.net:8080/", 255), "http://ca.example.net:8080/crl/255"; got != want {
		t.Errorf("PartitionURL with a slash = %q, want %q", got, want)
	}
	for _, tc := range []struct {
		cdp  []string
		want int // -1: nil
	}{
		{nil, -1},
		{[]string{"http://ca.example.net/crl"}, -1},
		{[]string{"http://ca.example.net/crl/0"}, 0},
		{[]string{"http://ca.example.net/crl/3"}, 3},
		{[]string{"http://ca.example.net/crl/255"}, 255},
		{[]string{"http://ca.example.net/crl/256"}, -1},
		{[]string{"http://ca.example.net/crl/03"}, -1},
		{[]string{"http://ca.example.net/crl/-1"}, -1},
		{[]string{"http://ca.example.net/crl/3.pem"}, -1},
		{[]string{"http://ca.example.net/crl/partitions"}, -1},
		{[]string{"http://ca.example.net/root.crl"}, -1},
	} {
		got := PartitionOf(&x509.Certificate{CRLDistributionPoints: tc.cdp})
		switch {
		case tc.want < 0 && got != nil:
			t.Errorf("PartitionOf(%q) = %d, want nil", tc.cdp, *got)
		case tc.want >= 0 && (got == nil || *got != tc.want):
			t.Errorf("PartitionOf(%q) = %v, want %d", tc.cdp, got, tc.want)
		}
	}
}

// TestIssuingDistributionPoint pins the DER of the IDP extension: a
// SEQUENCE of [0] { [0] { [6] URI } } and [1] TRUE, critical.
func TestIssuingDistributionPoint(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want string
	}{
		{"http://a/crl/3", "3017" + "a012" + "a010" + "860e" + hex.EncodeToString([]byte("http://a/crl/3")) + "8101ff"},
		{"http://ca.example.net:8080/crl/15", "302a" + "a025" + "a023" + "8621" +
			hex.EncodeToString([]byte("http://ca.example.net:8080/crl/15")) + "8101ff"},
	} {
		ext, err := IssuingDistributionPoint(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		if !ext.Critical || !ext.Id.Equal(oidIssuingDistributionPoint) {
			t.Errorf("IDP(%q): id %v critical %v, want 2.5.29.28 critical", tc.url, ext.Id, ext.Critical)
		}
		if got := hex.EncodeToString(ext.Value); got != tc.want {
			t.Errorf("IDP(%q) = %s, want %s", tc.url, got, tc.want)
		}
	}
}

// TestPartitionedDevice: with N partitions a device certificate's CDP is
// its serial's partition's URL and PartitionOf reads it back; server
// certificates keep the full CRL; a change of N moves no certificate
// (what counts is the CDP it carries), and new ones land in the new N.
func TestPartitionedDevice(t *testing.T) {
	a16 := partitionedAuthority(t, KeyECP256, 16)
	var issued []*x509.Certificate
	for range 8 {
		c, err := a16.SignDevice(t.Context(), DeviceRequest{DeviceID: "sensor-0042", PublicKey: deviceKey(t, "ec-p256").Public()})
		if err != nil {
			t.Fatal(err)
		}
		p := PartitionOfSerial(c.SerialNumber, 16)
		want := testPublicURL + "/crl/" + strconv.Itoa(p)
		if len(c.CRLDistributionPoints) != 1 || c.CRLDistributionPoints[0] != want {
			t.Errorf("CDP = %q, want [%q]", c.CRLDistributionPoints, want)
		}
		if got := PartitionOf(c); got == nil || *got != p {
			t.Errorf("PartitionOf = %v, want %d", got, p)
		}
		issued = append(issued, c)
	}
	srv, err := a16.SignServer(t.Context(), []string{"ca.example.net"}, []net.IP{net.ParseIP("127.0.0.1")}, deviceKey(t, "ec-p256").Public())
	if err != nil {
		t.Fatal(err)
	}
	if want := testPublicURL + "/crl"; len(srv.CRLDistributionPoints) != 1 || srv.CRLDistributionPoints[0] != want || PartitionOf(srv) != nil {
		t.Errorf("server CDP = %q, want [%q] and no partition", srv.CRLDistributionPoints, want)
	}
	a4 := partitionedAuthority(t, KeyECP256, 4)
	for _, c := range issued {
		if got := PartitionOf(c); got == nil || *got != PartitionOfSerial(c.SerialNumber, 16) {
			t.Errorf("after N 16 -> 4, PartitionOf(old) = %v, want %d", got, PartitionOfSerial(c.SerialNumber, 16))
		}
	}
	for range 8 {
		c, err := a4.SignDevice(t.Context(), DeviceRequest{DeviceID: "sensor-0042", PublicKey: deviceKey(t, "ec-p256").Public()})
		if err != nil {
			t.Fatal(err)
		}
		if got := PartitionOf(c); got == nil || *got >= 4 || *got != PartitionOfSerial(c.SerialNumber, 4) {
			t.Errorf("N 4: PartitionOf = %v, want %d", got, PartitionOfSerial(c.SerialNumber, 4))
		}
	}
	a1 := partitionedAuthority(t, KeyECP256, 1)
	c, err := a1.SignDevice(t.Context(), DeviceRequest{DeviceID: "sensor-0042", PublicKey: deviceKey(t, "ec-p256").Public()})
	if err != nil {
		t.Fatal(err)
	}
	if PartitionOf(c) != nil || len(c.CRLDistributionPoints) != 1 || c.CRLDistributionPoints[0] != testPublicURL+"/crl" {
		t.Errorf("N 1: CDP %q, want the full CRL's", c.CRLDistributionPoints)
	}
}

// TestZlintPartitioned lints partition CRLs and device certificates with
// partitioned distribution points, with the rules of TestZlint.
func TestZlintPartitioned(t *testing.T) {
	var findings []lintFinding
	for _, kt := range KeyTypes() {
		a := partitionedAuthority(t, kt, 16)
		for _, dev := range deviceKeyTypes {
			c, err := a.SignDevice(t.Context(), DeviceRequest{DeviceID: "sensor-0042", PublicKey: deviceKey(t, dev).Public()})
			if err != nil {
				t.Fatal(err)
			}
			findings = append(findings, runZlint(t, "ca="+string(kt)+" partitioned device/"+dev, c.Raw)...)
		}
		for label, entries := range map[string][]x509.RevocationListEntry{"partition-crl": testCRLEntries(t), "empty-partition-crl": nil} {
			tmpl := testCRLTemplate(entries)
			tmpl.DistributionPoint = PartitionURL(testPublicURL, 7)
			der, err := a.SignCRL(t.Context(), tmpl)
			if err != nil {
				t.Fatal(err)
			}
			zc, err := zx509.ParseRevocationList(der)
			if err != nil {
				t.Fatalf("%s: zcrypto cannot parse: %v", label, err)
			}
			findings = append(findings, zlintFindings("ca="+string(kt)+" "+label, zlint.LintRevocationList(zc))...)
		}
	}
	reportFindings(t, findings)
}

// TestPartitionCRLOpenSSL: openssl verify -crl_check_all with the root
// CRL and a partition CRL accepts a good certificate of that partition
// and refuses a revoked one; it does not take the partition CRL for a
// certificate of another partition: its IDP does not match that one's
// CDP ("different CRL scope").
func TestPartitionCRLOpenSSL(t *testing.T) {
	openssl := testenv.Need(t, "openssl")
	a := partitionedAuthority(t, KeyECP256, 4)
	byPart := map[int][]*x509.Certificate{}
	for len(byPart[1]) < 2 || len(byPart[2]) < 1 {
		c, err := a.SignDevice(t.Context(), DeviceRequest{DeviceID: "sensor-0042", PublicKey: deviceKey(t, "ec-p256").Public()})
		if err != nil {
			t.Fatal(err)
		}
		p := *PartitionOf(c)
		byPart[p] = append(byPart[p], c)
	}
	good, revoked, other := byPart[1][0], byPart[1][1], byPart[2][0]
	tmpl := testCRLTemplate([]x509.RevocationListEntry{{SerialNumber: revoked.SerialNumber, RevocationTime: testNow, ReasonCode: 1}})
	tmpl.DistributionPoint = PartitionURL(testPublicURL, 1)
	partCRL, err := a.SignCRL(t.Context(), tmpl)
	if err != nil {
		t.Fatal(err)
	}
	rootCRL, err := a.SignRootCRL(t.Context(), testCRLTemplate(nil))
	if err != nil {
		t.Fatal(err)
	}
	verify := opensslVerifier(t, openssl, a, map[string][]byte{"root.crl": rootCRL, "p1.crl": partCRL})
	for _, tc := range []struct {
		name    string
		cert    *x509.Certificate
		wantOK  bool
		wantOut string
	}{
		{"good", good, true, ""},
		{"revoked", revoked, false, "certificate revoked"},
		{"other-partition", other, false, "different CRL scope"},
	} {
		out, err := verify(tc.name, tc.cert)
		switch {
		case tc.wantOK && err != nil:
			t.Errorf("openssl verify %s: %v\n%s", tc.name, err, out)
		case !tc.wantOK && err == nil:
			t.Errorf("openssl verify %s succeeded, want %q:\n%s", tc.name, tc.wantOut, out)
		case !tc.wantOK && !strings.Contains(string(out), tc.wantOut):
			t.Errorf("openssl verify %s: %s, want %q", tc.name, out, tc.wantOut)
		}
	}
}

// FuzzPartitionOf: a CRL distribution point URL read from a certificate
// gives a partition in range, or none, and PartitionURL's URLs give back
// their partition.
func FuzzPartitionOf(f *testing.F) {
	for _, s := range []string{"http://ca/crl/3", "http://ca/crl", "http://ca/crl/256", "http://ca/crl/03", "http://ca/crl/crl/1", "/crl/"} {
		f.Add(s, 7)
	}
	f.Fuzz(func(t *testing.T, u string, p int) {
		if got := PartitionOf(&x509.Certificate{CRLDistributionPoints: []string{u}}); got != nil && (*got < 0 || *got >= api.MaxCRLPartitions) {
			t.Fatalf("PartitionOf(%q) = %d, out of range", u, *got)
		}
		p &= api.MaxCRLPartitions - 1
		if got := PartitionOf(&x509.Certificate{CRLDistributionPoints: []string{PartitionURL("http://ca.example.net:8080", p)}}); got == nil || *got != p {
			t.Fatalf("PartitionOf(PartitionURL(%d)) = %v", p, got)
		}
	})
}
