package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"go.step.sm/crypto/jose"
	"go.step.sm/crypto/minica"
	"go.step.sm/crypto/pemutil"

	"github.com/fleetca/fleetca/bench/benchutil"
)

// stepCAVersion is the step-ca release the benchmark installs and runs
// beside fleetca (issue 19).
const stepCAVersion = "v0.30.2"

// stepCAModule is what `go install` builds.
const stepCAModule = "github.com/smallstep/certificates/cmd/step-ca"

// stepCAClient enrolls against step-ca itself: the same request as
// stepClient's, at step-ca's own path, with a token the benchmark mints
// with the provisioner's key.
var stepCAClient = clientKind{"step-ca", "/1.0/sign", http.StatusCreated,
	`step-ca ` + stepCAVersion + `, its own process: {"csr": PEM, "ott": <JWK provisioner token minted by the benchmark>}; 201 {crt, ca, certChain}`}

// stepCA is a running step-ca: its URL, process and what the benchmark
// needs to mint its one-time tokens.
type stepCA struct {
	url     string // https://127.0.0.1:PORT
	bin     string
	roots   []*x509.Certificate
	signer  jose.Signer
	rootSHA string // hex SHA-256 of the root's DER: the token's sha claim
	*child
}

// toolsBin is where the benchmark installs the peers it runs, outside the
// repository: $HOME/.cache/fleetca-tools/bin.
func toolsBin() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".cache", "fleetca-tools", "bin"), nil
}

// installStepCA returns the path of step-ca at stepCAVersion, installing it
// with `go install` (CGO_ENABLED=0) into toolsBin when it is missing or at
// another version.
func installStepCA(ctx context.Context, logf func(string, ...any)) (string, error) {
	dir, err := toolsBin()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "step-ca")
	if out, err := exec.CommandContext(ctx, "go", "version", "-m", bin).Output(); err == nil &&
		strings.Contains(string(out), "\tmod\tgithub.com/smallstep/certificates\t"+stepCAVersion+"\t") {
		return bin, nil
	}
	logf("installing step-ca %s into %s (go install, CGO_ENABLED=0)", stepCAVersion, dir)
	cmd := exec.CommandContext(ctx, "go", "install", stepCAModule+"@"+stepCAVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	cmd.Dir = dir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s@%s: %w\n%s", stepCAModule, stepCAVersion, err, out)
	}
	return bin, nil
}

// startStepCA configures step-ca in dir as the issue says (its own root
// and intermediate made with go.step.sm/crypto's minica, the intermediate
// key encrypted under a password file, one JWK provisioner, the bbolt
// database, a loopback port), starts it, and waits for /health.
func startStepCA(ctx context.Context, bin, dir string) (*stepCA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	mca, err := minica.New(minica.WithName("Bench step-ca"))
	if err != nil {
		return nil, err
	}
	password := []byte(rand.Text())
	provKey, provEnc, err := jose.GenerateDefaultKeyPair(password)
	if err != nil {
		return nil, err
	}
	encKey, err := provEnc.CompactSerialize()
	if err != nil {
		return nil, err
	}
	// GenerateDefaultKeyPair returns the public half; the private JWK is
	// the encrypted one's content.
	priv, err := jose.Decrypt([]byte(encKey), jose.WithPassword(password))
	if err != nil {
		return nil, err
	}
	var privJWK jose.JSONWebKey
	if err := json.Unmarshal(priv, &privJWK); err != nil {
		return nil, err
	}
	intKey, err := pemutil.Serialize(mca.Signer, pemutil.WithPassword(password))
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{
		"root_ca.crt":         pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: mca.Root.Raw}),
		"intermediate_ca.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: mca.Intermediate.Raw}),
		"intermediate_ca_key": pem.EncodeToMemory(intKey),
		"password.txt":        password,
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return nil, err
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := map[string]any{
		"root":     filepath.Join(dir, "root_ca.crt"),
		"crt":      filepath.Join(dir, "intermediate_ca.crt"),
		"key":      filepath.Join(dir, "intermediate_ca_key"),
		"address":  addr,
		"dnsNames": []string{"127.0.0.1", "localhost"},
		"logger":   map[string]any{"format": "text"},
		"db":       map[string]any{"type": "bbolt", "dataSource": filepath.Join(dir, "db")},
		"authority": map[string]any{
			"provisioners": []any{map[string]any{
				"type": "JWK", "name": "bench", "key": provKey, "encryptedKey": encKey,
			}},
		},
		"tls": map[string]any{
			"cipherSuites":  []string{"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"},
			"minVersion":    1.2,
			"maxVersion":    1.3,
			"renegotiation": false,
		},
	}
	cb, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "ca.json")
	if err := os.WriteFile(cfgPath, cb, 0o600); err != nil {
		return nil, err
	}
	proc, err := startChild(ctx, "step-ca", filepath.Join(dir, "step-ca.log"), bin, []string{"STEPPATH=" + dir},
		"--password-file", filepath.Join(dir, "password.txt"), cfgPath)
	if err != nil {
		return nil, err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: privJWK.Key},
		new(jose.SignerOptions).WithType("JWT").WithHeader("kid", privJWK.KeyID))
	if err != nil {
		proc.stop()
		return nil, err
	}
	sum := sha256.Sum256(mca.Root.Raw)
	s := &stepCA{url: "https://" + addr, bin: bin, roots: []*x509.Certificate{mca.Root},
		signer: signer, rootSHA: hex.EncodeToString(sum[:]), child: proc}
	if err := s.waitHealthy(ctx); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// waitHealthy polls GET /health until step-ca answers, or 30s pass.
func (s *stepCA) waitHealthy(ctx context.Context) error {
	pool := x509.NewCertPool()
	pool.AddCert(s.roots[0])
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get(s.url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /health: %s", resp.Status)
		}
		if err := s.alive(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("step-ca did not come up: %w\n%s", err, benchutil.Tail(s.logPath, 20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond): // polling a child process, not synchronising a test
		}
	}
}

// stepCAClaims are a JWK provisioner's one-time token for /1.0/sign.
type stepCAClaims struct {
	jose.Claims
	SHA  string   `json:"sha"`
	SANs []string `json:"sans"`
}

// tokens mints a one-time token for each of the n devices from
// DeviceID(devicePrefix, first) on, as the step CLI does with the
// provisioner's key: aud .../1.0/sign, sha the root's fingerprint, sans
// the device ID, a unique jti, valid for an hour.
func (s *stepCA) tokens(first, n int) ([]string, error) {
	out := make([]string, n)
	now := time.Now()
	for i := range out {
		id := benchutil.DeviceID(devicePrefix, first+i)
		c := stepCAClaims{
			Claims: jose.Claims{
				Issuer:    "bench",
				Subject:   id,
				Audience:  jose.Audience{s.url + "/1.0/sign"},
				NotBefore: jose.NewNumericDate(now.Add(-time.Minute)),
				IssuedAt:  jose.NewNumericDate(now),
				Expiry:    jose.NewNumericDate(now.Add(time.Hour)),
				ID:        rand.Text(),
			},
			SHA:  s.rootSHA,
			SANs: []string{id},
		}
		t, err := jose.Signed(s.signer).Claims(c).Serialize()
		if err != nil {
			return nil, fmt.Errorf("mint a step-ca token for %s: %w", id, err)
		}
		out[i] = t
	}
	return out, nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("not a TCP address")
	}
	return addr.Port, nil
}
