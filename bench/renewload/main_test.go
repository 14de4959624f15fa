package main

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.step.sm/crypto/jose"
	"go.step.sm/crypto/minica"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/bench/benchutil"
	"github.com/fleetca/fleetca/client"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.conc != 32 || o.reps != 3 || o.duration != 5*time.Second || o.warmup != time.Second || o.minInterval != time.Second {
		t.Errorf("defaults = c=%d reps=%d %v %v %v, want c=32 reps=3 5s 1s 1s", o.conc, o.reps, o.duration, o.warmup, o.minInterval)
	}
	for _, args := range [][]string{
		{"-concurrency", "0"},
		{"-concurrency", "5000"},
		{"-reps", "0"},
		{"-duration", "0s"},
		{"-duration", "11m"},
		{"-warmup", "-1s"},
		{"-max-jobs", "99"},
		{"-renew-min-interval", "500ms"},
		{"-renew-min-interval", "169h"},
		{"extra"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded, want an error", args)
		}
	}
}

func TestBuildPost(t *testing.T) {
	tests := []struct {
		name, bearer, contentType string
		body                      []byte
		closing                   bool
		want                      string
	}{
		{"ok/enroll-keep-alive", "tok", "application/x-pem-file", []byte("CSR"), false,
			"POST /v1/enroll HTTP/1.1\r\nHost: h:1\r\nUser-Agent: renewload\r\nAuthorization: Bearer tok\r\nContent-Type: application/x-pem-file\r\nContent-Length: 3\r\n\r\nCSR"},
		{"ok/renew-mtls-close", "", "", nil, true,
			"POST /v1/enroll HTTP/1.1\r\nHost: h:1\r\nUser-Agent: renewload\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(buildPost("h:1", api.EnrollPath, tc.bearer, tc.contentType, tc.body, tc.closing)); got != tc.want {
				t.Errorf("buildPost() = %q, want %q", got, tc.want)
			}
		})
	}
}

// testCA is a CA for the fake server: minica's root and intermediate.
type testCA struct {
	*minica.CA
	interPEM string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	ca, err := minica.New()
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{CA: ca, interPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Intermediate.Raw}))}
}

// answer is the JSON the CA gives when it issues device id a certificate
// for pub, a renewal of parent if parent is not "".
func (ca *testCA) answer(t *testing.T, id string, pub crypto.PublicKey, parent string) []byte {
	t.Helper()
	b, err := ca.issue(id, pub, parent)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// issue is answer for the fake server's handler.
func (ca *testCA) issue(id string, pub crypto.PublicKey, parent string) ([]byte, error) {
	cert, err := ca.Sign(&x509.Certificate{Subject: pkix.Name{CommonName: id}, PublicKey: pub,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return nil, err
	}
	leaf := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
	return json.Marshal(api.EnrollResponse{DeviceID: id, Serial: cert.SerialNumber.Text(16), NotAfter: cert.NotAfter.Format(time.RFC3339),
		Certificate: leaf, Chain: leaf + ca.interPEM, ParentSerial: parent})
}

// devices enrolls n devices with the test CA, as enrollDevices does with
// the real one.
func (ca *testCA) devices(t *testing.T, prefix string, n int) []device {
	t.Helper()
	keys, _, err := benchutil.MakeKeysAndCSRs(t.Context(), prefix, 1, n)
	if err != nil {
		t.Fatal(err)
	}
	devs := make([]device, n)
	for i := range devs {
		id := benchutil.DeviceID(prefix, i+1)
		if devs[i], err = parseDevice(ca.answer(t, id, keys[i].Public(), ""), id, keys[i]); err != nil {
			t.Fatal(err)
		}
	}
	return devs
}

// fakeCA is a TLS server in the manner of fleetca serve's HTTPS listener:
// it asks for a client certificate and, on POST /v1/renew, renews the
// device of the client certificate or of a renewal token (x5c verified to
// the test CA, signature, sub and aud checked); POST /v1/enroll enrolls
// the CSR's CN. It answers 409 for the devices in refuse, and counts
// requests and connections.
type fakeCA struct {
	srv      *httptest.Server
	ca       *testCA
	refuse   map[string]bool
	requests atomic.Int64
	conns    atomic.Int64
	mu       sync.Mutex
	forms    map[string]int // renewals by form ("mtls", "token"), enrollments as "csr"
}

func newFakeCA(t *testing.T, refuse ...string) *fakeCA {
	f := &fakeCA{ca: newTestCA(t), refuse: map[string]bool{}, forms: map[string]int{}}
	for _, id := range refuse {
		f.refuse[id] = true
	}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	f.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.conns.Add(1)
		}
	}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeCA) serve(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	body, _ := io.ReadAll(r.Body)
	var id, form, parent string
	var pub crypto.PublicKey
	switch {
	case r.URL.Path == api.EnrollPath:
		b, _ := pem.Decode(body)
		if b == nil {
			http.Error(w, "no CSR", http.StatusBadRequest)
			return
		}
		csr, err := x509.ParseCertificateRequest(b.Bytes)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id, form, pub = csr.Subject.CommonName, "csr", csr.PublicKey
	case r.URL.Path == api.RenewPath && r.Header.Get("Authorization") != "":
		leaf, err := f.verifyToken(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), "https://"+r.Host+api.RenewPath)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		id, form, pub, parent = leaf.Subject.CommonName, "token", leaf.PublicKey, leaf.SerialNumber.Text(16)
	case r.URL.Path == api.RenewPath && len(r.TLS.PeerCertificates) > 0:
		leaf := r.TLS.PeerCertificates[0]
		id, form, pub, parent = leaf.Subject.CommonName, "mtls", leaf.PublicKey, leaf.SerialNumber.Text(16)
	default:
		http.Error(w, "no proof", http.StatusUnauthorized)
		return
	}
	if f.refuse[id] {
		http.Error(w, "not the newest", http.StatusConflict)
		return
	}
	b, err := f.ca.issue(id, pub, parent)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	f.mu.Lock()
	f.forms[form]++
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(b)
}

// verifyToken checks a renewal token as the CA does, in short: one
// signature, x5c verified to the test CA, signed by the leaf's key,
// sub = CN, aud, a jti, exp - iat within the limit.
func (f *fakeCA) verifyToken(raw, aud string) (*x509.Certificate, error) {
	tok, err := jose.ParseSigned(raw)
	if err != nil {
		return nil, err
	}
	if len(tok.Headers) != 1 || tok.Headers[0].Algorithm != jose.ES256 {
		return nil, fmt.Errorf("headers %+v, want one, ES256", tok.Headers)
	}
	roots := x509.NewCertPool()
	roots.AddCert(f.ca.Root)
	chains, err := tok.Headers[0].Certificates(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return nil, err
	}
	leaf := chains[0][0]
	var claims jose.Claims
	if err := jose.Verify(tok, leaf.PublicKey, &claims); err != nil {
		return nil, err
	}
	switch {
	case claims.Subject != leaf.Subject.CommonName:
		return nil, fmt.Errorf("sub %q, want %q", claims.Subject, leaf.Subject.CommonName)
	case len(claims.Audience) != 1 || claims.Audience[0] != aud:
		return nil, fmt.Errorf("aud %q, want %q", claims.Audience, aud)
	case claims.ID == "" || claims.IssuedAt == nil || claims.Expiry == nil:
		return nil, fmt.Errorf("claims %+v lack jti, iat or exp", claims)
	case claims.Expiry.Time().Sub(claims.IssuedAt.Time()) > api.RenewalTokenMaxLifetime:
		return nil, fmt.Errorf("token lives %v", claims.Expiry.Time().Sub(claims.IssuedAt.Time()))
	}
	return leaf, nil
}

// TestRunPhase checks that a phase sends every job once, counts each
// answer, 201 as a success and anything else as a failure, and uses its
// connections as the mode says: one per worker with keep-alive, one per
// request without. The phase's time is long enough that the jobs run out.
func TestRunPhase(t *testing.T) {
	const n, conc = 40, 4
	refused := benchutil.DeviceID("r-", 7) // a 409, as for a certificate not the newest
	tests := []struct {
		name      string
		keepAlive bool
		form      string
	}{
		{"ok/enroll-keep-alive", true, "csr"},
		{"ok/enroll-new-connections", false, "csr"},
		{"ok/renew-mtls-new-connections", false, "mtls"},
		{"ok/renew-token-keep-alive", true, "token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeCA(t, refused, benchutil.DeviceID("e-", 7))
			addr := f.srv.Listener.Addr().String()
			pinned := f.srv.Certificate().Raw
			jobs := make([]job, n)
			if tc.form == "csr" {
				csrs, err := benchutil.MakeCSRs(t.Context(), "e-", 1, n)
				if err != nil {
					t.Fatal(err)
				}
				for i := range jobs {
					jobs[i] = job{id: benchutil.DeviceID("e-", i+1), req: buildPost(addr, api.EnrollPath, "t", "application/x-pem-file", csrs[i], !tc.keepAlive)}
				}
			} else {
				for i, d := range f.ca.devices(t, "r-", n) {
					jobs[i] = job{id: d.id, parent: d.serial}
					if tc.form == "mtls" {
						jobs[i].tls = clientTLS(d.tlsCert(), pinned)
						jobs[i].req = buildPost(addr, api.RenewPath, "", "", nil, true)
						continue
					}
					tok, err := client.RenewalToken(d.certs, d.key, "https://"+addr+api.RenewPath, time.Now())
					if err != nil {
						t.Fatal(err)
					}
					jobs[i].req = buildPost(addr, api.RenewPath, tok, "", nil, false)
				}
			}
			p, err := runPhase(t.Context(), addr, clientTLS(nil, pinned), jobs, conc, tc.keepAlive, time.Hour, os.Getpid())
			if err != nil {
				t.Fatal(err)
			}
			if p.OK != n-1 || p.Failed != 1 || !p.Exhausted {
				t.Errorf("runPhase() ok, failed, exhausted = %d, %d, %v, want %d, 1, true; failures %q", p.OK, p.Failed, p.Exhausted, n-1, p.Errs)
			}
			if len(p.Errs) != 1 || !strings.Contains(p.Errs[0], "-00000007: status 409: not the newest") {
				t.Errorf("runPhase() failures = %q, want the 409 of device 7", p.Errs)
			}
			if len(p.Lat) != p.OK {
				t.Errorf("runPhase() kept %d latencies for %d successes", len(p.Lat), p.OK)
			}
			if got := f.requests.Load(); got != n {
				t.Errorf("the server saw %d requests, want %d", got, n)
			}
			f.mu.Lock()
			forms := f.forms
			f.mu.Unlock()
			if forms[tc.form] != n-1 || len(forms) != 1 {
				t.Errorf("the server issued %v, want %d of %s", forms, n-1, tc.form)
			}
			wantDials, wantConns := n, int64(n)
			if tc.keepAlive {
				wantDials, wantConns = 0, conc
			}
			if p.Dials != wantDials || f.conns.Load() != wantConns {
				t.Errorf("runPhase() dialled %d during the phase, the server saw %d connections; want %d and %d", p.Dials, f.conns.Load(), wantDials, wantConns)
			}
		})
	}
}

// TestRunPhaseChecksAnswer checks that a phase fails when its first
// success is not what was asked for: here a renewal answered as an
// enrollment, without the parent.
func TestRunPhaseChecksAnswer(t *testing.T) {
	f := newFakeCA(t)
	addr := f.srv.Listener.Addr().String()
	d := f.ca.devices(t, "r-", 1)[0]
	csr, err := benchutil.NewCSR(d.id)
	if err != nil {
		t.Fatal(err)
	}
	jobs := []job{{id: d.id, parent: d.serial, req: buildPost(addr, api.EnrollPath, "t", "application/x-pem-file", csr, false)}}
	if _, err := runPhase(t.Context(), addr, clientTLS(nil, f.srv.Certificate().Raw), jobs, 1, true, time.Hour, os.Getpid()); err == nil ||
		!strings.Contains(err.Error(), "parent_serial") {
		t.Errorf("runPhase(renewal answered without parent) error = %v, want one about parent_serial", err)
	}
}

func TestCheckAnswer(t *testing.T) {
	ca := newTestCA(t)
	d := ca.devices(t, "r-", 1)[0]
	pub := d.key.Public()
	tests := []struct {
		name     string
		body     []byte
		j        job
		wantFail bool
	}{
		{"ok/enrollment", ca.answer(t, d.id, pub, ""), job{id: d.id}, false},
		{"ok/renewal", ca.answer(t, d.id, pub, d.serial), job{id: d.id, parent: d.serial}, false},
		{"fail/renewal-other-parent", ca.answer(t, d.id, pub, "abc"), job{id: d.id, parent: d.serial}, true},
		{"fail/enrollment-with-parent", ca.answer(t, d.id, pub, "abc"), job{id: d.id}, true},
		{"fail/other-device", ca.answer(t, "r-00000002", pub, ""), job{id: d.id}, true},
		{"fail/not-json", []byte("<html>"), job{id: d.id}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := checkAnswer(tc.body, tc.j); (err != nil) != tc.wantFail {
				t.Errorf("checkAnswer() error = %v, want failure %v", err, tc.wantFail)
			}
		})
	}
	// The same certificate back is no renewal.
	var r api.EnrollResponse
	if err := json.Unmarshal(ca.answer(t, d.id, pub, d.serial), &r); err != nil {
		t.Fatal(err)
	}
	if err := checkAnswer(ca.answer(t, d.id, pub, r.Serial), job{id: d.id, parent: r.Serial}); err != nil {
		t.Errorf("checkAnswer(a new certificate) error = %v", err)
	}
	same, err := json.Marshal(api.EnrollResponse{DeviceID: r.DeviceID, Serial: r.Serial, Certificate: r.Certificate, Chain: r.Chain, ParentSerial: r.Serial})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkAnswer(same, job{id: d.id, parent: r.Serial}); err == nil {
		t.Error("checkAnswer(the renewed certificate back) succeeded, want an error")
	}
}

func TestParseDevice(t *testing.T) {
	ca := newTestCA(t)
	d := ca.devices(t, "r-", 2)
	if len(d[0].certs) != 2 || !d[0].certs[1].Equal(ca.Intermediate) || d[0].certs[0].Subject.CommonName != d[0].id {
		t.Errorf("parseDevice() chain has %d certificates, want the leaf and the intermediate", len(d[0].certs))
	}
	if c := d[0].tlsCert(); len(c.Certificate) != 2 || c.PrivateKey != d[0].key {
		t.Errorf("tlsCert() = %d certificates, want the leaf and the intermediate with the device's key", len(c.Certificate))
	}
	if _, err := parseDevice(ca.answer(t, d[0].id, d[0].key.Public(), ""), d[0].id, d[1].key); err == nil {
		t.Error("parseDevice(another key) succeeded, want an error")
	}
	leafOnly, err := json.Marshal(api.EnrollResponse{DeviceID: d[0].id})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseDevice(leafOnly, d[0].id, d[0].key); err == nil {
		t.Error("parseDevice(no certificate) succeeded, want an error")
	}
}

// TestReport checks what the report prints from given figures: a row per
// mode with its columns and errors, the like-for-like ratios with their
// verdicts, the pairing that is not like for like without one.
func TestReport(t *testing.T) {
	// rep is one second with ok answers and failed failures; the server
	// used 500 µs per answer (400 user, 100 system), the client 50 µs; no
	// other process ran.
	rep := func(ok, failed, dials int) benchutil.Phase {
		return benchutil.Phase{OK: ok, Failed: failed, Dials: dials, Elapsed: time.Second,
			Server: benchutil.CPUTimes{User: time.Duration(ok) * 400 * time.Microsecond, Sys: time.Duration(ok) * 100 * time.Microsecond},
			Client: benchutil.CPUTimes{User: time.Duration(ok) * 50 * time.Microsecond},
			Lat:    []time.Duration{time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond},
		}
	}
	results := func(renewMTLS, renewToken float64) []modeResult {
		var out []modeResult
		for _, m := range modes {
			r := modeResult{mode: m}
			for _, scale := range []float64{0.9, 1, 1.2} { // the median is the middle one
				switch m.name {
				case "enroll-ka":
					r.reps = append(r.reps, rep(int(2000*scale), 0, 0))
				case "enroll-conn":
					r.reps = append(r.reps, rep(int(1000*scale), 0, int(1000*scale)))
				case "renew-mtls-conn":
					r.reps = append(r.reps, rep(int(renewMTLS*scale), 0, int(renewMTLS*scale)))
				case "renew-token-ka":
					p := rep(int(renewToken*scale), 1, 0)
					p.Errs = []string{"r-00000009: status 429: renewed recently"}
					r.reps = append(r.reps, p)
				}
			}
			out = append(out, r)
		}
		return out
	}
	tests := []struct {
		name                  string
		conc                  int
		renewMTLS, renewToken float64
		rows                  map[string][]string // columns but busy and other (they depend on the CPU count)
		ratios                []string
		wantMissed            bool
	}{
		{"ok/both-pass", 32, 950, 1900, map[string][]string{
			"enroll-ka":       {"enroll-ka", "2000", "(1800-2400)", "2.00", "3.00", "500", "(400+100)", "50", "0.00", "0"},
			"enroll-conn":     {"enroll-conn", "1000", "(900-1200)", "2.00", "3.00", "500", "(400+100)", "50", "1.00", "0"},
			"renew-mtls-conn": {"renew-mtls-conn", "950", "(855-1140)", "2.00", "3.00", "500", "(400+100)", "50", "1.00", "0"},
			"renew-token-ka":  {"renew-token-ka", "1900", "(1710-2280)", "2.00", "3.00", "500", "(400+100)", "50", "0.00", "3"},
		}, []string{
			"renew-mtls-conn / enroll-conn    950/s /   1000/s = 0.95x PASS  server CPU/req 1.00x  (both a new connection",
			"renew-token-ka  / enroll-ka     1900/s /   2000/s = 0.95x PASS  server CPU/req 1.00x  (both keep-alive",
			"renew-mtls-conn / enroll-ka      950/s /   2000/s = 0.47x       server CPU/req 1.00x  (a full handshake",
			"renew-token-ka failure: r-00000009: status 429: renewed recently",
			// The bounds: enroll-conn's 500 + 50 µs, +1 verification (70) and
			// +1 signature (25); the token form pays nothing more.
			"verify 70 µs,\n",
			"sign 25 µs; a few % more under load",
			"at enroll-conn's CPU plus that, the rest of the path costing what it does there, the ratio could be at most\n    0.85x with the cores the limit",
			"CPU/req as low as 1.14x; measured 500 µs/req, -70 µs over the bound's 570",
			"at enroll-ka's CPU plus that, the rest of the path costing what it does there, the ratio could be at most\n    1.00x",
			"CPU/req as low as 1.00x; measured 500 µs/req, +0 µs over the bound's 500",
		}, false},
		{"ok/token-misses", 32, 950, 1700, nil, []string{
			"= 0.95x PASS",
			"renew-token-ka  / enroll-ka     1700/s /   2000/s = 0.85x MISS",
		}, true},
		{"ok/not-judged-elsewhere", 8, 500, 500, nil, []string{
			"= 0.50x       server CPU/req",
			"not judged: the target is set for concurrency 32",
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			o := options{conc: tc.conc, reps: 3, duration: time.Second, minInterval: time.Second}
			missed := report(&out, o, &benchutil.Server{PID: 4242}, 40<<20, t.TempDir(), setupStats{n: 3000, elapsed: time.Second}, pkCost{verify: 70 * time.Microsecond, sign: 25 * time.Microsecond},
				results(tc.renewMTLS, tc.renewToken))
			if missed != tc.wantMissed {
				t.Errorf("report() missed = %v, want %v", missed, tc.wantMissed)
			}
			text := out.String()
			for _, want := range append([]string{
				"(pid 4242)", "ca.renew_min_interval 1s", "3000 devices enrolled to be renewed", "peak resident memory over the run: 40 MiB",
				"There is no \"renewals over mTLS with keep-alive\" row",
			}, tc.ratios...) {
				if !strings.Contains(text, want) {
					t.Errorf("report() lacks %q:\n%s", want, text)
				}
			}
			for name, want := range tc.rows {
				var row []string
				for line := range strings.Lines(text) {
					if f := strings.Fields(line); len(f) == 12 && f[0] == name {
						row = f
					}
				}
				if row == nil {
					t.Errorf("report() has no row for %s:\n%s", name, text)
					continue
				}
				if got := append(row[:9:9], row[11]); !slices.Equal(got, want) {
					t.Errorf("report() row = %q, want %q (then busy and other)", row, want)
				}
			}
		})
	}
}
