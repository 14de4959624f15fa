package ca

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/fleetca/fleetca/internal/fault"
)

func TestStepProvisionerKey(t *testing.T) {
	for _, tc := range []struct {
		name     string
		password []byte
	}{
		{"ok/unencrypted", nil},
		{"ok/encrypted", []byte("correct horse")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := initCA(t, KeyECP256, tc.password)
			made, created, err := StepProvisionerKey(dir, Config{}, tc.password)
			if err != nil || created {
				t.Fatalf("StepProvisionerKey after init = created %v, %v; want init's key", created, err)
			}
			// An older CA without the key: the first call makes it, the
			// next one reads the same key.
			if err := os.Remove(filepath.Join(dir, DefaultStepProvisionerKey)); err != nil {
				t.Fatal(err)
			}
			k1, created, err := StepProvisionerKey(dir, Config{}, tc.password)
			if err != nil || !created || k1.Equal(made) {
				t.Fatalf("StepProvisionerKey on a CA without one = created %v, %v; want a new key", created, err)
			}
			k2, created, err := StepProvisionerKey(dir, Config{}, tc.password)
			if err != nil || created || !k2.Equal(k1) {
				t.Fatalf("StepProvisionerKey again = created %v, same %v, %v; want the key made before", created, k2.Equal(k1), err)
			}
			fi, err := os.Stat(filepath.Join(dir, DefaultStepProvisionerKey))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("key file mode = %v (%v), want 0600", fi.Mode(), err)
			}
			if tc.password != nil {
				_, _, err := StepProvisionerKey(dir, Config{}, []byte("wrong"))
				if k, ok := fault.KindOf(err); !ok || k != fault.Unauthorized {
					t.Errorf("wrong password: %v, want Unauthorized", err)
				}
			}
		})
	}
	t.Run("fail/not-p256", func(t *testing.T) {
		dir, _ := initCA(t, KeyECP256, nil)
		cfg := Config{StepProvisionerKey: DefaultIntermediateKey}
		if _, _, err := StepProvisionerKey(dir, cfg, nil); err != nil {
			t.Fatalf("a P-256 intermediate key read as the step key: %v", err)
		}
		ed := filepath.Join(dir, "secrets", "ed.key")
		k, err := GenerateKey(KeyEd25519)
		if err != nil {
			t.Fatal(err)
		}
		b, err := serializeKey(k, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(ed, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err = StepProvisionerKey(dir, Config{StepProvisionerKey: ed}, nil)
		if kd, ok := fault.KindOf(err); !ok || kd != fault.Malformed {
			t.Errorf("Ed25519 step key: %v, want Malformed", err)
		}
	})
}
