package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fleetca/fleetca/verify"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // a part of the error; "" for none
	}{
		{"ok/http", Config{Upstream: "http://127.0.0.1:8000"}, ""},
		{"ok/https-prefix", Config{Upstream: "https://svc.internal/api"}, ""},
		{"ok/tcp-proxy-protocol", Config{Upstream: "tcp://127.0.0.1:1883", ProxyProtocol: true}, ""},
		{"ok/limits", Config{Upstream: "tcp://[::1]:1883", HandshakeTimeout: time.Minute, MaxHeaderBytes: 4096}, ""},
		{"fail/no-upstream", Config{}, "proxy.upstream is required"},
		{"fail/scheme", Config{Upstream: "ftp://x:21"}, "scheme"},
		{"fail/no-host", Config{Upstream: "http://"}, "no host"},
		{"fail/credentials", Config{Upstream: "http://u:p@x"}, "credentials"},
		{"fail/tcp-no-port", Config{Upstream: "tcp://127.0.0.1"}, "host:port"},
		{"fail/tcp-path", Config{Upstream: "tcp://127.0.0.1:1883/x"}, "no path"},
		{"fail/proxy-protocol-http", Config{Upstream: "http://x:80", ProxyProtocol: true}, "proxy_protocol"},
		{"fail/handshake-timeout", Config{Upstream: "http://x", HandshakeTimeout: time.Millisecond}, "handshake_timeout"},
		{"fail/idle-timeout", Config{Upstream: "http://x", IdleTimeout: 48 * time.Hour}, "idle_timeout"},
		{"fail/max-header-bytes", Config{Upstream: "http://x", MaxHeaderBytes: 100}, "max_header_bytes"},
		{"fail/verify-cache", Config{Upstream: "http://x", VerifyCacheSize: -1}, "verify_cache_size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Validate() = %v, want an error about %q", err, tc.wantErr)
			}
		})
	}
	if err := (Config{Upstream: "http://x"}).WithDefaults().Validate(); err != nil {
		t.Errorf("the defaults do not validate: %v", err)
	}
}

func TestNewRequiresDeps(t *testing.T) {
	pki := newPKI(t, "Fleet")
	cert := pki.server(t, "proxy")
	full := Deps{Roots: pki.roots, Certificate: &cert, Checker: newFakeChecker()}
	tests := []struct {
		name string
		mod  func(*Deps)
	}{
		{"no-roots", func(d *Deps) { d.Roots = nil }},
		{"no-certificate", func(d *Deps) { d.Certificate = nil }},
		{"no-key", func(d *Deps) { d.Certificate = &tls.Certificate{Certificate: cert.Certificate} }},
		{"no-checker", func(d *Deps) { d.Checker = nil }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := full
			tc.mod(&d)
			if _, err := New(Config{Upstream: "http://x"}, d); err == nil {
				t.Error("New = nil error, want one")
			}
		})
	}
	if _, err := New(Config{Upstream: "http://x"}, full); err != nil {
		t.Errorf("New with every dependency = %v", err)
	}
}

func TestXFCCElement(t *testing.T) {
	rdn := func(oid asn1.ObjectIdentifier, v string) pkix.RelativeDistinguishedNameSET {
		return pkix.RelativeDistinguishedNameSET{{Type: oid, Value: v}}
	}
	cn, o := asn1.ObjectIdentifier{2, 5, 4, 3}, asn1.ObjectIdentifier{2, 5, 4, 10}
	subject := func(rdns ...pkix.RelativeDistinguishedNameSET) []byte {
		b, err := asn1.Marshal(pkix.RDNSequence(rdns))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name        string
		rawSubject  []byte
		uris        []string
		wantSubject string
		wantURIs    string
	}{
		{"plain", subject(rdn(o, "Fleet"), rdn(cn, "dev-1")), []string{"spiffe://fleet.test/device/dev-1"},
			`"CN=dev-1,O=Fleet"`, ";URI=spiffe://fleet.test/device/dev-1"},
		{"rdn-order-kept", subject(rdn(cn, "dev-1"), rdn(o, "Fleet")), nil, `"O=Fleet,CN=dev-1"`, ""},
		{"quote-and-comma", subject(rdn(cn, `a"b,c`)), nil, `"CN=a\"b\,c"`, ""},
		{"control-bytes", subject(rdn(cn, "a\r\nb")), nil, `"CN=a\0d\0ab"`, ""},
		{"uri-with-separators", subject(rdn(cn, "d")), []string{"urn:x;a=b", "spiffe://t/d"}, `"CN=d"`, `;URI="urn:x;a=b";URI=spiffe://t/d`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			leaf := &x509.Certificate{Raw: []byte(tc.name), RawSubject: tc.rawSubject}
			for _, u := range tc.uris {
				pu, err := url.Parse(u)
				if err != nil {
					t.Fatal(err)
				}
				leaf.URIs = append(leaf.URIs, pu)
			}
			want := fmt.Sprintf("Hash=%x;Subject=%s%s", sha256.Sum256(leaf.Raw), tc.wantSubject, tc.wantURIs)
			if got := xfccElement(leaf); got != want {
				t.Errorf("xfccElement\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestIsIdentityHeader(t *testing.T) {
	for _, k := range []string{"X-Device-Id", "x-device-id", "X_DEVICE_ID", "X-Client-Cert-Serial", "x_client_cert_serial",
		"X-Forwarded-Client-Cert", "X-FORWARDED_CLIENT-CERT", "X-Device-Key-Id", "x_device_key_id"} {
		if !isIdentityHeader(k) {
			t.Errorf("isIdentityHeader(%q) = false, want true", k)
		}
	}
	for _, k := range []string{"X-Device-Ix", "X-Device-Idx", "X-Client-Cert", "Forwarded", "", "X-Forwarded-Client-Certs", "X-Device-Key-Ix"} {
		if isIdentityHeader(k) {
			t.Errorf("isIdentityHeader(%q) = true, want false", k)
		}
	}
}

// crlChecker is a fakeChecker that also reports a CRL, as
// verify.Checker does.
type crlChecker struct {
	*fakeChecker
	crl *verify.CRL
}

func (c crlChecker) CurrentCRL() *verify.CRL { return c.crl }

func TestCRLAgeMetric(t *testing.T) {
	pki := newPKI(t, "Fleet")
	cert := pki.server(t, "proxy")
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { return now }

	withCRL := &crlChecker{fakeChecker: newFakeChecker()}
	reg := prometheus.NewRegistry()
	if _, err := New(Config{Upstream: "http://x"}, Deps{Roots: pki.roots, Certificate: &cert, Checker: withCRL, Metrics: reg, Now: clock}); err != nil {
		t.Fatal(err)
	}
	age := func() float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "fleetca_proxy_crl_age_seconds" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("no fleetca_proxy_crl_age_seconds")
		return 0
	}
	if got := age(); !math.IsInf(got, 1) {
		t.Errorf("CRL age before a CRL = %v, want +Inf", got)
	}
	withCRL.crl = &verify.CRL{ThisUpdate: now.Add(-90 * time.Second), NextUpdate: now.Add(time.Hour)}
	if got := age(); got != 90 {
		t.Errorf("CRL age = %v, want 90", got)
	}

	plain := prometheus.NewRegistry()
	if _, err := New(Config{Upstream: "http://x"}, Deps{Roots: pki.roots, Certificate: &cert, Checker: newFakeChecker(), Metrics: plain}); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(plain, "fleetca_proxy_crl_age_seconds"); err != nil || n != 0 {
		t.Errorf("CRL age series without a CRL source: %d (%v), want 0", n, err)
	}
}

func TestVerifyCacheBounded(t *testing.T) {
	c := newVerifyCache(2)
	now := time.Now()
	for i := range 5 {
		c.add([32]byte{byte(i)}, now.Add(-time.Hour), now.Add(time.Hour))
	}
	if len(c.m) != 2 {
		t.Errorf("cache holds %d entries, want at most 2", len(c.m))
	}
	c.add([32]byte{9}, now.Add(-time.Hour), now.Add(time.Minute))
	if !c.valid([32]byte{9}, now) {
		t.Error("an entry in its validity is not valid")
	}
	if c.valid([32]byte{9}, now.Add(2*time.Minute)) {
		t.Error("an entry past its chain's NotAfter is still valid")
	}
}

func TestConnSet(t *testing.T) {
	s := newConnSet()
	conn := func() *trackedConn {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		return s.add(t.Context(), a)
	}
	a, b, c, other := conn(), conn(), conn(), conn()
	epoch := s.currentEpoch()
	for _, x := range []*trackedConn{a, b, c} {
		if open, recheck := s.register(x, "serial-1", epoch); !open || recheck {
			t.Fatalf("register = %v, %v; want true, false", open, recheck)
		}
	}
	if open, _ := s.register(other, "serial-2", epoch); !open {
		t.Fatal("register other = not open")
	}
	b.Close() // the middle of serial-1's list
	if got := s.openCount(); got != 3 {
		t.Errorf("open = %d, want 3", got)
	}
	if n := s.closeSerial("serial-1"); n != 2 {
		t.Errorf("closeSerial = %d, want 2 (a and c)", n)
	}
	if n := s.closeSerial("serial-1"); n != 0 {
		t.Errorf("closeSerial again = %d, want 0", n)
	}
	// Closing a connection ends its context (the fast path's signal to
	// interrupt its upstream exchange); the others' go on.
	for _, x := range []*trackedConn{a, b, c} {
		if cause := context.Cause(x.ctx); cause != errConnClosed {
			t.Errorf("a closed connection's context cause = %v, want %v", cause, errConnClosed)
		}
	}
	if err := other.ctx.Err(); err != nil {
		t.Errorf("an open connection's context error = %v, want none", err)
	}
	if got := s.openCount(); got != 1 {
		t.Errorf("open = %d, want 1", got)
	}
	// A serial closed while a handshake ran: register says to check again.
	late := conn()
	if open, recheck := s.register(late, "serial-3", epoch); !open || !recheck {
		t.Errorf("register after a closeSerial = %v, %v; want true, true", open, recheck)
	}
	// A connection closed before its handshake ended is not registered.
	gone := conn()
	gone.Close()
	if open, _ := s.register(gone, "serial-4", s.currentEpoch()); open {
		t.Error("register of a closed connection = open")
	}
	s.stop()
	if open, _ := s.register(conn(), "serial-5", s.currentEpoch()); open {
		t.Error("register after stop = open")
	}
	if n := s.closeWhere(func(*trackedConn) bool { return true }); n != 3 {
		t.Errorf("closeWhere(all) = %d, want 3 (other, late, the unregistered one)", n)
	}
	if len(s.all) != 0 || len(s.bySerial) != 0 || s.openCount() != 0 {
		t.Errorf("after closing all: %d tracked, %d serials, %d open; want none", len(s.all), len(s.bySerial), s.openCount())
	}
}

// openCount is the number of connections s counts as open.
func (s *connSet) openCount() int64 { return s.open.Load() }
