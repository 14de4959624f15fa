package enroll

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/boltstore"
)

// testTrustDomain matches the fixtures in ../testdata.
const testTrustDomain = "fleet.test"

var testStart = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is a Service on a real CA and a real bbolt store.
type fixture struct {
	svc   *Service
	store *boltstore.Store
	clock *clock
	ca    *ca.Authority
	reg   *prometheus.Registry

	mu      sync.Mutex
	revoked []store.Revocation // what Deps.Revoked was told
}

// testRenewURLs are the renew URLs of the fixtures' HTTPS listener.
var testRenewURLs = []string{"https://ca.fleet.test:8443/v1/renew", "https://127.0.0.1:8443/v1/renew"}

// told returns what Deps.Revoked was told so far.
func (f *fixture) told() []store.Revocation {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]store.Revocation(nil), f.revoked...)
}

// caDir holds one CA for the whole package run (making keys is slow); set
// by TestMain.
var caDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fleetca-enroll-test-")
	if err != nil {
		panic(err)
	}
	if _, err := ca.Init(context.Background(), ca.InitOptions{Dir: dir, Name: "Enroll Test", Now: testStart.Add(-time.Hour)}); err != nil {
		panic(err)
	}
	caDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func newFixture(t testing.TB, cfg Config) *fixture {
	t.Helper()
	dir := caDir
	clk := &clock{t: testStart}
	authority, err := ca.New(t.Context(), ca.Config{}.WithDefaults(), ca.Deps{Dir: dir, PublicURL: "http://127.0.0.1:8080",
		TrustDomain: testTrustDomain, Now: clk.Now})
	if err != nil {
		t.Fatalf("ca.New: %v", err)
	}
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
	cfg.TrustDomain = testTrustDomain
	if cfg.RenewURLs == nil {
		cfg.RenewURLs = testRenewURLs
	}
	f := &fixture{store: st, clock: clk, ca: authority, reg: prometheus.NewRegistry()}
	svc, err := New(cfg, Deps{Store: st, CA: authority, Now: clk.Now, Metrics: f.reg,
		Revoked: func(_ context.Context, revs []store.Revocation) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.revoked = append(f.revoked, revs...)
		}})
	if err != nil {
		t.Fatalf("enroll.New: %v", err)
	}
	f.svc = svc
	return f
}

// token mints a token, failing the test on error.
func (f *fixture) token(t testing.TB, req TokenRequest) (Secret, store.Token) {
	t.Helper()
	s, tok, err := f.svc.CreateToken(t.Context(), req)
	if err != nil {
		t.Fatalf("CreateToken(%+v): %v", req, err)
	}
	return s, tok
}

// spent returns how many uses of the token are spent.
func (f *fixture) spent(t *testing.T, s Secret) int {
	t.Helper()
	tok, err := f.store.GetToken(t.Context(), hashSecret(s))
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	return tok.Spent
}

// readCSR returns the DER of a fixture in ../testdata.
func readCSR(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s is not PEM", name)
	}
	return block.Bytes
}

// newCSR makes a P-256 CSR with the given CN (and returns its key).
func newCSR(t testing.TB, cn string) ([]byte, crypto.Signer) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return csrFor(t, key, cn), key
}

func csrFor(t testing.TB, key crypto.Signer, cn string) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// kindOf returns the fault kind of err, or 0 for an internal error or nil.
func kindOf(err error) fault.Kind {
	var fe *fault.Error
	if errors.As(err, &fe) {
		return fe.Kind
	}
	return 0
}
