package enroll

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// testMfrCA is a manufacturer CA made by a test.
type testMfrCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var mfrSerial int64 = 1000

func newMfrCA(t testing.TB, name string) testMfrCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " Factory CA"},
		NotBefore: testStart.AddDate(-1, 0, 0), NotAfter: testStart.AddDate(10, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return testMfrCA{cert: c, key: key}
}

func (m testMfrCA) pem() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: m.cert.Raw}))
}

// issue makes an IDevID with the subject, valid from nb to na, with no EKU
// (as many IDevIDs have) unless eku is given.
func (m testMfrCA) issue(t testing.TB, subject pkix.Name, nb, na time.Time, eku ...x509.ExtKeyUsage) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	mfrSerial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(mfrSerial), Subject: subject, NotBefore: nb, NotAfter: na,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: eku}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, m.cert, key.Public(), m.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func (f *fixture) addMfr(t testing.TB, req ManufacturerRequest) {
	t.Helper()
	if _, err := f.svc.AddManufacturer(t.Context(), req); err != nil {
		t.Fatalf("AddManufacturer(%q): %v", req.Name, err)
	}
}

func TestEnrollWithManufacturer(t *testing.T) {
	acme, other := newMfrCA(t, "Acme"), newMfrCA(t, "Other")
	nb, na := testStart.AddDate(0, -1, 0), testStart.AddDate(5, 0, 0)
	cn := func(s string) pkix.Name { return pkix.Name{CommonName: s, Organization: []string{"Acme"}} }
	sn := func(s string) pkix.Name { return pkix.Name{CommonName: "Acme widget", SerialNumber: s} }
	tests := []struct {
		name    string
		from    string
		pattern string
		leaf    *x509.Certificate
		csrCN   string // "" : the device ID
		want    fault.Kind
		wantID  string
	}{
		{name: "ok/cn", from: "cn", leaf: acme.issue(t, cn("acme-1"), nb, na), wantID: "acme-1"},
		{name: "ok/cn-pattern", from: "cn", pattern: "acme-*", leaf: acme.issue(t, cn("acme-2"), nb, na), wantID: "acme-2"},
		{name: "ok/serial-number", from: "serialNumber", leaf: acme.issue(t, sn("SN0042"), nb, na), wantID: "SN0042"},
		{name: "ok/eku-serverauth-only", from: "cn", leaf: acme.issue(t, cn("acme-3"), nb, na, x509.ExtKeyUsageServerAuth), wantID: "acme-3"},
		{name: "fail/wrong-ca", from: "cn", leaf: other.issue(t, cn("acme-4"), nb, na), want: fault.Unauthorized},
		{name: "fail/pattern", from: "cn", pattern: "acme-*", leaf: acme.issue(t, cn("bolt-1"), nb, na), want: fault.Forbidden},
		{name: "fail/invalid-id", from: "cn", leaf: acme.issue(t, cn("acme 5/x"), nb, na), want: fault.Forbidden},
		{name: "fail/no-serial-number", from: "serialNumber", leaf: acme.issue(t, cn("acme-6"), nb, na), want: fault.Forbidden},
		{name: "fail/expired", from: "cn", leaf: acme.issue(t, cn("acme-7"), nb, testStart.Add(-time.Second)), want: fault.Unauthorized},
		{name: "fail/not-yet-valid", from: "cn", leaf: acme.issue(t, cn("acme-8"), testStart.Add(time.Hour), na), want: fault.Unauthorized},
		{name: "fail/csr-other-device", from: "cn", leaf: acme.issue(t, cn("acme-9"), nb, na), csrCN: "acme-10", want: fault.BadCSR},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			f.addMfr(t, ManufacturerRequest{Name: "acme", CAPEM: acme.pem(), DeviceIDFrom: tc.from, DevicePattern: tc.pattern})
			csrCN := tc.csrCN
			if csrCN == "" {
				csrCN = tc.wantID
			}
			csr, _ := newCSR(t, csrCN)
			res, err := f.svc.EnrollWithManufacturer(t.Context(), []*x509.Certificate{tc.leaf}, csr)
			if got := kindOf(err); got != tc.want || (tc.want == 0 && err != nil) {
				t.Fatalf("EnrollWithManufacturer(%s) kind = %v (err %v), want %v", tc.name, got, err, tc.want)
			}
			if tc.want != 0 {
				if devs, _ := f.store.ListDevices(t.Context(), store.Page{}); len(devs) != 0 {
					t.Errorf("devices after refusal = %v, want none", devs)
				}
				return
			}
			if string(res.DeviceID) != tc.wantID || res.Certificate.Subject.CommonName != tc.wantID {
				t.Errorf("device ID = %q (CN %q), want %q", res.DeviceID, res.Certificate.Subject.CommonName, tc.wantID)
			}
			dev, err := f.store.GetDevice(t.Context(), tc.wantID)
			if err != nil {
				t.Fatal(err)
			}
			if dev.Manufacturer == nil || dev.Manufacturer.Manufacturer != "acme" || dev.Manufacturer.Serial != SerialHex(tc.leaf) {
				t.Errorf("device Manufacturer = %+v, want acme serial %s", dev.Manufacturer, SerialHex(tc.leaf))
			}
			audit, _ := f.store.ListAudit(t.Context(), 0, 0)
			last := audit[len(audit)-1]
			if last.Action != "certificate.issue" || last.Actor != "manufacturer:acme" || !strings.Contains(last.Detail, "manufacturer_serial="+SerialHex(tc.leaf)) {
				t.Errorf("audit row = %+v, want certificate.issue by manufacturer:acme naming manufacturer_serial=%s", last, SerialHex(tc.leaf))
			}
		})
	}
}

// TestManufacturerCertOnce: a manufacturer certificate enrolls once; a
// device reset (after a revocation) allows it once more.
func TestManufacturerCertOnce(t *testing.T) {
	acme := newMfrCA(t, "Acme")
	f := newFixture(t, Config{})
	f.addMfr(t, ManufacturerRequest{Name: "acme", CAPEM: acme.pem(), DeviceIDFrom: "cn"})
	leaf := acme.issue(t, pkix.Name{CommonName: "acme-1"}, testStart.AddDate(0, -1, 0), testStart.AddDate(1, 0, 0))
	enroll := func() error {
		csr, _ := newCSR(t, "acme-1")
		_, err := f.svc.EnrollWithManufacturer(t.Context(), []*x509.Certificate{leaf}, csr)
		return err
	}
	if err := enroll(); err != nil {
		t.Fatalf("first enrollment: %v", err)
	}
	err := enroll()
	if kindOf(err) != fault.Conflict || !errors.Is(err, store.ErrManufacturerCertUsed) {
		t.Fatalf("second enrollment error = %v, want Conflict wrapping ErrManufacturerCertUsed", err)
	}
	if fe, _ := errors.AsType[*fault.Error](err); fe == nil || !strings.Contains(fe.Hint, "reset") {
		t.Errorf("second enrollment hint = %v, want one that says an admin must reset the device", err)
	}
	// Another manufacturer certificate naming the same device.
	other := acme.issue(t, pkix.Name{CommonName: "acme-1"}, testStart.AddDate(0, -1, 0), testStart.AddDate(1, 0, 0))
	csr, _ := newCSR(t, "acme-1")
	if _, err := f.svc.EnrollWithManufacturer(t.Context(), []*x509.Certificate{other}, csr); kindOf(err) != fault.Conflict {
		t.Fatalf("enrollment of acme-1 by another manufacturer certificate kind = %v (%v), want Conflict", kindOf(err), err)
	}
	now := f.clock.Now()
	if _, err := f.store.Revoke(t.Context(), store.RevokeRequest{DeviceID: "acme-1", At: now, Reason: 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.ResetDevice(t.Context(), "acme-1", now, store.AuditEvent{Time: now, Action: "device.reset", Actor: "admin"}); err != nil {
		t.Fatal(err)
	}
	if err := enroll(); err != nil {
		t.Fatalf("enrollment after reset: %v", err)
	}
	if err := enroll(); kindOf(err) != fault.Conflict {
		t.Fatalf("enrollment after the re-enrollment kind = %v, want Conflict", kindOf(err))
	}
}

func TestManufacturerAdmin(t *testing.T) {
	acme := newMfrCA(t, "Acme")
	leafPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE",
		Bytes: acme.issue(t, pkix.Name{CommonName: "x"}, testStart, testStart.AddDate(1, 0, 0)).Raw}))
	tests := []struct {
		name  string
		req   ManufacturerRequest
		want  fault.Kind
		field string
	}{
		{name: "ok/cn", req: ManufacturerRequest{Name: "acme", CAPEM: acme.pem(), DeviceIDFrom: "cn"}},
		{name: "ok/serial-pattern", req: ManufacturerRequest{Name: "acme", CAPEM: acme.pem(), DeviceIDFrom: "serialNumber", DevicePattern: "SN*"}},
		{name: "fail/name", req: ManufacturerRequest{Name: "ac me", CAPEM: acme.pem(), DeviceIDFrom: "cn"}, want: fault.Malformed, field: "name"},
		{name: "fail/no-ca", req: ManufacturerRequest{Name: "acme", CAPEM: "", DeviceIDFrom: "cn"}, want: fault.Malformed, field: "ca"},
		{name: "fail/not-a-ca", req: ManufacturerRequest{Name: "acme", CAPEM: leafPEM, DeviceIDFrom: "cn"}, want: fault.Malformed, field: "ca"},
		{name: "fail/id-from", req: ManufacturerRequest{Name: "acme", CAPEM: acme.pem(), DeviceIDFrom: "ou"}, want: fault.Malformed, field: "device_id_from"},
		{name: "fail/pattern", req: ManufacturerRequest{Name: "acme", CAPEM: acme.pem(), DeviceIDFrom: "cn", DevicePattern: "a/b"}, want: fault.Malformed, field: "device_pattern"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			var told [][]*x509.Certificate
			f.svc.mfrCAs = func(cas []*x509.Certificate) { told = append(told, cas) }
			_, err := f.svc.AddManufacturer(t.Context(), tc.req)
			if got := kindOf(err); got != tc.want {
				t.Fatalf("AddManufacturer kind = %v (%v), want %v", got, err, tc.want)
			}
			if tc.want != 0 {
				if fe, _ := errors.AsType[*fault.Error](err); fe == nil || fe.Field != tc.field {
					t.Errorf("AddManufacturer error %v, want field %q", err, tc.field)
				}
				return
			}
			if len(told) != 1 || len(told[0]) != 1 || !told[0][0].Equal(acme.cert) {
				t.Errorf("ManufacturerCAs told %v, want the acme CA once", told)
			}
			if _, err := f.svc.AddManufacturer(t.Context(), tc.req); kindOf(err) != fault.Conflict {
				t.Errorf("AddManufacturer again kind = %v, want Conflict", kindOf(err))
			}
			if err := f.svc.RemoveManufacturer(t.Context(), "acme"); err != nil {
				t.Fatalf("RemoveManufacturer: %v", err)
			}
			if len(told) != 2 || len(told[1]) != 0 {
				t.Errorf("ManufacturerCAs told %v, want an empty set after the removal", told)
			}
			if err := f.svc.RemoveManufacturer(t.Context(), "acme"); kindOf(err) != fault.NotFound {
				t.Errorf("RemoveManufacturer again kind = %v, want NotFound", kindOf(err))
			}
		})
	}
}

// TestManufacturerReplicas: a manufacturer added or removed through
// replica A (another Service on the same store) reaches replica B's
// Deps.ManufacturerCAs within ManufacturerRefresh while B runs, once per
// change.
func TestManufacturerReplicas(t *testing.T) {
	f := newFixture(t, Config{})
	acme := newMfrCA(t, "Acme")
	var mu sync.Mutex
	var told [][]*x509.Certificate
	b, err := New(Config{TrustDomain: testTrustDomain, RenewURLs: testRenewURLs}, Deps{Store: f.store, CA: f.ca, Now: f.clock.Now,
		ManufacturerCAs: func(cas []*x509.Certificate) { mu.Lock(); defer mu.Unlock(); told = append(told, cas) }})
	if err != nil {
		t.Fatal(err)
	}
	toldB := func() [][]*x509.Certificate {
		mu.Lock()
		defer mu.Unlock()
		return append([][]*x509.Certificate(nil), told...)
	}
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- b.Run(ctx) }()
		synctest.Wait()
		f.addMfr(t, ManufacturerRequest{Name: "acme", CAPEM: acme.pem(), DeviceIDFrom: "cn"})
		time.Sleep(ManufacturerRefresh)
		synctest.Wait()
		if got := toldB(); len(got) != 1 || len(got[0]) != 1 || !got[0][0].Equal(acme.cert) {
			t.Errorf("ManufacturerRefresh after A added acme, B's listener was told %v, want the acme CA once", got)
		}
		time.Sleep(3 * ManufacturerRefresh)
		synctest.Wait()
		if got := toldB(); len(got) != 1 {
			t.Errorf("B's listener was told %d times with no change since the first, want 1", len(got))
		}
		if err := f.svc.RemoveManufacturer(t.Context(), "acme"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(ManufacturerRefresh)
		synctest.Wait()
		if got := toldB(); len(got) != 2 || len(got[1]) != 0 {
			t.Errorf("after A removed acme, B's listener was told %v, want an empty set second", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	})
}
