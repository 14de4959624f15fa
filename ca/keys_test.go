package ca

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"strings"
	"testing"

	"github.com/fleetca/fleetca/internal/fault"
)

func TestGenerateKey(t *testing.T) {
	tests := []struct {
		name  string
		kt    KeyType
		check func(t *testing.T, pub any)
	}{
		{"ok/default", "", func(t *testing.T, pub any) { wantCurve(t, pub, "P-256") }},
		{"ok/ec-p256", KeyECP256, func(t *testing.T, pub any) { wantCurve(t, pub, "P-256") }},
		{"ok/ec-p384", KeyECP384, func(t *testing.T, pub any) { wantCurve(t, pub, "P-384") }},
		{"ok/rsa-3072", KeyRSA3072, func(t *testing.T, pub any) {
			k, ok := pub.(*rsa.PublicKey)
			if !ok || k.N.BitLen() != 3072 {
				t.Errorf("public key = %T, want 3072-bit RSA", pub)
			}
		}},
		{"ok/ed25519", KeyEd25519, func(t *testing.T, pub any) {
			if _, ok := pub.(ed25519.PublicKey); !ok {
				t.Errorf("public key = %T, want ed25519.PublicKey", pub)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := GenerateKey(tc.kt)
			if err != nil {
				t.Fatalf("GenerateKey(%q) error = %v", tc.kt, err)
			}
			tc.check(t, s.Public())
		})
	}
}

func wantCurve(t *testing.T, pub any, curve string) {
	t.Helper()
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok || k.Curve.Params().Name != curve {
		t.Errorf("public key = %T, want ECDSA %s", pub, curve)
	}
}

func TestGenerateKeyUnknown(t *testing.T) {
	for _, kt := range []KeyType{"rsa-2048", "ec-p521", "EC-P256", "dsa"} {
		t.Run("fail/"+string(kt), func(t *testing.T) {
			_, err := GenerateKey(kt)
			wantKind(t, "GenerateKey", err, fault.Malformed)
			// The wording is the feature: it names the type and the choices.
			msg := err.Error()
			for _, want := range []string{string(kt), "ec-p256", "ec-p384", "rsa-3072", "ed25519"} {
				if !strings.Contains(msg, want) {
					t.Errorf("GenerateKey(%q) error = %q, want it to name %q", kt, msg, want)
				}
			}
		})
	}
}

func TestResolveKey(t *testing.T) {
	tests := []struct {
		name     string
		value    string
		wantFile string // "" for a non-file KMS
		wantErr  bool
	}{
		{"ok/relative", "secrets/k.key", "/data/secrets/k.key", false},
		{"ok/absolute", "/etc/k.key", "/etc/k.key", false},
		{"ok/softkms-path", "softkms:path=secrets/k.key", "/data/secrets/k.key", false},
		{"ok/softkms-opaque", "softkms:secrets/k.key", "/data/secrets/k.key", false},
		{"ok/softkms-absolute", "softkms:path=/etc/k.key", "/etc/k.key", false},
		{"ok/pkcs11", "pkcs11:token=fleet;object=intermediate", "", false},
		{"fail/unknown-scheme", "nosuchkms:foo", "", true},
		{"fail/softkms-empty", "softkms:", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ref, err := resolveKey("/data", "intermediate", "ca.intermediate_key", tc.value)
			if tc.wantErr {
				wantKind(t, "resolveKey", err, fault.Malformed)
				return
			}
			if err != nil {
				t.Fatalf("resolveKey(%q) error = %v", tc.value, err)
			}
			if ref.file != tc.wantFile {
				t.Errorf("resolveKey(%q).file = %q, want %q", tc.value, ref.file, tc.wantFile)
			}
		})
	}
}
