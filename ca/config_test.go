package ca

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/fleetca/fleetca/internal/fault"
)

func TestConfigWithDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Config
		want Config
	}{
		{"zero", Config{}, Config{
			RootCert: "root.pem", IntermediateCert: "intermediate.pem",
			RootKey: "secrets/root.key", IntermediateKey: "secrets/intermediate.key",
			DeviceValidity: 2160 * time.Hour, ServerValidity: 168 * time.Hour, Backdate: time.Minute,
			RenewMinInterval:   time.Hour,
			StepProvisionerKey: "secrets/step_provisioner.key", StepProvisioner: "fleetca",
			AuditKey: "secrets/audit.key",
		}},
		{"set", Config{
			RootCert: "r.pem", IntermediateCert: "i.pem", RootKey: "pkcs11:object=root", IntermediateKey: "/k",
			DeviceValidity: time.Hour, ServerValidity: 2 * time.Hour, Backdate: time.Second,
			RenewAfterExpiry: 720 * time.Hour, RenewMinInterval: time.Minute,
			StepProvisionerKey: "/p.key", StepProvisioner: "line3", AuditKey: "/a.key",
		}, Config{
			RootCert: "r.pem", IntermediateCert: "i.pem", RootKey: "pkcs11:object=root", IntermediateKey: "/k",
			DeviceValidity: time.Hour, ServerValidity: 2 * time.Hour, Backdate: time.Second,
			RenewAfterExpiry: 720 * time.Hour, RenewMinInterval: time.Minute,
			StepProvisionerKey: "/p.key", StepProvisioner: "line3", AuditKey: "/a.key",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			got := tc.in.WithDefaults()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("WithDefaults() mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(in, tc.in); diff != "" {
				t.Errorf("WithDefaults() changed its receiver:\n%s", diff)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantKey string // "" for valid
	}{
		{"ok/zero", Config{}, ""},
		{"ok/defaults", Config{}.WithDefaults(), ""},
		{"ok/device-min", Config{DeviceValidity: time.Hour}, ""},
		{"ok/device-max", Config{DeviceValidity: 87600 * time.Hour}, ""},
		{"ok/server-max", Config{ServerValidity: 2160 * time.Hour}, ""},
		{"ok/backdate-max", Config{Backdate: time.Hour}, ""},
		{"ok/renew-after-expiry-max", Config{RenewAfterExpiry: 8760 * time.Hour}, ""},
		{"ok/renew-min-interval-min", Config{RenewMinInterval: time.Second}, ""},
		{"ok/renew-min-interval-max", Config{RenewMinInterval: 168 * time.Hour}, ""},
		{"ok/kms-uri", Config{IntermediateKey: "softkms:path=k.key", RootKey: "pkcs11:object=root"}, ""},
		{"fail/device-short", Config{DeviceValidity: 59 * time.Minute}, "device_validity"},
		{"fail/device-long", Config{DeviceValidity: 87601 * time.Hour}, "device_validity"},
		{"fail/device-negative", Config{DeviceValidity: -time.Hour}, "device_validity"},
		{"fail/server-short", Config{ServerValidity: time.Minute}, "server_validity"},
		{"fail/server-long", Config{ServerValidity: 2161 * time.Hour}, "server_validity"},
		{"fail/backdate-negative", Config{Backdate: -time.Second}, "backdate"},
		{"fail/backdate-long", Config{Backdate: 61 * time.Minute}, "backdate"},
		{"fail/renew-after-expiry-negative", Config{RenewAfterExpiry: -time.Hour}, "renew_after_expiry"},
		{"fail/renew-after-expiry-long", Config{RenewAfterExpiry: 8761 * time.Hour}, "renew_after_expiry"},
		{"fail/renew-min-interval-short", Config{RenewMinInterval: time.Millisecond}, "renew_min_interval"},
		{"fail/renew-min-interval-long", Config{RenewMinInterval: 169 * time.Hour}, "renew_min_interval"},
		{"fail/bad-kms", Config{IntermediateKey: "nosuchkms:x"}, "intermediate_key"},
		{"fail/nul", Config{RootCert: "a\x00b"}, "root_cert"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.cfg
			err := tc.cfg.Validate()
			if diff := cmp.Diff(before, tc.cfg); diff != "" {
				t.Errorf("Validate() changed its receiver:\n%s", diff)
			}
			if tc.wantKey == "" {
				if err != nil {
					t.Fatalf("Validate() error = %v, want nil", err)
				}
				return
			}
			wantKind(t, "Validate", err, fault.Malformed)
			// The detail names the key: that is the feature.
			if !strings.Contains(err.Error(), "ca."+tc.wantKey) {
				t.Errorf("Validate() error = %q, want it to name ca.%s", err, tc.wantKey)
			}
		})
	}
}

func TestConfigValidateNamesRange(t *testing.T) {
	err := Config{DeviceValidity: 100000 * time.Hour}.Validate()
	wantKind(t, "Validate", err, fault.Malformed)
	for _, want := range []string{"1h", "87600h", "2160h"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() error = %q, want it to give the range and default (%s)", err, want)
		}
	}
}

func TestConfigYAML(t *testing.T) {
	const in = `
root_cert: r.pem
intermediate_cert: i.pem
root_key: "pkcs11:object=root"
intermediate_key: secrets/i.key
device_validity: 720h
server_validity: 24h
backdate: 30s
renew_after_expiry: 720h
renew_min_interval: 10m
`
	var got Config
	dec := yaml.NewDecoder(strings.NewReader(in))
	dec.KnownFields(true)
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("Decode() error = %v", err)
	}
	want := Config{
		RootCert: "r.pem", IntermediateCert: "i.pem", RootKey: "pkcs11:object=root", IntermediateKey: "secrets/i.key",
		DeviceValidity: 720 * time.Hour, ServerValidity: 24 * time.Hour, Backdate: 30 * time.Second,
		RenewAfterExpiry: 720 * time.Hour, RenewMinInterval: 10 * time.Minute,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Decode() mismatch (-want +got):\n%s", diff)
	}

	// Init's Config, as written to fleetca.yaml, holds only the paths.
	out, err := yaml.Marshal(Config{RootCert: DefaultRootCert, IntermediateCert: DefaultIntermediateCert, RootKey: DefaultRootKey, IntermediateKey: DefaultIntermediateKey})
	if err != nil {
		t.Fatalf("Marshal() error = %v", err)
	}
	wantOut := "root_cert: root.pem\nintermediate_cert: intermediate.pem\nroot_key: secrets/root.key\nintermediate_key: secrets/intermediate.key\n"
	if diff := cmp.Diff(wantOut, string(out)); diff != "" {
		t.Errorf("Marshal() mismatch (-want +got):\n%s", diff)
	}
}
