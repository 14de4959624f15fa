package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/bench/benchutil"
)

const (
	// ocspPollEvery is the wait between two OCSP requests while the tool
	// waits for a revoked answer: the resolution of the measurement.
	ocspPollEvery = 2 * time.Millisecond
	// revokeWait bounds the wait for one revoked answer.
	revokeWait = 30 * time.Second
	// revokePrefix starts the IDs of the devices revoked.
	revokePrefix = "rv-"
)

// revokeResult is the revocation-to-OCSP measurement.
type revokeResult struct {
	other []time.Duration // revoked through A, until B's OCSP says revoked
	same  []time.Duration // revoked through A, until A's OCSP says revoked
	call  []time.Duration // the revoke call through A's admin API, until its 200
}

// measureRevoke enrolls 2 x o.revocations devices through set's first
// replica A, then revokes them one at a time through A's admin API, and
// from each 200 polls an OCSP responder until it says revoked: for the
// even ones B's (another replica), for the odd ones A's own, the
// baseline. Each responder is first asked without a nonce, so that it
// caches a good answer that the revocation must replace.
func measureRevoke(ctx context.Context, o options, set *replicaSet, logf func(string, ...any)) (revokeResult, error) {
	var res revokeResult
	a, b := set.servers[0], set.servers[1]
	roots, err := a.Roots()
	if err != nil {
		return res, err
	}
	adminToken, err := a.AdminToken()
	if err != nil {
		return res, err
	}
	pemBytes, err := os.ReadFile(filepath.Join(a.Dir, "intermediate.pem"))
	if err != nil {
		return res, err
	}
	issuer, err := benchutil.ParseCertPEM(pemBytes)
	if err != nil {
		return res, fmt.Errorf("intermediate.pem: %w", err)
	}
	admin, err := a.Client()
	if err != nil {
		return res, err
	}
	hc := benchutil.NewClient(roots, 2, "h1")
	defer hc.CloseIdleConnections()

	n := 2 * o.revocations
	logf("revoke: enrolling %d devices through %s", n, a.HTTPSURL)
	toks, err := (&benchutil.TokenMinter{Admin: admin, Pattern: revokePrefix + "*"}).Take(ctx, n)
	if err != nil {
		return res, err
	}
	csrs, err := benchutil.MakeCSRs(ctx, revokePrefix, 1, n)
	if err != nil {
		return res, err
	}
	certs := make([]*x509.Certificate, n)
	for i := range n {
		id := benchutil.DeviceID(revokePrefix, i+1)
		body, err := benchutil.PostCSR(ctx, hc, a.HTTPSURL+api.EnrollPath, toks[i], csrs[i], true)
		if err != nil {
			return res, fmt.Errorf("enroll %s: %w", id, err)
		}
		if certs[i], err = benchutil.ParseEnrollment(body, id); err != nil {
			return res, err
		}
	}

	for i, cert := range certs {
		target, name := b, "B"
		if i%2 == 1 {
			target, name = a, "A"
		}
		req, err := ocsp.CreateRequest(cert, issuer, nil)
		if err != nil {
			return res, err
		}
		url := target.HTTPURL + api.OCSPPath
		if st, err := askOCSP(ctx, hc, url, req, cert, issuer); err != nil || st != ocsp.Good {
			return res, fmt.Errorf("OCSP of %x from %s before its revocation: status %d, %v; want good", cert.SerialNumber, name, st, err)
		}
		start := time.Now()
		if err := revokeThrough(ctx, hc, a.HTTPSURL, adminToken, cert.SerialNumber.Text(16)); err != nil {
			return res, err
		}
		acked := time.Now()
		res.call = append(res.call, acked.Sub(start))
		for {
			st, err := askOCSP(ctx, hc, url, req, cert, issuer)
			if err != nil {
				return res, fmt.Errorf("OCSP of %x from %s: %w", cert.SerialNumber, name, err)
			}
			if st == ocsp.Revoked {
				break
			}
			if time.Since(acked) > revokeWait {
				return res, fmt.Errorf("%s's OCSP still says %d for %x %v after its revocation through A", name, st, cert.SerialNumber, revokeWait)
			}
			t := time.NewTimer(ocspPollEvery)
			select {
			case <-ctx.Done():
				t.Stop()
				return res, ctx.Err()
			case <-t.C:
			}
		}
		if i%2 == 0 {
			res.other = append(res.other, time.Since(acked))
		} else {
			res.same = append(res.same, time.Since(acked))
		}
	}
	logf("revoke: %d revocations through A, p99 to B's OCSP %.1f ms, to A's %.1f ms", n,
		benchutil.Millis(benchutil.Percentile(res.other, 99)), benchutil.Millis(benchutil.Percentile(res.same, 99)))
	return res, nil
}

// revokeThrough revokes the certificate serial through the admin API at
// base (cessationOfOperation) and returns once it answered 200.
func revokeThrough(ctx context.Context, hc *http.Client, base, adminToken, serial string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+api.AdminPrefix+"/certificates/"+serial+"/revoke",
		bytes.NewReader([]byte(`{"reason":"cessationOfOperation"}`)))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("revoke %s: %w", serial, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("revoke %s: status %d: %s", serial, resp.StatusCode, bytes.TrimSpace(body))
	}
	return nil
}

// askOCSP posts the OCSP request der to url and returns the status of
// cert in the answer, whose signature it checks against issuer.
func askOCSP(ctx context.Context, hc *http.Client, url string, der []byte, cert, issuer *x509.Certificate) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(der))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/ocsp-request")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("POST %s: status %d", url, resp.StatusCode)
	}
	r, err := ocsp.ParseResponseForCert(body, cert, issuer)
	if err != nil {
		return 0, fmt.Errorf("POST %s: %w", url, err)
	}
	return r.Status, nil
}
