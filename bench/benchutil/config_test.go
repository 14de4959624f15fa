package benchutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// config is the shape of fleetca.yaml that init writes: sections of
// commented keys.
const config = `# fleetca configuration
server:
  # The HTTPS listener.
  https_addr: "127.0.0.1:0"

ca:
  # Least time between two renewals of one device (1s..168h).
  renew_min_interval: "1h0m0s"
  device_validity: "2160h0m0s"
`

func TestSetYAML(t *testing.T) {
	tests := []struct {
		name, key, value string
		want             map[string]map[string]string // sections after the edit
		wantFail         bool
	}{
		{"ok/replace", "ca.renew_min_interval", "1s", map[string]map[string]string{
			"server": {"https_addr": "127.0.0.1:0"}, "ca": {"renew_min_interval": "1s", "device_validity": "2160h0m0s"}}, false},
		{"ok/add", "ca.renew_after_expiry", "720h", map[string]map[string]string{
			"server": {"https_addr": "127.0.0.1:0"},
			"ca":     {"renew_min_interval": "1h0m0s", "device_validity": "2160h0m0s", "renew_after_expiry": "720h"}}, false},
		{"fail/no-section", "enroll.max_active_certificates", "3", nil, true},
		{"fail/section-not-value", "ca", "x", nil, true},
		{"fail/value-not-section", "ca.device_validity.x", "x", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := setYAML([]byte(config), tc.key, tc.value)
			if (err != nil) != tc.wantFail {
				t.Fatalf("setYAML(%s) error = %v, want failure %v", tc.key, err, tc.wantFail)
			}
			if tc.wantFail {
				return
			}
			var got map[string]map[string]string
			if err := yaml.Unmarshal(out, &got); err != nil {
				t.Fatalf("setYAML(%s) wrote YAML that does not parse: %v\n%s", tc.key, err, out)
			}
			for section, keys := range tc.want {
				for k, v := range keys {
					if got[section][k] != v {
						t.Errorf("setYAML(%s): %s.%s = %q, want %q\n%s", tc.key, section, k, got[section][k], v, out)
					}
				}
				if len(got[section]) != len(keys) {
					t.Errorf("setYAML(%s): section %s = %v, want %v", tc.key, section, got[section], keys)
				}
			}
			for _, comment := range []string{"# fleetca configuration", "# The HTTPS listener.", "# Least time between two renewals"} {
				if !strings.Contains(string(out), comment) {
					t.Errorf("setYAML(%s) lost the comment %q:\n%s", tc.key, comment, out)
				}
			}
		})
	}
}

func TestSetConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fleetca.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := SetConfig(dir, "ca.renew_min_interval", "1s"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `renew_min_interval: "1s"`) {
		t.Errorf("SetConfig() wrote:\n%s\nwant renew_min_interval: \"1s\"", b)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("SetConfig() left mode %v (%v), want 0600", st.Mode().Perm(), err)
	}
	// An integer key is written as an integer, not a string that
	// serve's strict decoding refuses for an int field.
	if err := SetConfigInt(dir, "ca.max_things", 16); err != nil {
		t.Fatal(err)
	}
	var got struct {
		CA struct {
			MaxThings int `yaml:"max_things"`
		} `yaml:"ca"`
	}
	if b, err = os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &got); err != nil || got.CA.MaxThings != 16 {
		t.Errorf("SetConfigInt() wrote:\n%s\nwhich decodes to max_things %d (%v), want the int 16", b, got.CA.MaxThings, err)
	}
	if err := SetConfig(t.TempDir(), "ca.renew_min_interval", "1s"); err == nil {
		t.Error("SetConfig(no fleetca.yaml) succeeded, want an error")
	}
}
