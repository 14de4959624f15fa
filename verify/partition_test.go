package verify

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/cryptobyte"
	cryptobyte_asn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/testenv"
)

// testPublicURL is the CA's public URL in the partition tests: not the
// base URL the Syncer fetches from, as in a real deployment behind a
// proxy.
const testPublicURL = "https://ca.example.com/pki"

// idpExt encodes an Issuing Distribution Point (RFC 5280 §5.2.5) with the
// given fullName URIs and onlyContainsUserCerts, plus any extra raw fields.
func idpExt(uris []string, extra ...[]byte) pkix.Extension {
	var b cryptobyte.Builder
	b.AddASN1(cryptobyte_asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		if len(uris) > 0 {
			b.AddASN1(cryptobyte_asn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cryptobyte_asn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
					for _, u := range uris {
						b.AddASN1(cryptobyte_asn1.Tag(6).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(u)) })
					}
				})
			})
		}
		b.AddASN1(cryptobyte_asn1.Tag(1).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddUint8(0xff) })
		for _, e := range extra {
			b.AddBytes(e)
		}
	})
	return pkix.Extension{Id: oidIDP, Critical: true, Value: b.BytesOrPanic()}
}

// partCRL signs partition p's CRL, numbered number, listing serials.
func (p *syncPKI) partCRL(t testing.TB, part int, number int64, serials ...int64) []byte {
	t.Helper()
	return p.crlWith(t, number, []pkix.Extension{idpExt([]string{testPublicURL + api.PartitionCRLPath(part)})}, serials...)
}

// partCRLValid is partCRL valid for validity from testNow.
func (p *syncPKI) partCRLValid(t testing.TB, part int, number int64, validity time.Duration, serials ...int64) []byte {
	t.Helper()
	return p.crlFor(t, number, validity, []pkix.Extension{idpExt([]string{testPublicURL + api.PartitionCRLPath(part)})}, serials...)
}

func (p *syncPKI) crlWith(t testing.TB, number int64, exts []pkix.Extension, serials ...int64) []byte {
	t.Helper()
	return p.crlFor(t, number, 24*time.Hour, exts, serials...)
}

func (p *syncPKI) crlFor(t testing.TB, number int64, validity time.Duration, exts []pkix.Extension, serials ...int64) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: testNow, NextUpdate: testNow.Add(validity), ExtraExtensions: exts}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: big.NewInt(s), RevocationTime: testNow.Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, p.inter, p.interKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// setPartitions publishes the discovery document of n partitions.
func (f *fakeCA) setPartitions(t testing.TB, n int, fullNeeded bool) {
	t.Helper()
	d := api.CRLPartitions{Partitions: n, Full: api.FullCRL{URL: testPublicURL + api.CRLPath, Needed: fullNeeded}}
	for p := range n {
		d.CRLs = append(d.CRLs, api.PartitionCRL{Partition: p, URL: testPublicURL + api.PartitionCRLPath(p)})
	}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	f.set(api.PartitionsPath, b)
}

func TestCRLScope(t *testing.T) {
	reasons := []byte{0x83, 0x02, 0x05, 0xa0} // onlySomeReasons [3]
	indirect := []byte{0x84, 0x01, 0xff}      // indirectCRL [4]
	for _, tc := range []struct {
		name    string
		exts    []pkix.Extension
		uris    []string
		has     bool
		wantErr bool
	}{
		{name: "ok/none"},
		{name: "ok/one-uri", exts: []pkix.Extension{idpExt([]string{"http://ca/crl/3"})}, uris: []string{"http://ca/crl/3"}, has: true},
		{name: "ok/two-uris", exts: []pkix.Extension{idpExt([]string{"http://a/crl/3", "http://b/crl/3"})}, uris: []string{"http://a/crl/3", "http://b/crl/3"}, has: true},
		{name: "ok/no-distribution-point", exts: []pkix.Extension{idpExt(nil)}, has: true},
		{name: "fail/only-some-reasons", exts: []pkix.Extension{idpExt([]string{"http://ca/crl/3"}, reasons)}, wantErr: true},
		{name: "fail/indirect", exts: []pkix.Extension{idpExt([]string{"http://ca/crl/3"}, indirect)}, wantErr: true},
		{name: "fail/not-a-sequence", exts: []pkix.Extension{{Id: oidIDP, Critical: true, Value: []byte{0x05, 0x00}}}, wantErr: true},
		{name: "fail/trailing", exts: []pkix.Extension{{Id: oidIDP, Critical: true, Value: append(idpExt(nil).Value, 0)}}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uris, has, err := crlScope(&x509.RevocationList{Extensions: tc.exts})
			if (err != nil) != tc.wantErr {
				t.Fatalf("crlScope err = %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if has != tc.has || !cmp.Equal(uris, tc.uris) {
				t.Errorf("crlScope = %q, %v; want %q, %v", uris, has, tc.uris, tc.has)
			}
		})
	}
}

func TestScopeIs(t *testing.T) {
	for _, tc := range []struct {
		uri, path string
		want      bool
	}{
		{"https://ca.example.com/crl/3", "/crl/3", true},
		{"https://ca.example.com/pki/crl/3", "/crl/3", true},
		{"https://ca.example.com/crl/13", "/crl/3", false},
		{"https://ca.example.com/crl/3", "/crl", false},
		{"https://ca.example.com/crl", "/crl", true},
	} {
		if got := scopeIs([]string{tc.uri}, tc.path); got != tc.want {
			t.Errorf("scopeIs(%q, %q) = %v, want %v", tc.uri, tc.path, got, tc.want)
		}
	}
}

// newPartFixture is a fake CA with n partitions, partition p's CRL
// numbered 1 listing serial 0x100+p, and the full CRL listing them all.
func newPartFixture(t *testing.T, n int, fullNeeded bool) *syncFixture {
	f := newSyncFixture(t)
	f.ca.setPartitions(t, n, fullNeeded)
	var all []int64
	for p := range n {
		f.ca.set(api.PartitionCRLPath(p), f.pki.partCRL(t, p, 1, int64(0x100+p)))
		all = append(all, int64(0x100+p))
	}
	f.ca.set(api.CRLPath, f.pki.deviceCRL(t, 1, all...))
	return f
}

// scopes lists the file's CRLs as their IDP paths ("full" without one,
// "root" for the root's).
func (f *syncFixture) scopes(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, rl := range f.installed(t) {
		uris, has, err := crlScope(rl)
		switch {
		case err != nil:
			t.Fatal(err)
		case rl.CheckSignatureFrom(f.pki.root) == nil:
			out = append(out, "root")
		case !has:
			out = append(out, "full")
		default:
			out = append(out, strings.TrimPrefix(uris[0], testPublicURL))
		}
	}
	return out
}

func TestSyncPartitions(t *testing.T) {
	f := newPartFixture(t, 4, false)
	s := f.syncer(t)
	res := mustSync(t, s)
	if res.Partitions != 4 || len(res.CRLs) != 5 {
		t.Fatalf("Sync = %d partitions, %d CRLs; want 4, 5", res.Partitions, len(res.CRLs))
	}
	want := []string{"/crl/0", "/crl/1", "/crl/2", "/crl/3", "root"}
	if diff := cmp.Diff(want, f.scopes(t)); diff != "" {
		t.Fatalf("CRL file (-want +got):\n%s", diff)
	}
	if n := f.ca.served(api.CRLPath); n != 0 {
		t.Errorf("the full CRL was fetched %d times while not needed, want 0", n)
	}

	// A certificate without partition is live again (say, N went back
	// to 1 and up): the full CRL joins, after the partitions.
	f.ca.setPartitions(t, 4, true)
	if res := mustSync(t, s); !res.Changed {
		t.Fatal("Sync after the full CRL became needed did not change the file")
	}
	want = []string{"/crl/0", "/crl/1", "/crl/2", "/crl/3", "full", "root"}
	if diff := cmp.Diff(want, f.scopes(t)); diff != "" {
		t.Fatalf("CRL file (-want +got):\n%s", diff)
	}

	// Only the touched partition is fetched in full again.
	before := f.ca.served(api.PartitionCRLPath(0))
	f.ca.set(api.PartitionCRLPath(2), f.pki.partCRL(t, 2, 2, 0x102, 0x202))
	mustSync(t, s)
	if got := f.ca.served(api.PartitionCRLPath(0)); got != before {
		t.Errorf("partition 0's CRL, unchanged, was served %d times, want %d (conditional GET)", got, before)
	}
	if got := f.installed(t)[2]; got.Number.Int64() != 2 || len(got.RevokedCertificateEntries) != 2 {
		t.Errorf("partition 2 in the file = number %s with %d entries, want 2 with 2", got.Number, len(got.RevokedCertificateEntries))
	}

	// A restarted Syncer reads the file back, partitions included, and
	// refuses an older partition CRL.
	f.ca.set(api.PartitionCRLPath(2), f.pki.partCRL(t, 2, 1, 0x102))
	s2 := f.syncer(t)
	res, err := s2.Sync(t.Context())
	if err != nil {
		t.Fatalf("Sync after restart: %v", err)
	}
	if res.Changed || res.CRLs[2].Err == nil {
		t.Errorf("restarted Sync with an older partition 2 CRL: changed %v, err %v; want unchanged, refused", res.Changed, res.CRLs[2].Err)
	}
}

func TestSyncRefusesPartitionCRLsOfTheWrongScope(t *testing.T) {
	for _, tc := range []struct {
		name string
		crl  func(f *syncFixture) []byte
	}{
		// Without IDP, OpenSSL would take it for every partition's
		// certificates, and it lists partition 1's alone.
		{"no-idp", func(f *syncFixture) []byte { return f.pki.deviceCRL(t, 2, 0x101) }},
		{"other-partition", func(f *syncFixture) []byte { return f.pki.partCRL(t, 3, 2, 0x101) }},
		{"partition-11", func(f *syncFixture) []byte { return f.pki.partCRL(t, 11, 2, 0x101) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newPartFixture(t, 4, false)
			f.ca.set(api.PartitionCRLPath(1), tc.crl(f))
			s := f.syncer(t)
			res, err := s.Sync(t.Context())
			if err == nil || res.CRLs[1].Err == nil {
				t.Fatalf("Sync with a wrong partition 1 CRL: err %v, status %v; want both", err, res.CRLs[1].Err)
			}
			// The other partitions are installed: only partition 1's
			// certificates are refused (no CRL in their scope).
			if diff := cmp.Diff([]string{"/crl/0", "/crl/2", "/crl/3", "root"}, f.scopes(t)); diff != "" {
				t.Errorf("CRL file (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSyncPartitionsDiscoveryDown(t *testing.T) {
	f := newPartFixture(t, 2, false)
	s := f.syncer(t)
	mustSync(t, s)
	f.ca.set(api.PartitionsPath, []byte("{"))
	res, err := s.Sync(t.Context())
	if err != nil || res.DiscoveryErr == nil || res.Partitions != 2 {
		t.Fatalf("Sync with a broken discovery document: err %v, discovery err %v, %d partitions; want nil, an error, 2", err, res.DiscoveryErr, res.Partitions)
	}

	// Never known: the full CRL, which lists every revoked device
	// certificate, stands in for the partitions.
	g := newPartFixture(t, 2, false)
	g.ca.set(api.PartitionsPath, []byte(`{"partitions": 1000}`))
	res, err = g.syncer(t).Sync(t.Context())
	if err != nil || res.DiscoveryErr == nil {
		t.Fatalf("first Sync with 1000 partitions: err %v, discovery err %v; want nil, an error", err, res.DiscoveryErr)
	}
	if diff := cmp.Diff([]string{"full", "root"}, g.scopes(t)); diff != "" {
		t.Errorf("CRL file (-want +got):\n%s", diff)
	}
}

// TestPartitionFileOpenSSL checks what OpenSSL 3 (the library in nginx,
// HAProxy and Mosquitto) makes of the file crl sync writes: with
// -crl_check_all, each certificate is checked against the CRL whose IDP
// names its distribution point, or one without IDP; it is refused exactly
// when revoked, in every partition, and a certificate without partition
// is checked against the full CRL.
//
// What was found (OpenSSL 3.0, x509_vfy.c get_crl_sk): among the CRLs of
// a certificate's scope, the first with the best score wins, and an
// equally good one replaces it only if its thisUpdate is later. A CRL
// without IDP is in every certificate's scope, so the full CRL may be
// chosen for a partitioned certificate: correct only because the full CRL
// lists every revoked device certificate (never publish a "rest" CRL
// without IDP), and then the per-handshake cost is the full CRL's. Hence
// the full CRL is in the file only while the CA says it is needed.
func TestPartitionFileOpenSSL(t *testing.T) {
	openssl := testenv.Need(t, "openssl")
	const n = 4
	for _, fullNeeded := range []bool{false, true} {
		t.Run(map[bool]string{false: "partitions", true: "partitions+full"}[fullNeeded], func(t *testing.T) {
			f := newSyncFixture(t)
			f.ca.setPartitions(t, n, fullNeeded)
			dir := t.TempDir()
			type dev struct {
				name    string
				cdp     string
				serial  int64
				revoked bool
			}
			var devs []dev
			var all []int64
			for p := range n {
				var rev []int64
				for i, revoked := range []bool{false, true} {
					serial := int64(0x1000*(p+1) + i)
					devs = append(devs, dev{name: "p" + string(rune('0'+p)) + map[bool]string{false: "-good", true: "-revoked"}[revoked],
						cdp: testPublicURL + api.PartitionCRLPath(p), serial: serial, revoked: revoked})
					if revoked {
						rev = append(rev, serial)
					}
				}
				f.ca.set(api.PartitionCRLPath(p), f.pki.partCRL(t, p, 1, rev...))
				all = append(all, rev...)
			}
			if fullNeeded {
				devs = append(devs, dev{name: "legacy-good", cdp: testPublicURL + api.CRLPath, serial: 0x9000},
					dev{name: "legacy-revoked", cdp: testPublicURL + api.CRLPath, serial: 0x9001, revoked: true})
				all = append(all, 0x9001)
			}
			f.ca.set(api.CRLPath, f.pki.deviceCRL(t, 1, all...))
			mustSync(t, f.syncer(t))

			chain := filepath.Join(dir, "ca.pem")
			if err := os.WriteFile(chain, append(pemBlock("CERTIFICATE", f.pki.root.Raw), pemBlock("CERTIFICATE", f.pki.inter.Raw)...), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, d := range devs {
				leaf := f.pki.leaf(t, d.serial, d.cdp)
				path := filepath.Join(dir, d.name+".pem")
				if err := os.WriteFile(path, pemBlock("CERTIFICATE", leaf.Raw), 0o644); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command(openssl, "verify", "-crl_check_all", "-attime", strconv.FormatInt(testNow.Add(time.Minute).Unix(), 10), "-CAfile", chain, "-CRLfile", f.out, path).CombinedOutput()
				switch {
				case d.revoked && (err == nil || !strings.Contains(string(out), "certificate revoked")):
					t.Errorf("openssl verify %s: %v\n%s\nwant certificate revoked", d.name, err, out)
				case !d.revoked && err != nil:
					t.Errorf("openssl verify %s: %v\n%s\nwant OK", d.name, err, out)
				}
			}
		})
	}
}

// leaf issues a device certificate from the intermediate with the given
// serial and CRL distribution point.
func (p *syncPKI) leaf(t testing.TB, serial int64, cdp string) *x509.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "device"},
		NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		CRLDistributionPoints: []string{cdp}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.inter, k.Public(), p.interKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSyncNoPartitions: a CA with crl_partitions 1 says 0 partitions; an
// older one answers 404. Either way the file is today's: the device CRL,
// then the root CRL.
func TestSyncNoPartitions(t *testing.T) {
	for _, doc := range []string{`{"partitions": 0, "crls": [], "full": {"url": "https://ca/crl", "needed": true}}`,
		`{"partitions": 1, "crls": [{"partition": 0}], "full": {"url": "https://ca/crl", "needed": false}}`, ""} {
		f := newSyncFixture(t)
		if doc != "" {
			f.ca.set(api.PartitionsPath, []byte(doc))
		}
		res := mustSync(t, f.syncer(t))
		if res.Partitions != 1 {
			t.Errorf("discovery %q: Sync says %d partitions, want 1", doc, res.Partitions)
		}
		f.wantInstalled(t, 1, 1)
	}
}

// FuzzParsePartitions: the discovery document comes over plain HTTP.
// Whatever the bytes, parsePartitions does not panic, and what it
// accepts has 1..MaxCRLPartitions partitions, the full CRL needed with 1.
func FuzzParsePartitions(f *testing.F) {
	f.Add([]byte(`{"partitions": 16, "crls": [{"partition": 0, "url": "https://ca/crl/0", "number": "3"}], "full": {"url": "https://ca/crl", "needed": false}}`))
	f.Add([]byte(`{"partitions": 0, "crls": [], "full": {"needed": true}}`))
	f.Add([]byte(`{"partitions": -1}`))
	f.Add([]byte(`{"partitions": 1e9}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parsePartitions(bytes.NewReader(b))
		if err != nil {
			return
		}
		if d.Partitions < 1 || d.Partitions > api.MaxCRLPartitions || d.Partitions == 1 && !d.Full.Needed {
			t.Fatalf("parsePartitions(%q) = %d partitions, full needed %v", b, d.Partitions, d.Full.Needed)
		}
	})
}
