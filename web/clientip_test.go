package web

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

func TestClientIPExtractor(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []string
		peer    string
		xff     []string // X-Forwarded-For header lines
		realIP  string
		want    string
	}{
		{"no-proxies/no-header", nil, "198.51.100.7:5000", nil, "", "198.51.100.7"},
		{"no-proxies/spoofed-xff", nil, "198.51.100.7:5000", []string{"203.0.113.66"}, "", "198.51.100.7"},
		{"no-proxies/spoofed-real-ip", nil, "198.51.100.7:5000", nil, "203.0.113.66", "198.51.100.7"},
		{"no-proxies/loopback-not-trusted", nil, "127.0.0.1:5000", []string{"203.0.113.66"}, "", "127.0.0.1"},
		{"untrusted-peer/spoofed-xff", []string{"10.0.0.0/8"}, "198.51.100.7:5000", []string{"10.0.0.1, 203.0.113.66"}, "203.0.113.9", "198.51.100.7"},
		{"trusted-proxy/client", []string{"10.0.0.1"}, "10.0.0.1:5000", []string{"198.51.100.7"}, "", "198.51.100.7"},
		{"trusted-proxy/no-header", []string{"10.0.0.1"}, "10.0.0.1:5000", nil, "", "10.0.0.1"},
		{"trusted-proxy/ignores-real-ip", []string{"10.0.0.1"}, "10.0.0.1:5000", nil, "203.0.113.66", "10.0.0.1"},
		{"trusted-chain/right-most-untrusted", []string{"10.0.0.0/8"}, "10.0.0.1:5000", []string{"203.0.113.66, 198.51.100.7, 10.1.2.3"}, "", "198.51.100.7"},
		{"trusted-chain/header-lines", []string{"10.0.0.0/8"}, "10.0.0.1:5000", []string{"203.0.113.66", "198.51.100.7,10.1.2.3"}, "", "198.51.100.7"},
		{"trusted-chain/all-trusted", []string{"10.0.0.0/8"}, "10.0.0.1:5000", []string{"10.9.9.9, 10.1.2.3"}, "", "10.9.9.9"},
		{"trusted-chain/garbage-stops", []string{"10.0.0.0/8"}, "10.0.0.1:5000", []string{"198.51.100.7, evil, 10.1.2.3"}, "", "10.1.2.3"},
		{"trusted-proxy/ipv6", []string{"2001:db8::/32"}, "[2001:db8::1]:443", []string{"[2001:db8:ffff::9], 2001:db8::2"}, "", "2001:db8:ffff::9"},
		{"trusted-proxy/ipv6-client", []string{"2001:db8::1"}, "[2001:db8::1]:443", []string{"2001:db8:1::1, 2001:db8:2::7"}, "", "2001:db8:2::7"},
		{"mapped-peer", []string{"10.0.0.1"}, "[::ffff:10.0.0.1]:5000", []string{"198.51.100.7"}, "", "198.51.100.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trusted, err := parseTrustedProxies(tc.trusted)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if tc.realIP != "" {
				r.Header.Set("X-Real-IP", tc.realIP)
			}
			if got := clientIPExtractor(trusted)(r); got != tc.want {
				t.Errorf("client IP = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTrustedProxiesConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []string
		ok      bool
	}{
		{"ok/empty", nil, true},
		{"ok/ip-and-cidr", []string{"10.0.0.7", "192.168.0.0/16", "2001:db8::/32", "::1"}, true},
		{"fail/hostname", []string{"proxy.example.com"}, false},
		{"fail/bad-cidr", []string{"10.0.0.0/33"}, false},
		{"fail/empty-entry", []string{""}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Config{TrustedProxies: tc.entries}.WithDefaults().Validate()
			if tc.ok != (err == nil) {
				t.Fatalf("Validate(%q) = %v, want ok %v", tc.entries, err, tc.ok)
			}
			if err != nil && !isKind(err, fault.Malformed) {
				t.Errorf("Validate(%q) kind = %v, want Malformed", tc.entries, err)
			}
		})
	}
}

// TestAuditClientAddress: a failed admin login is recorded under the
// connection's address, whatever X-Forwarded-For or X-Real-IP say (issue
// 12, defect 4).
func TestAuditClientAddress(t *testing.T) {
	f := newFixture(t)
	req := httptest.NewRequest("GET", "/v1/admin/devices", nil)
	req.RemoteAddr = "198.51.100.7:40000"
	req.Header.Set("Authorization", "Bearer wrong")
	req.Header.Set("X-Forwarded-For", "203.0.113.66")
	req.Header.Set("X-Real-IP", "203.0.113.67")
	rec := httptest.NewRecorder()
	f.srv.HTTPSHandler().ServeHTTP(rec, req)
	if rec.Code != 401 {
		t.Fatalf("wrong admin token: %d %s, want 401", rec.Code, rec.Body)
	}
	evs, err := f.store.ListAudit(t.Context(), 0, store.MaxPageLimit)
	if err != nil {
		t.Fatal(err)
	}
	var actors []string
	for _, ev := range evs {
		if ev.Action == "admin.auth_failed" {
			actors = append(actors, ev.Actor)
		}
	}
	if strings.Join(actors, ",") != "remote:198.51.100.7" {
		t.Errorf("admin.auth_failed actors = %q, want [remote:198.51.100.7]", actors)
	}
}

// FuzzClientIP: whatever X-Forwarded-For says, the client address is the
// peer's, or (from a trusted peer) an address that parses, and never one
// written left of an untrusted hop's entry when the peer is untrusted.
func FuzzClientIP(f *testing.F) {
	f.Add("198.51.100.7:40000", "203.0.113.66")
	f.Add("10.0.0.1:5000", "203.0.113.66, 198.51.100.7, 10.1.2.3")
	f.Add("10.0.0.1:5000", "[2001:db8::1], evil,, 10.1.2.3")
	f.Add("[::ffff:10.0.0.1]:1", "")
	trusted, err := parseTrustedProxies([]string{"10.0.0.0/8", "::ffff:10.0.0.0/104"})
	if err != nil {
		f.Fatal(err)
	}
	extract := clientIPExtractor(trusted)
	f.Fuzz(func(t *testing.T, peer, xff string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = peer
		r.Header.Set("X-Forwarded-For", xff)
		got := extract(r)
		p, ok := remoteAddr(peer)
		switch {
		case !ok:
			if got != peer {
				t.Fatalf("unparsable peer %q: client %q, want the raw RemoteAddr", peer, got)
			}
		case !trusted[0].Contains(p):
			if got != p.String() {
				t.Fatalf("untrusted peer %q: client %q, want %q", peer, got, p)
			}
		default:
			if _, err := netip.ParseAddr(got); err != nil {
				t.Fatalf("trusted peer %q, X-Forwarded-For %q: client %q does not parse: %v", peer, xff, got, err)
			}
		}
	})
}
