package export

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
)

// Kind names a verifier.
type Kind string

// The verifiers export writes configuration for.
const (
	Nginx     Kind = "nginx"
	HAProxy   Kind = "haproxy"
	Mosquitto Kind = "mosquitto"
	Envoy     Kind = "envoy"
)

// Kinds lists every Kind, in the order help text shows them.
var Kinds = []Kind{Nginx, HAProxy, Mosquitto, Envoy}

// The files every kind shares, in Params.Dir. cmd/fleetca writes them; the
// configurations name them.
const (
	// CAFile is the trust bundle: the intermediate(s), then the root.
	CAFile = "ca.pem"
	// CRLFile holds the device CRL and the root CRL, PEM, as
	// `fleetca crl sync --out` maintains it.
	CRLFile = "crl.pem"
	// ReadmeFile lists the files and the next steps.
	ReadmeFile = "README.txt"
)

// Defaults for the zero values of Params.
const (
	// DefaultListen is where the HTTP verifiers listen: every address, port
	// 9443 (8443 is the CA's HTTPS listener by default).
	DefaultListen = ":9443"
	// DefaultMQTTListen is where Mosquitto listens: MQTT over TLS.
	DefaultMQTTListen = ":8883"
	// DefaultUpstream is the service behind an HTTP verifier.
	DefaultUpstream = "http://127.0.0.1:8000"
)

// Params are what Render needs. Zero values mean the defaults given.
type Params struct {
	// Kind is the verifier. Required.
	Kind Kind
	// Dir is the absolute directory the files will be in; configurations
	// name files in it by absolute path. Required.
	Dir string
	// CAURL is the CA's plain-HTTP base URL (http://ca.example:8080), where
	// `crl sync` fetches the CRLs and nginx asks OCSP (CAURL/ocsp).
	// Required.
	CAURL string
	// TrustDomain is the CA's SPIFFE trust domain, as api.ParseTrustDomain
	// returns it: device certificates name
	// spiffe://<TrustDomain>/device/<device ID> (api.DeviceSPIFFEID).
	// Required for Envoy, which matches that prefix; unused by the others.
	TrustDomain api.TrustDomain
	// Listen is the verifier's address, [host]:port with host an IP address
	// or empty for every address. Default DefaultListen, or
	// DefaultMQTTListen for Mosquitto.
	Listen string
	// Upstream is the service's http:// or https:// URL (scheme, host and
	// port; no path). Default DefaultUpstream. Mosquitto is the service
	// itself and takes none.
	Upstream string
	// ServerCert and ServerKey are the verifier's own TLS certificate (with
	// its chain) and key, absolute paths, as `fleetca cert server` writes
	// them. Default Dir/server.crt and Dir/server.key; for HAProxy, which
	// reads the key from the certificate file or from "<certificate>.key",
	// Dir/server.pem and Dir/server.pem.key, and ServerKey must be one of
	// those two.
	ServerCert, ServerKey string
}

// File is one rendered file, to be written as Dir/Name.
type File struct {
	// Name is the file's name in Params.Dir.
	Name string
	// Mode is its permission bits.
	Mode fs.FileMode
	// Data is its content.
	Data []byte
}

//go:embed templates/*.tmpl
var templateFS embed.FS

var templates = template.Must(template.New("").Option("missingkey=error").ParseFS(templateFS, "templates/*.tmpl"))

// kindFiles are the files Render writes for each kind, by template, in
// the order README.txt lists them (README.txt itself comes last).
var kindFiles = map[Kind][]string{
	Nginx:     {"nginx.conf", "nginx-ocsp.conf"},
	HAProxy:   {"haproxy.cfg"},
	Mosquitto: {"mosquitto.conf"},
	Envoy:     {"envoy.yaml", "envoy-sds-server.yaml", "envoy-sds-validation.yaml"},
}

// Render returns the configuration files of p.Kind and README.txt. It
// reads p.Kind, Dir, CAURL, TrustDomain, Listen, Upstream, ServerCert and
// ServerKey. A parameter it cannot use is a Malformed *fault.Error naming
// it; for TrustDomain, Listen and Upstream its Field is "trust_domain",
// "listen" or "upstream", which the CLI turns into its flag.
func Render(p Params) ([]File, error) {
	d, err := newData(p)
	if err != nil {
		return nil, err
	}
	var files []File
	for _, name := range append(kindFiles[p.Kind], ReadmeFile) {
		d.File = name
		b, err := execute(name, d)
		if err != nil {
			return nil, err
		}
		files = append(files, File{Name: name, Mode: 0o644, Data: b})
	}
	return files, nil
}

// Steps returns what to do after export for p, as README.txt says it: the
// server certificate, how to load the configuration, how to keep crl.pem
// fresh, how to test. It reads the same fields as Render.
func Steps(p Params) (string, error) {
	d, err := newData(p)
	if err != nil {
		return "", err
	}
	b, err := execute("steps", d)
	return string(b), err
}

func execute(name string, d *data) ([]byte, error) {
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, name, d); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return buf.Bytes(), nil
}

// data is what the templates see: Params, checked and with defaults, and
// values derived from them.
type data struct {
	Params
	// File is the file being rendered.
	File string
	// CAPath and CRLPath are the shared files' absolute paths.
	CAPath, CRLPath string
	// OCSPURL is fleetca's OCSP responder (CAURL/ocsp).
	OCSPURL string
	// ListenHost is Listen's host ("" for every address), ListenPort its port.
	ListenHost, ListenPort string
	// UpstreamHost and UpstreamPort name the service; UpstreamTLS says
	// that it speaks https.
	UpstreamHost, UpstreamPort string
	UpstreamTLS                bool
	// SANPrefix is the URI SAN prefix of the fleet's devices.
	SANPrefix string
	// KeyInCert reports that ServerKey is ServerCert (HAProxy).
	KeyInCert bool
}

// NginxListen is the address for nginx's listen directive.
func (d *data) NginxListen() string {
	if d.ListenHost == "" {
		return d.ListenPort
	}
	return net.JoinHostPort(d.ListenHost, d.ListenPort)
}

// HAProxyBind is the address for HAProxy's bind line.
func (d *data) HAProxyBind() string {
	return net.JoinHostPort(d.ListenHost, d.ListenPort)
}

// EnvoyListenHost is the listener's socket address: Envoy has no "every
// address" shorthand.
func (d *data) EnvoyListenHost() string {
	if d.ListenHost == "" {
		return "0.0.0.0"
	}
	return d.ListenHost
}

// UpstreamURL is the service's base URL, for nginx's proxy_pass.
func (d *data) UpstreamURL() string {
	scheme := "http"
	if d.UpstreamTLS {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(d.UpstreamHost, d.UpstreamPort)
}

// NginxUpstreamServer is the service's address in nginx's upstream block.
func (d *data) NginxUpstreamServer() string { return net.JoinHostPort(d.UpstreamHost, d.UpstreamPort) }

// UpstreamIsIP reports that the service is named by an IP address.
func (d *data) UpstreamIsIP() bool {
	_, err := netip.ParseAddr(d.UpstreamHost)
	return err == nil
}

// CAHostIsIP reports that the CA URL names an IP address: nginx then needs
// no resolver for OCSP.
func (d *data) CAHostIsIP() bool {
	u, err := url.Parse(d.CAURL)
	if err != nil {
		return false
	}
	_, err = netip.ParseAddr(u.Hostname())
	return err == nil
}

// HAProxyUpstream is the server line's address and TLS options.
func (d *data) HAProxyUpstream() string {
	s := net.JoinHostPort(d.UpstreamHost, d.UpstreamPort)
	if d.UpstreamTLS {
		s += " ssl verify required ca-file @system-ca"
		if !d.UpstreamIsIP() {
			s += " sni str(" + d.UpstreamHost + ")"
		}
	}
	return s
}

// KindTitle is the verifier's name as people write it.
func (d *data) KindTitle() string {
	switch d.Kind {
	case HAProxy:
		return "HAProxy"
	case Mosquitto:
		return "Mosquitto"
	case Envoy:
		return "Envoy"
	}
	return string(d.Kind)
}

// ServerFileName is ServerCert's name, for README.txt's list of files.
func (d *data) ServerFileName() string { return filepath.Base(d.ServerCert) }

// ServerInDir reports that ServerCert is in Dir.
func (d *data) ServerInDir() bool { return filepath.Dir(d.ServerCert) == d.Dir }

// SyncCommand is the `fleetca crl sync` command line that keeps crl.pem
// fresh for this verifier.
func (d *data) SyncCommand() string {
	cmd := "fleetca crl sync --url " + d.CAURL + " --issuer " + d.CAPath + " --out " + d.CRLPath
	switch d.Kind {
	case Nginx:
		// nginx -s reload exits 0 even when the new configuration fails
		// to load; -t makes that failure the command's.
		cmd += " --exec 'nginx -t -q && nginx -s reload'"
	case HAProxy:
		cmd += " --exec 'systemctl reload haproxy'"
	case Mosquitto:
		cmd += " --exec 'pkill -HUP -x mosquitto'"
	}
	return cmd
}

// unsafePath holds the characters no path may carry: each of the four
// configuration languages would need its own quoting for them.
const unsafePath = " \t\r\n\"'`\\;#{}$"

func newData(p Params) (*data, error) {
	if _, ok := kindFiles[p.Kind]; !ok {
		return nil, malformed(fmt.Sprintf("%q is not a verifier export knows", p.Kind), "use one of "+kindList())
	}
	if err := checkPath("the output directory", p.Dir); err != nil {
		return nil, err
	}
	d := &data{Params: p}
	d.Dir = filepath.Clean(p.Dir)
	d.CAPath = filepath.Join(d.Dir, CAFile)
	d.CRLPath = filepath.Join(d.Dir, CRLFile)

	caURL, err := checkCAURL(p.CAURL)
	if err != nil {
		return nil, err
	}
	d.CAURL = caURL
	d.OCSPURL = caURL + "/ocsp"

	if p.TrustDomain != "" {
		// The rule is api's; a TrustDomain made by conversion is checked
		// here, since the configuration would match nothing.
		if _, err := api.ParseTrustDomain(string(p.TrustDomain)); err != nil {
			return nil, fault.WithField(fault.Wrap(err, fault.Malformed, fmt.Sprintf("the trust domain %q is not a SPIFFE trust domain", p.TrustDomain),
				"use the CA's trust_domain from fleetca.yaml: "+api.TrustDomainHint), "trust_domain")
		}
	}
	if p.Kind == Envoy && p.TrustDomain == "" {
		return nil, fault.WithField(malformed("Envoy's configuration needs the CA's trust domain, to match the devices' SPIFFE IDs",
			"give the CA's trust domain, trust_domain in its fleetca.yaml"), "trust_domain")
	}
	d.SANPrefix = api.DeviceSPIFFEIDPrefix(p.TrustDomain)

	listen := p.Listen
	if listen == "" {
		listen = DefaultListen
		if p.Kind == Mosquitto {
			listen = DefaultMQTTListen
		}
	}
	if d.ListenHost, d.ListenPort, err = checkListen(listen); err != nil {
		return nil, fault.WithField(err, "listen")
	}

	switch {
	case p.Kind == Mosquitto && p.Upstream != "":
		return nil, fault.WithField(malformed("Mosquitto is the broker itself and has no upstream", "leave out the upstream"), "upstream")
	case p.Kind != Mosquitto:
		up := p.Upstream
		if up == "" {
			up = DefaultUpstream
		}
		if d.UpstreamHost, d.UpstreamPort, d.UpstreamTLS, err = checkUpstream(up); err != nil {
			return nil, fault.WithField(err, "upstream")
		}
	}

	certName, keyName := "server.crt", "server.key"
	if p.Kind == HAProxy {
		certName, keyName = "server.pem", "server.pem.key"
	}
	if d.ServerCert == "" {
		d.ServerCert = filepath.Join(d.Dir, certName)
	}
	if d.ServerKey == "" {
		d.ServerKey = filepath.Join(d.Dir, keyName)
	}
	if err := checkPath("the server certificate", d.ServerCert); err != nil {
		return nil, err
	}
	if err := checkPath("the server key", d.ServerKey); err != nil {
		return nil, err
	}
	d.KeyInCert = d.ServerKey == d.ServerCert
	if p.Kind == HAProxy && !d.KeyInCert && d.ServerKey != d.ServerCert+".key" {
		return nil, malformed(fmt.Sprintf("HAProxy cannot read the key %s: it reads the key from the certificate file or from %s.key", d.ServerKey, d.ServerCert),
			fmt.Sprintf("write the key to %s.key (fleetca cert server --cert %s --key %s.key)", d.ServerCert, d.ServerCert, d.ServerCert))
	}
	return d, nil
}

func checkPath(what, path string) error {
	if !filepath.IsAbs(path) {
		return malformed(fmt.Sprintf("%s %q is not an absolute path", what, path), "the configuration names files by absolute path")
	}
	if strings.ContainsAny(path, unsafePath) {
		return malformed(fmt.Sprintf("%s %q has a space, quote or one of ;#{}$\\ in it", what, path),
			"choose a path without them: the verifiers' configuration languages quote them differently")
	}
	return nil
}

// checkCAURL returns the CA URL without a trailing slash.
func checkCAURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
		strings.ContainsAny(raw, unsafePath) {
		return "", malformed(fmt.Sprintf("the CA URL %q is not an http(s) base URL", raw),
			"give the CA's HTTP listener, e.g. http://ca.example.com:8080")
	}
	return strings.TrimRight(raw, "/"), nil
}

func checkListen(listen string) (host, port string, err error) {
	host, port, err = net.SplitHostPort(listen)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || n < 1 || n > 65535 {
		return "", "", malformed(fmt.Sprintf("the listen address %q is not [host]:port", listen), "write it like :9443 or 192.0.2.10:9443")
	}
	if host != "" {
		a, err := netip.ParseAddr(host)
		if err != nil || a.Zone() != "" {
			return "", "", malformed(fmt.Sprintf("the listen address %q does not have an IP address for its host", listen),
				"write it like :9443 (every address) or 192.0.2.10:9443")
		}
	}
	return host, strconv.Itoa(n), nil
}

func checkUpstream(raw string) (host, port string, tls bool, err error) {
	bad := malformed(fmt.Sprintf("the upstream %q is not an http:// or https:// URL with a host and no path", raw),
		"write it like http://127.0.0.1:8000")
	u, perr := url.Parse(raw)
	if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(raw, unsafePath) {
		return "", "", false, bad
	}
	tls = u.Scheme == "https"
	port = u.Port()
	if port == "" {
		port = "80"
		if tls {
			port = "443"
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", "", false, bad
	}
	return u.Hostname(), port, tls, nil
}

func kindList() string {
	s := make([]string, len(Kinds))
	for i, k := range Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

func malformed(detail, hint string) error { return fault.New(fault.Malformed, detail, hint) }
