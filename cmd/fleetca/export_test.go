package main

// In-process tests of `fleetca export` against runServe. Envoy cannot be
// installed here, so its files are checked the way Envoy loads them:
// YAML to JSON, protojson into the v3 protos (unknown fields refused),
// then the protoc-gen-validate rules, down through every typed Any.

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/fleetca/fleetca/verify"
)

// exportCA is a CA served in-process for export to fetch from.
type exportCA struct {
	servedCA
	root, inter *x509.Certificate
}

func startExportCA(t *testing.T) exportCA {
	t.Helper()
	ca := startCA(t, "--trust-domain", "fleet.test")
	return exportCA{servedCA: ca,
		root:  readCerts(t, filepath.Join(ca.dir, "root.pem"))[0],
		inter: readCerts(t, filepath.Join(ca.dir, "intermediate.pem"))[0]}
}

func TestExportWritesTheKit(t *testing.T) {
	t.Parallel()
	ca := startExportCA(t)
	sum := sha256.Sum256(ca.root.Raw)
	fp := hex.EncodeToString(sum[:])
	for _, tc := range []struct {
		name  string
		args  []string
		files []string // besides ca.pem, crl.pem and README.txt
	}{
		{"nginx", []string{"nginx", "--fingerprint", fp}, []string{"nginx.conf", "nginx-ocsp.conf"}},
		{"haproxy", []string{"haproxy", "--root", filepath.Join(ca.dir, "root.pem")}, []string{"haproxy.cfg"}},
		{"mosquitto", []string{"mosquitto", "--dir", ca.dir}, []string{"mosquitto.conf"}},
		{"envoy", []string{"envoy", "--dir", ca.dir}, []string{"envoy.yaml", "envoy-sds-server.yaml", "envoy-sds-validation.yaml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "verifier")
			r := runCLI(t, nil, append([]string{"export", "--out", out, "--ca", ca.httpURL}, tc.args...)...)
			if r.code != exitOK || r.stderr != "" {
				t.Fatalf("export %s: exit %d, stderr %q, want 0 and nothing", tc.name, r.code, r.stderr)
			}
			want := append([]string{"README.txt", "ca.pem", "crl.pem"}, tc.files...)
			if got := dirNames(t, out); !sameSet(got, want) {
				t.Errorf("export %s wrote %v, want %v", tc.name, got, want)
			}
			for _, f := range want {
				if !strings.Contains(r.stdout, "wrote "+filepath.Join(out, f)) && f != "README.txt" {
					t.Errorf("stdout does not say it wrote %s:\n%s", f, r.stdout)
				}
			}
			if !strings.Contains(r.stdout, "fleetca crl sync --url "+ca.httpURL+" --issuer "+filepath.Join(out, "ca.pem")+" --out "+filepath.Join(out, "crl.pem")) {
				t.Errorf("stdout does not give the crl sync command line:\n%s", r.stdout)
			}
			checkExportedBundle(t, ca, out)
			if tc.name == "envoy" {
				checkEnvoyFiles(t, out)
			}
		})
	}
}

// checkExportedBundle checks ca.pem (intermediate, then root) and crl.pem
// (device CRL, then root CRL, each signed by its issuer).
func checkExportedBundle(t *testing.T, ca exportCA, out string) {
	t.Helper()
	certs := readCerts(t, filepath.Join(out, "ca.pem"))
	if len(certs) != 2 || !certs[0].Equal(ca.inter) || !certs[1].Equal(ca.root) {
		t.Errorf("ca.pem holds %d certificates, want the intermediate then the root", len(certs))
	}
	b := []byte(readFile(t, filepath.Join(out, "crl.pem")))
	var crls [][]byte
	for {
		var block *pem.Block
		if block, b = pem.Decode(b); block == nil {
			break
		}
		if block.Type != "X509 CRL" {
			t.Errorf("crl.pem has a %s block, want only X509 CRL", block.Type)
		}
		crls = append(crls, block.Bytes)
	}
	if len(crls) != 2 {
		t.Fatalf("crl.pem holds %d CRLs, want the device CRL and the root CRL", len(crls))
	}
	for i, issuer := range []*x509.Certificate{ca.inter, ca.root} {
		if _, err := verify.ParseCRL(crls[i], issuer); err != nil {
			t.Errorf("crl.pem CRL %d does not verify against %s: %v", i, issuer.Subject, err)
		}
	}
}

// checkEnvoyFiles loads the Envoy files as Envoy would, validates them,
// and checks that they name the files export wrote.
func checkEnvoyFiles(t *testing.T, out string) {
	t.Helper()
	var boot bootstrapv3.Bootstrap
	if err := loadEnvoy(readFile(t, filepath.Join(out, "envoy.yaml")), &boot); err != nil {
		t.Fatalf("envoy.yaml: %v", err)
	}
	var sdsPaths []string
	for _, l := range boot.GetStaticResources().GetListeners() {
		for _, fc := range l.GetFilterChains() {
			var tlsCtx tlsv3.DownstreamTlsContext
			if err := fc.GetTransportSocket().GetTypedConfig().UnmarshalTo(&tlsCtx); err != nil {
				t.Fatalf("listener %s: transport socket is not a DownstreamTlsContext: %v", l.GetName(), err)
			}
			if !tlsCtx.GetRequireClientCertificate().GetValue() {
				t.Errorf("listener %s: require_client_certificate is not true", l.GetName())
			}
			common := tlsCtx.GetCommonTlsContext()
			for _, sds := range append(common.GetTlsCertificateSdsSecretConfigs(), common.GetValidationContextSdsSecretConfig()) {
				sdsPaths = append(sdsPaths, sds.GetSdsConfig().GetPathConfigSource().GetPath())
			}
		}
	}
	want := []string{filepath.Join(out, "envoy-sds-server.yaml"), filepath.Join(out, "envoy-sds-validation.yaml")}
	if !sameSet(sdsPaths, want) {
		t.Fatalf("envoy.yaml SDS paths = %v, want %v", sdsPaths, want)
	}

	var resp discoveryv3.DiscoveryResponse
	if err := loadEnvoy(readFile(t, want[1]), &resp); err != nil {
		t.Fatalf("envoy-sds-validation.yaml: %v", err)
	}
	if len(resp.GetResources()) != 1 {
		t.Fatalf("envoy-sds-validation.yaml has %d resources, want 1 (Envoy's SDS takes one per file)", len(resp.GetResources()))
	}
	var secret tlsv3.Secret
	if err := resp.GetResources()[0].UnmarshalTo(&secret); err != nil {
		t.Fatalf("envoy-sds-validation.yaml: the resource is not a Secret: %v", err)
	}
	vc := secret.GetValidationContext()
	if got, want := vc.GetTrustedCa().GetFilename(), filepath.Join(out, "ca.pem"); got != want {
		t.Errorf("trusted_ca = %q, want %q", got, want)
	}
	if got, want := vc.GetCrl().GetFilename(), filepath.Join(out, "crl.pem"); got != want {
		t.Errorf("crl = %q, want %q", got, want)
	}
	if !vc.GetOnlyVerifyLeafCertCrl() {
		t.Errorf("only_verify_leaf_cert_crl is not true")
	}
	sans := vc.GetMatchTypedSubjectAltNames()
	if len(sans) != 1 || sans[0].GetSanType() != tlsv3.SubjectAltNameMatcher_URI || sans[0].GetMatcher().GetPrefix() != "spiffe://fleet.test/device/" {
		t.Errorf("match_typed_subject_alt_names = %v, want one URI prefix spiffe://fleet.test/device/", sans)
	}
	// The files the validation context names are the ones checked above;
	// they must parse as Envoy reads them (PEM certificates, PEM CRLs).
	if certs := readCerts(t, vc.GetTrustedCa().GetFilename()); len(certs) != 2 {
		t.Errorf("trusted_ca holds %d certificates, want 2", len(certs))
	}
	if b, _ := pem.Decode([]byte(readFile(t, vc.GetCrl().GetFilename()))); b == nil || b.Type != "X509 CRL" {
		t.Errorf("crl does not start with a PEM X509 CRL")
	} else if _, err := x509.ParseRevocationList(b.Bytes); err != nil {
		t.Errorf("crl: %v", err)
	}

	resp.Reset()
	if err := loadEnvoy(readFile(t, want[0]), &resp); err != nil {
		t.Fatalf("envoy-sds-server.yaml: %v", err)
	}
	secret.Reset()
	if len(resp.GetResources()) != 1 || resp.GetResources()[0].UnmarshalTo(&secret) != nil || secret.GetTlsCertificate() == nil {
		t.Fatalf("envoy-sds-server.yaml does not hold one Secret with a tls_certificate")
	}
}

// TestEnvoyValidationCatchesMistakes makes sure loadEnvoy can fail: each
// mutation of a rendered file must be refused.
func TestEnvoyValidationCatchesMistakes(t *testing.T) {
	t.Parallel()
	ca := startExportCA(t)
	out := filepath.Join(t.TempDir(), "verifier")
	if r := runCLI(t, nil, "export", "envoy", "--out", out, "--dir", ca.dir, "--ca", ca.httpURL, "--upstream", "https://app.example.com:8443"); r.code != exitOK {
		t.Fatalf("export envoy: exit %d, stderr %q, want 0", r.code, r.stderr)
	}
	boot, validation := readFile(t, filepath.Join(out, "envoy.yaml")), readFile(t, filepath.Join(out, "envoy-sds-validation.yaml"))
	if err := loadEnvoy(boot, &bootstrapv3.Bootstrap{}); err != nil {
		t.Fatalf("envoy.yaml with an https upstream: %v", err)
	}
	for _, tc := range []struct {
		name, file, old, new string
	}{
		{"misspelt field inside a typed Any", "envoy.yaml", "require_client_certificate:", "require_client_certificat:"},
		{"route to an empty cluster name", "envoy.yaml", "cluster: fleetca_upstream", `cluster: ""`},
		{"port out of range", "envoy.yaml", "port_value: 8443", "port_value: 70000"},
		{"unknown enum value", "envoy.yaml", "forward_client_cert_details: SANITIZE_SET", "forward_client_cert_details: SANITISE_SET"},
		{"unspecified SAN type", "envoy-sds-validation.yaml", "san_type: URI", "san_type: SAN_TYPE_UNSPECIFIED"},
		{"empty CA file name", "envoy-sds-validation.yaml", "filename: \"" + filepath.Join(out, "ca.pem") + "\"", `filename: ""`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, msg := boot, proto.Message(&bootstrapv3.Bootstrap{})
			if tc.file != "envoy.yaml" {
				src, msg = validation, &discoveryv3.DiscoveryResponse{}
			}
			if !strings.Contains(src, tc.old) {
				t.Fatalf("%s does not contain %q to mutate", tc.file, tc.old)
			}
			err := loadEnvoy(strings.Replace(src, tc.old, tc.new, 1), msg)
			if err == nil {
				t.Fatalf("%s with %q replaced by %q loaded, want an error", tc.file, tc.old, tc.new)
			}
			t.Logf("refused: %v", err)
		})
	}
}

// loadEnvoy decodes Envoy YAML into m as Envoy does (YAML to JSON to
// proto, unknown fields refused) and runs the protoc-gen-validate rules of
// every message in it, the ones packed in Any fields included (ValidateAll
// does not look inside an Any).
func loadEnvoy(src string, m proto.Message) error {
	var doc any
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		return err
	}
	js, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	if err := protojson.Unmarshal(js, m); err != nil {
		return err
	}
	return validateDeep(m.ProtoReflect())
}

func validateDeep(m protoreflect.Message) error {
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			return err
		}
		return validateDeep(inner.ProtoReflect())
	}
	var errs []error
	if v, ok := m.Interface().(interface{ ValidateAll() error }); ok {
		errs = append(errs, v.ValidateAll())
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				errs = append(errs, validateDeep(v.List().Get(i).Message()))
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				errs = append(errs, validateDeep(mv.Message()))
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			errs = append(errs, validateDeep(v.Message()))
		}
		return true
	})
	return errors.Join(errs...)
}

func TestExportRefuses(t *testing.T) {
	t.Parallel()
	ca := startExportCA(t)
	otherRoot := filepath.Join(t.TempDir(), "other-root.pem")
	other := startExportCA(t)
	writeFile(t, otherRoot, readFile(t, filepath.Join(other.dir, "root.pem")))
	existing := filepath.Join(t.TempDir(), "existing")
	if err := os.MkdirAll(existing, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(existing, "nginx.conf"), "# mine\n")
	out := func() string { return filepath.Join(t.TempDir(), "verifier") }
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // in the error line
	}{
		{"no verifier", []string{"export", "--out", out()}, exitUsage, "nginx|haproxy|mosquitto|envoy"},
		{"unknown verifier", []string{"export", "caddy", "--out", out()}, exitUsage, `"caddy"`},
		{"no --out", []string{"export", "nginx", "--dir", ca.dir, "--ca", ca.httpURL}, exitUsage, "--out"},
		{"no root to trust", []string{"export", "nginx", "--out", out(), "--ca", ca.httpURL}, exitUsage, "--fingerprint"},
		{"fingerprint and root", []string{"export", "nginx", "--out", out(), "--ca", ca.httpURL, "--fingerprint", strings.Repeat("ab", 32),
			"--root", otherRoot}, exitUsage, "not both"},
		{"short fingerprint", []string{"export", "nginx", "--out", out(), "--ca", ca.httpURL, "--fingerprint", "abcd"}, exitUsage, "64 hex digits"},
		{"only --server-cert", []string{"export", "nginx", "--out", out(), "--dir", ca.dir, "--ca", ca.httpURL, "--server-cert", "s.crt"}, exitUsage, "--server-key"},
		{"envoy without a trust domain", []string{"export", "envoy", "--out", out(), "--ca", ca.httpURL, "--root", filepath.Join(ca.dir, "root.pem")},
			exitUsage, "--trust-domain"},
		{"bad trust domain", []string{"export", "envoy", "--out", out(), "--dir", ca.dir, "--ca", ca.httpURL, "--trust-domain", "Fleet.Example"},
			exitUsage, "use --trust-domain"},
		{"mosquitto with an upstream", []string{"export", "mosquitto", "--out", out(), "--dir", ca.dir, "--ca", ca.httpURL,
			"--upstream", "http://127.0.0.1:8000"}, exitUsage, "use --upstream"},
		{"bad listen address", []string{"export", "nginx", "--out", out(), "--dir", ca.dir, "--ca", ca.httpURL, "--listen", "9443"}, exitUsage, "use --listen"},
		{"another CA's root", []string{"export", "nginx", "--out", out(), "--ca", ca.httpURL, "--root", otherRoot}, exitError, "no root matching"},
		{"a wrong fingerprint", []string{"export", "nginx", "--out", out(), "--ca", ca.httpURL, "--fingerprint", strings.Repeat("ab", 32)},
			exitError, "no root matching"},
		{"a file in the way", []string{"export", "nginx", "--out", existing, "--dir", ca.dir, "--ca", ca.httpURL}, exitError, "--force"},
		{"CA not reachable", []string{"export", "nginx", "--out", out(), "--dir", ca.dir, "--ca", "http://127.0.0.1:1"}, exitError, "cannot reach"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, nil, tc.args...)
			wantOneLine(t, "fleetca "+strings.Join(tc.args, " "), r, tc.code)
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr = %q, want it to mention %q", r.stderr, tc.want)
			}
		})
	}
	if got := readFile(t, filepath.Join(existing, "nginx.conf")); got != "# mine\n" {
		t.Errorf("a refused export changed nginx.conf to %q", got)
	}
	if names := dirNames(t, existing); len(names) != 1 {
		t.Errorf("a refused export left %v in %s, want only nginx.conf", names, existing)
	}
	// --force overwrites.
	if r := runCLI(t, nil, "export", "nginx", "--out", existing, "--dir", ca.dir, "--ca", ca.httpURL, "--force"); r.code != exitOK {
		t.Errorf("export --force: exit %d, stderr %q, want 0", r.code, r.stderr)
	}
}

func TestExportHAProxyCombinesAKeyItCannotFind(t *testing.T) {
	t.Parallel()
	ca := startExportCA(t)
	base := t.TempDir()
	// A certificate and key as cert server writes them, under names HAProxy
	// does not pair.
	key, crt := filepath.Join(base, "proxy.key"), filepath.Join(base, "proxy.crt")
	if r := runCLI(t, map[string]string{"FLEETCA_URL": ca.httpsURL}, "cert", "server", "--dir", ca.dir, "--dns", "localhost",
		"--key", key, "--cert", crt); r.code != exitOK {
		t.Fatalf("cert server: exit %d, stderr %q, want 0", r.code, r.stderr)
	}
	out := filepath.Join(base, "verifier")
	r := runCLI(t, nil, "export", "haproxy", "--out", out, "--dir", ca.dir, "--ca", ca.httpURL, "--server-cert", crt, "--server-key", key)
	if r.code != exitOK {
		t.Fatalf("export haproxy: exit %d, stderr %q, want 0", r.code, r.stderr)
	}
	combined := filepath.Join(out, "server.pem")
	if st, err := os.Stat(combined); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("stat %s = %v, %v, want mode 0600", combined, st, err)
	}
	if got, want := readFile(t, combined), readFile(t, crt)+readFile(t, key); got != want {
		t.Errorf("server.pem is not the certificate then the key")
	}
	if cfg := readFile(t, filepath.Join(out, "haproxy.cfg")); !strings.Contains(cfg, "crt "+combined+" ") {
		t.Errorf("haproxy.cfg does not load %s:\n%s", combined, cfg)
	}
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
