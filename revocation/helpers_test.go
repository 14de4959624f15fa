package revocation

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/ocsp"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/boltstore"
)

// testNow is where the fixed clock of the Service tests starts: whole
// seconds, because certificates, CRLs and OCSP responses keep only seconds.
var testNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// testPublicURL is the test CA's public URL.
const testPublicURL = "http://127.0.0.1:8080"

// caDir holds one CA for the whole package run (making keys is slow), and
// offlineCADir the same CA without secrets/root.key (the root key taken
// offline after init). Set by TestMain; tests must not change their files.
var caDir, offlineCADir string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "fleetca-revocation-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	caDir, offlineCADir = filepath.Join(tmp, "ca"), filepath.Join(tmp, "ca-offline")
	if _, err := ca.Init(context.Background(), ca.InitOptions{Dir: caDir, Name: "Revocation Test",
		PublicURL: "http://127.0.0.1:8080", Now: testNow.Add(-time.Hour)}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, name := range []string{ca.DefaultRootCert, ca.DefaultIntermediateCert, ca.DefaultIntermediateKey} {
		if err := copyFile(filepath.Join(caDir, name), filepath.Join(offlineCADir, name)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	fi, err := os.Stat(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return err
	}
	return os.WriteFile(to, b, fi.Mode().Perm())
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// fixtureOptions tune newFixture; the zero value is a Service with the
// default Config on the shared CA (root key present) at testNow.
type fixtureOptions struct {
	cfg   Config
	caCfg ca.Config
	// caDir is the CA's data directory; "" means the shared caDir.
	caDir string
	// rootCRLPath is Deps.RootCRLPath; "" means root.crl in a fresh
	// temporary directory.
	rootCRLPath string
	// now replaces the settable clock (for testing/synctest).
	now func() time.Time
}

// fixture is a Service on a real CA and a real bbolt store.
type fixture struct {
	svc   *Service
	st    *boltstore.Store
	ca    *ca.Authority
	clock *clock // nil when fixtureOptions.now was set
	now   func() time.Time
	reg   *prometheus.Registry
	deps  Deps
	cfg   Config
}

func newFixture(t testing.TB, o fixtureOptions) *fixture {
	t.Helper()
	f := &fixture{now: o.now, cfg: o.cfg}
	if f.now == nil {
		f.clock = &clock{t: testNow}
		f.now = f.clock.Now
	}
	dir := o.caDir
	if dir == "" {
		dir = caDir
	}
	authority, err := ca.New(t.Context(), o.caCfg.WithDefaults(), ca.Deps{Dir: dir, PublicURL: testPublicURL,
		TrustDomain: "fleet.test", CRLPartitions: o.cfg.CRLPartitions, Now: f.now})
	if err != nil {
		t.Fatalf("ca.New: %v", err)
	}
	t.Cleanup(func() { authority.Close() })
	f.ca = authority
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "fleetca.db"), boltstore.Options{NoSync: true})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Check(context.WithoutCancel(t.Context())); err != nil {
			t.Errorf("store integrity: %v", err)
		}
		st.Close()
	})
	f.st = st
	if o.rootCRLPath == "" {
		o.rootCRLPath = filepath.Join(t.TempDir(), "root.crl")
	}
	f.reg = prometheus.NewRegistry()
	f.deps = Deps{Store: st, CA: authority, RootCRLPath: o.rootCRLPath, PublicURL: testPublicURL, Now: f.now, Metrics: f.reg}
	f.svc, err = New(t.Context(), o.cfg, f.deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return f
}

// restart returns a new Service over the same store, CA and root CRL file,
// as after a restart of the server: the old Service gives up the CRL lease,
// as Run does when it ends. It registers no metrics.
func (f *fixture) restart(t testing.TB) *Service {
	t.Helper()
	f.svc.releaseLease(t.Context())
	deps := f.deps
	deps.Metrics = nil
	s, err := New(t.Context(), f.cfg, deps)
	if err != nil {
		t.Fatalf("New after a restart: %v", err)
	}
	return s
}

// sign makes a device certificate with a fresh P-256 key without recording
// it: the store does not know it.
func (f *fixture) sign(t testing.TB, deviceID string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := f.ca.SignDevice(t.Context(), ca.DeviceRequest{DeviceID: api.DeviceID(deviceID), PublicKey: key.Public()})
	if err != nil {
		t.Fatalf("SignDevice(%q): %v", deviceID, err)
	}
	return cert
}

// issue signs a device certificate and records it, as enroll does.
func (f *fixture) issue(t testing.TB, deviceID string) *x509.Certificate {
	t.Helper()
	cert := f.sign(t, deviceID)
	now := f.now()
	err := f.st.Issue(t.Context(), store.Issuance{
		Certificate: store.Certificate{Serial: cert.SerialNumber, DeviceID: deviceID, KeyHash: keyHash(cert),
			NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, IssuedAt: now, DER: cert.Raw, Partition: ca.PartitionOf(cert)},
		Now:   now,
		Audit: store.AuditEvent{Time: now, Action: "certificate.issue", Actor: "test", DeviceID: deviceID, Serial: cert.SerialNumber.Text(16)},
	})
	if err != nil {
		t.Fatalf("store.Issue(%q): %v", deviceID, err)
	}
	return cert
}

func keyHash(cert *x509.Certificate) store.KeyHash {
	return sha256.Sum256(cert.RawSubjectPublicKeyInfo)
}

// revoke revokes a certificate, failing the test on error.
func (f *fixture) revoke(t testing.TB, cert *x509.Certificate, reason api.Reason) store.Revocation {
	t.Helper()
	revs, err := f.svc.Revoke(t.Context(), RevokeRequest{Serial: cert.SerialNumber, Reason: reason})
	if err != nil {
		t.Fatalf("Revoke(%x, %v): %v", cert.SerialNumber, reason, err)
	}
	if len(revs) != 1 {
		t.Fatalf("Revoke(%x) returned %d revocations, want 1", cert.SerialNumber, len(revs))
	}
	return revs[0]
}

// respond asks s, failing the test on an error.
func respond(t testing.TB, s *Service, req []byte) *OCSPAnswer {
	t.Helper()
	ans, err := s.RespondOCSP(t.Context(), req)
	if err != nil {
		t.Fatalf("RespondOCSP: %v", err)
	}
	return ans
}

// newOCSPRequest is what a client sends about leaf, with CertID hash h.
func newOCSPRequest(t testing.TB, leaf, issuer *x509.Certificate, h crypto.Hash) []byte {
	t.Helper()
	der, err := ocsp.CreateRequest(leaf, issuer, &ocsp.RequestOptions{Hash: h})
	if err != nil {
		t.Fatalf("ocsp.CreateRequest: %v", err)
	}
	return der
}

// The shape of an OCSPRequest (RFC 6960 §4.1.1) as ocsp.CreateRequest
// writes it (no version, requestor name or signature), plus the request
// extensions it cannot write.
type (
	testOCSPRequest struct {
		TBS testTBSRequest
	}
	testTBSRequest struct {
		RequestList []asn1.RawValue
		Extensions  []pkix.Extension `asn1:"explicit,tag:2,optional"`
	}
)

// withNonce returns req with a nonce extension (RFC 8954) whose Nonce is
// nonce.
func withNonce(t testing.TB, req, nonce []byte) []byte {
	t.Helper()
	value, err := asn1.Marshal(nonce)
	if err != nil {
		t.Fatal(err)
	}
	return withExtensions(t, req, pkix.Extension{Id: oidNonce, Value: value})
}

// withExtensions returns req with the given request extensions.
func withExtensions(t testing.TB, req []byte, exts ...pkix.Extension) []byte {
	t.Helper()
	var r testOCSPRequest
	if rest, err := asn1.Unmarshal(req, &r); err != nil || len(rest) != 0 {
		t.Fatalf("re-read the OCSP request: %v", err)
	}
	r.TBS.Extensions = exts
	der, err := asn1.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// joinRequests returns one OCSP request asking about every certificate of
// the given single requests.
func joinRequests(t testing.TB, reqs ...[]byte) []byte {
	t.Helper()
	var all testOCSPRequest
	for _, req := range reqs {
		var r testOCSPRequest
		if _, err := asn1.Unmarshal(req, &r); err != nil {
			t.Fatal(err)
		}
		all.TBS.RequestList = append(all.TBS.RequestList, r.TBS.RequestList...)
	}
	der, err := asn1.Marshal(all)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// wantKind fails t unless err is a *fault.Error of kind want.
func wantKind(t testing.TB, what string, err error, want fault.Kind) {
	t.Helper()
	got, ok := fault.KindOf(err)
	switch {
	case err == nil:
		t.Errorf("%s error = nil, want kind %v", what, want)
	case !ok:
		t.Errorf("%s error = %v (internal), want kind %v", what, err, want)
	case got != want:
		t.Errorf("%s kind = %v (%v), want %v", what, got, err, want)
	}
}

// metricValue returns the value of the counter or gauge name with the
// given labels in reg, or 0 if there is none.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return 0
}

// parseCRL parses a published device CRL and checks its signature.
func parseCRL(t testing.TB, p *Published, issuer *x509.Certificate) *x509.RevocationList {
	t.Helper()
	rl, err := x509.ParseRevocationList(p.DER)
	if err != nil {
		t.Fatalf("x509.ParseRevocationList: %v", err)
	}
	if err := rl.CheckSignatureFrom(issuer); err != nil {
		t.Fatalf("CRL %v: CheckSignatureFrom(%s) = %v", rl.Number, issuer.Subject.CommonName, err)
	}
	return rl
}

// serials returns the hex serials of a CRL's entries.
func serials(rl *x509.RevocationList) map[string]x509.RevocationListEntry {
	m := map[string]x509.RevocationListEntry{}
	for _, e := range rl.RevokedCertificateEntries {
		m[e.SerialNumber.Text(16)] = e
	}
	return m
}

func hexSerial(n *big.Int) string { return n.Text(16) }
