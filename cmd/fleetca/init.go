package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/enroll"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// adminTokenName is the file init writes the admin token to (mode 0600).
const adminTokenName = "admin-token"

func newInitCmd(e env) *cobra.Command {
	var (
		dir, name, keyType, passwordFile, trustDomain string
		httpsAddr, httpAddr, publicURL, metricsAddr   string
		storeDSN, storePasswordFile                   string
		noPassword                                    bool
		dns                                           []string
	)
	cmd := &cobra.Command{
		Use:   "init --dir DIR --name NAME",
		Short: "Create a CA: root and intermediate keys, configuration, admin token",
		Long: `init creates a new CA in DIR: root.pem (20 years), intermediate.pem (5 years),
their keys under secrets/, fleetca.yaml, the bbolt database and admin-token:
the token of the first owner, an admin named admin (see fleetca admin).

The keys are encrypted with the password from --password-file or FLEETCA_PASSWORD;
--no-password must be given explicitly to leave them unencrypted (mode 0600).

With --store DSN the CA's records go to that PostgreSQL database instead of
the bbolt file: init records the DSN in fleetca.yaml (store.dsn), creates the
schema and writes the admin token there. The DSN carries no password: give
it in --store-password-file (mode 0600; recorded as store.password_file), or
PGPASSWORD or PGPASSFILE. A real deployment uses sslmode=verify-full. A
database that already holds a CA is refused: to add a replica of that CA,
copy its data directory to the new machine and run serve there.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usagef("init needs --dir DIR")
			}
			if name == "" {
				return usagef("init needs --name NAME (the CA's name, e.g. \"Acme Devices\")")
			}
			pw, err := readPassword(passwordFile, "", e.getenv)
			if err != nil {
				return err
			}
			if pw == nil && !noPassword {
				return usagef("give --password-file FILE or FLEETCA_PASSWORD to encrypt the CA keys, or --no-password to leave them unencrypted")
			}
			if pw != nil && noPassword {
				return usagef("--no-password conflicts with the password given by --password-file or FLEETCA_PASSWORD")
			}
			if trustDomain == "" {
				trustDomain = slug(name)
			}
			absPW, err := absPath(passwordFile)
			if err != nil {
				return err
			}
			sc := storeConfig{}
			if storeDSN != "" {
				absStorePW, err := absPath(storePasswordFile)
				if err != nil {
					return err
				}
				sc = storeConfig{Driver: driverPostgres, DSN: storeDSN, PasswordFile: absStorePW}
			} else if storePasswordFile != "" {
				return usagef("--store-password-file is the password of the --store database; give --store DSN too")
			}
			return runInit(cmd, e, initOptions{
				dir: dir, name: name, keyType: ca.KeyType(keyType), password: pw, passwordFile: absPW,
				// validate checks the trust domain and the store before anything is written.
				cfg: fileConfig{Name: name, TrustDomain: api.TrustDomain(trustDomain), PasswordFile: absPW, Store: sc,
					Server: serverConfig{HTTPSAddr: httpsAddr, HTTPAddr: httpAddr, PublicURL: publicURL, MetricsAddr: metricsAddr, DNS: dns}},
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "data directory to create the CA in")
	f.StringVar(&name, "name", "", "the CA's name, in its certificates")
	f.StringVar(&keyType, "key-type", string(ca.KeyECP256), "CA key type: ec-p256, ec-p384, rsa-3072 or ed25519")
	f.StringVar(&passwordFile, "password-file", "", "file with the password that encrypts the CA keys (mode 0600)")
	f.BoolVar(&noPassword, "no-password", false, "leave the CA keys unencrypted (mode 0600)")
	f.StringSliceVar(&dns, "dns", nil, "DNS names for the HTTPS certificate, besides localhost and 127.0.0.1")
	f.StringVar(&trustDomain, "trust-domain", "", "SPIFFE trust domain of device URIs (default: from --name)")
	f.StringVar(&httpsAddr, "https-addr", defaultHTTPSAddr, "HTTPS listener address")
	f.StringVar(&httpAddr, "http-addr", defaultHTTPAddr, "HTTP listener address (CA certificates, CRL, OCSP)")
	f.StringVar(&publicURL, "public-url", "", "the HTTP listener's URL as devices see it (default http://<http-addr>)")
	f.StringVar(&metricsAddr, "metrics-addr", defaultMetricsAddr, "Prometheus metrics listener address (keep it on loopback); off: none")
	f.StringVar(&storeDSN, "store", "", "PostgreSQL DSN to keep the CA's records in, without a password (default: the bbolt file DIR/fleetca.db)")
	f.StringVar(&storePasswordFile, "store-password-file", "", "file with the --store database's password (mode 0600; default PGPASSWORD or PGPASSFILE)")
	return cmd
}

// absPath is path made absolute, or "" for "".
func absPath(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	return filepath.Abs(path)
}

type initOptions struct {
	dir, name    string
	keyType      ca.KeyType
	password     []byte
	passwordFile string
	cfg          fileConfig
}

// runInit creates the CA, the config, the database and the admin token.
func runInit(cmd *cobra.Command, e env, o initOptions) error {
	ctx := cmd.Context()
	now := time.Now()
	if e.now != nil {
		now = e.now()
	}
	cfg := o.cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	// The intermediate names the root CRL's URL; a port the kernel will
	// choose at serve time (":0") is no URL, so leave it out then.
	crlBase := cfg.Server.PublicURL
	if u, err := url.Parse(crlBase); err != nil || u.Port() == "0" {
		crlBase = ""
	}
	// A PostgreSQL store is checked, migrated and found empty before
	// anything is written to dir.
	var st store.Store
	if cfg.Store.Driver == driverPostgres {
		var err error
		if st, err = openStore(ctx, o.dir, cfg.Store, storeOptions{migrate: true}); err != nil {
			return err
		}
		defer st.Close()
		if err := refuseNonEmpty(ctx, st); err != nil {
			return err
		}
	}
	res, err := ca.Init(ctx, ca.InitOptions{Dir: o.dir, Name: o.name, KeyType: o.keyType, Password: o.password, PublicURL: crlBase, Now: now})
	if err != nil {
		return err
	}
	// Keep the CA paths init chose, and leave the other ca keys at their defaults.
	res.Config.DeviceValidity, res.Config.ServerValidity, res.Config.Backdate = cfg.CA.DeviceValidity, cfg.CA.ServerValidity, cfg.CA.Backdate
	res.Config.RenewAfterExpiry, res.Config.RenewMinInterval = cfg.CA.RenewAfterExpiry, cfg.CA.RenewMinInterval
	cfg.CA = res.Config
	if err := writeConfig(o.dir, cfg); err != nil {
		return err
	}
	if st == nil {
		if st, err = openStore(ctx, o.dir, cfg.Store, storeOptions{}); err != nil {
			return err
		}
		defer st.Close()
	}
	authority, err := ca.New(ctx, cfg.CA, ca.Deps{Dir: o.dir, Password: o.password, PublicURL: cfg.Server.PublicURL, TrustDomain: cfg.TrustDomain})
	if err != nil {
		return err
	}
	svc, err := enroll.New(cfg.Enroll, enroll.Deps{Store: st, CA: authority})
	if err != nil {
		return err
	}
	if err := writeRootCRL(cmd, o.dir, authority, cfg.Revocation.RootCRLValidity); err != nil {
		return err
	}
	token, err := svc.MintAdminToken(ctx)
	if err != nil {
		return err
	}
	if err := writeSecretFile(filepath.Join(o.dir, adminTokenName), []byte(string(token)+"\n")); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Created CA %q in %s\n", o.name, o.dir)
	fmt.Fprintf(e.stdout, "  root:             %s (SHA-256 fingerprint %s)\n", filepath.Join(o.dir, cfg.CA.RootCert), res.RootFingerprint)
	fmt.Fprintf(e.stdout, "  intermediate:     %s\n", filepath.Join(o.dir, cfg.CA.IntermediateCert))
	fmt.Fprintf(e.stdout, "  admin token:      %s (mode 0600; the owner admin's)\n", filepath.Join(o.dir, adminTokenName))
	fmt.Fprintf(e.stdout, "  trust domain:     %s\n", cfg.TrustDomain)
	if cfg.Store.Driver == driverPostgres {
		fmt.Fprintf(e.stdout, "  store:            %s\n", describeStore(o.dir, cfg.Store))
	}
	if o.password == nil {
		fmt.Fprintf(e.stdout, "  keys:             unencrypted (--no-password), mode 0600\n")
	}
	fmt.Fprintf(e.stdout, "Next: fleetca serve --dir %s\n", o.dir)
	return nil
}

// refuseNonEmpty refuses a store that holds records already: init makes
// a new CA, and a second CA in one database would mix with the first.
func refuseNonEmpty(ctx context.Context, st store.Store) error {
	empty, err := storeEmpty(ctx, st)
	if err != nil {
		return err
	}
	if !empty {
		return fault.WithKey(fault.New(fault.Conflict, "the database already holds a CA",
			"to add a replica of that CA, copy its data directory (fleetca.yaml, the certificates, secrets/) to the new machine and run fleetca serve there; for a new CA, use an empty database"),
			"store.dsn")
	}
	return nil
}

// storeEmpty reports whether st holds no record.
func storeEmpty(ctx context.Context, st store.Store) (bool, error) {
	d, ok := st.(store.Dumper)
	if !ok {
		return false, fmt.Errorf("the store cannot count its records")
	}
	counts, err := d.Counts(ctx)
	if err != nil {
		return false, fmt.Errorf("count the store's records: %w", err)
	}
	for _, n := range counts {
		if n > 0 {
			return false, nil
		}
	}
	return true, nil
}

// writeSecretFile writes b to a new file of mode 0600, durably.
func writeSecretFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// slug turns a CA name into a default trust domain: lowercase, with runs of
// other characters as '-'.
func slug(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	s := strings.TrimSuffix(b.String(), "-")
	if s == "" {
		s = "fleet"
	}
	return s
}
