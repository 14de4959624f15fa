package main

import (
	"strings"
	"testing"
)

// TestSecretsOnlyOverHTTPS: every command that sends an enrollment or admin
// token refuses a URL that is not HTTPS, before it connects, with an error
// that names the HTTPS listener; the token is not spent. The URL given is
// the CA's real HTTP listener, the mistake a user makes.
func TestSecretsOnlyOverHTTPS(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok, id := f.token("--device-id", "dev-1")
	plain := f.srv.httpURL
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"enroll/fingerprint", []string{"enroll", "--ca", plain, "--fingerprint", fileFingerprint(t, f.root), "--token", tok, "--key", "k", "--cert", "c"}},
		{"enroll/root", []string{"enroll", "--ca", plain, "--root", f.root, "--token", tok, "--key", "k", "--cert", "c"}},
		{"token create", []string{"token", "create", "--dir", f.dataDir, "--ca-url", plain, "--device-id", "dev-2"}},
		{"token list", []string{"token", "list", "--dir", f.dataDir, "--ca-url", plain}},
		{"devices list", []string{"devices", "list", "--dir", f.dataDir, "--ca-url", plain}},
		{"revoke", []string{"revoke", "--dir", f.dataDir, "--ca-url", plain, "--device-id", "dev-1"}},
		{"cert server", []string{"cert", "server", "--dir", f.dataDir, "--ca-url", plain, "--dns", "localhost", "--key", "s.key", "--cert", "s.crt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.fleetca(tc.args...)
			if r.code != 1 || !oneLineError.MatchString(r.stderr) {
				t.Fatalf("fleetca %s: exit %d, stderr %q, want 1 and one line", tc.name, r.code, r.stderr)
			}
			for _, want := range []string{plain + " is not HTTPS", "HTTPS listener"} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("fleetca %s: stderr %q, want it to contain %q", tc.name, r.stderr, want)
				}
			}
		})
	}
	if got := dirNames(t, f.work); len(got) != 0 {
		t.Errorf("files after the refused commands = %v, want none", got)
	}
	if n := f.tokenSpent(id); n != 0 {
		t.Errorf("token spent %d times after refused enrollments, want 0", n)
	}
	// The same token still enrolls over HTTPS.
	f.fleetcaEnroll(tok, "dev-1")
}
