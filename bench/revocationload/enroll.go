package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/bench/benchutil"
)

// device is an enrolled device and what the phases send about it.
type device struct {
	id        string
	cert      *x509.Certificate
	ocspReq   []byte // OCSP request, SHA-1 CertID, no nonce: what openssl and most clients send
	serialDER []byte // the serial as a DER INTEGER, to find it in a CRL's DER
}

// enrollStats is how setting up went.
type enrollStats struct {
	n       int
	elapsed time.Duration
}

// Device IDs are r-00000001, r-00000002, ...; the token's pattern matches them.
const (
	devicePrefix  = "r-"
	devicePattern = "r-*"
	maxTokenUses  = 100_000 // enroll.max_token_uses' default ceiling
)

// enrollDevices enrolls n devices, each with a new P-256 key, through POST
// /v1/enroll at concurrency conc, with pattern tokens from the admin API
// (client.CreateToken). The enrollments themselves, tens of thousands,
// go through the load client (benchutil.PostCSR, one HTTP/1.1 connection
// per worker) and are checked with benchutil.ParseEnrollment, not through
// client.Enroll, whose chain verification would double the client's CPU
// on the cores the server uses.
func enrollDevices(ctx context.Context, env *serverEnv, n, conc int, logf func(string, ...any)) ([]device, *enrollStats, error) {
	client := benchutil.NewClient(env.roots, conc, "h1")
	defer client.CloseIdleConnections()
	tokens := make([]string, 0, (n+maxTokenUses-1)/maxTokenUses)
	for left := n; left > 0; left -= maxTokenUses {
		t, err := env.ca.CreateToken(ctx, api.TokenRequest{DevicePattern: devicePattern, TTL: "2h", Uses: min(left, maxTokenUses)})
		if err != nil {
			return nil, nil, fmt.Errorf("create an enrollment token: %w", err)
		}
		tokens = append(tokens, t.Token)
	}
	csrs, err := benchutil.MakeCSRs(ctx, devicePrefix, 1, n)
	if err != nil {
		return nil, nil, err
	}
	devs := make([]device, n)
	enrollURL := env.srv.HTTPSURL + api.EnrollPath
	start := time.Now()
	err = benchutil.ForEach(ctx, conc, n, func(i int) error {
		id := benchutil.DeviceID(devicePrefix, i+1)
		body, err := benchutil.PostCSR(ctx, client, enrollURL, tokens[i/maxTokenUses], csrs[i], true)
		if err != nil {
			return fmt.Errorf("enroll %s: %w", id, err)
		}
		cert, err := benchutil.ParseEnrollment(body, id)
		if err != nil {
			return fmt.Errorf("enroll %s: %w", id, err)
		}
		d, err := newDevice(id, cert, env.inter)
		if err != nil {
			return err
		}
		devs[i] = d
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	st := &enrollStats{n: n, elapsed: time.Since(start)}
	logf("enrolled %d devices in %v (%.0f/s)", n, st.elapsed.Round(time.Millisecond), float64(n)/st.elapsed.Seconds())
	return devs, st, nil
}

// newDevice prepares what the phases send about cert.
func newDevice(id string, cert, issuer *x509.Certificate) (device, error) {
	req, err := ocsp.CreateRequest(cert, issuer, &ocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		return device{}, fmt.Errorf("OCSP request for %s: %w", id, err)
	}
	return device{id: id, cert: cert, ocspReq: req, serialDER: derInteger(cert.SerialNumber.Bytes())}, nil
}

// derInteger encodes a positive integer's big-endian magnitude as a DER
// INTEGER (the form a CRL entry's userCertificate takes).
func derInteger(mag []byte) []byte {
	if len(mag) == 0 {
		mag = []byte{0}
	}
	if mag[0]&0x80 != 0 {
		mag = append([]byte{0}, mag...)
	}
	out := []byte{0x02}
	switch n := len(mag); {
	case n < 0x80:
		out = append(out, byte(n))
	case n < 0x100:
		out = append(out, 0x81, byte(n))
	default:
		out = append(out, 0x82, byte(n>>8), byte(n))
	}
	return append(out, mag...)
}

// maxAnswerBytes bounds what the client reads of an answer (a CRL of a
// million entries is about 40 MB).
const maxAnswerBytes = 256 << 20
