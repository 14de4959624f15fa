package export

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetca/fleetca/internal/fault"
)

var update = flag.Bool("update", false, "rewrite export/testdata/*/*.golden from the current output")

// goldenCases are the configurations whose files are kept in
// testdata/<name>/<file>.golden.
var goldenCases = []struct {
	name string
	p    Params
}{
	{"nginx", Params{Kind: Nginx, Dir: "/etc/fleetca/verifier", CAURL: "http://192.0.2.1:8080"}},
	{"nginx-hostname-ca-https-upstream", Params{Kind: Nginx, Dir: "/etc/fleetca/verifier", CAURL: "http://ca.example.com:8080/",
		Listen: "192.0.2.10:443", Upstream: "https://app.example.com"}},
	{"haproxy", Params{Kind: HAProxy, Dir: "/etc/fleetca/verifier", CAURL: "http://192.0.2.1:8080"}},
	{"haproxy-key-in-cert", Params{Kind: HAProxy, Dir: "/etc/fleetca/verifier", CAURL: "http://192.0.2.1:8080",
		ServerCert: "/etc/fleetca/verifier/server.pem", ServerKey: "/etc/fleetca/verifier/server.pem", Listen: "[::1]:9443"}},
	{"mosquitto", Params{Kind: Mosquitto, Dir: "/etc/fleetca/verifier", CAURL: "http://192.0.2.1:8080"}},
	{"mosquitto-bound", Params{Kind: Mosquitto, Dir: "/etc/fleetca/verifier", CAURL: "http://192.0.2.1:8080", Listen: "192.0.2.10:8883",
		ServerCert: "/etc/mosquitto/certs/broker.crt", ServerKey: "/etc/mosquitto/certs/broker.key"}},
	{"envoy", Params{Kind: Envoy, Dir: "/etc/fleetca/verifier", CAURL: "http://192.0.2.1:8080", TrustDomain: "fleet.example"}},
	{"envoy-https-upstream", Params{Kind: Envoy, Dir: "/etc/fleetca/verifier", CAURL: "http://192.0.2.1:8080", TrustDomain: "fleet.example",
		Listen: "127.0.0.1:9443", Upstream: "https://app.example.com:8443"}},
}

func TestRenderGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			files, err := Render(tc.p)
			if err != nil {
				t.Fatalf("Render(%+v) = %v, want no error", tc.p, err)
			}
			dir := filepath.Join("testdata", tc.name)
			if *update {
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			var names []string
			for _, f := range files {
				names = append(names, f.Name)
				if f.Mode != 0o644 {
					t.Errorf("%s: mode %04o, want 0644", f.Name, f.Mode)
				}
				golden := filepath.Join(dir, f.Name+".golden")
				if *update {
					if err := os.WriteFile(golden, f.Data, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test ./export -update to create it)", err)
				}
				if diff := cmp.Diff(string(want), string(f.Data)); diff != "" {
					t.Errorf("%s differs from %s (-want +got):\n%s\nIf the change is intended, run go test ./export -update and review the diff.",
						f.Name, golden, diff)
				}
			}
			if want := append(append([]string{}, kindFiles[tc.p.Kind]...), ReadmeFile); !cmp.Equal(names, want) {
				t.Errorf("Render files = %v, want %v", names, want)
			}

			steps, err := Steps(tc.p)
			if err != nil {
				t.Fatalf("Steps(%+v) = %v, want no error", tc.p, err)
			}
			readme := string(files[len(files)-1].Data)
			if !strings.HasSuffix(readme, steps) {
				t.Errorf("README.txt does not end with the steps export prints:\n%s", steps)
			}
			if !strings.Contains(steps, "fleetca crl sync --url ") || !strings.Contains(steps, " --issuer /etc/fleetca/verifier/ca.pem --out /etc/fleetca/verifier/crl.pem") {
				t.Errorf("steps do not give the crl sync command line:\n%s", steps)
			}
		})
	}
}

func TestRenderRefuses(t *testing.T) {
	t.Parallel()
	ok := Params{Kind: Nginx, Dir: "/srv/v", CAURL: "http://127.0.0.1:8080"}
	for _, tc := range []struct {
		name   string
		change func(p *Params)
		want   string // in the detail
	}{
		{"unknown kind", func(p *Params) { p.Kind = "caddy" }, `"caddy"`},
		{"relative dir", func(p *Params) { p.Dir = "verifier" }, "absolute"},
		{"dir with a space", func(p *Params) { p.Dir = "/srv/my verifier" }, "space"},
		{"dir with a dollar", func(p *Params) { p.Dir = "/srv/$x" }, "space, quote"},
		{"CA URL without a scheme", func(p *Params) { p.CAURL = "127.0.0.1:8080" }, "CA URL"},
		{"CA URL with credentials", func(p *Params) { p.CAURL = "http://u:p@ca:8080" }, "CA URL"},
		{"CA URL with a query", func(p *Params) { p.CAURL = "http://ca:8080/?x=1" }, "CA URL"},
		{"envoy without a trust domain", func(p *Params) { p.Kind = Envoy }, "trust domain"},
		{"uppercase trust domain", func(p *Params) { p.Kind, p.TrustDomain = Envoy, "Fleet.Example" }, "SPIFFE"},
		{"listen without a port", func(p *Params) { p.Listen = "127.0.0.1" }, "listen address"},
		{"listen on port 0", func(p *Params) { p.Listen = ":0" }, "listen address"},
		{"listen on a host name", func(p *Params) { p.Listen = "localhost:9443" }, "IP address"},
		{"upstream with a path", func(p *Params) { p.Upstream = "http://127.0.0.1:8000/api" }, "upstream"},
		{"upstream tcp", func(p *Params) { p.Upstream = "tcp://127.0.0.1:1883" }, "upstream"},
		{"mosquitto with an upstream", func(p *Params) { p.Kind, p.Upstream = Mosquitto, "http://127.0.0.1:8000" }, "no upstream"},
		{"relative server certificate", func(p *Params) { p.ServerCert = "server.crt" }, "server certificate"},
		{"haproxy key elsewhere", func(p *Params) { p.Kind, p.ServerCert, p.ServerKey = HAProxy, "/srv/v/s.crt", "/srv/v/s.key" }, "s.crt.key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ok
			tc.change(&p)
			_, err := Render(p)
			fe, isFault := errors.AsType[*fault.Error](err)
			if !isFault || fe.Kind != fault.Malformed {
				t.Fatalf("Render(%+v) = %v, want a Malformed fault", p, err)
			}
			if !strings.Contains(fe.Detail, tc.want) || fe.Hint == "" {
				t.Errorf("Render(%+v) detail %q, hint %q; want %q in the detail and a hint", p, fe.Detail, fe.Hint, tc.want)
			}
			if _, err := Steps(p); err == nil {
				t.Errorf("Steps(%+v) = nil error, want the one Render gives", p)
			}
		})
	}
}

// TestRenderNamesTheField: a refused parameter that the CLI sets with a
// flag is named in the fault's Field, and the hint names no flag.
func TestRenderNamesTheField(t *testing.T) {
	t.Parallel()
	ok := Params{Kind: Nginx, Dir: "/srv/v", CAURL: "http://127.0.0.1:8080"}
	for _, tc := range []struct {
		name   string
		change func(p *Params)
		field  string
	}{
		{"envoy without a trust domain", func(p *Params) { p.Kind = Envoy }, "trust_domain"},
		{"uppercase trust domain", func(p *Params) { p.Kind, p.TrustDomain = Envoy, "Fleet.Example" }, "trust_domain"},
		{"listen without a port", func(p *Params) { p.Listen = "127.0.0.1" }, "listen"},
		{"upstream with a path", func(p *Params) { p.Upstream = "http://127.0.0.1:8000/api" }, "upstream"},
		{"mosquitto with an upstream", func(p *Params) { p.Kind, p.Upstream = Mosquitto, "http://127.0.0.1:8000" }, "upstream"},
		{"CA URL without a scheme", func(p *Params) { p.CAURL = "127.0.0.1:8080" }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ok
			tc.change(&p)
			_, err := Render(p)
			fe, isFault := errors.AsType[*fault.Error](err)
			if !isFault || fe.Field != tc.field {
				t.Fatalf("Render(%+v) = %#v, want a fault with Field %q", p, err, tc.field)
			}
			if strings.Contains(fe.Hint, "--") {
				t.Errorf("Render(%+v) hint %q names a flag", p, fe.Hint)
			}
		})
	}
}
