package client

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.step.sm/crypto/jose"
	"go.step.sm/crypto/minica"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
)

// renewCA is an httptest TLS server that implements the renewal contract
// of api.RenewPath and api.RenewalInfoPath with a minica: it asks for a
// client certificate without requiring one, renews the presented
// certificate (empty body) or rekeys it (a CSR), or takes a renewal token
// when no certificate was presented.
type renewCA struct {
	t   *testing.T
	mca *minica.CA
	srv *httptest.Server

	mu sync.Mutex
	// answer, if set, replaces the issuance: it writes the whole answer.
	answer func(w http.ResponseWriter, r *http.Request) bool
	// status is the success status (201 unless set).
	status int
	// seen records how each renewal authenticated: "mtls <serial>" or
	// "token <sub>".
	seen []string
	// claims is the last token's claims; alg its algorithm.
	claims api.RenewalTokenClaims
	alg    string
}

func newRenewCA(t *testing.T, tlsCfg func(*tls.Config)) *renewCA {
	t.Helper()
	mca, err := minica.New()
	if err != nil {
		t.Fatal(err)
	}
	rc := &renewCA{t: t, mca: mca}
	rc.srv = httptest.NewUnstartedServer(http.HandlerFunc(rc.handle))
	pool := x509.NewCertPool()
	pool.AddCert(mca.Root)
	pool.AddCert(mca.Intermediate)
	rc.srv.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}
	rc.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point of some tests
	if tlsCfg != nil {
		tlsCfg(rc.srv.TLS)
	}
	rc.srv.StartTLS()
	t.Cleanup(rc.srv.Close)
	return rc
}

// client is a client of rc trusting its TLS certificate and the minica root.
func (rc *renewCA) client(now func() time.Time) *Client {
	rc.t.Helper()
	c, err := New(Config{URL: rc.srv.URL, Roots: []*x509.Certificate{rc.srv.Certificate(), rc.mca.Root}, Now: now})
	if err != nil {
		rc.t.Fatal(err)
	}
	return c
}

// issue signs a device certificate for key with CN cn.
func (rc *renewCA) issue(cn string, pub crypto.PublicKey, mod func(*x509.Certificate)) []*x509.Certificate {
	rc.t.Helper()
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: cn}, PublicKey: pub,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	if mod != nil {
		mod(tmpl)
	}
	leaf, err := rc.mca.Sign(tmpl)
	if err != nil {
		rc.t.Fatal(err)
	}
	return []*x509.Certificate{leaf, rc.mca.Intermediate}
}

func (rc *renewCA) problem(w http.ResponseWriter, status int, kind, detail string) {
	w.Header().Set("Content-Type", api.ProblemContentType)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.Problem{Type: api.ProblemTypePrefix + kind, Status: status, Detail: detail, Hint: "a hint"})
}

func (rc *renewCA) handle(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.answer != nil && rc.answer(w, r) {
		return
	}
	if r.Method != "POST" || r.URL.Path != api.RenewPath {
		rc.problem(w, 404, "notFound", "no such route")
		return
	}
	var leaf *x509.Certificate
	switch bearer, isBearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); {
	case len(r.TLS.PeerCertificates) > 0:
		leaf = r.TLS.PeerCertificates[0]
		rc.seen = append(rc.seen, "mtls "+leaf.SerialNumber.Text(16))
	case isBearer:
		tok, err := jose.ParseSigned(bearer)
		if err != nil {
			rc.problem(w, 401, "unauthorized", "not a JWT")
			return
		}
		roots := x509.NewCertPool()
		roots.AddCert(rc.mca.Root)
		chains, err := tok.Headers[0].Certificates(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err != nil {
			rc.problem(w, 401, "unauthorized", "bad x5c: "+err.Error())
			return
		}
		leaf = chains[0][0]
		var claims api.RenewalTokenClaims
		if err := tok.Claims(leaf.PublicKey, &claims); err != nil {
			rc.problem(w, 401, "unauthorized", "bad signature")
			return
		}
		rc.claims, rc.alg = claims, tok.Headers[0].Algorithm
		rc.seen = append(rc.seen, "token "+claims.Subject)
	default:
		rc.problem(w, 401, "unauthorized", "no credential")
		return
	}
	body, _ := io.ReadAll(r.Body)
	pub := leaf.PublicKey
	if len(body) > 0 {
		block, _ := pem.Decode(body)
		if block == nil || r.Header.Get("Content-Type") != "application/x-pem-file" {
			rc.problem(w, 400, "malformed", "not a PEM CSR")
			return
		}
		csr, err := x509.ParseCertificateRequest(block.Bytes)
		if err != nil || csr.CheckSignature() != nil {
			rc.problem(w, 400, "badCSR", "bad CSR")
			return
		}
		pub = csr.PublicKey
	}
	next := rc.issue(leaf.Subject.CommonName, pub, nil)
	status := http.StatusCreated
	if rc.status != 0 {
		status = rc.status
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.EnrollResponse{DeviceID: leaf.Subject.CommonName, Serial: next[0].SerialNumber.Text(16),
		NotAfter: next[0].NotAfter.UTC().Format(time.RFC3339), Chain: chainPEM(next), ParentSerial: leaf.SerialNumber.Text(16)})
}

func chainPEM(certs []*x509.Certificate) string {
	var b strings.Builder
	for _, c := range certs {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	return b.String()
}

func newP256(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func csrDER(t *testing.T, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestRenewForms: over mutual TLS the CA sees the certificate to renew;
// with a token it sees none, and the token names the device; a CSR makes
// a certificate for the CSR's key; a 200 is a retry.
func TestRenewForms(t *testing.T) {
	rc := newRenewCA(t, nil)
	key := newP256(t)
	chain := rc.issue("dev-1", key.Public(), nil)
	newKey := newP256(t)
	for _, tc := range []struct {
		name    string
		req     RenewRequest
		status  int
		seen    string
		wantKey crypto.PublicKey
		retry   bool
	}{
		{"renew/mtls", RenewRequest{Chain: chain, Key: key}, 0, "mtls " + chain[0].SerialNumber.Text(16), key.Public(), false},
		{"renew/token", RenewRequest{Chain: chain, Key: key, Token: true}, 0, "token dev-1", key.Public(), false},
		{"rekey/mtls", RenewRequest{Chain: chain, Key: key, CSR: csrDER(t, newKey)}, 0, "mtls " + chain[0].SerialNumber.Text(16), newKey.Public(), false},
		{"rekey/token", RenewRequest{Chain: chain, Key: key, CSR: csrDER(t, newKey), Token: true}, 0, "token dev-1", newKey.Public(), false},
		{"retry", RenewRequest{Chain: chain, Key: key}, http.StatusOK, "mtls " + chain[0].SerialNumber.Text(16), key.Public(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc.mu.Lock()
			rc.seen, rc.status = nil, tc.status
			rc.mu.Unlock()
			got, err := rc.client(nil).Renew(t.Context(), tc.req)
			if err != nil {
				t.Fatalf("Renew = %v, want a renewal", err)
			}
			rc.mu.Lock()
			defer rc.mu.Unlock()
			if len(rc.seen) != 1 || rc.seen[0] != tc.seen {
				t.Errorf("the CA saw %q, want [%s]", rc.seen, tc.seen)
			}
			if !samePublic(got.Certs[0].PublicKey, tc.wantKey) {
				t.Errorf("renewed certificate's key is not the expected one")
			}
			if got.Retry != tc.retry || got.ParentSerial != chain[0].SerialNumber.Text(16) || len(got.Certs) != 2 {
				t.Errorf("Renew = retry %v, parent %s, %d certs, want retry %v, parent %s, 2 certs",
					got.Retry, got.ParentSerial, len(got.Certs), tc.retry, chain[0].SerialNumber.Text(16))
			}
		})
	}
}

// TestRenewalTokenClaims: the token carries what api.RenewalTokenClaims
// says, signed with the algorithm of the key, the chain in x5c.
func TestRenewalTokenClaims(t *testing.T) {
	rc := newRenewCA(t, nil)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Add(time.Minute).Truncate(time.Second) // the certificates are valid from time.Now()
	var ids []string
	for _, tc := range []struct {
		name string
		key  crypto.Signer
		alg  string
	}{
		{"ok/p256", newP256(t), "ES256"},
		{"ok/p384", p384, "ES384"},
		{"ok/rsa", rsaKey, "RS256"},
		{"ok/ed25519", edKey, "EdDSA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chain := rc.issue("dev-7", tc.key.Public(), nil)
			if _, err := rc.client(func() time.Time { return now }).Renew(t.Context(), RenewRequest{Chain: chain, Key: tc.key, Token: true}); err != nil {
				t.Fatalf("Renew with a token = %v, want a renewal", err)
			}
			rc.mu.Lock()
			defer rc.mu.Unlock()
			want := api.RenewalTokenClaims{Subject: "dev-7", Audience: rc.srv.URL + api.RenewPath, IssuedAt: now.Unix(), NotBefore: now.Unix(),
				Expiry: now.Add(api.RenewalTokenMaxLifetime).Unix(), ID: rc.claims.ID}
			if rc.claims != want || rc.alg != tc.alg {
				t.Errorf("token claims %+v, alg %s, want %+v, alg %s", rc.claims, rc.alg, want, tc.alg)
			}
			if len(rc.claims.ID) < 32 {
				t.Errorf("token jti = %q, want a random ID", rc.claims.ID)
			}
			ids = append(ids, rc.claims.ID)
		})
	}
	if len(ids) == 4 && (ids[0] == ids[1] || ids[1] == ids[2]) {
		t.Errorf("token jtis %q repeat, want each token its own", ids)
	}
}

// TestRenewRefusals: each refusal comes back as the fault of its kind,
// and a 429's Retry-After reaches the caller.
func TestRenewRefusals(t *testing.T) {
	rc := newRenewCA(t, nil)
	key := newP256(t)
	chain := rc.issue("dev-1", key.Public(), nil)
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		status     int
		kind       string
		retryAfter string
		want       fault.Kind
		after      time.Duration
	}{
		{"revoked", 403, "forbidden", "", fault.Forbidden, 0},
		{"already-revoked", 403, "alreadyRevoked", "", fault.AlreadyRevoked, 0},
		{"older-certificate", 409, "conflict", "", fault.Conflict, 0},
		{"past-grace", 401, "unauthorized", "", fault.Unauthorized, 0},
		{"too-soon/seconds", 429, "rateLimited", "1800", fault.RateLimited, 30 * time.Minute},
		{"too-soon/date", 429, "rateLimited", now.Add(time.Hour).Format(http.TimeFormat), fault.RateLimited, time.Hour},
		{"too-soon/unknown-type", 429, "slowDown", "5", fault.RateLimited, 5 * time.Second},
		{"unavailable/retry-after", 503, "unavailable", "60", fault.Unavailable, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc.mu.Lock()
			rc.answer = func(w http.ResponseWriter, r *http.Request) bool {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				rc.problem(w, tc.status, tc.kind, "refused")
				return true
			}
			rc.mu.Unlock()
			t.Cleanup(func() { rc.mu.Lock(); rc.answer = nil; rc.mu.Unlock() })
			_, err := rc.client(func() time.Time { return now }).Renew(t.Context(), RenewRequest{Chain: chain, Key: key})
			if k, ok := fault.KindOf(err); !ok || k != tc.want {
				t.Errorf("Renew = %v, want a %v fault", err, tc.want)
			}
			if fe, _ := errors.AsType[*fault.Error](err); fe == nil || fe.RetryAfter != tc.after {
				t.Errorf("Renew = %#v, want RetryAfter %v", err, tc.after)
			}
		})
	}
}

// TestRenewChecksWhatItGets: a certificate that is not for the expected
// key or device, or not from the trusted root, is refused.
func TestRenewChecksWhatItGets(t *testing.T) {
	rc := newRenewCA(t, nil)
	key := newP256(t)
	chain := rc.issue("dev-1", key.Public(), nil)
	stranger, err := minica.New()
	if err != nil {
		t.Fatal(err)
	}
	strangerLeaf, err := stranger.Sign(&x509.Certificate{Subject: pkix.Name{CommonName: "dev-1"}, PublicKey: key.Public(),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		chain []*x509.Certificate
	}{
		{"fail/other-key", rc.issue("dev-1", newP256(t).Public(), nil)},
		{"fail/other-device", rc.issue("dev-2", key.Public(), nil)},
		{"fail/other-ca", []*x509.Certificate{strangerLeaf, stranger.Intermediate}},
		{"fail/server-auth", rc.issue("dev-1", key.Public(), func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc.mu.Lock()
			rc.answer = func(w http.ResponseWriter, r *http.Request) bool {
				w.WriteHeader(http.StatusCreated)
				json.NewEncoder(w).Encode(api.EnrollResponse{DeviceID: "dev-1", Chain: chainPEM(tc.chain)})
				return true
			}
			rc.mu.Unlock()
			t.Cleanup(func() { rc.mu.Lock(); rc.answer = nil; rc.mu.Unlock() })
			_, err := rc.client(nil).Renew(t.Context(), RenewRequest{Chain: chain, Key: key})
			if k, ok := fault.KindOf(err); !ok || k != fault.Forbidden {
				t.Errorf("Renew = %v, want a Forbidden fault", err)
			}
		})
	}
}

// TestRenewRefusesBadRequests: nothing is sent for a request that cannot
// be right.
func TestRenewRefusesBadRequests(t *testing.T) {
	rc := newRenewCA(t, nil)
	key := newP256(t)
	chain := rc.issue("dev-1", key.Public(), nil)
	for _, tc := range []struct {
		name string
		req  RenewRequest
		want fault.Kind
	}{
		{"no-chain", RenewRequest{Key: key}, fault.Malformed},
		{"no-key", RenewRequest{Chain: chain}, fault.Malformed},
		{"other-key", RenewRequest{Chain: chain, Key: newP256(t)}, fault.BadKey},
		{"other-key/token", RenewRequest{Chain: chain, Key: newP256(t), Token: true}, fault.BadKey},
		{"bad-csr", RenewRequest{Chain: chain, Key: key, CSR: []byte("not a CSR")}, fault.Malformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rc.client(nil).Renew(t.Context(), tc.req)
			if k, ok := fault.KindOf(err); !ok || k != tc.want {
				t.Errorf("Renew = %v, want a %v fault", err, tc.want)
			}
		})
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.seen) != 0 {
		t.Errorf("the CA saw %q, want no request", rc.seen)
	}
}

// TestRenewExpiredOverTLS: a CA that refuses the certificate as expired in
// the handshake says so (ErrCertificateExpired), over TLS 1.2 and 1.3; one
// that does not know its issuer is Forbidden.
func TestRenewExpiredOverTLS(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			var serverNow atomic.Int64 // Unix nanoseconds, the CA's clock
			rc := newRenewCA(t, func(c *tls.Config) {
				c.MaxVersion = version
				c.ClientAuth = tls.RequireAndVerifyClientCert
				c.Time = func() time.Time { return time.Unix(0, serverNow.Load()) }
			})
			key := newP256(t)
			chain := rc.issue("dev-1", key.Public(), nil)
			serverNow.Store(chain[0].NotAfter.Add(time.Minute).UnixNano())
			_, err := rc.client(nil).Renew(t.Context(), RenewRequest{Chain: chain, Key: key})
			if !errors.Is(err, ErrCertificateExpired) {
				t.Errorf("Renew of a certificate the CA finds expired = %v, want ErrCertificateExpired", err)
			}
			if k, _ := fault.KindOf(err); k != fault.Unauthorized {
				t.Errorf("Renew kind = %v, want Unauthorized", k)
			}

			stranger, err := minica.New()
			if err != nil {
				t.Fatal(err)
			}
			leaf, err := stranger.Sign(&x509.Certificate{Subject: pkix.Name{CommonName: "dev-1"}, PublicKey: key.Public(),
				ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			if err != nil {
				t.Fatal(err)
			}
			serverNow.Store(time.Now().UnixNano())
			_, err = rc.client(nil).Renew(t.Context(), RenewRequest{Chain: []*x509.Certificate{leaf, stranger.Intermediate}, Key: key})
			if k, _ := fault.KindOf(err); k != fault.Forbidden || errors.Is(err, ErrCertificateExpired) {
				t.Errorf("Renew of another CA's certificate = %v, want a Forbidden fault", err)
			}
		})
	}
}

func TestRenewalInfo(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		serial     string
		body       string
		retryAfter string
		want       fault.Kind
		after      time.Duration
	}{
		{"ok", "0a1b", `{"suggestedWindow":{"start":"2030-01-01T00:00:00Z","end":"2030-01-02T00:00:00Z"}}`, "21600", 0, 6 * time.Hour},
		{"ok/no-retry-after", "0a1b", `{"suggestedWindow":{"start":"2030-01-01T00:00:00Z","end":"2030-01-02T00:00:00Z"}}`, "", 0, 0},
		{"fail/not-a-window", "0a1b", `{"suggestedWindow":{"start":"2030-01-02T00:00:00Z","end":"2030-01-01T00:00:00Z"}}`, "", fault.Malformed, 0},
		{"fail/no-window", "0a1b", `{}`, "", fault.Malformed, 0},
		{"fail/serial-not-hex", "../admin", ``, "", fault.Malformed, 0},
		{"fail/serial-upper", "0A1B", ``, "", fault.Malformed, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requests := 0
			c := testServer(t, func(w http.ResponseWriter, r *http.Request) {
				requests++
				if r.Method != "GET" || r.URL.Path != api.RenewalInfoPath+tc.serial {
					t.Errorf("request %s %s, want GET %s%s", r.Method, r.URL.Path, api.RenewalInfoPath, tc.serial)
				}
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				w.Write([]byte(tc.body))
			})
			info, after, err := c.RenewalInfo(t.Context(), tc.serial)
			if tc.want != 0 {
				if k, ok := fault.KindOf(err); !ok || k != tc.want {
					t.Errorf("RenewalInfo = %v, want a %v fault", err, tc.want)
				}
				return
			}
			if err != nil || !info.SuggestedWindow.Start.Equal(start) || after != tc.after {
				t.Errorf("RenewalInfo = %+v, %v, %v, want the window from %s, %v", info, after, err, start, tc.after)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name, in string
		want     time.Duration
		ok       bool
	}{
		{"seconds", "120", 2 * time.Minute, true},
		{"seconds/spaces", " 5 ", 5 * time.Second, true},
		{"zero", "0", 0, true},
		{"date", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{"date/past", now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"huge", "99999999999999999999", 0, false},
		{"capped", "9999999999", maxRetryAfter, true},
		{"date/far", "Fri, 31 Dec 9999 23:59:59 GMT", maxRetryAfter, true},
		{"empty", "", 0, false},
		{"negative", "-5", 0, false},
		{"fraction", "1.5", 0, false},
		{"junk", "soon", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseRetryAfter(tc.in, now)
			if got != tc.want || ok != tc.ok {
				t.Errorf("parseRetryAfter(%q) = %v, %v, want %v, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// FuzzParseRetryAfter: a CA's Retry-After header is untrusted input; any
// value gives a wait within 0..maxRetryAfter, or none.
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"120", "0", "Wed, 21 Oct 2015 07:28:00 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "-1", "1e9", ""} {
		f.Add(s)
	}
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := parseRetryAfter(s, now)
		if d < 0 || d > maxRetryAfter || !ok && d != 0 {
			t.Errorf("parseRetryAfter(%q) = %v, %v, want a wait in 0..%v", s, d, ok, maxRetryAfter)
		}
	})
}
