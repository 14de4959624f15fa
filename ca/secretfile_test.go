package ca

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetca/fleetca/internal/fault"
)

// TestNewRefusesReadableKeyFiles: a CA key file that others may read stops
// New, for the intermediate key (loaded now) and the root key (present,
// loaded later), bare path or softkms URI alike; mode 0600 loads. The
// error names the file and the chmod that fixes it.
func TestNewRefusesReadableKeyFiles(t *testing.T) {
	for _, tc := range []struct {
		name  string
		file  string // under secrets/
		mode  os.FileMode
		cfg   func(*Config)
		wantF bool // refused
		pw    bool // encrypt the keys
	}{
		{"ok/0600", "intermediate.key", 0o600, nil, false, false},
		{"ok/0400", "intermediate.key", 0o400, nil, false, false},
		{"fail/intermediate-0644", "intermediate.key", 0o644, nil, true, false},
		{"fail/intermediate-0640", "intermediate.key", 0o640, nil, true, false},
		{"fail/intermediate-0604", "intermediate.key", 0o604, nil, true, false},
		{"fail/root-0644", "root.key", 0o644, nil, true, false},
		{"fail/encrypted-intermediate-0644", "intermediate.key", 0o644, nil, true, true},
		{"ok/encrypted-0600", "intermediate.key", 0o600, nil, false, true},
		{"fail/softkms-intermediate-0644", "intermediate.key", 0o644, func(c *Config) {
			c.IntermediateKey = "softkms:path=" + DefaultIntermediateKey
		}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var password []byte
			if tc.pw {
				password = []byte("correct horse battery staple")
			}
			dir, _ := initCA(t, KeyECP256, password)
			file := filepath.Join(dir, "secrets", tc.file)
			if err := os.Chmod(file, tc.mode); err != nil {
				t.Fatal(err)
			}
			cfg := Config{}
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			deps := testDeps(dir)
			deps.Password = password
			a, err := New(t.Context(), cfg.WithDefaults(), deps)
			if !tc.wantF {
				if err != nil {
					t.Fatalf("New with %s mode %04o: %v, want it to load", tc.file, tc.mode, err)
				}
				_ = a.Close()
				return
			}
			wantKind(t, "New with "+tc.file+" readable", err, fault.Forbidden)
			fe, _ := errors.AsType[*fault.Error](err)
			if !strings.Contains(fe.Detail, file) || fe.Hint != "chmod 600 "+file {
				t.Errorf("New error = %q (hint %q), want it to name %s and the hint chmod 600 %s", fe.Detail, fe.Hint, file, file)
			}
		})
	}
}
