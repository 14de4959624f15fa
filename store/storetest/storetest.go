package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetca/fleetca/store"
)

// Run runs the contract suite. newStore must return a new, empty store
// each time it is called; it is called from parallel subtests, once per
// subtest, and should register its own cleanup (integrity check, Close) on
// the t it is given. Subtests may close the store they are given.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("Issue", func(t *testing.T) { testIssue(t, newStore) })
	t.Run("IssueConcurrent", func(t *testing.T) { testIssueConcurrent(t, newStore) })
	t.Run("Token", func(t *testing.T) { testToken(t, newStore) })
	t.Run("Device", func(t *testing.T) { testDevice(t, newStore) })
	t.Run("Certificate", func(t *testing.T) { testCertificate(t, newStore) })
	t.Run("Revoke", func(t *testing.T) { testRevoke(t, newStore) })
	t.Run("RevokeConcurrent", func(t *testing.T) { testRevokeConcurrent(t, newStore) })
	t.Run("ResetDevice", func(t *testing.T) { testResetDevice(t, newStore) })
	t.Run("Renew", func(t *testing.T) { testRenew(t, newStore) })
	t.Run("RenewRetry", func(t *testing.T) { testRenewRetry(t, newStore) })
	t.Run("RenewConcurrent", func(t *testing.T) { testRenewConcurrent(t, newStore) })
	t.Run("Lineage", func(t *testing.T) { testLineage(t, newStore) })
	t.Run("Supersede", func(t *testing.T) { testSupersede(t, newStore) })
	t.Run("RenewNow", func(t *testing.T) { testRenewNow(t, newStore) })
	t.Run("ListRevocations", func(t *testing.T) { testListRevocations(t, newStore) })
	t.Run("Manufacturer", func(t *testing.T) { testManufacturer(t, newStore) })
	t.Run("ManufacturerIssue", func(t *testing.T) { testManufacturerIssue(t, newStore) })
	t.Run("Admin", func(t *testing.T) { testAdmin(t, newStore) })
	t.Run("Audit", func(t *testing.T) { testAudit(t, newStore) })
	t.Run("AuditTree", func(t *testing.T) { testAuditTree(t, newStore) })
	t.Run("Stats", func(t *testing.T) { testStats(t, newStore) })
	t.Run("QueryDevices", func(t *testing.T) { testQueryDevices(t, newStore) })
	t.Run("QueryAudit", func(t *testing.T) { testQueryAudit(t, newStore) })
	t.Run("NextCounter", func(t *testing.T) { testNextCounter(t, newStore) })
	t.Run("Meta", func(t *testing.T) { testMeta(t, newStore) })
	t.Run("CRLLease", func(t *testing.T) { testCRLLease(t, newStore) })
	t.Run("Changes", func(t *testing.T) { testChanges(t, newStore) })
	t.Run("Close", func(t *testing.T) { testClose(t, newStore) })
	t.Run("Context", func(t *testing.T) { testContext(t, newStore) })
}

// T0 is the suite's "now". Everything is dated relative to it.
var T0 = time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)

const (
	tokenTTL = 24 * time.Hour
	certTTL  = 90 * 24 * time.Hour
)

// bigSerial is 2^130 + 1: longer than 128 bits, as fleetca's serials are.
var bigSerial = new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), 130), big.NewInt(1))

// serial returns n as a serial.
func serial(n int64) *big.Int { return big.NewInt(n) }

// keyHash names a fake public key.
func keyHash(name string) store.KeyHash { return sha256.Sum256([]byte("key:" + name)) }

// newCert returns a certificate for device with the key named key, live
// from T0 for certTTL.
func newCert(n *big.Int, device, key string) store.Certificate {
	return store.Certificate{
		Serial:    n,
		DeviceID:  device,
		KeyHash:   keyHash(key),
		NotBefore: T0.Add(-time.Minute),
		NotAfter:  T0.Add(certTTL),
		IssuedAt:  T0,
		DER:       fmt.Appendf(nil, "fake DER of certificate %x", n),
	}
}

// withCert returns d with the NotAfter and RenewBy that c, its newest
// certificate, gives it (store.Device).
func withCert(d store.Device, c store.Certificate) store.Device {
	d.NotAfter = c.NotAfter
	_, d.RenewBy = store.RenewalWindow(c.NotBefore, c.NotAfter)
	return d
}

// newIssuance returns the issuance of c at T0, without a token or conditions.
func newIssuance(c store.Certificate) store.Issuance {
	return store.Issuance{
		Certificate: c,
		Now:         T0,
		Audit: store.AuditEvent{
			Time:     T0,
			Action:   "certificate.issue",
			Actor:    "device:" + c.DeviceID,
			DeviceID: c.DeviceID,
			Serial:   c.Serial.Text(16),
		},
	}
}

// withToken returns is spending a use of tok.
func withToken(is store.Issuance, tok store.Token) store.Issuance {
	is.Token = tok.Hash
	is.Audit.Actor = "token:" + tok.ID
	is.Audit.TokenID = tok.ID
	return is
}

// newToken returns a pattern token with the ID, created an hour before T0
// and expiring tokenTTL after T0.
func newToken(id string, uses int) store.Token {
	return store.Token{
		ID:            id,
		Hash:          sha256.Sum256([]byte("secret of " + id)),
		DevicePattern: "dev-*",
		Uses:          uses,
		CreatedAt:     T0.Add(-time.Hour),
		ExpiresAt:     T0.Add(tokenTTL),
	}
}

// event returns an audit event at T0.
func event(action, detail string) store.AuditEvent {
	return store.AuditEvent{Time: T0, Action: action, Actor: "admin", Detail: detail}
}

// cmpOpts compares records: big.Int by value (time.Time compares with its
// Equal method by default).
var cmpOpts = cmp.Options{
	cmp.Comparer(func(a, b *big.Int) bool {
		if a == nil || b == nil {
			return a == b
		}
		return a.Cmp(b) == 0
	}),
}

// errAny, as a wanted error, asks for an error that wraps none of the
// store's sentinels: a refused argument.
var errAny = errors.New("any error but a sentinel")

// conditions are the condition errors of Issue, Revoke, Renew and ResetDevice.
var conditions = []error{
	store.ErrTokenExpired, store.ErrTokenUsedUp, store.ErrTokenRevoked, store.ErrDeviceExists,
	store.ErrDeviceRevoked, store.ErrTooManyCertificates, store.ErrKeyInUse, store.ErrKeyBlocked,
	store.ErrAlreadyRevoked, store.ErrNotRevoked, store.ErrCertificateRevoked, store.ErrNotNewest,
	store.ErrRenewedRecently, store.ErrNonceSpent, store.ErrManufacturerCertUsed,
}

// checkErr reports unless err is what want asks for: nil, errAny, or an
// error wrapping want. A condition error must also wrap store.ErrConflict
// and no other condition; store.ErrConflict alone must wrap no condition.
func checkErr(t *testing.T, what string, err, want error) {
	t.Helper()
	switch {
	case want == nil:
		if err != nil {
			t.Errorf("%s error = %v, want nil", what, err)
		}
		return
	case err == nil:
		t.Errorf("%s error = nil, want %v", what, want)
		return
	case want == errAny:
		for _, s := range append([]error{store.ErrNotFound, store.ErrConflict, store.ErrClosed}, conditions...) {
			if errors.Is(err, s) {
				t.Errorf("%s error = %v, want an error wrapping no sentinel", what, err)
			}
		}
		return
	case !errors.Is(err, want):
		t.Errorf("%s error = %v, want one wrapping %v", what, err, want)
		return
	}
	for _, c := range conditions {
		if c != want && errors.Is(err, c) {
			t.Errorf("%s error = %v, want %v and no other condition", what, err, want)
		}
	}
	if isCondition(want) && !errors.Is(err, store.ErrConflict) {
		t.Errorf("%s error = %v, want one wrapping %v too", what, err, store.ErrConflict)
	}
}

func isCondition(err error) bool {
	for _, c := range conditions {
		if err == c {
			return true
		}
	}
	return false
}

// fixture is a new store for one subtest, with helpers that fail the test
// on error.
type fixture struct {
	t   *testing.T
	s   store.Store
	ctx context.Context
}

// newFixture marks t parallel and gives it a new store.
func newFixture(t *testing.T, newStore func(t *testing.T) store.Store) fixture {
	t.Helper()
	t.Parallel()
	return fixture{t: t, s: newStore(t), ctx: t.Context()}
}

func (f fixture) createToken(tok store.Token) store.Token {
	f.t.Helper()
	if err := f.s.CreateToken(f.ctx, tok, event("token.create", tok.ID)); err != nil {
		f.t.Fatalf("CreateToken(%s) error = %v, want nil", tok.ID, err)
	}
	return tok
}

func (f fixture) issue(is store.Issuance) {
	f.t.Helper()
	if err := f.s.Issue(f.ctx, is); err != nil {
		f.t.Fatalf("Issue(%x for %q) error = %v, want nil", is.Certificate.Serial, is.Certificate.DeviceID, err)
	}
}

func (f fixture) token(h store.TokenHash) store.Token {
	f.t.Helper()
	tok, err := f.s.GetToken(f.ctx, h)
	if err != nil {
		f.t.Fatalf("GetToken(%x) error = %v, want nil", h[:4], err)
	}
	return tok
}

func (f fixture) device(id string) store.Device {
	f.t.Helper()
	d, err := f.s.GetDevice(f.ctx, id)
	if err != nil {
		f.t.Fatalf("GetDevice(%q) error = %v, want nil", id, err)
	}
	return d
}

func (f fixture) certs(deviceID string) []store.Certificate {
	f.t.Helper()
	cs, err := f.s.ListCertificates(f.ctx, deviceID, store.Page{Limit: store.MaxPageLimit})
	if err != nil {
		f.t.Fatalf("ListCertificates(%q) error = %v, want nil", deviceID, err)
	}
	return cs
}

func (f fixture) audit() []store.AuditEvent {
	f.t.Helper()
	es, err := f.s.ListAudit(f.ctx, 0, store.MaxPageLimit)
	if err != nil {
		f.t.Fatalf("ListAudit(0) error = %v, want nil", err)
	}
	return es
}

func (f fixture) revoke(r store.RevokeRequest) []store.Revocation {
	f.t.Helper()
	es, err := f.s.Revoke(f.ctx, r)
	if err != nil {
		f.t.Fatalf("Revoke(%s) error = %v, want nil", revokeTarget(r), err)
	}
	return es
}

func (f fixture) revocations() []store.Revocation {
	f.t.Helper()
	es, err := f.s.ListRevocations(f.ctx, 0, store.MaxRevocationLimit)
	if err != nil {
		f.t.Fatalf("ListRevocations(0) error = %v, want nil", err)
	}
	return es
}

func (f fixture) blocked(k store.KeyHash) bool {
	f.t.Helper()
	b, err := f.s.KeyBlocked(f.ctx, k)
	if err != nil {
		f.t.Fatalf("KeyBlocked(%x) error = %v, want nil", k[:4], err)
	}
	return b
}

// snapshot is everything a store shows of its records (for stores of fewer
// than store.MaxPageLimit records of each kind).
type snapshot struct {
	Devices     []store.Device
	Certs       []store.Certificate
	Tokens      []store.Token
	Audit       []store.AuditEvent
	Revocations []store.Revocation
	// Owners maps the keys asked about to their device ("" for none).
	Owners map[store.KeyHash]string
	// Blocked maps the keys asked about to KeyBlocked.
	Blocked map[store.KeyHash]bool
	// FleetRenewNow is the fleet's renew-now time.
	FleetRenewNow time.Time
}

func (f fixture) snapshot(keys ...store.KeyHash) snapshot {
	f.t.Helper()
	all := store.Page{Limit: store.MaxPageLimit}
	var s snapshot
	var err error
	if s.Devices, err = f.s.ListDevices(f.ctx, all); err != nil {
		f.t.Fatalf("ListDevices error = %v, want nil", err)
	}
	if s.Tokens, err = f.s.ListTokens(f.ctx, all); err != nil {
		f.t.Fatalf("ListTokens error = %v, want nil", err)
	}
	s.Certs = f.certs("")
	s.Audit = f.audit()
	s.Revocations = f.revocations()
	if s.FleetRenewNow, err = f.s.FleetRenewNow(f.ctx); err != nil {
		f.t.Fatalf("FleetRenewNow error = %v, want nil", err)
	}
	s.Owners = make(map[store.KeyHash]string)
	s.Blocked = make(map[store.KeyHash]bool)
	for _, k := range keys {
		owner, err := f.s.KeyOwner(f.ctx, k)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			f.t.Fatalf("KeyOwner(%x) error = %v, want nil or ErrNotFound", k[:4], err)
		}
		s.Owners[k] = owner
		s.Blocked[k] = f.blocked(k)
	}
	return s
}

// checkUnchanged reports any difference between the store's records now
// and before.
func (f fixture) checkUnchanged(what string, before snapshot, keys ...store.KeyHash) {
	f.t.Helper()
	if diff := cmp.Diff(before, f.snapshot(keys...), cmpOpts); diff != "" {
		f.t.Errorf("after %s, records changed (-before +after):\n%s", what, diff)
	}
}

// checkSeqs reports unless the audit log's Seq values are 1..n in order.
func (f fixture) checkSeqs(n int) {
	f.t.Helper()
	es := f.audit()
	if len(es) != n {
		f.t.Errorf("audit has %d events, want %d", len(es), n)
	}
	for i, e := range es {
		if e.Seq != uint64(i+1) {
			f.t.Errorf("audit event %d has Seq %d, want %d", i, e.Seq, i+1)
		}
	}
}

// race runs n calls of fn at once and returns their errors by index.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// tally counts errs by the first of wants each wraps (nil for success);
// errors matching none are reported.
func tally(t *testing.T, errs []error, wants ...error) map[error]int {
	t.Helper()
	counts := make(map[error]int)
next:
	for i, err := range errs {
		if err == nil {
			counts[nil]++
			continue
		}
		for _, w := range wants {
			if errors.Is(err, w) {
				counts[w]++
				continue next
			}
		}
		t.Errorf("call %d error = %v, want nil or one of %v", i, err, wants)
	}
	return counts
}
