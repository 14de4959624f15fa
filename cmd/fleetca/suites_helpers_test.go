package main

// Helpers of the crash, race and hostile-input suites: Go HTTP clients that
// many goroutines share, and admin API calls that report errors instead of
// failing the test (they run on goroutines).

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fleetca/fleetca/api"
)

// answer is one HTTP response, read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// problemType is the problem JSON type of a, or "" if a is no problem.
func (a answer) problemType() string {
	if a.header.Get("Content-Type") != "application/problem+json" {
		return ""
	}
	var p problem
	if json.Unmarshal(a.body, &p) != nil {
		return ""
	}
	return strings.TrimPrefix(p.Type, "urn:fleetca:problem:")
}

// loadClient is an HTTPS client that trusts only f's root and keeps up to
// conns connections open, for conns concurrent callers; cert, if set, is
// its client certificate.
func (f *fixture) loadClient(conns int, cert *tls.Certificate) *http.Client {
	f.t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(readCerts(f.t, f.root)[0])
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: cfg, MaxIdleConns: conns, MaxIdleConnsPerHost: conns}
	hc := &http.Client{Transport: tr, Timeout: cmdTimeout}
	f.t.Cleanup(hc.CloseIdleConnections)
	return hc
}

// send makes one request and reads the answer (at most 8 MiB of it). It
// never fails the test: it runs on goroutines.
func send(ctx context.Context, hc *http.Client, method, url string, header http.Header, body []byte) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	if body == nil {
		req.Body, req.ContentLength = nil, 0
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := hc.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: read the answer: %w", method, url, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// adminToken is the admin token init wrote to f's data directory.
func (f *fixture) adminToken() string {
	f.t.Helper()
	return strings.TrimSpace(readFile(f.t, filepath.Join(f.dataDir, "admin-token")))
}

// adminHeader is what every admin request carries; a body is JSON.
func adminHeader(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}
}

// enrollHeader is what an enrollment with a PEM CSR carries.
func enrollHeader(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/x-pem-file"}}
}

// newToken mints an enrollment token through the admin API (not the CLI:
// the suites mint many) and returns its secret and ID.
func (f *fixture) newToken(hc *http.Client, req api.TokenRequest) (secret, id string) {
	f.t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		f.t.Fatal(err)
	}
	a, err := send(f.t.Context(), hc, "POST", f.srv.httpsURL+api.AdminPrefix+"/tokens", adminHeader(f.adminToken()), body)
	if err != nil {
		f.t.Fatalf("POST /v1/admin/tokens %s: %v", body, err)
	}
	var tok api.Token
	if a.status != http.StatusCreated || json.Unmarshal(a.body, &tok) != nil || tok.Token == "" {
		f.t.Fatalf("POST /v1/admin/tokens %s: status %d, body %s; want 201 with a token", body, a.status, a.body)
	}
	return tok.Token, tok.ID
}

// deviceCerts lists a device's certificates through the admin API.
func (f *fixture) deviceCerts(device string) []api.Certificate {
	f.t.Helper()
	var page api.CertificatePage
	f.adminGET(api.AdminPrefix+"/certificates?limit=1000&device_id="+device, &page)
	return page.Certificates
}

// live counts the certificates that are not revoked (the suites' are not
// near expiry).
func live(certs []api.Certificate) int {
	n := 0
	for _, c := range certs {
		if c.RevokedAt == "" {
			n++
		}
	}
	return n
}

// race runs fn(i) for i in [0, n) on n goroutines released together, and
// returns when every one has returned.
func race(n int, fn func(i int)) {
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(n)
	for i := range n {
		done.Go(func() {
			ready.Done()
			<-start
			fn(i)
		})
	}
	ready.Wait()
	close(start)
	done.Wait()
}

// countStatuses tallies the answers' statuses; a failed request counts
// under 0.
func countStatuses(answers []answer) map[int]int {
	m := map[int]int{}
	for _, a := range answers {
		m[a.status]++
	}
	return m
}

// tlsCertFromPEM is a device's certificate chain and key, for a TLS client.
func tlsCertFromPEM(t *testing.T, chainPEM string, keyPEM []byte) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair([]byte(chainPEM), keyPEM)
	if err != nil {
		t.Fatalf("client certificate: %v", err)
	}
	return c
}
