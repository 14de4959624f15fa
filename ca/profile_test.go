package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.step.sm/crypto/x509util"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
)

var extNames = map[string]string{
	oidExtKU.String():              "keyUsage",
	oidExtEKU.String():             "extKeyUsage",
	oidExtBasicConstr.String():     "basicConstraints",
	oidExtSubjectKeyID.String():    "subjectKeyIdentifier",
	oidExtAuthorityKeyID.String():  "authorityKeyIdentifier",
	oidExtAIA.String():             "authorityInfoAccess",
	oidExtSubjectAltName.String():  "subjectAltName",
	oidExtCRLDistribution.String(): "cRLDistributionPoints",
}

var wantSigAlg = map[KeyType]x509.SignatureAlgorithm{
	KeyECP256:  x509.ECDSAWithSHA256,
	KeyECP384:  x509.ECDSAWithSHA384,
	KeyRSA3072: x509.SHA256WithRSA,
	KeyEd25519: x509.PureEd25519,
}

func TestSignDeviceProfile(t *testing.T) {
	for _, caType := range KeyTypes() {
		a := newAuthority(t, caType)
		for _, devType := range deviceKeyTypes {
			t.Run("ca="+string(caType)+"/device="+devType, func(t *testing.T) {
				pub := deviceKey(t, devType).Public()
				const id = "sensor-0042.line_3"
				c, err := a.SignDevice(t.Context(), DeviceRequest{DeviceID: api.DeviceID(id), PublicKey: pub})
				if err != nil {
					t.Fatalf("SignDevice() error = %v", err)
				}
				checkDeviceCert(t, a, c, id, pub, caType)
			})
		}
	}
}

// checkDeviceCert checks every field of the device profile on c.
func checkDeviceCert(t *testing.T, a *Authority, c *x509.Certificate, id string, pub crypto.PublicKey, caType KeyType) {
	t.Helper()
	inter := a.Intermediate()
	if c.Version != 3 {
		t.Errorf("version = %d, want 3", c.Version)
	}
	// Subject: the CN and nothing else.
	wantSubject, _ := asn1.Marshal(pkix.Name{CommonName: id}.ToRDNSequence())
	if !bytes.Equal(c.RawSubject, wantSubject) {
		t.Errorf("subject = %v, want CN=%s alone", c.Subject, id)
	}
	if !bytes.Equal(c.RawIssuer, inter.RawSubject) {
		t.Errorf("issuer = %v, want %v", c.Issuer, inter.Subject)
	}
	// Exactly one SAN, the SPIFFE ID.
	wantURI := "spiffe://" + testTrustDomain + "/device/" + id
	if len(c.URIs) != 1 || c.URIs[0].String() != wantURI {
		t.Errorf("URI SANs = %v, want [%s]", c.URIs, wantURI)
	}
	if len(c.DNSNames)+len(c.EmailAddresses)+len(c.IPAddresses) != 0 {
		t.Errorf("other SANs = %v %v %v, want none", c.DNSNames, c.EmailAddresses, c.IPAddresses)
	}
	if diff := cmp.Diff([]x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, c.ExtKeyUsage); diff != "" || len(c.UnknownExtKeyUsage) != 0 {
		t.Errorf("EKU = %v %v, want clientAuth only", c.ExtKeyUsage, c.UnknownExtKeyUsage)
	}
	// digitalSignature only, RSA too (RFC 5280 §4.2.1.12 with clientAuth).
	if c.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("key usage = %b, want digitalSignature (%b)", c.KeyUsage, x509.KeyUsageDigitalSignature)
	}
	if !c.BasicConstraintsValid || c.IsCA || c.MaxPathLen > 0 {
		t.Errorf("basic constraints = valid %v, CA %v, pathlen %d; want CA false", c.BasicConstraintsValid, c.IsCA, c.MaxPathLen)
	}
	// The extensions, and which are critical (RFC 5280 §4.2.1.9: basic
	// constraints critical; §4.2.1.3: key usage SHOULD be critical).
	gotExts := map[string]bool{}
	for _, e := range c.Extensions {
		gotExts[e.Id.String()] = e.Critical
	}
	wantExts := map[string]bool{
		oidExtKU.String(): true, oidExtEKU.String(): false, oidExtBasicConstr.String(): true,
		oidExtSubjectKeyID.String(): false, oidExtAuthorityKeyID.String(): false, oidExtAIA.String(): false,
		oidExtSubjectAltName.String(): false, oidExtCRLDistribution.String(): false,
	}
	if diff := cmp.Diff(wantExts, gotExts); diff != "" {
		t.Errorf("extensions -> critical (-want +got):\n%s", diff)
	}
	wantSKI, _ := x509util.GenerateSubjectKeyID(pub)
	if !bytes.Equal(c.SubjectKeyId, wantSKI) {
		t.Errorf("SKI = %x, want %x", c.SubjectKeyId, wantSKI)
	}
	if !bytes.Equal(c.AuthorityKeyId, inter.SubjectKeyId) || len(c.AuthorityKeyId) == 0 {
		t.Errorf("AKI = %x, want the intermediate's SKI %x", c.AuthorityKeyId, inter.SubjectKeyId)
	}
	if diff := cmp.Diff([]string{testPublicURL + "/ocsp"}, c.OCSPServer); diff != "" {
		t.Errorf("OCSP (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{testPublicURL + "/intermediate.crt"}, c.IssuingCertificateURL); diff != "" {
		t.Errorf("caIssuers (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{testPublicURL + "/crl"}, c.CRLDistributionPoints); diff != "" {
		t.Errorf("CRL DP (-want +got):\n%s", diff)
	}
	if s := c.SerialNumber; s.Sign() <= 0 || s.BitLen() > 159 || s.BitLen() < 128 || len(s.Bytes()) > 20 {
		t.Errorf("serial %x: want positive, 128 to 159 bits", s)
	}
	if want := testNow.Add(-DefaultBackdate); !c.NotBefore.Equal(want) {
		t.Errorf("NotBefore = %v, want %v", c.NotBefore, want)
	}
	if want := testNow.Add(DefaultDeviceValidity); !c.NotAfter.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", c.NotAfter, want)
	}
	if c.SignatureAlgorithm != wantSigAlg[caType] {
		t.Errorf("signature algorithm = %v, want %v", c.SignatureAlgorithm, wantSigAlg[caType])
	}
	if err := c.CheckSignatureFrom(inter); err != nil {
		t.Errorf("not signed by the intermediate: %v", err)
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(a.Root())
	inters.AddCert(inter)
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: testNow,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("Verify() error = %v", err)
	}
}

func TestSignDeviceSerialsDiffer(t *testing.T) {
	a := newAuthority(t, KeyECP256)
	pub := deviceKey(t, "ec-p256").Public()
	seen := map[string]bool{}
	for i := range 50 {
		c, err := a.SignDevice(t.Context(), DeviceRequest{DeviceID: "d", PublicKey: pub})
		if err != nil {
			t.Fatal(err)
		}
		s := c.SerialNumber.Text(16)
		if seen[s] {
			t.Fatalf("serial %s repeated after %d certificates", s, i)
		}
		seen[s] = true
	}
}

func TestSignDeviceValidity(t *testing.T) {
	dir, res := sharedCA(t, KeyECP256)
	interEnd := res.Intermediate.NotAfter
	tests := []struct {
		name         string
		cfg          Config
		now          time.Time
		wantNotAfter time.Time
	}{
		{"ok/default", Config{}, testNow, testNow.Add(2160 * time.Hour)},
		{"ok/configured", Config{DeviceValidity: 24 * time.Hour, Backdate: 5 * time.Minute}, testNow, testNow.Add(24 * time.Hour)},
		{"ok/clamped-long-validity", Config{DeviceValidity: 87600 * time.Hour}, testNow, interEnd},
		{"ok/clamped-near-end", Config{}, interEnd.Add(-24 * time.Hour), interEnd},
		{"ok/last-second", Config{}, interEnd.Add(-time.Second), interEnd},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			deps := testDeps(dir)
			deps.Now = func() time.Time { return tc.now }
			a, err := New(t.Context(), tc.cfg, deps)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			c, err := a.SignDevice(t.Context(), DeviceRequest{DeviceID: "d1", PublicKey: deviceKey(t, "ec-p256").Public()})
			if err != nil {
				t.Fatalf("SignDevice() error = %v", err)
			}
			if !c.NotAfter.Equal(tc.wantNotAfter) {
				t.Errorf("NotAfter = %v, want %v", c.NotAfter, tc.wantNotAfter)
			}
			if c.NotAfter.After(interEnd) {
				t.Errorf("NotAfter %v is after the intermediate's %v", c.NotAfter, interEnd)
			}
			wantBackdate := tc.cfg.WithDefaults().Backdate
			if want := tc.now.Add(-wantBackdate); !c.NotBefore.Equal(want) {
				t.Errorf("NotBefore = %v, want %v", c.NotBefore, want)
			}
		})
	}
}

func TestSignDeviceIntermediateExpires(t *testing.T) {
	dir, res := sharedCA(t, KeyECP256)
	now := testNow
	deps := testDeps(dir)
	deps.Now = func() time.Time { return now }
	a, err := New(t.Context(), Config{}, deps)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	now = res.Intermediate.NotAfter // the clock moves on
	_, err = a.SignDevice(t.Context(), DeviceRequest{DeviceID: "d1", PublicKey: deviceKey(t, "ec-p256").Public()})
	wantKind(t, "SignDevice", err, fault.Unavailable)
}

func TestSignDeviceInvalid(t *testing.T) {
	a := newAuthority(t, KeyECP256)
	p256 := deviceKey(t, "ec-p256").Public()
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		req      DeviceRequest
		wantKind fault.Kind
	}{
		{"fail/empty-id", DeviceRequest{DeviceID: "", PublicKey: p256}, fault.Malformed},
		{"fail/id-leading-dot", DeviceRequest{DeviceID: ".d", PublicKey: p256}, fault.Malformed},
		{"fail/id-slash", DeviceRequest{DeviceID: "a/b", PublicKey: p256}, fault.Malformed},
		{"fail/id-space", DeviceRequest{DeviceID: "a b", PublicKey: p256}, fault.Malformed},
		{"fail/id-unicode", DeviceRequest{DeviceID: "gerät", PublicKey: p256}, fault.Malformed},
		{"fail/id-65", DeviceRequest{DeviceID: api.DeviceID(strings.Repeat("a", 65)), PublicKey: p256}, fault.Malformed},
		{"fail/no-key", DeviceRequest{DeviceID: "d1"}, fault.BadKey},
		{"fail/x25519-key", DeviceRequest{DeviceID: "d1", PublicKey: x25519.PublicKey()}, fault.BadKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.SignDevice(t.Context(), tc.req)
			wantKind(t, "SignDevice", err, tc.wantKind)
		})
	}
	c, err := a.SignDevice(t.Context(), DeviceRequest{DeviceID: api.DeviceID(strings.Repeat("a", 64)), PublicKey: p256})
	if err != nil {
		t.Errorf("SignDevice(64-character ID) error = %v", err)
	} else if c.Subject.CommonName != strings.Repeat("a", 64) {
		t.Errorf("CN = %q", c.Subject.CommonName)
	}
	if _, err := a.SignDevice(t.Context(), DeviceRequest{DeviceID: api.DeviceID(strings.Repeat("a", 65)), PublicKey: p256}); err == nil {
		t.Error("SignDevice(65-character ID) succeeded; a CN is at most 64 characters")
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := a.SignDevice(ctx, DeviceRequest{DeviceID: "d1", PublicKey: p256}); !errors.Is(err, context.Canceled) {
		t.Errorf("SignDevice(canceled) error = %v, want context.Canceled", err)
	}
}

func TestSignServer(t *testing.T) {
	a := newAuthority(t, KeyECP256)
	long := strings.Repeat("a", 60) + ".example.net"
	tests := []struct {
		name    string
		dns     []string
		ips     []net.IP
		key     string
		wantCN  string
		wantErr fault.Kind
	}{
		{"ok/dns-and-ip", []string{"ca.example.net", "localhost"}, []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}, "ec-p256", "ca.example.net", 0},
		{"ok/ip-only", nil, []net.IP{net.ParseIP("10.0.0.7")}, "ec-p256", "10.0.0.7", 0},
		{"ok/rsa", []string{"ca.example.net"}, nil, "rsa-2048", "ca.example.net", 0},
		{"ok/wildcard", []string{"*.example.net"}, nil, "ed25519", "*.example.net", 0},
		{"ok/long-name", []string{long}, nil, "ec-p256", "", 0},
		{"fail/no-names", nil, nil, "ec-p256", "", fault.Malformed},
		{"fail/uppercase", []string{"CA.example.net"}, nil, "ec-p256", "", fault.Malformed},
		{"fail/underscore", []string{"c_a.example.net"}, nil, "ec-p256", "", fault.Malformed},
		{"fail/empty-label", []string{"ca..net"}, nil, "ec-p256", "", fault.Malformed},
		{"fail/bad-ip", nil, []net.IP{{1, 2, 3}}, "ec-p256", "", fault.Malformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pub := deviceKey(t, tc.key).Public()
			c, err := a.SignServer(t.Context(), tc.dns, tc.ips, pub)
			if tc.wantErr != 0 {
				wantKind(t, "SignServer", err, tc.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("SignServer() error = %v", err)
			}
			if c.Subject.CommonName != tc.wantCN {
				t.Errorf("CN = %q, want %q", c.Subject.CommonName, tc.wantCN)
			}
			if diff := cmp.Diff(tc.dns, c.DNSNames, cmpEmpty); diff != "" {
				t.Errorf("DNS SANs (-want +got):\n%s", diff)
			}
			if len(c.IPAddresses) != len(tc.ips) {
				t.Errorf("IP SANs = %v, want %v", c.IPAddresses, tc.ips)
			}
			for i := range tc.ips {
				if i < len(c.IPAddresses) && !c.IPAddresses[i].Equal(tc.ips[i]) {
					t.Errorf("IP SAN %d = %v, want %v", i, c.IPAddresses[i], tc.ips[i])
				}
			}
			if len(c.URIs) != 0 {
				t.Errorf("URI SANs = %v, want none", c.URIs)
			}
			if diff := cmp.Diff([]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, c.ExtKeyUsage); diff != "" {
				t.Errorf("EKU (-want +got):\n%s", diff)
			}
			wantKU := x509.KeyUsageDigitalSignature
			if _, ok := pub.(*rsa.PublicKey); ok {
				wantKU |= x509.KeyUsageKeyEncipherment
			}
			if c.KeyUsage != wantKU {
				t.Errorf("key usage = %b, want %b", c.KeyUsage, wantKU)
			}
			if !c.BasicConstraintsValid || c.IsCA {
				t.Errorf("basic constraints: want CA false")
			}
			for _, e := range c.Extensions {
				if e.Id.Equal(oidExtSubjectAltName) && e.Critical != (tc.wantCN == "") {
					t.Errorf("SAN critical = %v with CN %q (RFC 5280 §4.2.1.6)", e.Critical, tc.wantCN)
				}
			}
			if !c.NotAfter.Equal(testNow.Add(DefaultServerValidity)) || !c.NotBefore.Equal(testNow.Add(-DefaultBackdate)) {
				t.Errorf("validity = %v to %v, want %v to %v", c.NotBefore, c.NotAfter, testNow.Add(-DefaultBackdate), testNow.Add(DefaultServerValidity))
			}
			if len(c.OCSPServer) != 1 || len(c.IssuingCertificateURL) != 1 || len(c.CRLDistributionPoints) != 1 {
				t.Errorf("AIA/CDP = %q %q %q, want one URL each", c.OCSPServer, c.IssuingCertificateURL, c.CRLDistributionPoints)
			}
			if !bytes.Equal(c.AuthorityKeyId, a.Intermediate().SubjectKeyId) || len(c.SubjectKeyId) != 20 {
				t.Errorf("key identifiers: AKI %x SKI %x", c.AuthorityKeyId, c.SubjectKeyId)
			}
			roots, inters := x509.NewCertPool(), x509.NewCertPool()
			roots.AddCert(a.Root())
			inters.AddCert(a.Intermediate())
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: testNow}); err != nil {
				t.Errorf("Verify() error = %v", err)
			}
		})
	}
}

// TestDeviceProfileGolden dumps the stable fields of a device certificate
// for each CA key type (and other device key types) and
// compares them with testdata/device-profile.golden. Regenerate with
// go test ./ca -update, and review the diff.
func TestDeviceProfileGolden(t *testing.T) {
	var out strings.Builder
	cases := []struct {
		ca     KeyType
		device string
	}{
		{KeyECP256, "ec-p256"}, {KeyECP384, "ec-p256"}, {KeyRSA3072, "ec-p256"}, {KeyEd25519, "ec-p256"},
		{KeyECP256, "rsa-2048"}, {KeyECP256, "ed25519"},
	}
	for _, tc := range cases {
		a := newAuthority(t, tc.ca)
		c, err := a.SignDevice(t.Context(), DeviceRequest{DeviceID: "sensor-0042", PublicKey: deviceKey(t, tc.device).Public()})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "== CA key %s, device key %s\n", tc.ca, tc.device)
		dumpProfile(&out, c, a.Intermediate())
		out.WriteString("\n")
	}
	golden := filepath.Join("testdata", "device-profile.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./ca -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), out.String()); diff != "" {
		t.Errorf("device profile differs from %s (-want +got); if intended, rerun with -update:\n%s", golden, diff)
	}
}

// dumpProfile writes the fields of c that do not change between runs: not
// the serial, keys, key identifiers or dates (validity is shown relative
// to the clock).
func dumpProfile(w *strings.Builder, c, issuer *x509.Certificate) {
	fmt.Fprintf(w, "version: %d\n", c.Version)
	fmt.Fprintf(w, "serial: positive=%v bits<=159=%v\n", c.SerialNumber.Sign() > 0, c.SerialNumber.BitLen() <= 159)
	fmt.Fprintf(w, "signature: %v\n", c.SignatureAlgorithm)
	fmt.Fprintf(w, "issuer: %v\n", c.Issuer)
	fmt.Fprintf(w, "subject: %v\n", c.Subject)
	fmt.Fprintf(w, "validity: now%+v to now+%v\n", c.NotBefore.Sub(testNow), c.NotAfter.Sub(testNow))
	fmt.Fprintf(w, "public key: %v\n", c.PublicKeyAlgorithm)
	fmt.Fprintf(w, "extensions:\n")
	for _, e := range c.Extensions {
		crit := ""
		if e.Critical {
			crit = " critical"
		}
		fmt.Fprintf(w, "  %s %s%s: %s\n", e.Id, extNames[e.Id.String()], crit, extValue(c, issuer, e.Id))
	}
}

func extValue(c, issuer *x509.Certificate, id asn1.ObjectIdentifier) string {
	switch {
	case id.Equal(oidExtKU):
		var names []string
		for bit, name := range []string{"digitalSignature", "contentCommitment", "keyEncipherment", "dataEncipherment",
			"keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly"} {
			if c.KeyUsage&(1<<bit) != 0 {
				names = append(names, name)
			}
		}
		return strings.Join(names, ", ")
	case id.Equal(oidExtEKU):
		names := map[x509.ExtKeyUsage]string{x509.ExtKeyUsageClientAuth: "clientAuth", x509.ExtKeyUsageServerAuth: "serverAuth"}
		var out []string
		for _, u := range c.ExtKeyUsage {
			out = append(out, names[u])
		}
		return strings.Join(out, ", ")
	case id.Equal(oidExtBasicConstr):
		return fmt.Sprintf("CA=%v", c.IsCA)
	case id.Equal(oidExtSubjectKeyID):
		return fmt.Sprintf("%d bytes", len(c.SubjectKeyId))
	case id.Equal(oidExtAuthorityKeyID):
		return fmt.Sprintf("issuer's SKI=%v", bytes.Equal(c.AuthorityKeyId, issuer.SubjectKeyId))
	case id.Equal(oidExtAIA):
		return fmt.Sprintf("OCSP=%s caIssuers=%s", strings.Join(c.OCSPServer, ","), strings.Join(c.IssuingCertificateURL, ","))
	case id.Equal(oidExtSubjectAltName):
		var out []string
		for _, u := range c.URIs {
			out = append(out, "URI:"+u.String())
		}
		for _, d := range c.DNSNames {
			out = append(out, "DNS:"+d)
		}
		return strings.Join(out, ", ")
	case id.Equal(oidExtCRLDistribution):
		return strings.Join(c.CRLDistributionPoints, ", ")
	}
	return "?"
}

func TestSignDeviceConcurrent(t *testing.T) {
	a := newAuthority(t, KeyECP256)
	pub := deviceKey(t, "ec-p256").Public()
	const workers, each = 8, 5
	serials := make(chan string, workers*each)
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for i := range each {
				c, err := a.SignDevice(t.Context(), DeviceRequest{DeviceID: api.DeviceID(fmt.Sprintf("d%d-%d", w, i)), PublicKey: pub})
				if err != nil {
					errs <- err
					return
				}
				serials <- c.SerialNumber.Text(16)
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatalf("SignDevice() error = %v", err)
		}
	}
	close(serials)
	seen := map[string]bool{}
	for s := range serials {
		if seen[s] {
			t.Errorf("serial %s issued twice", s)
		}
		seen[s] = true
	}
	if len(seen) != workers*each {
		t.Errorf("got %d certificates, want %d", len(seen), workers*each)
	}
}

// A serial is positive, at most 159 bits (20 DER octets), carries now's
// milliseconds modulo 2^31 in its top 31 bits, so that later serials of a
// burst sort after earlier ones, and 128 random bits below, which spread
// the serials evenly over the CRL partitions.
func TestNewSerial(t *testing.T) {
	for _, tc := range []struct {
		name string
		now  time.Time
	}{
		{"now", testNow},
		{"wrap", time.UnixMilli(1 << 31)}, // the top 31 bits are zero
		{"before-1970", time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 4096
			counts := make([]int, 16)
			seen := map[string]bool{}
			for range n {
				s, err := newSerial(tc.now)
				if err != nil {
					t.Fatalf("newSerial error = %v", err)
				}
				if s.Sign() <= 0 || s.BitLen() > 159 || len(s.Bytes()) > 20 {
					t.Fatalf("serial %x: want positive, at most 159 bits", s)
				}
				top := new(big.Int).Rsh(s, 128).Uint64()
				if want := uint64(tc.now.UnixMilli()) & 0x7fffffff; top != want {
					t.Fatalf("serial %x: top 31 bits = %d, want %d", s, top, want)
				}
				if seen[s.Text(16)] {
					t.Fatalf("serial %x drawn twice", s)
				}
				seen[s.Text(16)] = true
				counts[PartitionOfSerial(s, 16)]++
			}
			// 256 expected in each; below 128 has odds under 1e-20.
			for p, c := range counts {
				if c < n/32 {
					t.Errorf("partition %d got %d of %d serials, want about %d", p, c, n, n/16)
				}
			}
		})
	}
	earlier, err := newSerial(testNow)
	if err != nil {
		t.Fatal(err)
	}
	later, err := newSerial(testNow.Add(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if earlier.Cmp(later) >= 0 {
		t.Errorf("serial of now %x >= serial of a millisecond later %x", earlier, later)
	}
}
