package verify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
)

// syncPKI is a root and an intermediate made for the Syncer tests, with
// their keys, so that the tests can sign any CRL they need.
type syncPKI struct {
	root, inter       *x509.Certificate
	rootKey, interKey crypto.Signer
}

func newSyncPKI(t testing.TB) *syncPKI {
	t.Helper()
	mk := func(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	rk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ik, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := func(cn string, serial int64) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(24 * 365 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	}
	root := mk(ca("sync test root", 1), ca("sync test root", 1), rk.Public(), rk)
	inter := mk(ca("sync test intermediate", 2), root, ik.Public(), rk)
	return &syncPKI{root: root, inter: inter, rootKey: rk, interKey: ik}
}

// crl signs a CRL numbered number, valid from thisUpdate for validity,
// listing the serials.
func (p *syncPKI) crl(t testing.TB, issuer *x509.Certificate, key crypto.Signer, number int64, thisUpdate time.Time, validity time.Duration, serials ...int64) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: thisUpdate, NextUpdate: thisUpdate.Add(validity)}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: big.NewInt(s), RevocationTime: thisUpdate.Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, issuer, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func (p *syncPKI) deviceCRL(t testing.TB, number int64, serials ...int64) []byte {
	return p.crl(t, p.inter, p.interKey, number, testNow, 24*time.Hour, serials...)
}

func (p *syncPKI) rootCRL(t testing.TB, number int64) []byte {
	return p.crl(t, p.root, p.rootKey, number, testNow, 30*24*time.Hour)
}

// fakeCA answers GET /crl and /root.crl from memory, with ETags, through
// an http.RoundTripper: no sockets, so the tests also run in a synctest
// bubble.
type fakeCA struct {
	mu    sync.Mutex
	files map[string][]byte // path -> body; absent is a 404
	down  bool
	gets  map[string]int // path -> 200 answers
	// The revocation feed: its entries' serials (seq = index+1), and a
	// channel closed (and replaced) when one is added.
	feed        []string
	feedChanged chan struct{}
}

func newFakeCA() *fakeCA {
	return &fakeCA{files: map[string][]byte{}, gets: map[string]int{}, feedChanged: make(chan struct{})}
}

// revoke announces serial on the feed.
func (f *fakeCA) revoke(serial string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.feed = append(f.feed, serial)
	close(f.feedChanged)
	f.feedChanged = make(chan struct{})
}

// serveFeed answers GET /v1/revocations?since=N as the CA does: at once
// if there are entries after N, else when one is added (or the request
// ends).
func (f *fakeCA) serveFeed(req *http.Request) (*http.Response, error) {
	since, err := strconv.Atoi(req.URL.Query().Get("since"))
	if err != nil {
		return nil, err
	}
	for {
		f.mu.Lock()
		entries, changed := f.feed[min(since, len(f.feed)):], f.feedChanged
		f.mu.Unlock()
		if len(entries) > 0 {
			var out struct {
				Revocations []api.FeedEntry `json:"revocations"`
			}
			for i, s := range entries {
				out.Revocations = append(out.Revocations, api.FeedEntry{Seq: uint64(since + i + 1), Serial: s})
			}
			b, _ := json.Marshal(out)
			return &http.Response{StatusCode: 200, Status: "200 OK", Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(b)), Request: req}, nil
		}
		select {
		case <-changed:
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
	}
}

func (f *fakeCA) set(path string, b []byte) { f.mu.Lock(); defer f.mu.Unlock(); f.files[path] = b }
func (f *fakeCA) setDown(down bool)         { f.mu.Lock(); defer f.mu.Unlock(); f.down = down }
func (f *fakeCA) served(path string) int    { f.mu.Lock(); defer f.mu.Unlock(); return f.gets[path] }

func (f *fakeCA) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path == "/v1/revocations" {
		return f.serveFeed(req)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, errors.New("connection refused")
	}
	resp := &http.Response{StatusCode: http.StatusNotFound, Status: "404 Not Found", Header: http.Header{},
		Body: io.NopCloser(strings.NewReader("")), Request: req}
	b, ok := f.files[req.URL.Path]
	if !ok {
		return resp, nil
	}
	sum := sha256.Sum256(b)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	resp.Header.Set("ETag", etag)
	if req.Header.Get("If-None-Match") == etag {
		resp.StatusCode, resp.Status = http.StatusNotModified, "304 Not Modified"
		return resp, nil
	}
	f.gets[req.URL.Path]++
	resp.StatusCode, resp.Status = http.StatusOK, "200 OK"
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}

// syncFixture is a Syncer on a fake CA, with a clock and a reload hook
// that records what it was given.
type syncFixture struct {
	pki     *syncPKI
	ca      *fakeCA
	out     string
	clock   *clock
	mu      sync.Mutex // guards reloads and failRel: Run reloads on its own goroutine
	reloads [][]byte
	failRel error
}

func (f *syncFixture) reloadCount() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.reloads) }

func newSyncFixture(t testing.TB) *syncFixture {
	f := &syncFixture{pki: newSyncPKI(t), ca: newFakeCA(), out: filepath.Join(t.TempDir(), "crl.pem"), clock: &clock{t: testNow}}
	f.ca.set("/crl", f.pki.deviceCRL(t, 1))
	f.ca.set("/root.crl", f.pki.rootCRL(t, 1))
	return f
}

func (f *syncFixture) syncer(t testing.TB) *Syncer { return f.syncerWith(t, SyncConfig{}) }

// syncerWith is syncer with cfg's Feed.
func (f *syncFixture) syncerWith(t testing.TB, cfg SyncConfig) *Syncer {
	t.Helper()
	s, err := NewSyncer(SyncConfig{URL: "http://ca.test:8080/", Issuers: []*x509.Certificate{f.pki.inter, f.pki.root}, Out: f.out, Feed: cfg.Feed},
		SyncDeps{Client: &http.Client{Transport: f.ca}, Now: f.clock.Now, Reload: func(_ context.Context, pem []byte) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.failRel != nil {
				return f.failRel
			}
			f.reloads = append(f.reloads, bytes.Clone(pem))
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// installed returns the CRLs in the output file, parsed.
func (f *syncFixture) installed(t testing.TB) []*x509.RevocationList {
	t.Helper()
	b, err := os.ReadFile(f.out)
	if err != nil {
		t.Fatalf("read the CRL file: %v", err)
	}
	var out []*x509.RevocationList
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "X509 CRL" {
			t.Fatalf("CRL file has a %s block", block.Type)
		}
		rl, err := x509.ParseRevocationList(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rl)
	}
	return out
}

// wantInstalled checks that the file holds the device CRL numbered device
// (signed by the intermediate) and then the root CRL numbered root.
func (f *syncFixture) wantInstalled(t testing.TB, device, root int64) {
	t.Helper()
	crls := f.installed(t)
	if len(crls) != 2 {
		t.Fatalf("CRL file holds %d CRLs, want 2 (device, root)", len(crls))
	}
	for i, w := range []struct {
		number int64
		issuer *x509.Certificate
	}{{device, f.pki.inter}, {root, f.pki.root}} {
		if crls[i].Number.Int64() != w.number || crls[i].CheckSignatureFrom(w.issuer) != nil {
			t.Errorf("CRL file entry %d = number %s by %s, want number %d signed by %s", i, crls[i].Number, crls[i].Issuer, w.number, w.issuer.Subject)
		}
	}
}

func mustSync(t testing.TB, s *Syncer) SyncResult {
	t.Helper()
	res, err := s.Sync(t.Context())
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	return res
}

func TestSyncInstallsBothCRLsAndReloadsOnlyOnChange(t *testing.T) {
	f := newSyncFixture(t)
	s := f.syncer(t)
	res := mustSync(t, s)
	if !res.Changed || !res.Reloaded || len(f.reloads) != 1 {
		t.Fatalf("first Sync: changed %v reloaded %v reloads %d, want true true 1", res.Changed, res.Reloaded, len(f.reloads))
	}
	f.wantInstalled(t, 1, 1)
	if got, _ := os.ReadFile(f.out); !bytes.Equal(got, f.reloads[0]) {
		t.Error("Reload was not given the file's content")
	}
	if fi, _ := os.Stat(f.out); fi.Mode().Perm() != 0o644 {
		t.Errorf("CRL file mode = %v, want 0644 (verifiers run as other users)", fi.Mode().Perm())
	}

	// Nothing new: conditional GETs, no write, no reload.
	f.clock.Add(time.Minute)
	res = mustSync(t, s)
	if res.Changed || res.Reloaded || len(f.reloads) != 1 {
		t.Errorf("Sync with nothing new: changed %v reloaded %v reloads %d, want false false 1", res.Changed, res.Reloaded, len(f.reloads))
	}
	if n := f.ca.served("/crl"); n != 1 {
		t.Errorf("device CRL sent in full %d times, want 1 (then 304s)", n)
	}

	// A revocation: the new device CRL is installed, the root CRL kept.
	f.ca.set("/crl", f.pki.deviceCRL(t, 2, 77))
	res = mustSync(t, s)
	if !res.Changed || !res.Reloaded || !res.CRLs[0].Updated || res.CRLs[1].Updated || res.CRLs[0].Entries != 1 {
		t.Errorf("Sync after a revocation = %+v, want the device CRL (1 entry) updated and reloaded", res)
	}
	f.wantInstalled(t, 2, 1)
	if len(f.reloads) != 2 {
		t.Errorf("reloads = %d, want 2", len(f.reloads))
	}
}

// TestSyncRefusesBadCRLs: each bad CRL is refused with a reason, the last
// good file is kept byte for byte, nothing is reloaded, and Sync does not
// fail while the installed CRLs are still valid.
func TestSyncRefusesBadCRLs(t *testing.T) {
	other := newSyncPKI(t) // same names, other keys
	cases := []struct {
		name   string
		path   string
		crl    func(f *syncFixture) []byte
		reason string
	}{
		{"older-number", "/crl", func(f *syncFixture) []byte { return f.pki.deviceCRL(t, 4) }, "older than the installed CRL 5"},
		{"same-number-other-content", "/crl", func(f *syncFixture) []byte { return f.pki.deviceCRL(t, 5, 9) }, "differs from the installed CRL of the same number"},
		{"bad-signature", "/crl", func(f *syncFixture) []byte {
			return f.pki.crl(t, f.pki.inter, other.interKey, 6, testNow, time.Hour)
		}, "not signed by"},
		{"unknown-issuer", "/crl", func(f *syncFixture) []byte {
			return other.crl(t, other.root, other.rootKey, 6, testNow, time.Hour)
		}, "not among the 2 issuer certificate(s)"},
		{"device-crl-signed-by-root", "/crl", func(f *syncFixture) []byte {
			return f.pki.crl(t, f.pki.root, f.pki.rootKey, 6, testNow, time.Hour)
		}, "not by an intermediate"},
		{"root-crl-signed-by-intermediate", "/root.crl", func(f *syncFixture) []byte {
			return f.pki.crl(t, f.pki.inter, f.pki.interKey, 6, testNow, time.Hour)
		}, "not by the root"},
		{"expired", "/crl", func(f *syncFixture) []byte {
			return f.pki.crl(t, f.pki.inter, f.pki.interKey, 6, testNow.Add(-2*time.Hour), time.Hour)
		}, "expired at"},
		{"future-dated", "/crl", func(f *syncFixture) []byte {
			return f.pki.crl(t, f.pki.inter, f.pki.interKey, 6, testNow.Add(2*time.Second), time.Hour)
		}, "after this machine's clock"},
		{"trailing-bytes", "/crl", func(f *syncFixture) []byte {
			return append(f.pki.deviceCRL(t, 6), make([]byte, 4000)...)
		}, "not one DER SEQUENCE"},
		{"pem-then-junk", "/crl", func(f *syncFixture) []byte {
			return append(pemBlock("X509 CRL", f.pki.deviceCRL(t, 6)), "junk"...)
		}, "data after the PEM CRL"},
		{"not-a-crl", "/crl", func(*syncFixture) []byte { return []byte("<html>proxy error</html>") }, "parse CRL"},
		{"certificate-pem", "/crl", func(f *syncFixture) []byte { return pemBlock("CERTIFICATE", f.pki.inter.Raw) }, "not X509 CRL"},
		{"missing", "/crl", func(*syncFixture) []byte { return nil }, "404"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newSyncFixture(t)
			f.ca.set("/crl", f.pki.deviceCRL(t, 5))
			s := f.syncer(t)
			mustSync(t, s)
			before, _ := os.ReadFile(f.out)
			if b := tc.crl(f); b != nil {
				f.ca.set(tc.path, b)
			} else {
				f.ca.mu.Lock()
				delete(f.ca.files, tc.path)
				f.ca.mu.Unlock()
			}
			res, err := s.Sync(t.Context())
			if err != nil {
				t.Fatalf("Sync with a bad CRL while the installed ones are valid: %v, want nil", err)
			}
			i := 0
			if tc.path == "/root.crl" {
				i = 1
			}
			if st := res.CRLs[i]; st.Err == nil || !strings.Contains(st.Err.Error(), tc.reason) || st.Updated {
				t.Errorf("status = %+v, want refused with %q", st, tc.reason)
			}
			// Refused again, not forgotten behind a 304, until the CA
			// serves something else.
			if res, err = s.Sync(t.Context()); err != nil || res.CRLs[i].Err == nil {
				t.Errorf("second Sync: err %v, status %+v; want the refusal again", err, res.CRLs[i])
			}
			if after, _ := os.ReadFile(f.out); !bytes.Equal(before, after) || res.Changed {
				t.Error("the CRL file changed; the last good one must be kept")
			}
			if len(f.reloads) != 1 {
				t.Errorf("reloads = %d, want 1 (the first sync only)", len(f.reloads))
			}
		})
	}
}

func TestSyncStaleInstalledCRLFails(t *testing.T) {
	f := newSyncFixture(t)
	s := f.syncer(t)
	mustSync(t, s)
	f.ca.setDown(true)
	f.clock.Add(23 * time.Hour) // the device CRL is valid for 24h
	res, err := s.Sync(t.Context())
	if err != nil || res.CRLs[0].Err == nil {
		t.Fatalf("Sync with the CA down, CRLs valid: err %v, status %+v; want nil and a status error", err, res.CRLs[0])
	}
	f.clock.Add(2 * time.Hour)
	_, err = s.Sync(t.Context())
	if k, _ := fault.KindOf(err); k != fault.Unavailable || !strings.Contains(err.Error(), "device CRL (number 1)") || !strings.Contains(err.Error(), "expired at") {
		t.Fatalf("Sync with the CA down, device CRL expired: %v, want Unavailable naming the expired device CRL", err)
	}
	// The CA serving the same expired CRL (a 304) is no better.
	f.ca.setDown(false)
	if _, err = s.Sync(t.Context()); err == nil || !strings.Contains(err.Error(), "expired at") {
		t.Errorf("Sync with the CA serving the expired CRL: %v, want an error", err)
	}
	f.wantInstalled(t, 1, 1) // kept: a verifier may still use it within its grace
}

func TestSyncWritesNothingUntilBothCRLsAreKnown(t *testing.T) {
	f := newSyncFixture(t)
	f.ca.mu.Lock()
	delete(f.ca.files, "/root.crl")
	f.ca.mu.Unlock()
	s := f.syncer(t)
	res, err := s.Sync(t.Context())
	if k, _ := fault.KindOf(err); k != fault.Unavailable || !strings.Contains(err.Error(), "no root CRL") {
		t.Fatalf("Sync without a root CRL: %v, want Unavailable saying there is no root CRL", err)
	}
	if _, serr := os.Stat(f.out); !errors.Is(serr, os.ErrNotExist) || res.Changed || len(f.reloads) != 0 {
		t.Errorf("the CRL file was written (or reloaded) with the device CRL alone: stat %v", serr)
	}
	f.ca.set("/root.crl", f.pki.rootCRL(t, 3))
	mustSync(t, s)
	f.wantInstalled(t, 1, 3)
}

func TestSyncRetriesAFailedReload(t *testing.T) {
	f := newSyncFixture(t)
	s := f.syncer(t)
	f.failRel = errors.New("nginx: [emerg] bad config")
	res, err := s.Sync(t.Context())
	if err == nil || !strings.Contains(err.Error(), "not reloaded") || !res.Changed || res.Reloaded {
		t.Fatalf("Sync with a failing reload: res %+v err %v, want the file written and an error", res, err)
	}
	f.failRel = nil
	res = mustSync(t, s) // nothing changed, but the verifier has not read the file yet
	if res.Changed || !res.Reloaded || len(f.reloads) != 1 {
		t.Errorf("next Sync: %+v (reloads %d), want a retried reload", res, len(f.reloads))
	}
	if res = mustSync(t, s); res.Reloaded {
		t.Error("reloaded again with nothing new")
	}

	// Across runs (cron, --once): the next Syncer retries a failed reload.
	f.ca.set("/crl", f.pki.deviceCRL(t, 2))
	f.failRel = errors.New("haproxy: connection refused")
	if _, err := f.syncer(t).Sync(t.Context()); err == nil {
		t.Fatal("Sync with a failing reload: nil error")
	}
	f.failRel = nil
	if res = mustSync(t, f.syncer(t)); res.Changed || !res.Reloaded || len(f.reloads) != 2 {
		t.Errorf("the next run: %+v (reloads %d), want the failed reload retried", res, len(f.reloads))
	}
	if res = mustSync(t, f.syncer(t)); res.Reloaded {
		t.Error("the run after a retried reload reloaded again")
	}
}

// TestSyncRemembersTheInstalledFile: a new Syncer (a restart, or the next
// cron run) reads the file, so it neither rewrites an unchanged file nor
// accepts an older CRL than the one installed.
func TestSyncRemembersTheInstalledFile(t *testing.T) {
	f := newSyncFixture(t)
	f.ca.set("/crl", f.pki.deviceCRL(t, 7))
	mustSync(t, f.syncer(t))

	res := mustSync(t, f.syncer(t))
	if res.Changed || res.Reloaded {
		t.Errorf("a new Syncer rewrote an up-to-date file: %+v", res)
	}
	f.ca.set("/crl", f.pki.deviceCRL(t, 6))
	res = mustSync(t, f.syncer(t))
	if res.Changed || res.CRLs[0].Err == nil || !strings.Contains(res.CRLs[0].Err.Error(), "older") {
		t.Errorf("a new Syncer accepted an older CRL: %+v", res.CRLs[0])
	}
	f.wantInstalled(t, 7, 1)

	// A file that is not ours (or damaged) is replaced, not trusted.
	if err := os.WriteFile(f.out, pemBlock("X509 CRL", newSyncPKI(t).deviceCRL(t, 99)), 0o644); err != nil {
		t.Fatal(err)
	}
	res = mustSync(t, f.syncer(t))
	if !res.Changed {
		t.Error("a CRL file signed by another CA was kept")
	}
	f.wantInstalled(t, 6, 1)
}

func TestNewSyncerRefusesBadConfig(t *testing.T) {
	pki := newSyncPKI(t)
	cases := []struct {
		name string
		cfg  SyncConfig
	}{
		{"no-url", SyncConfig{Issuers: []*x509.Certificate{pki.root}, Out: "x"}},
		{"ftp-url", SyncConfig{URL: "ftp://ca", Issuers: []*x509.Certificate{pki.root}, Out: "x"}},
		{"no-issuers", SyncConfig{URL: "http://ca", Out: "x"}},
		{"no-out", SyncConfig{URL: "http://ca", Issuers: []*x509.Certificate{pki.root}}},
		{"negative-bound", SyncConfig{URL: "http://ca", Issuers: []*x509.Certificate{pki.root}, Out: "x", MaxCRLBytes: -1}},
		{"url-names-the-crl", SyncConfig{URL: "http://ca:8080/crl", Issuers: []*x509.Certificate{pki.root}, Out: "x"}},
		{"feed-not-https", SyncConfig{URL: "http://ca", Issuers: []*x509.Certificate{pki.root}, Out: "x", Feed: "http://ca:8443"}},
		{"feed-names-the-feed", SyncConfig{URL: "http://ca", Issuers: []*x509.Certificate{pki.root}, Out: "x", Feed: "https://ca:8443/v1/revocations"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewSyncer(tc.cfg, SyncDeps{}); !errors.Is(err, fault.New(fault.Malformed, "", "")) {
				t.Errorf("NewSyncer(%+v) = %v, want Malformed", tc.cfg, err)
			}
		})
	}
}

// TestSyncerRun: Run syncs at once and then every interval, and a new CRL
// is installed at the next tick.
func TestSyncerRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSyncFixture(t)
		f.ca.set("/crl", f.pki.crl(t, f.pki.inter, f.pki.interKey, 1, time.Now(), 24*time.Hour))
		f.ca.set("/root.crl", f.pki.crl(t, f.pki.root, f.pki.rootKey, 1, time.Now(), 24*time.Hour))
		s := f.syncer(t)
		s.log = slog.New(slog.DiscardHandler)
		s.now = time.Now // the bubble's clock, which moves
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- s.Run(ctx, 30*time.Second) }()
		synctest.Wait()
		if f.reloadCount() != 1 {
			t.Fatalf("reloads after start = %d, want 1", f.reloadCount())
		}
		f.ca.set("/crl", f.pki.crl(t, f.pki.inter, f.pki.interKey, 2, time.Now(), 24*time.Hour))
		time.Sleep(29 * time.Second) // fake time: the bubble's clock
		synctest.Wait()
		if f.reloadCount() != 1 {
			t.Fatalf("reloads before the interval = %d, want 1", f.reloadCount())
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if f.reloadCount() != 2 {
			t.Fatalf("reloads after the interval = %d, want 2", f.reloadCount())
		}
		f.wantInstalled(t, 2, 1)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	})
}

// TestSyncMarkerNeverFollowsALink: the reload-pending marker is created
// with O_EXCL, so a link planted in its place (the directory may be
// writable by the verifier's user) does not make a root crl sync truncate
// its target.
func TestSyncMarkerNeverFollowsALink(t *testing.T) {
	f := newSyncFixture(t)
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := f.syncer(t)
	if err := os.Symlink(victim, s.pendingMarker()); err != nil {
		t.Fatal(err)
	}
	f.failRel = errors.New("reload failed")
	if _, err := s.Sync(t.Context()); err == nil {
		t.Fatal("Sync with a failing reload: nil error")
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious" {
		t.Errorf("the marker's link target now holds %q, want it untouched", b)
	}
}

// TestSyncerRunFollowsTheFeed: with a feed, Run syncs as soon as a
// revocation is announced, and keeps trying for a moment until a device
// CRL lists it, all well before the interval.
func TestSyncerRunFollowsTheFeed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSyncFixture(t)
		sign := func(number int64, serials ...int64) []byte {
			return f.pki.crl(t, f.pki.inter, f.pki.interKey, number, time.Now(), 24*time.Hour, serials...)
		}
		f.ca.set("/crl", sign(1))
		f.ca.set("/root.crl", f.pki.crl(t, f.pki.root, f.pki.rootKey, 1, time.Now(), 24*time.Hour))
		f.ca.revoke("63") // history: not news, no chase
		s := f.syncerWith(t, SyncConfig{Feed: "https://ca.test:8443"})
		s.now = time.Now // the bubble's clock, which moves
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- s.Run(ctx, time.Hour) }()
		synctest.Wait()
		if f.reloadCount() != 1 || s.pendingCount() != 0 {
			t.Fatalf("after start: reloads %d, pending %d; want 1 and 0", f.reloadCount(), s.pendingCount())
		}

		// The CRL is already published when the feed announces it.
		start := time.Now()
		f.ca.set("/crl", sign(2, 10))
		f.ca.revoke("0a")
		synctest.Wait()
		if f.reloadCount() != 2 || time.Since(start) != 0 || s.pendingCount() != 0 {
			t.Fatalf("after a revocation on the feed: reloads %d after %s, pending %d; want 2 at once, none pending",
				f.reloadCount(), time.Since(start), s.pendingCount())
		}

		// The feed runs ahead of the CRL: Run tries again shortly.
		f.ca.revoke("0b")
		synctest.Wait()
		if f.reloadCount() != 2 {
			t.Fatalf("reloads before the CA published = %d, want 2", f.reloadCount())
		}
		time.Sleep(100 * time.Millisecond) // fake time: the bubble's clock
		f.ca.set("/crl", sign(3, 10, 11))
		time.Sleep(150 * time.Millisecond) // the first retry, 0.25 s after the announcement
		synctest.Wait()
		if f.reloadCount() != 3 {
			t.Fatalf("reloads 0.25 s after the CA published = %d, want 3", f.reloadCount())
		}

		// Two revocations in a row: the CRL of the first arrives with the
		// second's announcement; Run goes on until the CRL that lists the
		// second, not the first new CRL it sees.
		f.ca.revoke("0c")
		synctest.Wait()
		f.ca.set("/crl", sign(4, 10, 11, 12))
		f.ca.revoke("0d")
		synctest.Wait()
		if f.reloadCount() != 4 || s.pendingCount() != 1 {
			t.Fatalf("after the first CRL: reloads %d, pending %d; want 4 and 1 (0d)", f.reloadCount(), s.pendingCount())
		}
		time.Sleep(200 * time.Millisecond)
		f.ca.set("/crl", sign(5, 10, 11, 12, 13))
		time.Sleep(time.Second)
		synctest.Wait()
		if f.reloadCount() != 5 || s.pendingCount() != 0 {
			t.Fatalf("a second after the second CRL: reloads %d, pending %d; want 5 and 0", f.reloadCount(), s.pendingCount())
		}
		f.wantInstalled(t, 5, 1)

		// A revocation no CRL will list (its certificate had expired): the
		// chase gives up, and Run waits for the interval again.
		f.ca.revoke("0e")
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if s.pendingCount() != 0 {
			t.Errorf("pending after the chase = %d, want 0", s.pendingCount())
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	})
}

// TestFollowFeedNeverSpins: a feed that answers at once with nothing new
// (a CA shutting down, or not a long-poll at all) is asked once a second,
// not in a loop.
func TestFollowFeedNeverSpins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		polls := 0
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			followFeed(ctx, slog.New(slog.DiscardHandler), "https://ca.test", "", func(context.Context) (bool, error) {
				polls++
				return false, nil
			})
		}()
		time.Sleep(10*time.Second - time.Millisecond)
		synctest.Wait()
		cancel()
		<-done
		if polls != 10 {
			t.Errorf("polls in 10 s of an empty, immediate feed = %d, want 10", polls)
		}
	})
}

// FuzzSyncVerify: what crl sync installs comes over plain HTTP. Whatever
// the bytes, verify does not panic, and what it accepts is one DER CRL,
// nothing after it, that the issuer signed and x509 parses alike.
func FuzzSyncVerify(f *testing.F) {
	pki := newSyncPKI(f)
	good := pki.deviceCRL(f, 7, 1, 2, 3)
	f.Add(good)
	f.Add(pemBlock("X509 CRL", good))
	f.Add(append(bytes.Clone(good), 0))
	f.Add(pki.rootCRL(f, 1))
	s, err := NewSyncer(SyncConfig{URL: "http://ca.test", Issuers: []*x509.Certificate{pki.inter, pki.root}, Out: "unused"}, SyncDeps{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := s.verify(b, &syncSource{name: "device CRL", path: api.CRLPath})
		if err != nil {
			// The same bytes as partition 3's CRL: the IDP is parsed
			// (crlScope) before anything is accepted.
			if c, err = s.verify(b, &syncSource{name: "partition 3 CRL", path: api.PartitionCRLPath(3), part: true}); err != nil {
				return
			}
		}
		rl, err := x509.ParseRevocationList(c.der)
		if err != nil {
			t.Fatalf("verify accepted what x509 cannot parse: %v", err)
		}
		if err := rl.CheckSignatureFrom(pki.inter); err != nil {
			t.Fatalf("verify accepted a device CRL the intermediate did not sign: %v", err)
		}
		if len(rl.Raw) != len(c.der) || rl.Number.Cmp(c.number) != 0 || len(rl.RevokedCertificateEntries) != c.entries {
			t.Fatalf("verify kept %d bytes, number %s, %d entries; x509 reads %d bytes, number %s, %d entries",
				len(c.der), c.number, c.entries, len(rl.Raw), rl.Number, len(rl.RevokedCertificateEntries))
		}
	})
}
