package ca

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/internal/testenv"
)

var (
	oidCRLReason    = asn1.ObjectIdentifier{2, 5, 29, 21}
	oidCRLNumber    = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidAKI          = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidIDP          = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidInvalidDate  = asn1.ObjectIdentifier{2, 5, 29, 24}
	testCRLNumber   = big.NewInt(42)
	testCRLValidity = 24 * time.Hour
)

// testCRLEntries returns revoked entries with every kind of reason, in an
// order that is not sorted by serial, with times in a non-UTC zone.
func testCRLEntries(t testing.TB) []x509.RevocationListEntry {
	t.Helper()
	zone := time.FixedZone("UTC+2", 2*60*60)
	invalidity, err := asn1.Marshal(testNow.Add(-48 * time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return []x509.RevocationListEntry{
		{SerialNumber: big.NewInt(0x5eed), RevocationTime: testNow.Add(-time.Hour).In(zone), ReasonCode: 1},
		{SerialNumber: big.NewInt(0x0a), RevocationTime: testNow.Add(-2 * time.Hour), ReasonCode: 0},
		{SerialNumber: new(big.Int).Lsh(big.NewInt(1), 158), RevocationTime: testNow, ReasonCode: 4},
		{SerialNumber: big.NewInt(0x0b), RevocationTime: testNow.Add(-3 * time.Hour), ReasonCode: 5},
		{SerialNumber: big.NewInt(0x0c), RevocationTime: testNow.Add(-4 * time.Hour), ReasonCode: 9,
			ExtraExtensions: []pkix.Extension{{Id: oidInvalidDate, Value: invalidity}}},
	}
}

func testCRLTemplate(entries []x509.RevocationListEntry) CRLTemplate {
	return CRLTemplate{
		Number:     testCRLNumber,
		ThisUpdate: testNow,
		NextUpdate: testNow.Add(testCRLValidity),
		Entries:    entries,
	}
}

// checkCRL parses der and checks what every CRL of ours has: signed by
// issuer, the template's number and dates, the AKI, and no extension but
// the AKI and the CRL number.
func checkCRL(t *testing.T, der []byte, issuer *x509.Certificate, tmpl CRLTemplate) *x509.RevocationList {
	t.Helper()
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("ParseRevocationList() error = %v", err)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		t.Errorf("CheckSignatureFrom(%q) error = %v", issuer.Subject.CommonName, err)
	}
	if !bytes.Equal(crl.RawIssuer, issuer.RawSubject) {
		t.Errorf("CRL issuer = %s, want %s", crl.Issuer, issuer.Subject)
	}
	if crl.Number.Cmp(tmpl.Number) != 0 {
		t.Errorf("CRL number = %v, want %v", crl.Number, tmpl.Number)
	}
	if !crl.ThisUpdate.Equal(tmpl.ThisUpdate) || !crl.NextUpdate.Equal(tmpl.NextUpdate) {
		t.Errorf("CRL thisUpdate, nextUpdate = %v, %v, want %v, %v", crl.ThisUpdate, crl.NextUpdate, tmpl.ThisUpdate, tmpl.NextUpdate)
	}
	if !bytes.Equal(crl.AuthorityKeyId, issuer.SubjectKeyId) || len(crl.AuthorityKeyId) == 0 {
		t.Errorf("CRL AKI = %x, want the issuer's SKI %x", crl.AuthorityKeyId, issuer.SubjectKeyId)
	}
	var oids []string
	for _, e := range crl.Extensions {
		oids = append(oids, e.Id.String())
		if e.Critical {
			t.Errorf("CRL extension %v is critical", e.Id)
		}
	}
	sort.Strings(oids)
	if want := []string{oidCRLNumber.String(), oidAKI.String()}; strings.Join(oids, " ") != strings.Join(want, " ") {
		t.Errorf("CRL extensions = %v, want %v (AKI and CRL number; no IDP %v)", oids, want, oidIDP)
	}
	return crl
}

func TestSignCRL(t *testing.T) {
	for _, kt := range KeyTypes() {
		t.Run(string(kt), func(t *testing.T) {
			a := newAuthority(t, kt)
			entries := testCRLEntries(t)
			tmpl := testCRLTemplate(entries)
			der, err := a.SignCRL(t.Context(), tmpl)
			if err != nil {
				t.Fatalf("SignCRL() error = %v", err)
			}
			crl := checkCRL(t, der, a.Intermediate(), tmpl)
			if crl.SignatureAlgorithm != a.profile.sigAlg {
				t.Errorf("CRL signature algorithm = %v, want %v", crl.SignatureAlgorithm, a.profile.sigAlg)
			}
			if err := crl.CheckSignatureFrom(a.Root()); err == nil {
				t.Errorf("CheckSignatureFrom(root) = nil, want an error")
			}
			got := crl.RevokedCertificateEntries
			if len(got) != len(entries) {
				t.Fatalf("CRL has %d entries, want %d", len(got), len(entries))
			}
			for i, want := range entries {
				g := got[i]
				if g.SerialNumber.Cmp(want.SerialNumber) != 0 {
					t.Errorf("entry %d serial = %x, want %x (the order given)", i, g.SerialNumber, want.SerialNumber)
				}
				if !g.RevocationTime.Equal(want.RevocationTime) {
					t.Errorf("entry %d revocation time = %v, want %v", i, g.RevocationTime, want.RevocationTime)
				}
				if g.ReasonCode != want.ReasonCode {
					t.Errorf("entry %d reason = %d, want %d", i, g.ReasonCode, want.ReasonCode)
				}
				hasReason, hasInvalidity := false, false
				for _, e := range g.Extensions {
					hasReason = hasReason || e.Id.Equal(oidCRLReason)
					hasInvalidity = hasInvalidity || e.Id.Equal(oidInvalidDate)
				}
				if hasReason != (want.ReasonCode != 0) {
					t.Errorf("entry %d (reason %d) has a reason code extension: %v, want %v",
						i, want.ReasonCode, hasReason, want.ReasonCode != 0)
				}
				if hasInvalidity != (len(want.ExtraExtensions) > 0) {
					t.Errorf("entry %d has an invalidity date: %v, want %v", i, hasInvalidity, len(want.ExtraExtensions) > 0)
				}
			}
		})
	}
}

// TestSignCRLEntriesOnlyRead checks that SignCRL neither reorders nor
// changes the caller's entries.
func TestSignCRLEntriesOnlyRead(t *testing.T) {
	a := newAuthority(t, KeyECP256)
	entries := testCRLEntries(t)
	type snapshot struct {
		serial string
		at     time.Time
		reason int
		exts   int
	}
	snap := func() []snapshot {
		var s []snapshot
		for _, e := range entries {
			s = append(s, snapshot{e.SerialNumber.Text(16), e.RevocationTime, e.ReasonCode, len(e.ExtraExtensions)})
		}
		return s
	}
	before := snap()
	if _, err := a.SignCRL(t.Context(), testCRLTemplate(entries)); err != nil {
		t.Fatal(err)
	}
	after := snap()
	for i := range before {
		// == on time.Time also compares the location: UTC conversion
		// of the caller's value would show.
		if before[i] != after[i] {
			t.Errorf("entry %d = %+v after SignCRL, want %+v", i, after[i], before[i])
		}
	}
}

func TestSignCRLEmpty(t *testing.T) {
	a := newAuthority(t, KeyECP256)
	tmpl := testCRLTemplate(nil)
	der, err := a.SignCRL(t.Context(), tmpl)
	if err != nil {
		t.Fatalf("SignCRL(no entries) error = %v", err)
	}
	crl := checkCRL(t, der, a.Intermediate(), tmpl)
	if len(crl.RevokedCertificateEntries) != 0 {
		t.Errorf("CRL has %d entries, want 0", len(crl.RevokedCertificateEntries))
	}
}

func TestSignCRLTemplate(t *testing.T) {
	a := newAuthority(t, KeyECP256)
	maxNumber := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 159), big.NewInt(1))
	entry := func(f func(e *x509.RevocationListEntry)) []x509.RevocationListEntry {
		e := x509.RevocationListEntry{SerialNumber: big.NewInt(7), RevocationTime: testNow.Add(-time.Minute), ReasonCode: 1}
		f(&e)
		return []x509.RevocationListEntry{{SerialNumber: big.NewInt(6), RevocationTime: testNow}, e}
	}
	tests := []struct {
		name     string
		tmpl     func(c *CRLTemplate)
		wantKind fault.Kind // 0: success
	}{
		{"ok/number-zero", func(c *CRLTemplate) { c.Number = big.NewInt(0) }, 0},
		{"ok/number-20-octets", func(c *CRLTemplate) { c.Number = maxNumber }, 0},
		{"ok/revoked-at-this-update-subsecond", func(c *CRLTemplate) {
			c.ThisUpdate = testNow.Add(100 * time.Millisecond)
			c.Entries = entry(func(e *x509.RevocationListEntry) { e.RevocationTime = testNow.Add(900 * time.Millisecond) })
		}, 0},
		{"ok/reason-aa-compromise", func(c *CRLTemplate) {
			c.Entries = entry(func(e *x509.RevocationListEntry) { e.ReasonCode = 10 })
		}, 0},
		{"fail/number-nil", func(c *CRLTemplate) { c.Number = nil }, fault.Malformed},
		{"fail/number-negative", func(c *CRLTemplate) { c.Number = big.NewInt(-1) }, fault.Malformed},
		{"fail/number-too-long", func(c *CRLTemplate) { c.Number = new(big.Int).Add(maxNumber, big.NewInt(1)) }, fault.Malformed},
		{"fail/no-this-update", func(c *CRLTemplate) { c.ThisUpdate = time.Time{} }, fault.Malformed},
		{"fail/no-next-update", func(c *CRLTemplate) { c.NextUpdate = time.Time{} }, fault.Malformed},
		{"fail/next-update-equal", func(c *CRLTemplate) { c.NextUpdate = c.ThisUpdate }, fault.Malformed},
		{"fail/next-update-before", func(c *CRLTemplate) { c.NextUpdate = c.ThisUpdate.Add(-time.Hour) }, fault.Malformed},
		{"fail/entry-no-serial", func(c *CRLTemplate) {
			c.Entries = entry(func(e *x509.RevocationListEntry) { e.SerialNumber = nil })
		}, fault.Malformed},
		{"fail/entry-no-time", func(c *CRLTemplate) {
			c.Entries = entry(func(e *x509.RevocationListEntry) { e.RevocationTime = time.Time{} })
		}, fault.Malformed},
		{"fail/entry-revoked-after-this-update", func(c *CRLTemplate) {
			c.Entries = entry(func(e *x509.RevocationListEntry) { e.RevocationTime = testNow.Add(time.Second) })
		}, fault.Malformed},
		{"fail/entry-reason-7", func(c *CRLTemplate) {
			c.Entries = entry(func(e *x509.RevocationListEntry) { e.ReasonCode = 7 })
		}, fault.Malformed},
		{"fail/entry-reason-remove-from-crl", func(c *CRLTemplate) {
			c.Entries = entry(func(e *x509.RevocationListEntry) { e.ReasonCode = 8 })
		}, fault.Malformed},
		{"fail/entry-reason-11", func(c *CRLTemplate) {
			c.Entries = entry(func(e *x509.RevocationListEntry) { e.ReasonCode = 11 })
		}, fault.Malformed},
		{"fail/entry-reason-negative", func(c *CRLTemplate) {
			c.Entries = entry(func(e *x509.RevocationListEntry) { e.ReasonCode = -1 })
		}, fault.Malformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := testCRLTemplate(nil)
			tc.tmpl(&tmpl)
			der, err := a.SignCRL(t.Context(), tmpl)
			if tc.wantKind != 0 {
				wantKind(t, "SignCRL()", err, tc.wantKind)
				return
			}
			if err != nil {
				t.Fatalf("SignCRL() error = %v", err)
			}
			crl, err := x509.ParseRevocationList(der)
			if err != nil {
				t.Fatal(err)
			}
			if crl.Number.Cmp(tmpl.Number) != 0 {
				t.Errorf("CRL number = %v, want %v", crl.Number, tmpl.Number)
			}
		})
	}
}

func TestSignCRLCanceled(t *testing.T) {
	a := newAuthority(t, KeyECP256)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := a.SignCRL(ctx, testCRLTemplate(nil)); !errors.Is(err, context.Canceled) {
		t.Errorf("SignCRL(canceled) error = %v, want context.Canceled", err)
	}
	if _, err := a.SignRootCRL(ctx, testCRLTemplate(nil)); !errors.Is(err, context.Canceled) {
		t.Errorf("SignRootCRL(canceled) error = %v, want context.Canceled", err)
	}
}

func TestSignRootCRL(t *testing.T) {
	for _, kt := range KeyTypes() {
		t.Run(string(kt), func(t *testing.T) {
			a := newAuthority(t, kt)
			tmpl := testCRLTemplate(nil)
			der, err := a.SignRootCRL(t.Context(), tmpl)
			if err != nil {
				t.Fatalf("SignRootCRL() error = %v", err)
			}
			checkCRL(t, der, a.Root(), tmpl)

			// Revoking the intermediate itself.
			tmpl.Entries = []x509.RevocationListEntry{{SerialNumber: a.Intermediate().SerialNumber, RevocationTime: testNow, ReasonCode: 2}}
			der, err = a.SignRootCRL(t.Context(), tmpl)
			if err != nil {
				t.Fatalf("SignRootCRL(intermediate revoked) error = %v", err)
			}
			crl := checkCRL(t, der, a.Root(), tmpl)
			if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].ReasonCode != 2 {
				t.Errorf("root CRL entries = %+v, want the intermediate, cACompromise", crl.RevokedCertificateEntries)
			}
		})
	}
}

func TestSignRootCRLOffline(t *testing.T) {
	tests := []struct {
		name string
		// removeBeforeNew: the key is gone when New runs (HasRootKey
		// false); otherwise it goes after New, before the first use.
		removeBeforeNew bool
	}{
		{"fail/offline-at-start", true},
		{"fail/removed-since", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := initCA(t, KeyECP256, nil)
			rootKey := filepath.Join(dir, DefaultRootKey)
			if tc.removeBeforeNew {
				if err := os.Remove(rootKey); err != nil {
					t.Fatal(err)
				}
			}
			a, err := New(t.Context(), Config{}, testDeps(dir))
			if err != nil {
				t.Fatalf("New() error = %v", err)
			}
			defer a.Close()
			if !tc.removeBeforeNew {
				if err := os.Remove(rootKey); err != nil {
					t.Fatal(err)
				}
			}
			_, err = a.SignRootCRL(t.Context(), testCRLTemplate(nil))
			wantKind(t, "SignRootCRL()", err, fault.Unavailable)
			if fe, ok := errors.AsType[*fault.Error](err); !ok || !strings.Contains(fe.Hint, "fleetca crl sign-root") {
				t.Errorf("SignRootCRL() error = %v, want a hint naming fleetca crl sign-root", err)
			}
			// The device CRL does not need the root key.
			if _, err := a.SignCRL(t.Context(), testCRLTemplate(testCRLEntries(t))); err != nil {
				t.Errorf("SignCRL() with the root key offline: %v", err)
			}
		})
	}
}

// TestCRLOpenSSL checks the CRLs with `openssl verify -crl_check_all`,
// which needs the root CRL for the intermediate and the device CRL for
// the leaf, and refuses a CRL whose scope does not cover the certificate
// ("different CRL scope"): with an IDP naming the current URL, the
// old-url certificates would fail so.
func TestCRLOpenSSL(t *testing.T) {
	openssl := testenv.Need(t, "openssl")
	for _, kt := range KeyTypes() {
		t.Run(string(kt), func(t *testing.T) {
			a := newAuthority(t, kt)
			sign := func(a *Authority, id string) *x509.Certificate {
				c, err := a.SignDevice(t.Context(), DeviceRequest{DeviceID: api.DeviceID(id), PublicKey: deviceKey(t, "ec-p256").Public()})
				if err != nil {
					t.Fatal(err)
				}
				return c
			}
			good, revoked := sign(a, "sensor-good"), sign(a, "sensor-revoked")
			// Certificates issued before the public URL changed point at
			// another CRL distribution point: the CRL (no IDP) must
			// still cover them.
			dir0, _ := sharedCA(t, kt)
			deps := testDeps(dir0)
			deps.PublicURL = "http://ca-old.example.net:8080"
			old, err := New(t.Context(), Config{}, deps)
			if err != nil {
				t.Fatal(err)
			}
			defer old.Close()
			oldGood, oldRevoked := sign(old, "sensor-old-good"), sign(old, "sensor-old-revoked")
			tmpl := testCRLTemplate([]x509.RevocationListEntry{
				{SerialNumber: revoked.SerialNumber, RevocationTime: testNow, ReasonCode: 1},
				{SerialNumber: oldRevoked.SerialNumber, RevocationTime: testNow, ReasonCode: 5},
			})
			deviceCRL, err := a.SignCRL(t.Context(), tmpl)
			if err != nil {
				t.Fatal(err)
			}
			rootCRL, err := a.SignRootCRL(t.Context(), testCRLTemplate(nil))
			if err != nil {
				t.Fatal(err)
			}
			verify := opensslVerifier(t, openssl, a, map[string][]byte{"root.crl": rootCRL, "device.crl": deviceCRL})
			for _, tc := range []struct {
				name   string
				cert   *x509.Certificate
				wantOK bool
			}{
				{"good", good, true},
				{"revoked", revoked, false},
				{"old-url-good", oldGood, true},
				{"old-url-revoked", oldRevoked, false},
			} {
				out, err := verify(tc.name, tc.cert)
				switch {
				case tc.wantOK && err != nil:
					t.Errorf("openssl verify %s: %v\n%s", tc.name, err, out)
				case !tc.wantOK && err == nil:
					t.Errorf("openssl verify %s succeeded, want revoked:\n%s", tc.name, out)
				case !tc.wantOK && !strings.Contains(string(out), "certificate revoked"):
					t.Errorf("openssl verify %s: %s, want certificate revoked", tc.name, out)
				}
			}
		})
	}
}

// TestZlintCRL lints a device CRL with entries and an empty root CRL, per
// CA key type, with the rules of TestZlint.
func TestZlintCRL(t *testing.T) {
	var findings []lintFinding
	for _, kt := range KeyTypes() {
		a := newAuthority(t, kt)
		device, err := a.SignCRL(t.Context(), testCRLTemplate(testCRLEntries(t)))
		if err != nil {
			t.Fatal(err)
		}
		root, err := a.SignRootCRL(t.Context(), testCRLTemplate(nil))
		if err != nil {
			t.Fatal(err)
		}
		for label, der := range map[string][]byte{"device-crl": device, "root-crl": root} {
			zc, err := zx509.ParseRevocationList(der)
			if err != nil {
				t.Fatalf("%s: zcrypto cannot parse: %v", label, err)
			}
			findings = append(findings, zlintFindings("ca="+string(kt)+" "+label, zlint.LintRevocationList(zc))...)
		}
	}
	reportFindings(t, findings)
}

// zlintFindings returns the results of status Notice or worse in rs.
func zlintFindings(label string, rs *zlint.ResultSet) []lintFinding {
	var out []lintFinding
	for name, r := range rs.Results {
		if r.Status >= lint.Notice {
			out = append(out, lintFinding{label, name, r.LintMetadata.Source, r.Status, r.Details})
		}
	}
	return out
}

// reportFindings fails t for findings of Warn or worse from a source not
// in webPKISources, and logs the others.
func reportFindings(t *testing.T, findings []lintFinding) {
	t.Helper()
	sort.Slice(findings, func(i, j int) bool {
		a, b := findings[i], findings[j]
		if a.name != b.name {
			return a.name < b.name
		}
		return a.cert < b.cert
	})
	for _, f := range findings {
		if webPKISources[f.source] || f.status < lint.Warn {
			t.Logf("accepted: %s %s %s on %s: %s", f.source, f.status, f.name, f.cert, f.details)
		} else {
			t.Errorf("%s %s %s on %s: %s", f.source, f.status, f.name, f.cert, f.details)
		}
	}
}

// benchCRLEntries returns n entries with random 159-bit serials, as
// package revocation would pass them (sorted by serial).
func benchCRLEntries(b *testing.B, n int) []x509.RevocationListEntry {
	b.Helper()
	entries := make([]x509.RevocationListEntry, n)
	for i := range entries {
		s, err := newSerial(testNow)
		if err != nil {
			b.Fatal(err)
		}
		entries[i] = x509.RevocationListEntry{
			SerialNumber:   s,
			RevocationTime: testNow.Add(-time.Duration(i) * time.Second),
			ReasonCode:     []int{0, 1, 4, 5}[i%4],
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].SerialNumber.Cmp(entries[j].SerialNumber) < 0 })
	return entries
}

// BenchmarkSignCRL measures SignCRL ("fleetca") against a bare
// x509.CreateRevocationList with the same entries, key and issuer
// ("bare"), for a P-256 intermediate. "ratio" runs the two alternately
// and reports fleetca's time over bare's, which a loaded machine skews
// less than two separate runs; its ns/op is the pair's. -short skips a
// million entries (about 10 s per signature on a slow machine).
func BenchmarkSignCRL(b *testing.B) {
	a := newAuthority(b, KeyECP256)
	sizes := []int{10_000, 100_000, 1_000_000}
	if testing.Short() {
		sizes = sizes[:2]
	}
	for _, n := range sizes {
		entries := benchCRLEntries(b, n)
		tmpl := testCRLTemplate(entries)
		fleetca := func(b *testing.B) int {
			der, err := a.SignCRL(b.Context(), tmpl)
			if err != nil {
				b.Fatal(err)
			}
			return len(der)
		}
		bare := func(b *testing.B) int {
			der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
				Number:                    tmpl.Number,
				ThisUpdate:                tmpl.ThisUpdate,
				NextUpdate:                tmpl.NextUpdate,
				RevokedCertificateEntries: entries,
			}, a.inter, a.signer)
			if err != nil {
				b.Fatal(err)
			}
			return len(der)
		}
		for _, f := range []struct {
			name string
			sign func(*testing.B) int
		}{{"fleetca", fleetca}, {"bare", bare}} {
			b.Run(fmt.Sprintf("n=%d/%s", n, f.name), func(b *testing.B) {
				b.ReportAllocs()
				var size int
				for b.Loop() {
					size = f.sign(b)
				}
				b.ReportMetric(float64(size), "crl-bytes")
			})
		}
		b.Run(fmt.Sprintf("n=%d/ratio", n), func(b *testing.B) {
			var ours, theirs time.Duration
			timed := func(sign func(*testing.B) int, sum *time.Duration) {
				start := time.Now()
				sign(b)
				*sum += time.Since(start)
			}
			i := 0
			for b.Loop() {
				// Alternate the order, so that neither always pays for
				// the garbage the other left.
				if i%2 == 0 {
					timed(fleetca, &ours)
					timed(bare, &theirs)
				} else {
					timed(bare, &theirs)
					timed(fleetca, &ours)
				}
				i++
			}
			b.ReportMetric(float64(ours)/float64(theirs), "fleetca/bare")
		})
	}
}

// opensslVerifier returns a function that runs `openssl verify
// -crl_check_all` on a certificate against a's root and intermediate and
// the given CRLs (file name -> DER), at testNow plus a minute, and returns
// its combined output.
func opensslVerifier(t *testing.T, openssl string, a *Authority, crls map[string][]byte) func(name string, c *x509.Certificate) ([]byte, error) {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	args := []string{"verify", "-crl_check_all",
		"-attime", fmt.Sprint(testNow.Add(time.Minute).Unix()),
		"-CAfile", write("root.pem", "CERTIFICATE", a.Root().Raw),
		"-untrusted", write("intermediate.pem", "CERTIFICATE", a.Intermediate().Raw),
	}
	for _, name := range slices.Sorted(maps.Keys(crls)) {
		args = append(args, "-CRLfile", write(name, "X509 CRL", crls[name]))
	}
	return func(name string, c *x509.Certificate) ([]byte, error) {
		return exec.CommandContext(t.Context(), openssl, append(slices.Clip(args), write(name+".pem", "CERTIFICATE", c.Raw))...).CombinedOutput()
	}
}
