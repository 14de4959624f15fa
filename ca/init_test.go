package ca

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.step.sm/crypto/x509util"

	"github.com/fleetca/fleetca/internal/fault"
)

func TestInitFiles(t *testing.T) {
	tests := []struct {
		name      string
		password  []byte
		keyHeader string
	}{
		{"ok/unencrypted", nil, "-----BEGIN PRIVATE KEY-----"},
		{"ok/encrypted", []byte("correct horse"), "-----BEGIN ENCRYPTED PRIVATE KEY-----"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, res := initCA(t, KeyECP256, tc.password)
			modes := map[string]fs.FileMode{
				".":                            fs.ModeDir | 0o700,
				"secrets":                      fs.ModeDir | 0o700,
				"secrets/root.key":             0o600,
				"secrets/intermediate.key":     0o600,
				"secrets/step_provisioner.key": 0o600,
				"root.pem":                     0o644,
				"intermediate.pem":             0o644,
			}
			for name, want := range modes {
				fi, err := os.Stat(filepath.Join(dir, name))
				if err != nil {
					t.Fatalf("Stat(%s) error = %v", name, err)
				}
				if got := fi.Mode(); got != want {
					t.Errorf("mode of %s = %v, want %v", name, got, want)
				}
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if diff := cmp.Diff([]string{"audit.pub", "intermediate.pem", "root.pem", "secrets"}, names); diff != "" {
				t.Errorf("files in the data directory (-want +got):\n%s", diff)
			}
			for _, k := range []string{"secrets/root.key", "secrets/intermediate.key", "secrets/step_provisioner.key", "secrets/audit.key"} {
				b, err := os.ReadFile(filepath.Join(dir, k))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(b, []byte(tc.keyHeader)) {
					t.Errorf("%s starts %q, want %q", k, b[:min(len(b), 40)], tc.keyHeader)
				}
			}
			wantCfg := Config{RootCert: "root.pem", IntermediateCert: "intermediate.pem", RootKey: "secrets/root.key", IntermediateKey: "secrets/intermediate.key"}
			if diff := cmp.Diff(wantCfg, res.Config); diff != "" {
				t.Errorf("InitResult.Config (-want +got):\n%s", diff)
			}
			if got, want := res.RootFingerprint, x509util.Fingerprint(res.Root); got != want || len(got) != 64 || strings.ToLower(got) != got {
				t.Errorf("RootFingerprint = %q, want %q (64 lowercase hex)", got, want)
			}
			pemRoot, err := os.ReadFile(filepath.Join(dir, "root.pem"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pemRoot, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: res.Root.Raw})) {
				t.Errorf("root.pem is not InitResult.Root")
			}
		})
	}
}

func TestInitCertificates(t *testing.T) {
	for _, kt := range KeyTypes() {
		t.Run(string(kt), func(t *testing.T) {
			_, res := sharedCA(t, kt)
			root, inter := res.Root, res.Intermediate
			wantSig := map[KeyType]x509.SignatureAlgorithm{
				KeyECP256: x509.ECDSAWithSHA256, KeyECP384: x509.ECDSAWithSHA384,
				KeyRSA3072: x509.SHA256WithRSA, KeyEd25519: x509.PureEd25519,
			}[kt]
			tests := []struct {
				name          string
				cert          *x509.Certificate
				cn            string
				notAfter      time.Time
				maxPathLen    int
				ku            x509.KeyUsage
				crl           []string
				wantSelfIssue bool
			}{
				{"root", root, "Test Fleet Root CA", testNow.AddDate(20, 0, 0), 1,
					x509.KeyUsageCertSign | x509.KeyUsageCRLSign, nil, true},
				{"intermediate", inter, "Test Fleet Intermediate CA", testNow.AddDate(5, 0, 0), 0,
					x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
					[]string{testPublicURL + "/root.crl"}, false},
			}
			for _, tc := range tests {
				c := tc.cert
				if c.Subject.CommonName != tc.cn || !slicesEqual(c.Subject.Organization, []string{testName}) || len(c.Subject.Names) != 2 {
					t.Errorf("%s subject = %v, want CN=%s, O=%s", tc.name, c.Subject, tc.cn, testName)
				}
				if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != tc.maxPathLen || (tc.maxPathLen == 0) != c.MaxPathLenZero {
					t.Errorf("%s basic constraints = CA %v, pathlen %d (zero %v), want CA, pathlen %d",
						tc.name, c.IsCA, c.MaxPathLen, c.MaxPathLenZero, tc.maxPathLen)
				}
				if c.KeyUsage != tc.ku {
					t.Errorf("%s key usage = %b, want %b", tc.name, c.KeyUsage, tc.ku)
				}
				if !c.NotBefore.Equal(testNow.Add(-time.Minute)) || !c.NotAfter.Equal(tc.notAfter) {
					t.Errorf("%s validity = %v to %v, want %v to %v", tc.name, c.NotBefore, c.NotAfter, testNow.Add(-time.Minute), tc.notAfter)
				}
				if c.SignatureAlgorithm != wantSig {
					t.Errorf("%s signature algorithm = %v, want %v", tc.name, c.SignatureAlgorithm, wantSig)
				}
				if len(c.SubjectKeyId) != 20 {
					t.Errorf("%s subject key ID = %x, want 20 bytes", tc.name, c.SubjectKeyId)
				}
				if !slicesEqual(c.CRLDistributionPoints, tc.crl) {
					t.Errorf("%s CRL distribution points = %q, want %q", tc.name, c.CRLDistributionPoints, tc.crl)
				}
				if s := c.SerialNumber; s.Sign() <= 0 || s.BitLen() > 159 || s.BitLen() < 128 {
					t.Errorf("%s serial %x: want positive, 128 to 159 bits", tc.name, s)
				}
			}
			if err := root.CheckSignatureFrom(root); err != nil {
				t.Errorf("root is not self-signed: %v", err)
			}
			if err := inter.CheckSignatureFrom(root); err != nil {
				t.Errorf("intermediate is not signed by the root: %v", err)
			}
			if !bytes.Equal(inter.AuthorityKeyId, root.SubjectKeyId) {
				t.Errorf("intermediate AKI = %x, want root SKI %x", inter.AuthorityKeyId, root.SubjectKeyId)
			}
		})
	}
}

func slicesEqual(a, b []string) bool { return cmp.Equal(a, b, cmpEmpty) }

var cmpEmpty = cmp.FilterValues(func(a, b []string) bool { return len(a) == 0 && len(b) == 0 }, cmp.Ignore())

func TestInitRefusesExistingCA(t *testing.T) {
	dir, first := initCA(t, KeyECP256, nil)
	before := readTree(t, dir)
	_, err := Init(t.Context(), InitOptions{Dir: dir, Name: "Other", Now: testNow})
	wantKind(t, "second Init", err, fault.Conflict)
	var fe *fault.Error
	if errors.As(err, &fe) && fe.Hint == "" {
		t.Errorf("second Init fault has no hint")
	}
	if diff := cmp.Diff(before, readTree(t, dir)); diff != "" {
		t.Errorf("second Init changed the data directory (-before +after):\n%s", diff)
	}
	a, err := New(t.Context(), Config{}, testDeps(dir))
	if err != nil {
		t.Fatalf("New after second Init: %v", err)
	}
	defer a.Close()
	if a.RootFingerprint() != first.RootFingerprint {
		t.Errorf("root changed after a refused Init")
	}
}

func TestInitRefusesPartialCA(t *testing.T) {
	// A lone key left by someone: Init must not overwrite it either.
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets", "intermediate.key"), []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Init(t.Context(), InitOptions{Dir: dir, Name: testName, Now: testNow})
	wantKind(t, "Init", err, fault.Conflict)
	if _, err := os.Stat(filepath.Join(dir, "root.pem")); err == nil {
		t.Errorf("Init wrote root.pem next to an existing key")
	}
}

func TestInitInvalid(t *testing.T) {
	tests := []struct {
		name string
		opts InitOptions
	}{
		{"fail/no-name", InitOptions{}},
		{"fail/long-name", InitOptions{Name: strings.Repeat("x", 49)}},
		{"fail/control-char", InitOptions{Name: "a\nb"}},
		{"fail/space", InitOptions{Name: " a"}},
		{"fail/key-type", InitOptions{Name: testName, KeyType: "rsa-1024"}},
		{"fail/empty-password", InitOptions{Name: testName, Password: []byte{}}},
		{"fail/public-url", InitOptions{Name: testName, PublicURL: "ftp://x"}},
		{"fail/no-dir", InitOptions{Name: testName, Dir: "-"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			opts := tc.opts
			if opts.Dir == "-" {
				opts.Dir = ""
			} else {
				opts.Dir = dir
			}
			opts.Now = testNow
			_, err := Init(t.Context(), opts)
			wantKind(t, "Init", err, fault.Malformed)
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("Init created %s despite the error", dir)
			}
		})
	}
	ok := InitOptions{Dir: filepath.Join(t.TempDir(), "data"), Name: strings.Repeat("x", 48), Now: testNow}
	if _, err := Init(t.Context(), ok); err != nil {
		t.Errorf("Init with a 48-character name: %v", err)
	}
}

func TestInitCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	dir := filepath.Join(t.TempDir(), "data")
	_, err := Init(ctx, InitOptions{Dir: dir, Name: testName, Now: testNow})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Init(canceled) error = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "root.pem")); err == nil {
		t.Errorf("canceled Init wrote root.pem")
	}
}

// readTree returns every file under dir with its mode and contents.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		v := fi.Mode().String()
		if !d.IsDir() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		}
		out[p] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
