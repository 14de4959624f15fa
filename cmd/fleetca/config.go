package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/auditlog"
	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/enroll"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/revocation"
	"github.com/fleetca/fleetca/web"
)

// configName is the configuration file in a data directory.
const configName = "fleetca.yaml"

// fileConfig is DIR/fleetca.yaml. Unknown keys stop start-up.
type fileConfig struct {
	// Name is the CA's name, shown in its certificates' subjects.
	Name string `yaml:"name"`
	// TrustDomain is the SPIFFE trust domain of device URI SANs; validate
	// checks it with api.ParseTrustDomain.
	TrustDomain api.TrustDomain `yaml:"trust_domain"`
	// PasswordFile holds the password of the encrypted CA keys (mode 0600);
	// "" means FLEETCA_PASSWORD or unencrypted keys.
	PasswordFile string            `yaml:"password_file"`
	Server       serverConfig      `yaml:"server"`
	Store        storeConfig       `yaml:"store"`
	CA           ca.Config         `yaml:"ca"`
	Enroll       enroll.Config     `yaml:"enroll"`
	Revocation   revocation.Config `yaml:"revocation"`
	Web          web.Config        `yaml:"web"`
	Audit        auditlog.Config   `yaml:"audit"`
}

// serverConfig is the server section.
type serverConfig struct {
	// HTTPSAddr is the TLS listener's address. Default 127.0.0.1:8443.
	HTTPSAddr string `yaml:"https_addr"`
	// HTTPAddr is the plain-HTTP listener's address (CA certificates, later
	// CRLs and OCSP). Default 127.0.0.1:8080.
	HTTPAddr string `yaml:"http_addr"`
	// PublicURL is the HTTP listener's URL as devices and verifiers reach
	// it, written into certificates (AIA, CRL distribution point). Default
	// http://<http_addr>.
	PublicURL string `yaml:"public_url"`
	// MetricsAddr is the address of the listener that serves Prometheus
	// metrics at /metrics, without authentication: keep it on loopback or
	// a private network. "off" or "" (the key absent, as in data
	// directories made before it existed) serves none, so that no new
	// listener appears on an upgrade; init writes 127.0.0.1:9090. The
	// public listeners never serve /metrics.
	MetricsAddr string `yaml:"metrics_addr"`
	// DNS names the HTTPS certificate carries besides localhost, 127.0.0.1 and ::1.
	DNS []string `yaml:"dns"`
}

// storeConfig is the store section: the bbolt file in the data directory
// (the default), or a PostgreSQL database that several replicas share.
type storeConfig struct {
	// Driver is bolt (default) or postgres.
	Driver string `yaml:"driver"`
	// Path of the bbolt file, relative to the data directory (driver
	// bolt only). Default fleetca.db.
	Path string `yaml:"path"`
	// DSN names the PostgreSQL database (driver postgres only, required):
	// a URL (postgres://fleetca@db:5432/fleetca?sslmode=verify-full) or
	// keyword=value pairs. It must carry no password: see PasswordFile.
	// sslmode is the user's; a real deployment uses verify-full.
	DSN string `yaml:"dsn"`
	// PasswordFile holds the password of the DSN's user (driver postgres
	// only; mode 0600), read at start; relative to the data directory.
	// "" means PGPASSWORD or PGPASSFILE from the environment (read by
	// pgx), or none.
	PasswordFile string `yaml:"password_file"`
}

// Store drivers.
const (
	driverBolt     = "bolt"
	driverPostgres = "postgres"
)

const (
	defaultHTTPSAddr = "127.0.0.1:8443"
	defaultHTTPAddr  = "127.0.0.1:8080"
	// defaultMetricsAddr is the metrics listener init writes.
	defaultMetricsAddr = "127.0.0.1:9090"
	defaultStorePath   = "fleetca.db"
)

// withDefaults returns a filled copy of c.
func (c fileConfig) withDefaults() fileConfig {
	if c.Server.HTTPSAddr == "" {
		c.Server.HTTPSAddr = defaultHTTPSAddr
	}
	if c.Server.HTTPAddr == "" {
		c.Server.HTTPAddr = defaultHTTPAddr
	}
	if c.Server.PublicURL == "" {
		c.Server.PublicURL = "http://" + c.Server.HTTPAddr
	}
	if c.Store.Driver == "" {
		c.Store.Driver = driverBolt
	}
	if c.Store.Driver == driverBolt && c.Store.Path == "" {
		c.Store.Path = defaultStorePath
	}
	c.CA = c.CA.WithDefaults()
	c.Enroll = c.Enroll.WithDefaults()
	c.Enroll.TrustDomain = c.TrustDomain
	// The renewal limits are keys of the ca section, as the issue that
	// made them names them; enroll applies them.
	c.Enroll.RenewAfterExpiry = c.CA.RenewAfterExpiry
	c.Enroll.RenewMinInterval = c.CA.RenewMinInterval
	c.Web = c.Web.WithDefaults()
	c.Revocation = c.Revocation.WithDefaults()
	c.Audit = c.Audit.WithDefaults()
	return c
}

// validate checks a filled config; it changes nothing.
func (c fileConfig) validate() error {
	for key, addr := range map[string]string{"server.https_addr": c.Server.HTTPSAddr, "server.http_addr": c.Server.HTTPAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fault.New(fault.Malformed, fmt.Sprintf("%s %q is not host:port", key, addr), "write it like 127.0.0.1:8443")
		}
	}
	if metricsOn(c.Server.MetricsAddr) {
		if _, _, err := net.SplitHostPort(c.Server.MetricsAddr); err != nil {
			return fault.WithKey(fault.New(fault.Malformed, fmt.Sprintf("server.metrics_addr %q is not host:port", c.Server.MetricsAddr),
				"write it like 127.0.0.1:9090, or off to serve no metrics"), "server.metrics_addr")
		}
	}
	if u, err := url.Parse(c.Server.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fault.New(fault.Malformed, fmt.Sprintf("server.public_url %q is not an http(s) URL", c.Server.PublicURL), "write it like http://ca.example.com:8080")
	}
	if _, err := api.ParseTrustDomain(string(c.TrustDomain)); err != nil {
		return fault.WithKey(err, "trust_domain")
	}
	if err := c.Store.validate(); err != nil {
		return err
	}
	if err := c.CA.Validate(); err != nil {
		return err
	}
	if err := c.Enroll.Validate(); err != nil {
		return err
	}
	if err := c.Revocation.Validate(); err != nil {
		return err
	}
	if err := c.Audit.Validate(); err != nil {
		return err
	}
	return c.Web.Validate()
}

// metricsOn reports whether a metrics_addr asks for a listener.
func metricsOn(addr string) bool { return addr != "" && addr != "off" }

// loadConfig reads DIR/fleetca.yaml strictly: an unknown or misspelt key is
// an error naming it.
func loadConfig(dir string) (fileConfig, error) {
	var c fileConfig
	b, err := os.ReadFile(filepath.Join(dir, configName))
	if errors.Is(err, fs.ErrNotExist) {
		return c, fault.New(fault.NotFound, fmt.Sprintf("%s has no %s", dir, configName),
			"create a CA there with 'fleetca init --dir "+dir+"', or pass the right --dir")
	}
	if err != nil {
		return c, fmt.Errorf("read config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return c, fault.Wrap(err, fault.Malformed, fmt.Sprintf("%s: %s", filepath.Join(dir, configName), yamlError(err)),
			"fix or remove that key; see the README for every key")
	}
	c = c.withDefaults()
	return c, c.validate()
}

// yamlError renders a YAML decoding error as one line without Go type
// names: "line 50: unknown key bogus_key".
func yamlError(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return strings.ReplaceAll(err.Error(), "\n", "; ")
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		if before, after, ok := strings.Cut(m, ": field "); ok {
			if name, _, ok := strings.Cut(after, " not found"); ok {
				m = before + ": unknown key " + name
			}
		}
		msgs[i] = m
	}
	return strings.Join(msgs, "; ")
}

// configTemplate is what init writes: every key, with what it means.
var configTemplate = template.Must(template.New("config").Parse(`# fleetca configuration, written by 'fleetca init'. Unknown keys stop start-up.
# Durations are Go duration strings ("24h", "90m"). Paths are relative to this directory.

# The CA's name, in its certificates' subjects.
name: {{printf "%q" .Name}}
# SPIFFE trust domain: devices get the URI SAN spiffe://<trust_domain>/device/<device ID>.
trust_domain: {{printf "%q" .TrustDomain}}
# File holding the CA keys' password (mode 0600). Empty: FLEETCA_PASSWORD, or unencrypted keys.
password_file: {{printf "%q" .PasswordFile}}

server:
  # TLS listener: enrollment and the admin API.
  https_addr: {{printf "%q" .Server.HTTPSAddr}}
  # Plain-HTTP listener: CA certificates, CRLs and OCSP for verifiers.
  http_addr: {{printf "%q" .Server.HTTPAddr}}
  # The HTTP listener's URL as devices see it; written into certificates (AIA, CRL DP).
  public_url: {{printf "%q" .Server.PublicURL}}
  # Prometheus metrics at http://<metrics_addr>/metrics, unauthenticated: keep it on loopback.
  # off (or no key): no metrics listener. The HTTPS and HTTP listeners never serve /metrics.
  metrics_addr: {{printf "%q" .Server.MetricsAddr}}
  # DNS names of the HTTPS certificate, besides localhost, 127.0.0.1 and ::1.
  dns: [{{range $i, $d := .Server.DNS}}{{if $i}}, {{end}}{{printf "%q" $d}}{{end}}]

store:
{{- if eq .Store.Driver "postgres"}}
  # A PostgreSQL database, shared by every replica of this CA. A real deployment uses
  # sslmode=verify-full. The DSN carries no password: it is in password_file (mode 0600),
  # or PGPASSWORD or PGPASSFILE in the environment.
  driver: "postgres"
  dsn: {{printf "%q" .Store.DSN}}
  password_file: {{printf "%q" .Store.PasswordFile}}
{{- else}}
  # bolt: the bbolt file path, in this directory. postgres: a database the replicas share,
  # with dsn and password_file ('fleetca db copy' moves a CA there).
  driver: "bolt"
  path: {{printf "%q" .Store.Path}}
{{- end}}

ca:
  root_cert: {{printf "%q" .CA.RootCert}}
  intermediate_cert: {{printf "%q" .CA.IntermediateCert}}
  # A file path, or a KMS URI (softkms:..., pkcs11:...). The root key may be moved offline.
  root_key: {{printf "%q" .CA.RootKey}}
  intermediate_key: {{printf "%q" .CA.IntermediateKey}}
  # Lifetime of device certificates (1h..87600h).
  device_validity: {{printf "%q" .CA.DeviceValidity.String}}
  # Lifetime of the HTTPS listener's certificate, renewed at two thirds (1h..2160h).
  server_validity: {{printf "%q" .CA.ServerValidity.String}}
  # Subtracted from NotBefore against device clock skew (0..1h).
  backdate: {{printf "%q" .CA.Backdate.String}}
  # How long after expiry a device may still renew, with a renewal token only (0: never; at most 8760h).
  renew_after_expiry: {{printf "%q" .CA.RenewAfterExpiry.String}}
  # Least time between two renewals of one device; retries of a lost answer are exempt (1s..168h).
  renew_min_interval: {{printf "%q" .CA.RenewMinInterval.String}}

enroll:
  # Live certificates one device may hold at once (1..100).
  max_active_certificates: {{.Enroll.MaxActiveCertificates}}
  # Token lifetime when none is given, and the longest allowed.
  default_token_ttl: {{printf "%q" .Enroll.DefaultTokenTTL.String}}
  max_token_ttl: {{printf "%q" .Enroll.MaxTokenTTL.String}}
  # Most uses one token may be given (1..10000000).
  max_token_uses: {{.Enroll.MaxTokenUses}}

revocation:
  # Device CRL lifetime (nextUpdate - thisUpdate); a new one is published after each revocation (10m..720h).
  crl_validity: {{printf "%q" .Revocation.CRLValidity.String}}
  # Revocations within this window share one new CRL (0..1s).
  crl_publish_delay: {{printf "%q" .Revocation.CRLPublishDelay.String}}
  # Root CRL lifetime when signed here or by 'fleetca crl sign-root' (1h..8760h).
  root_crl_validity: {{printf "%q" .Revocation.RootCRLValidity.String}}
  # OCSP response lifetime; cached answers are re-signed at half of it (1m..168h).
  ocsp_validity: {{printf "%q" .Revocation.OCSPValidity.String}}
  # Lifetime of the delegated OCSP responder certificate, renewed at two thirds (1h..720h).
  ocsp_responder_validity: {{printf "%q" .Revocation.ResponderValidity.String}}
  # Most OCSP answers kept pre-signed in memory (1000..100000000).
  ocsp_cache_entries: {{.Revocation.OCSPCacheEntries}}
  # How often the revocation log and latest CRL are read besides the store's change signals: a
  # revocation through another replica reaches this one's OCSP, feed and CRL within it (100ms..1m).
  poll_interval: {{printf "%q" .Revocation.PollInterval.String}}
  # How long a replica holds the CRL signer's lease when it builds a CRL; a dead holder is replaced
  # once it runs out. It must outlast signing the largest CRL (2s..10m).
  crl_lease: {{printf "%q" .Revocation.CRLLease.String}}

web:
  # Largest request body accepted (1024..1048576).
  max_body_bytes: {{.Web.MaxBodyBytes}}
  # Reverse proxies (IPs or CIDR prefixes) whose X-Forwarded-For is believed; the client is then
  # the right-most address in it that is not one of these. Empty: the connection's address, always.
  trusted_proxies: [{{range $i, $p := .Web.TrustedProxies}}{{if $i}}, {{end}}{{printf "%q" $p}}{{end}}]
  # Failed admin logins one client address may make per window (1..10000); past it, its admin
  # requests get 429 with Retry-After until the window ends, a right token included.
  auth_failure_limit: {{.Web.AuthFailureLimit}}
  # That window (1s..1h); the audit log records an address's failures at most once per window.
  auth_failure_window: {{printf "%q" .Web.AuthFailureWindow.String}}
  # Most client addresses tracked at once (100..1000000); beyond it, new ones share one limit.
  auth_failure_addresses: {{.Web.AuthFailureAddresses}}
  # The EST label served besides the bare path: /.well-known/est/ and /.well-known/est/<label>/.
  est_label: {{printf "%q" .Web.ESTLabel}}

audit:
  # The audit log is a Merkle tree; serve signs a checkpoint of it (with secrets/audit.key, public
  # key audit.pub) at most this often when it grew, and at start and stop (1s..24h).
  checkpoint_every: {{printf "%q" .Audit.CheckpointEvery.String}}
`))

// writeConfig writes c as DIR/fleetca.yaml (mode 0600), failing if it exists.
func writeConfig(dir string, c fileConfig) error {
	var buf bytes.Buffer
	if err := configTemplate.Execute(&buf, c); err != nil {
		return fmt.Errorf("render config: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, configName), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write config: %w", err)
	}
	return f.Close()
}

// readPassword returns the CA keys' password: from --password-file, else
// the config's password_file, else FLEETCA_PASSWORD, else nil. A password
// file must be mode 0600 or stricter.
func readPassword(flagFile, configFile string, getenv func(string) string) ([]byte, error) {
	file := flagFile
	if file == "" {
		file = configFile
	}
	if file != "" {
		if _, err := os.Stat(file); err != nil {
			return nil, fault.Wrap(err, fault.NotFound, fmt.Sprintf("cannot read the password file %s", file), "check the path")
		}
		if err := ca.CheckSecretFile("password file", file); err != nil {
			return nil, err
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read password file: %w", err)
		}
		pw := bytes.TrimRight(b, "\r\n")
		if len(pw) == 0 {
			return nil, fault.New(fault.Malformed, fmt.Sprintf("the password file %s is empty", file), "write the password into it")
		}
		return pw, nil
	}
	if pw := getenv("FLEETCA_PASSWORD"); pw != "" {
		return []byte(pw), nil
	}
	return nil, nil
}
