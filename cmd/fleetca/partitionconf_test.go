package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestCRLPartitionsConfig: init writes revocation.crl_partitions: 1, and
// loadConfig takes a power of two up to 256 and refuses anything else
// with an error naming the key.
func TestCRLPartitionsConfig(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	if r := runCLI(t, nil, initArgs(dir, "--no-password")...); r.code != exitOK {
		t.Fatalf("init: exit %d, want 0; stderr: %q", r.code, r.stderr)
	}
	path := filepath.Join(dir, configName)
	yml := readFile(t, path)
	const line = "crl_partitions: 1\n"
	if !strings.Contains(yml, line) {
		t.Fatalf("fleetca.yaml from init lacks %q:\n%s", line, yml)
	}
	for _, tc := range []struct {
		value string
		want  int // 0: refused
	}{
		{"1", 1}, {"2", 2}, {"16", 16}, {"256", 256},
		{"0", 1}, // the default
		{"3", 0}, {"12", 0}, {"512", 0}, {"-16", 0},
	} {
		t.Run(tc.value, func(t *testing.T) {
			writeFile(t, path, strings.Replace(yml, line, "crl_partitions: "+tc.value+"\n", 1))
			cfg, err := loadConfig(dir)
			if tc.want == 0 {
				if err == nil || !strings.Contains(oneLine(err), "crl_partitions") {
					t.Fatalf("loadConfig with crl_partitions %s = %v, want an error naming crl_partitions", tc.value, err)
				}
				return
			}
			if err != nil || cfg.Revocation.CRLPartitions != tc.want {
				t.Fatalf("loadConfig with crl_partitions %s = %d, %v; want %d", tc.value, cfg.Revocation.CRLPartitions, err, tc.want)
			}
		})
	}
}
