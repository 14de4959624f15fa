package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fleetca/fleetca/client"
	"github.com/fleetca/fleetca/internal/fault"
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

// client resolves the server URL, root and admin token: flag, then
// environment, then the data directory.
func (a *adminFlags) client(e env) (*client.Client, error) {
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
	roots, err := client.ReadRoots(rootFile)
	if err != nil {
		return nil, err
	}
	return client.New(client.Config{URL: base, Roots: roots, AdminToken: token})
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
