package ca

import (
	"context"
	"crypto"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.step.sm/crypto/keyutil"

	"github.com/fleetca/fleetca/internal/fault"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// testNow is the fixed clock of every test: whole seconds, because
// certificates keep only seconds.
var testNow = time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)

const (
	testName        = "Test Fleet"
	testPublicURL   = "http://ca.example.net:8080"
	testTrustDomain = "fleet.example.net"
)

func fixedNow() time.Time { return testNow }

// testDeps returns Deps for a CA in dir, with the fixed clock.
func testDeps(dir string) Deps {
	return Deps{
		Dir:         dir,
		PublicURL:   testPublicURL,
		TrustDomain: testTrustDomain,
		Now:         fixedNow,
	}
}

// initCA runs Init in a fresh directory and returns the directory.
func initCA(t testing.TB, kt KeyType, password []byte) (string, *InitResult) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	res, err := Init(t.Context(), InitOptions{Dir: dir, Name: testName, KeyType: kt, Password: password, PublicURL: testPublicURL, Now: testNow})
	if err != nil {
		t.Fatalf("Init(%s) error = %v", kt, err)
	}
	return dir, res
}

// sharedCAs holds one unencrypted CA per key type for tests that only read
// its files; RSA-3072 key generation is too slow to repeat. Made on first
// use, under sharedRoot, removed by TestMain.
var (
	sharedRoot  string
	sharedMu    sync.Mutex
	sharedDirs  = map[KeyType]string{}
	sharedInits = map[KeyType]*InitResult{}
)

func TestMain(m *testing.M) {
	flag.Parse()
	var err error
	sharedRoot, err = os.MkdirTemp("", "fleetca-ca-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(sharedRoot)
	os.Exit(code)
}

// sharedCA returns the directory of the shared CA of type kt. Tests must
// not change its files.
func sharedCA(t testing.TB, kt KeyType) (string, *InitResult) {
	t.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if dir, ok := sharedDirs[kt]; ok {
		return dir, sharedInits[kt]
	}
	dir := filepath.Join(sharedRoot, string(kt))
	res, err := Init(context.Background(), InitOptions{Dir: dir, Name: testName, KeyType: kt, PublicURL: testPublicURL, Now: testNow})
	if err != nil {
		t.Fatalf("Init(%s) error = %v", kt, err)
	}
	sharedDirs[kt], sharedInits[kt] = dir, res
	return dir, res
}

// newAuthority loads the shared CA of type kt.
func newAuthority(t testing.TB, kt KeyType) *Authority {
	t.Helper()
	dir, _ := sharedCA(t, kt)
	a, err := New(t.Context(), Config{}, testDeps(dir))
	if err != nil {
		t.Fatalf("New(%s) error = %v", kt, err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// deviceKeyTypes are the device keys the contract accepts
// (docs/ARCHITECTURE.md), by name.
var deviceKeyTypes = []string{"ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "ed25519"}

// deviceKeys caches one key per device key type.
var (
	deviceKeyMu sync.Mutex
	deviceKeys  = map[string]crypto.Signer{}
)

func deviceKey(t testing.TB, name string) crypto.Signer {
	t.Helper()
	deviceKeyMu.Lock()
	defer deviceKeyMu.Unlock()
	if k, ok := deviceKeys[name]; ok {
		return k
	}
	var (
		k   crypto.Signer
		err error
	)
	switch name {
	case "ec-p256":
		k, err = keyutil.GenerateSigner("EC", "P-256", 0)
	case "ec-p384":
		k, err = keyutil.GenerateSigner("EC", "P-384", 0)
	case "rsa-2048":
		k, err = keyutil.GenerateSigner("RSA", "", 2048)
	case "rsa-3072":
		k, err = keyutil.GenerateSigner("RSA", "", 3072)
	case "ed25519":
		k, err = keyutil.GenerateSigner("OKP", "Ed25519", 0)
	default:
		t.Fatalf("unknown device key type %q", name)
	}
	if err != nil {
		t.Fatalf("generate %s: %v", name, err)
	}
	deviceKeys[name] = k
	return k
}

// wantKind fails t unless err is a *fault.Error of kind want.
func wantKind(t testing.TB, what string, err error, want fault.Kind) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s error = nil, want kind %v", what, want)
	}
	got, ok := fault.KindOf(err)
	if !ok {
		t.Fatalf("%s error = %v (internal), want kind %v", what, err, want)
	}
	if got != want {
		t.Fatalf("%s kind = %v (%v), want %v", what, got, err, want)
	}
	if !errors.Is(err, &fault.Error{Kind: want}) {
		t.Fatalf("errors.Is(%v, kind %v) = false", err, want)
	}
}
