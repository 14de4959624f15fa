package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestRenewUsageErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c, k := filepath.Join(dir, "d.crt"), filepath.Join(dir, "d.key")
	fp := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // in the error line
	}{
		{"no --ca", []string{"renew", "--fingerprint", fp, "--cert", c, "--key", k}, exitUsage, "--ca"},
		{"no trust", []string{"renew", "--ca", "https://127.0.0.1:1", "--cert", c, "--key", k}, exitUsage, "--fingerprint"},
		{"root and fingerprint", []string{"renew", "--ca", "https://127.0.0.1:1", "--root", "r.pem", "--fingerprint", fp, "--cert", c, "--key", k}, exitUsage, "exactly one"},
		{"no --cert", []string{"renew", "--ca", "https://127.0.0.1:1", "--fingerprint", fp, "--key", k}, exitUsage, "--cert"},
		{"no --key", []string{"renew", "--ca", "https://127.0.0.1:1", "--fingerprint", fp, "--cert", c}, exitUsage, "--key"},
		{"short check interval", []string{"renew", "--ca", "https://127.0.0.1:1", "--fingerprint", fp, "--cert", c, "--key", k, "--daemon", "--check-interval", "1s"}, exitUsage, "--check-interval"},
		{"short fingerprint", []string{"renew", "--ca", "https://127.0.0.1:1", "--fingerprint", "abcd", "--cert", c, "--key", k}, exitUsage, "64 hex digits"},
		{"http CA", []string{"renew", "--ca", "http://127.0.0.1:1", "--fingerprint", fp, "--cert", c, "--key", k}, exitError, "not HTTPS"},
		{"http CA, daemon", []string{"renew", "--ca", "http://127.0.0.1:1", "--fingerprint", fp, "--cert", c, "--key", k, "--daemon"}, exitError, "not HTTPS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, nil, tc.args...)
			wantOneLine(t, "fleetca "+strings.Join(tc.args, " "), r, tc.code)
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr = %q, want it to mention %q", r.stderr, tc.want)
			}
		})
	}
}
