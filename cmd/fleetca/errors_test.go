package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
)

// TestErrorLine: a fault is "detail (hint)"; the input it is about (Field,
// Key) is named by the flag that sets it, if the command has one, and by
// the environment variable that stands in for it. The domain's hint is
// never rewritten.
func TestErrorLine(t *testing.T) {
	cmd := &cobra.Command{Use: "x"}
	cmd.Flags().Duration("ttl", 0, "")
	cmd.Flags().String("password-file", "", "")
	cmd.Flags().StringSlice("ip", nil, "")
	ttl := fault.New(fault.Malformed, "the token TTL 1s is outside 1m0s to 720h0m0s", "give a ttl in that range, or raise enroll.max_token_ttl")
	encrypted := fault.New(fault.Unavailable, "intermediate key is encrypted", "set password_file to the file that holds the CA keys' password")
	for _, tc := range []struct {
		name string
		cmd  *cobra.Command
		err  error
		want string
	}{
		{"field/flag", cmd, fault.WithField(ttl, "ttl"),
			"the token TTL 1s is outside 1m0s to 720h0m0s (give a ttl in that range, or raise enroll.max_token_ttl; use --ttl)"},
		{"field/no-flag-here", &cobra.Command{Use: "y"}, fault.WithField(ttl, "ttl"),
			"the token TTL 1s is outside 1m0s to 720h0m0s (give a ttl in that range, or raise enroll.max_token_ttl)"},
		{"field/flag-named-otherwise", cmd, fault.WithField(fault.New(fault.Malformed, "bad IP", ""), "ips"), "bad IP (use --ip)"},
		{"key/flag-and-variable", cmd, fault.WithKey(encrypted, "password_file"),
			"intermediate key is encrypted (set password_file to the file that holds the CA keys' password; use --password-file or FLEETCA_PASSWORD)"},
		{"key/variable-only", nil, fault.WithKey(encrypted, "password_file"),
			"intermediate key is encrypted (set password_file to the file that holds the CA keys' password; use FLEETCA_PASSWORD)"},
		{"key/config-only", cmd, fault.WithKey(fault.New(fault.Malformed, "ca.backdate 2h is out of range", "use 0 to 1h"), "ca.backdate"),
			"ca.backdate 2h is out of range (use 0 to 1h)"},
		{"wrapped", cmd, fmt.Errorf("sign: %w", usage(fault.WithField(ttl, "ttl"))),
			"the token TTL 1s is outside 1m0s to 720h0m0s (give a ttl in that range, or raise enroll.max_token_ttl; use --ttl)"},
		{"flag-value", cmd, flagUsage("--url", fault.New(fault.Malformed, `"x" is not an http URL`, "give the base URL")),
			`--url: "x" is not an http URL (give the base URL)`},
		{"plain", cmd, errors.New("line one\nline two"), "line one line two"},
		{"joined", cmd, errors.Join(fault.New(fault.NotFound, "a", "b"), errors.New("c")), "a (b); c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := errorLine(tc.cmd, tc.err); got != tc.want {
				t.Errorf("errorLine = %q\nwant        %q", got, tc.want)
			}
		})
	}
}

// TestTokenCreateNamesTheFlag: a domain error about a request field, sent
// back by the CA as problem JSON, reaches the CLI user with the flag that
// sets the field.
func TestTokenCreateNamesTheFlag(t *testing.T) {
	t.Parallel()
	ca := startCA(t)
	vars := map[string]string{"FLEETCA_URL": ca.httpsURL}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"ttl", []string{"--device-id", "dev-1", "--ttl", "1s"}, []string{"give a ttl in that range", "use --ttl"}},
		{"uses", []string{"--device-id", "dev-1", "--uses", "100000001"}, []string{"give uses in that range", "use --uses"}},
		{"device-id", []string{"--device-id", "dev 1"}, []string{`"dev 1"`, "use --device-id"}},
		// --ttl 0s is sent, and refused, rather than read as no --ttl.
		{"ttl-zero", []string{"--device-id", "dev-1", "--ttl", "0s"}, []string{"the token TTL 0s is outside", "enroll.default_token_ttl", "use --ttl"}},
		{"ttl-negative", []string{"--device-id", "dev-1", "--ttl", "-1h"}, []string{"the token TTL -1h0m0s is outside", "use --ttl"}},
		{"any-device-missing", []string{"--device-pattern", "*"}, []string{`"*" matches every device ID`, "use --any-device"}},
		{"any-device-narrow", []string{"--device-pattern", "line3-*", "--any-device"}, []string{`"line3-*" does not match every device ID`, "use --any-device"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, vars, append([]string{"token", "create", "--dir", ca.dir}, tc.args...)...)
			wantOneLine(t, "token create "+strings.Join(tc.args, " "), r, exitError)
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr = %q, want it to contain %q", r.stderr, w)
				}
			}
		})
	}
}

// TestTokenAnyDevice: --any-device mints a token whose pattern matches
// every device ID, and token list flags it, as a column and in the JSON.
func TestTokenAnyDevice(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	if r := runCLI(t, nil, initArgs(dir, "--no-password")...); r.code != exitOK {
		t.Fatalf("init: exit %d, want 0; stderr: %q", r.code, r.stderr)
	}
	httpsURL, _, stop := startInProcess(t, dir, nil)
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("runServe after cancel: %v, want nil", err)
		}
	}()
	vars := map[string]string{"FLEETCA_URL": httpsURL}
	for _, args := range [][]string{
		{"--device-pattern", "*", "--any-device", "--uses", "5", "--ttl", "1h"},
		{"--device-pattern", "line3-*"},
	} {
		if r := runCLI(t, vars, append([]string{"token", "create", "--dir", dir}, args...)...); r.code != exitOK {
			t.Fatalf("token create %v: exit %d, want 0; stderr: %q", args, r.code, r.stderr)
		}
	}
	r := runCLI(t, vars, "token", "list", "--dir", dir)
	if r.code != exitOK {
		t.Fatalf("token list: exit %d; stderr: %q", r.code, r.stderr)
	}
	var anyLines, narrowLines int
	for line := range strings.Lines(r.stdout) {
		switch {
		case strings.Contains(line, "ANY DEVICE (pattern *)"):
			anyLines++
		case strings.Contains(line, "pattern line3-*"):
			narrowLines++
		}
	}
	if anyLines != 1 || narrowLines != 1 {
		t.Errorf("token list:\n%s\nwant one ANY DEVICE (pattern *) row and one plain pattern line3-* row", r.stdout)
	}
	r = runCLI(t, vars, "token", "list", "--dir", dir, "--json")
	var tokens []api.Token
	if err := json.Unmarshal([]byte(r.stdout), &tokens); err != nil || len(tokens) != 2 {
		t.Fatalf("token list --json = %q (%v), want two tokens", r.stdout, err)
	}
	for _, tok := range tokens {
		if want := tok.DevicePattern == "*"; tok.AnyDevice != want {
			t.Errorf("token list --json: pattern %q any_device = %v, want %v", tok.DevicePattern, tok.AnyDevice, want)
		}
	}
}

// TestUsageErrorsAreClassifiedByCobrasHooks: cobra's flag and argument
// errors, and an unknown command, exit 2 with cobra's own words, whatever
// those words are.
func TestUsageErrorsAreClassifiedByCobrasHooks(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"frobnicate"},
		{"--bogus"},
		{"token", "create", "--ttl", "soon"},
		{"token", "create", "--uses"},
		{"token", "revoke"},
		{"token", "revoke", "a", "b"},
		{"serve", "extra"},
		{"devices", "show"},
	} {
		r := runCLI(t, nil, args...)
		wantOneLine(t, "fleetca "+strings.Join(args, " "), r, exitUsage)
	}
}
