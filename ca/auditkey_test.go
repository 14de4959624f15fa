package ca

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/fleetca/fleetca/internal/fault"
)

func TestAuditKey(t *testing.T) {
	for _, tc := range []struct {
		name     string
		password []byte
	}{
		{"ok/unencrypted", nil},
		{"ok/encrypted", []byte("correct horse")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := initCA(t, KeyECP256, tc.password)
			s, vkey, created, err := AuditKey(dir, Config{}, "ignored once audit.pub exists", tc.password)
			if err != nil || created {
				t.Fatalf("AuditKey after init = created %v, %v; want init's key", created, err)
			}
			pub, err := os.ReadFile(filepath.Join(dir, AuditPublicKeyFile))
			if err != nil || strings.TrimSpace(string(pub)) != vkey {
				t.Fatalf("audit.pub = %q (%v), want %q", pub, err, vkey)
			}
			// What it signs verifies with audit.pub alone.
			v, err := note.NewVerifier(strings.TrimSpace(string(pub)))
			if err != nil {
				t.Fatal(err)
			}
			msg, err := note.Sign(&note.Note{Text: "origin\n1\nAAAA\n"}, s)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
				t.Fatalf("note signed by the audit key does not open with audit.pub: %v", err)
			}
			fi, err := os.Stat(filepath.Join(dir, DefaultAuditKey))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("key file mode = %v (%v), want 0600", fi.Mode(), err)
			}
			// An older CA without the key: serve makes one and publishes it.
			for _, f := range []string{DefaultAuditKey, AuditPublicKeyFile} {
				if err := os.Remove(filepath.Join(dir, f)); err != nil {
					t.Fatal(err)
				}
			}
			_, vkey1, created, err := AuditKey(dir, Config{}, "Acme Devices", tc.password)
			if err != nil || !created || vkey1 == vkey || !strings.HasPrefix(vkey1, "Acme-Devices/fleetca-audit+") {
				t.Fatalf("AuditKey on a CA without one = %q created %v, %v; want a new key named Acme-Devices/fleetca-audit", vkey1, created, err)
			}
			_, vkey2, created, err := AuditKey(dir, Config{}, "Acme Devices", tc.password)
			if err != nil || created || vkey2 != vkey1 {
				t.Fatalf("AuditKey again = %q created %v, %v; want the key made before", vkey2, created, err)
			}
			if tc.password != nil {
				_, _, _, err := AuditKey(dir, Config{}, "x", []byte("wrong"))
				if k, ok := fault.KindOf(err); !ok || k != fault.Unauthorized {
					t.Errorf("wrong password: %v, want Unauthorized", err)
				}
			}
		})
	}
	t.Run("fail/public-key-without-key", func(t *testing.T) {
		dir, _ := initCA(t, KeyECP256, nil)
		pub := readAuditPub(t, dir)
		if err := os.Remove(filepath.Join(dir, DefaultAuditKey)); err != nil {
			t.Fatal(err)
		}
		_, _, _, err := AuditKey(dir, Config{}, "x", nil)
		if k, ok := fault.KindOf(err); !ok || k != fault.Conflict {
			t.Errorf("audit.pub without its key: %v, want Conflict", err)
		}
		if got := readAuditPub(t, dir); got != pub {
			t.Errorf("audit.pub changed to %q, want it kept", got)
		}
	})
	t.Run("fail/other-public-key", func(t *testing.T) {
		dir, _ := initCA(t, KeyECP256, nil)
		_, other, err := note.GenerateKey(nil, "x/fleetca-audit")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, AuditPublicKeyFile), []byte(other+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, _, _, err = AuditKey(dir, Config{}, "x", nil)
		if k, ok := fault.KindOf(err); !ok || k != fault.Conflict {
			t.Errorf("audit.pub of another key: %v, want Conflict", err)
		}
	})
}

func TestAuditKeyName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"fleetca dev", "fleetca-dev/fleetca-audit"},
		{"Acme+Devices  GmbH", "Acme-Devices-GmbH/fleetca-audit"},
		{"  ", "fleetca/fleetca-audit"},
	} {
		if got := AuditKeyName(tc.in); got != tc.want {
			t.Errorf("AuditKeyName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func readAuditPub(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, AuditPublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
