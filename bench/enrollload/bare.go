package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/bench/benchutil"
)

// The bare server is the ceiling of the step-ca comparison: a Go HTTPS
// server that does floor I for each request and nothing else. It answers
// POST /v1/enroll as fleetca does (Authorization: Bearer <token>, a PEM
// CSR; 201 with the enrollment JSON) by parsing the CSR, checking its
// signature and calling x509.CreateCertificate with the floor's device
// template, over net/http and crypto/tls with the settings fleetca serve
// uses (TLS 1.2+, a P-256 certificate, serve's GOGC and GOMAXPROCS). It
// keeps no token store, no database, no fsync, no log and no policy: a CA
// on Go's crypto and net/http does at least this per certificate, so the
// rate it reaches with the benchmark's client on this machine is about
// such a CA's ceiling there (a leaner HTTP stack could gain a little).
//
// It runs as its own process, as fleetca and step-ca do, so that its CPU is
// measured the same way: this program started again with bareEnv naming a
// directory, where the child writes bareFile once it listens.
var bareClient = clientKind{"bare", api.EnrollPath, http.StatusCreated,
	"a bare Go HTTPS server, its own process: floor I per request and nothing else; native's request and answer"}

const (
	// bareEnv, set to a directory, makes this program the bare server.
	bareEnv = "FLEETCA_ENROLLLOAD_BARE"
	// bareFile, in that directory, is the running server's bareInfo.
	bareFile = "bare.json"
	// maxBareCSR bounds a request body, as fleetca's enroll handler does.
	maxBareCSR = 64 << 10
)

// bareInfo is what the bare server tells the benchmark once it listens.
type bareInfo struct {
	URL   string `json:"url"`   // https://127.0.0.1:PORT
	Token string `json:"token"` // the one bearer token it accepts
	Root  string `json:"root"`  // PEM: its issuer, which also issued its TLS certificate
}

// bareServer is a running bare server, as the benchmark sees it.
type bareServer struct {
	url   string
	token string
	roots []*x509.Certificate
	*child
}

// bareCA is the bare server's handler: its issuer and the token it takes.
type bareCA struct {
	key       *ecdsa.PrivateKey
	issuer    *x509.Certificate
	issuerPEM string
	auth      []byte // "Bearer " + token
}

// newBareCA makes the bare server's issuer (floor I's) and token.
func newBareCA() (*bareCA, string, error) {
	key, issuer, err := floorIssuer()
	if err != nil {
		return nil, "", err
	}
	token := rand.Text()
	return &bareCA{key: key, issuer: issuer, auth: []byte("Bearer " + token),
		issuerPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: issuer.Raw}))}, token, nil
}

// ServeHTTP answers POST /v1/enroll; anything else is 404 or 405, a wrong
// token 401, a bad CSR 400.
func (b *bareCA) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path != api.EnrollPath:
		http.NotFound(w, r)
		return
	case r.Method != http.MethodPost:
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST a PEM CSR", http.StatusMethodNotAllowed)
		return
	case subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), b.auth) != 1:
		http.Error(w, "send the bare server's token as a bearer token", http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBareCSR))
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	answer, err := b.issue(body, time.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// A length, as fleetca's answer has: net/http would chunk an answer
	// this size without one.
	w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(answer)
}

// issue is floor I for a PEM CSR, and the enrollment JSON of the result.
func (b *bareCA) issue(body []byte, now time.Time) ([]byte, error) {
	block, _ := pem.Decode(body)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("the body is not a PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse the CSR: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("the CSR's signature: %w", err)
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, errors.New("the CSR's key is not P-256")
	}
	id := csr.Subject.CommonName
	tmpl := deviceTemplate(b.issuer, pub, id, now)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, b.issuer, pub, b.key)
	if err != nil {
		return nil, err
	}
	cert := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return json.Marshal(api.EnrollResponse{DeviceID: id, Serial: tmpl.SerialNumber.Text(16),
		NotAfter: tmpl.NotAfter.UTC().Format(time.RFC3339), Certificate: cert, Chain: cert + b.issuerPEM})
}

// serveBare is the bare server's process: it makes its issuer, a TLS
// certificate for 127.0.0.1 and a token, listens on a loopback port,
// writes bareFile into dir, and serves until it is killed. It returns the
// exit code.
func serveBare(dir string) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "enrollload bare server: %v\n", err)
		return 1
	}
	// serve's runtime settings (cmd/fleetca/serve.go: GOGC=400, twice as
	// many Ps as CPUs), unless the environment (-server-env) sets them.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(2 * runtime.GOMAXPROCS(0))
	}
	b, token, err := newBareCA()
	if err != nil {
		return fail(err)
	}
	tlsCert, err := b.tlsCertificate()
	if err != nil {
		return fail(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	info, err := json.Marshal(bareInfo{URL: "https://" + ln.Addr().String(), Token: token, Root: b.issuerPEM})
	if err != nil {
		return fail(err)
	}
	tmp := filepath.Join(dir, bareFile+".tmp")
	if err := os.WriteFile(tmp, info, 0o600); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, bareFile)); err != nil {
		return fail(err)
	}
	srv := &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{tlsCert}}}
	return fail(srv.ServeTLS(ln, "", ""))
}

// tlsCertificate is a P-256 server certificate for 127.0.0.1 from b's
// issuer, as `fleetca init` makes serve's.
func (b *bareCA) tlsCertificate() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, b.issuer, &key.PublicKey, b.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der, b.issuer.Raw}, PrivateKey: key}, nil
}

// startBare starts this program again as the bare server in dir, with env
// added to its environment (-server-env, as fleetca gets it), and waits
// until it listens.
func startBare(ctx context.Context, dir string, env []string) (*bareServer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	proc, err := startChild(ctx, "the bare server", filepath.Join(dir, "bare.log"), exe, append([]string{bareEnv + "=" + dir}, env...))
	if err != nil {
		return nil, err
	}
	s := &bareServer{child: proc}
	info, err := s.waitInfo(ctx, filepath.Join(dir, bareFile))
	if err != nil {
		s.stop()
		return nil, err
	}
	root, err := benchutil.ParseCertPEM([]byte(info.Root))
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("the bare server's root: %w", err)
	}
	s.url, s.token, s.roots = info.URL, info.Token, []*x509.Certificate{root}
	return s, nil
}

// waitInfo polls for the bare server's bareFile until it appears, the
// process exits, or 30s pass.
func (s *bareServer) waitInfo(ctx context.Context, path string) (bareInfo, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			var info bareInfo
			return info, json.Unmarshal(b, &info)
		}
		if err := s.alive(); err != nil {
			return bareInfo{}, err
		}
		if time.Now().After(deadline) {
			return bareInfo{}, fmt.Errorf("the bare server did not come up in 30s\n%s", benchutil.Tail(s.logPath, 20))
		}
		select {
		case <-ctx.Done():
			return bareInfo{}, ctx.Err()
		case <-time.After(20 * time.Millisecond): // polling a child process, not synchronising a test
		}
	}
}
