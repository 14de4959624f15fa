package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/web"
)

// defaultDataDir is where the commands look when neither --dir nor
// FLEETCA_DIR says otherwise; `make run` initialises it.
const defaultDataDir = "fleetca-data"

// dataDir resolves the data directory: the flag, FLEETCA_DIR, or ./fleetca-data.
func dataDir(flag string, getenv func(string) string) (string, error) {
	switch {
	case flag != "":
		return flag, nil
	case getenv("FLEETCA_DIR") != "":
		return getenv("FLEETCA_DIR"), nil
	}
	return defaultDataDir, nil
}

// adminFlags are the flags every admin command shares.
type adminFlags struct {
	dir, url, root, tokenFile string
}

func (a *adminFlags) register(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&a.dir, "dir", "", "data directory to find the server URL, root and admin token in (default $FLEETCA_DIR, or ./fleetca-data)")
	f.StringVar(&a.url, "ca-url", "", "the CA's HTTPS URL (default $FLEETCA_URL, or from --dir)")
	f.StringVar(&a.root, "root", "", "root certificate to trust (default $FLEETCA_ROOT, or from --dir)")
	f.StringVar(&a.tokenFile, "admin-token-file", "", "file with the admin token (default $FLEETCA_ADMIN_TOKEN, or DIR/admin-token)")
}

// maxResponseBytes bounds what the CLI reads from the server.
const maxResponseBytes = 8 << 20

// adminClient calls the admin API.
type adminClient struct {
	base  string
	token string
	http  *http.Client
	// roots are the CA roots the client trusts.
	roots *x509.CertPool
}

// client resolves the server URL, root and admin token: flag, then
// environment, then the data directory.
func (a *adminFlags) client(e env) (*adminClient, error) {
	dir, err := dataDir(a.dir, e.getenv)
	if err != nil {
		return nil, err
	}
	base := firstOf(a.url, e.getenv("FLEETCA_URL"))
	rootFile := firstOf(a.root, e.getenv("FLEETCA_ROOT"))
	token := e.getenv("FLEETCA_ADMIN_TOKEN")
	if base == "" || rootFile == "" {
		cfg, err := loadConfig(dir)
		if err != nil {
			return nil, fault.Wrap(err, fault.NotFound, "cannot find the CA's URL and root: "+oneLine(err),
				"pass --dir DIR of the CA, or --ca-url and --root (or FLEETCA_URL and FLEETCA_ROOT)")
		}
		if base == "" {
			base = "https://" + dialable(cfg.Server.HTTPSAddr)
		}
		if rootFile == "" {
			rootFile = filepath.Join(dir, cfg.CA.RootCert)
		}
	}
	if a.tokenFile != "" || token == "" {
		tf := firstOf(a.tokenFile, filepath.Join(dir, adminTokenName))
		b, err := os.ReadFile(tf)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fault.New(fault.Unauthorized, "no admin token: "+tf+" does not exist",
				"pass --dir DIR of the CA, --admin-token-file, or set FLEETCA_ADMIN_TOKEN")
		}
		if err != nil {
			return nil, fmt.Errorf("read admin token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	pool, err := readRoots(rootFile)
	if err != nil {
		return nil, err
	}
	return &adminClient{base: strings.TrimRight(base, "/"), token: token, http: httpsClient(pool), roots: pool}, nil
}

// dialable turns a listen address into one to dial: an unspecified host
// becomes loopback.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// readRoots loads a PEM bundle of trusted roots.
func readRoots(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fault.Wrap(err, fault.NotFound, "cannot read the root certificate "+file, "pass --root with the CA's root.pem")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fault.New(fault.Malformed, file+" holds no PEM certificate", "pass the CA's root.pem")
	}
	return pool, nil
}

// httpsClient returns a client that trusts only pool, TLS 1.2+, with timeouts.
func httpsClient(pool *x509.CertPool) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout: 10 * time.Second,
			ForceAttemptHTTP2:   true,
		},
	}
}

// do sends a request with the admin token and decodes a JSON answer into
// out; a problem answer becomes a *fault.Error.
func (c *adminClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fault.Wrap(err, fault.Malformed, "bad CA URL "+c.base, "pass --ca-url https://HOST:PORT")
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fault.Wrap(err, fault.Unavailable, "cannot reach the CA at "+c.base+": "+err.Error(),
			"check that 'fleetca serve' runs and that --ca-url and --root are right")
	}
	defer resp.Body.Close()
	return decodeResponse(resp, out)
}

// decodeResponse reads a bounded JSON or problem answer.
func decodeResponse(resp *http.Response, out any) error {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode >= 300 {
		return problemError(resp, b)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode response from %s: %w", resp.Request.URL.Path, err)
	}
	return nil
}

// problemError turns an RFC 9457 answer into a *fault.Error for the CLI line.
func problemError(resp *http.Response, b []byte) error {
	var p struct {
		Type, Title, Detail, Hint string
		RequestID                 string `json:"request_id"`
	}
	if json.Unmarshal(b, &p) != nil || p.Detail == "" {
		return fmt.Errorf("the CA answered %s", resp.Status)
	}
	kind := fault.Malformed
	for _, k := range fault.Kinds {
		if p.Type == web.ProblemTypePrefix+k.String() {
			kind = k
		}
	}
	hint := p.Hint
	if p.RequestID != "" && resp.StatusCode >= 500 {
		hint = strings.TrimSpace(hint + " request_id " + p.RequestID)
	}
	return fault.New(kind, p.Detail, hint)
}
