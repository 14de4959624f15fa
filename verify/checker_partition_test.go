package verify

import (
	"crypto/x509"
	"net/http"
	"testing"
	"time"

	"github.com/fleetca/fleetca/api"
)

func TestPartitionOf(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want int
	}{
		{"https://ca.example.com/crl/0", 0},
		{"https://ca.example.com/crl/15", 15},
		{"https://ca.example.com/pki/crl/255", 255},
		{"https://ca.example.com/crl", -1},
		{"https://ca.example.com/crl/", -1},
		{"https://ca.example.com/crl/256", -1},
		{"https://ca.example.com/crl/007", -1},
		{"https://ca.example.com/crl/-1", -1},
		{"https://ca.example.com/crl/3.pem", -1},
		{"https://ca.example.com/xcrl/3", -1},
		{"https://ca.example.com/crl/partitions", -1},
		{"::not a url", -1},
	} {
		if got := partitionOf(tc.url); got != tc.want {
			t.Errorf("partitionOf(%q) = %d, want %d", tc.url, got, tc.want)
		}
	}
}

// partChecker is a Checker on a fake CA with four partitions: partition p's
// CRL (number 1) revokes serial 0x100+p for p in revoked, the full CRL lists
// them all.
type partChecker struct {
	f     *syncFixture
	c     *Checker
	leafs map[string]*x509.Certificate
}

func newPartChecker(t *testing.T, fullNeeded bool, revoked ...int) *partChecker {
	t.Helper()
	f := newSyncFixture(t)
	f.ca.setPartitions(t, 4, fullNeeded)
	var all []int64
	for p := range 4 {
		var serials []int64
		for _, r := range revoked {
			if r == p {
				serials = append(serials, int64(0x100+p))
			}
		}
		f.ca.set(api.PartitionCRLPath(p), f.pki.partCRL(t, p, 1, serials...))
		all = append(all, serials...)
	}
	f.ca.set(api.CRLPath, f.pki.deviceCRL(t, 1, all...))
	c, err := NewChecker(CheckerConfig{CRL: "http://ca.test:8080", Issuer: f.pki.inter, Grace: new(time.Duration)},
		CheckerDeps{Client: &http.Client{Transport: f.ca}, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	pc := &partChecker{f: f, c: c, leafs: map[string]*x509.Certificate{}}
	for p := range 4 {
		pc.leafs["p"+string(rune('0'+p))+"-revoked"] = f.pki.leaf(t, int64(0x100+p), testPublicURL+api.PartitionCRLPath(p))
		pc.leafs["p"+string(rune('0'+p))+"-good"] = f.pki.leaf(t, int64(0x200+p), testPublicURL+api.PartitionCRLPath(p))
	}
	pc.leafs["legacy-good"] = f.pki.leaf(t, 0x300, testPublicURL+api.CRLPath)
	return pc
}

// want checks each named leaf's refusal (0: accepted).
func (pc *partChecker) want(t *testing.T, want map[string]Refusal) {
	t.Helper()
	for name, w := range want {
		if got := refusal(pc.c.Check(t.Context(), pc.leafs[name])); got != w {
			t.Errorf("Check(%s) refusal = %v, want %v", name, got, w)
		}
	}
}

func TestCheckerPartitions(t *testing.T) {
	pc := newPartChecker(t, false, 1, 3)
	if err := pc.c.Refresh(t.Context()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	pc.want(t, map[string]Refusal{
		"p0-good": 0, "p0-revoked": 0, "p1-good": 0, "p1-revoked": Revoked,
		"p2-good": 0, "p3-good": 0, "p3-revoked": Revoked,
		// No live certificate needs the full CRL, says the CA: one
		// without partition is refused, not let in unchecked.
		"legacy-good": NoData,
	})
	if n := pc.f.ca.served(api.CRLPath); n != 0 {
		t.Errorf("the full CRL was fetched %d times while not needed, want 0", n)
	}

	// A revocation in partition 0: only its CRL is fetched in full again.
	pc.f.ca.set(api.PartitionCRLPath(0), pc.f.pki.partCRL(t, 0, 2, 0x100))
	before := pc.f.ca.served(api.PartitionCRLPath(2))
	if err := pc.c.Refresh(t.Context()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if got := pc.f.ca.served(api.PartitionCRLPath(2)); got != before {
		t.Errorf("partition 2's unchanged CRL was served %d times, want %d", got, before)
	}
	pc.want(t, map[string]Refusal{"p0-revoked": Revoked, "p0-good": 0})

	// The full CRL becomes needed: certificates without partition are
	// checked against it.
	pc.f.ca.setPartitions(t, 4, true)
	if err := pc.c.Refresh(t.Context()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	pc.want(t, map[string]Refusal{"legacy-good": 0, "p1-revoked": Revoked})
}

func TestCheckerPartitionFailsClosedAlone(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(pc *partChecker)
		want Refusal // for partition 2's certificates
	}{
		{"missing", func(pc *partChecker) { delete(pc.f.ca.files, api.PartitionCRLPath(2)) }, NoData},
		// A CRL without IDP claims every certificate: refused.
		{"no-idp", func(pc *partChecker) { pc.f.ca.set(api.PartitionCRLPath(2), pc.f.pki.deviceCRL(t, 1)) }, NoData},
		{"other-partition", func(pc *partChecker) { pc.f.ca.set(api.PartitionCRLPath(2), pc.f.pki.partCRL(t, 1, 1)) }, NoData},
		{"stale", func(pc *partChecker) { pc.f.ca.set(api.PartitionCRLPath(2), pc.f.pki.partCRLValid(t, 2, 1, time.Hour)) }, Stale},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc := newPartChecker(t, false, 1)
			tc.set(pc)
			err := pc.c.Refresh(t.Context())
			if tc.want == Stale {
				if err != nil {
					t.Fatalf("Refresh: %v", err)
				}
				pc.f.clock.Add(2 * time.Hour) // partition 2's CRL is past its nextUpdate, the others are not
			} else if err == nil {
				t.Fatal("Refresh with a bad partition 2 reported no error")
			}
			pc.want(t, map[string]Refusal{"p2-good": tc.want, "p0-good": 0, "p1-revoked": Revoked, "p3-good": 0})
		})
	}
}

// TestCheckerPartitionsUnknown: until the CA's partitions are known, the
// full CRL (every revoked device certificate) answers for all.
func TestCheckerPartitionsUnknown(t *testing.T) {
	pc := newPartChecker(t, false, 1)
	pc.f.ca.set(api.PartitionsPath, []byte("{"))
	if err := pc.c.Refresh(t.Context()); err == nil {
		t.Fatal("Refresh with a broken discovery document reported no error")
	}
	pc.want(t, map[string]Refusal{"p1-revoked": Revoked, "p1-good": 0, "legacy-good": 0})
}

// A CRL the plan stops keeping (here the full CRL, once the CA says no
// live certificate needs it) is not announced stale when its deadline
// passes: that would close every connection of a proxy for a CRL nothing
// relies on.
func TestCheckerDroppedCRLNotStale(t *testing.T) {
	pc := newPartChecker(t, true, 1)
	if err := pc.c.Refresh(t.Context()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	var announced []error
	pc.c.SubscribeStale(func(reason error) { announced = append(announced, reason) })
	full := pc.c.plan.Load().full
	if full == nil || full.crl.Load() == nil {
		t.Fatal("the full CRL is not loaded while the CA says it is needed")
	}
	crl := full.crl.Load()
	pc.f.ca.setPartitions(t, 4, false)
	if err := pc.c.Refresh(t.Context()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	pc.f.clock.Add(crl.NextUpdate.Sub(pc.f.clock.Now()) + time.Hour) // past the full CRL's deadline (grace 0)
	pc.c.staleDue(full, crl)                                         // what its timer would run
	if len(announced) != 0 {
		t.Errorf("the dropped full CRL's deadline announced %v, want nothing", announced)
	}
	pc.c.staleMu.Lock()
	stop := full.staleStop
	pc.c.staleMu.Unlock()
	if stop != nil {
		t.Error("the dropped full CRL's stale timer is still armed")
	}
}
