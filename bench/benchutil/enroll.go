package benchutil

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"time"

	"github.com/fleetca/fleetca/api"
)

// NewClient returns a load client for conc workers. proto "h1": HTTP/1.1
// with keep-alive, at most conc connections, all kept idle between
// requests, so that each worker keeps one connection. proto "h2": HTTP/2,
// the requests multiplexed on one connection. roots, if not empty, are its
// only TLS trust anchors (Server.Roots). It is the load's client, tuned for
// the measurement; setup and admin calls go through package client instead
// (Server.Client).
func NewClient(roots []*x509.Certificate, conc int, proto string) *http.Client {
	tr := &http.Transport{
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConns:        conc,
		MaxIdleConnsPerHost: conc,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		Protocols:           new(http.Protocols),
	}
	if len(roots) > 0 {
		pool := x509.NewCertPool()
		for _, r := range roots {
			pool.AddCert(r)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if proto == "h2" {
		tr.Protocols.SetHTTP2(true)
	} else {
		tr.Protocols.SetHTTP1(true)
		tr.MaxConnsPerHost = conc
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// DeviceID is the ID of the n-th benchmark device: prefix and n in eight
// digits, b-00000001. A pattern token prefix+"*" matches it.
func DeviceID(prefix string, n int) string { return fmt.Sprintf("%s%08d", prefix, n) }

// NewCSR returns a PEM CSR for CN=id with a new P-256 key, as a device
// would make it.
func NewCSR(id string) ([]byte, error) {
	_, der, err := NewKeyAndCSR(id)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// NewKeyAndCSR is NewCSR that also returns the key, for a device that
// will go on to use its certificate; its CSR is DER, as client.Enroll
// takes it.
func NewKeyAndCSR(id string) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
	if err != nil {
		return nil, nil, err
	}
	return key, der, nil
}

// MakeCSRs returns n PEM CSRs (NewCSR), for devices DeviceID(prefix,
// first) onwards, generated on every core.
func MakeCSRs(ctx context.Context, prefix string, first, n int) ([][]byte, error) {
	_, csrs, err := makeCSRs(ctx, prefix, first, n, false)
	return csrs, err
}

// MakeKeysAndCSRs is MakeCSRs that also returns the keys, for devices that
// will go on to use their certificates (to renew them).
func MakeKeysAndCSRs(ctx context.Context, prefix string, first, n int) ([]*ecdsa.PrivateKey, [][]byte, error) {
	return makeCSRs(ctx, prefix, first, n, true)
}

func makeCSRs(ctx context.Context, prefix string, first, n int, withKeys bool) ([]*ecdsa.PrivateKey, [][]byte, error) {
	out := make([][]byte, n)
	var keys []*ecdsa.PrivateKey
	if withKeys {
		keys = make([]*ecdsa.PrivateKey, n)
	}
	err := ForEach(ctx, runtime.GOMAXPROCS(0), n, func(i int) error {
		key, der, err := NewKeyAndCSR(DeviceID(prefix, first+i))
		if err != nil {
			return err
		}
		out[i] = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
		if withKeys {
			keys[i] = key
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("generate CSRs: %w", err)
	}
	return keys, out, nil
}

// maxAnswerBytes bounds what Post reads of an answer.
const maxAnswerBytes = 1 << 20

// PostCSR sends one enrollment: csrPEM to url (the server's /v1/enroll)
// with token as the bearer. Anything but 201 is an error carrying the
// status and the start of the body. The body of a 201 is returned only if
// keep is set; otherwise it is read and dropped, which costs the load
// generator less.
func PostCSR(ctx context.Context, client *http.Client, url, token string, csrPEM []byte, keep bool) ([]byte, error) {
	return Post(ctx, client, url, "application/x-pem-file", "Bearer "+token, csrPEM, http.StatusCreated, keep)
}

// Post sends body to url with the content type and, unless auth is "",
// that Authorization header. An answer other than want is an error
// carrying the status and the start of the body. The body of a success
// is returned only if keep is set; otherwise it is read and dropped.
func Post(ctx context.Context, client *http.Client, url, contentType, auth string, body []byte, want int, keep bool) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	if !keep {
		_, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswerBytes))
		return nil, err
	}
	return io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
}

// ParseEnrollment checks the body of a 201 from /v1/enroll with
// CheckEnrollment and returns its certificate. It verifies no chain: a
// load loop calls it and must not spend the servers' CPU on that.
func ParseEnrollment(body []byte, id string) (*x509.Certificate, error) {
	var r api.EnrollResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("201 body is not the enrollment JSON: %w", err)
	}
	cert, err := ParseCertPEM([]byte(r.Certificate))
	if err != nil {
		return nil, fmt.Errorf("201 certificate: %w", err)
	}
	if err := CheckEnrollment(r, cert, id); err != nil {
		return nil, err
	}
	return cert, nil
}

// CheckEnrollment checks that r, an answer from /v1/enroll with its
// certificate cert, is for the device id: its device_id and the
// certificate's CN are id, and its serial is the certificate's.
func CheckEnrollment(r api.EnrollResponse, cert *x509.Certificate, id string) error {
	switch {
	case r.DeviceID != id || cert.Subject.CommonName != id:
		return fmt.Errorf("asked for %q, got device_id %q and CN %q", id, r.DeviceID, cert.Subject.CommonName)
	case r.Serial != cert.SerialNumber.Text(16):
		return fmt.Errorf("serial %q is not the certificate's %x", r.Serial, cert.SerialNumber)
	}
	return nil
}

// ParseCertPEM parses the first certificate of a PEM text.
func ParseCertPEM(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}
