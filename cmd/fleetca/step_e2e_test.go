package main

// End-to-end test of the step CLI routes (issue 13) with the real step CLI
// (smallstep/cli, found by testenv.NeedStep) against the real serve: health,
// the root by fingerprint, the roots, the version, bootstrap, and renewal of a
// certificate `fleetca enroll` made, over mutual TLS and with step's
// renewal token, and a revoked certificate refused with fleetca's message.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/testenv"
)

// stepCLI runs the step CLI in f's work directory with its own STEPPATH.
type stepCLI struct {
	f        *fixture
	bin      string
	steppath string
}

func newStepCLI(t *testing.T, f *fixture) *stepCLI {
	t.Helper()
	return &stepCLI{f: f, bin: testenv.NeedStep(t), steppath: t.TempDir()}
}

func (s *stepCLI) run(args ...string) result {
	s.f.t.Helper()
	return execIn(s.f.t, s.f.work, baseEnv("STEPPATH="+s.steppath, "HOME="+s.steppath), s.bin, args...)
}

func (s *stepCLI) must(args ...string) result {
	s.f.t.Helper()
	r := s.run(args...)
	if r.code != 0 {
		s.f.t.Fatalf("step %s: exit %d, want 0; stdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

func TestStepCLIEndToEnd(t *testing.T) {
	t.Parallel()
	testenv.NeedStep(t)
	f := newFixture(t)
	url, fp := f.srv.httpsURL, f.srv.fingerprint
	rootPEM := readFile(t, f.root)

	t.Run("health, root, roots", func(t *testing.T) {
		f := f.with(t)
		s := newStepCLI(t, f)
		r := s.must("ca", "root", "root.crt", "--fingerprint", fp, "--ca-url", url)
		if got := readFile(t, filepath.Join(f.work, "root.crt")); got != rootPEM {
			t.Errorf("step ca root wrote %q, want root.pem %q", got, rootPEM)
		}
		if r := s.must("ca", "health", "--ca-url", url, "--root", "root.crt"); strings.TrimSpace(r.stdout) != "ok" {
			t.Errorf("step ca health stdout = %q, want ok", r.stdout)
		}
		if r = s.must("ca", "roots", "--ca-url", url, "--root", "root.crt"); r.stdout != rootPEM {
			t.Errorf("step ca roots stdout = %q, want root.pem %q", r.stdout, rootPEM)
		}
		if r := s.run("ca", "root", "other.crt", "--fingerprint", strings.Repeat("ab", 32), "--ca-url", url); r.code == 0 ||
			!strings.Contains(r.stderr, "fingerprint") {
			t.Errorf("step ca root with an unknown fingerprint: exit %d, stderr %q; want a failure naming the fingerprint", r.code, r.stderr)
		}
	})

	t.Run("version", func(t *testing.T) {
		f := f.with(t)
		want := strings.TrimSpace(f.mustFleetca("version").stdout)
		resp, err := f.client.Get(url + api.StepPrefix + api.StepVersionPath)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got api.StepVersionResponse
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 || got.Version != want {
			t.Errorf("GET /1.0/version = %d %+v (%v), want 200 with fleetca version's %q", resp.StatusCode, got, err, want)
		}
	})

	t.Run("bootstrap", func(t *testing.T) {
		f := f.with(t)
		s := newStepCLI(t, f)
		s.must("ca", "bootstrap", "--ca-url", url, "--fingerprint", fp)
		if got := readFile(t, filepath.Join(s.steppath, "certs", "root_ca.crt")); got != rootPEM {
			t.Errorf("bootstrap wrote root_ca.crt %q, want root.pem", got)
		}
		// The defaults it wrote are enough for the next command.
		if r := s.must("ca", "health"); strings.TrimSpace(r.stdout) != "ok" {
			t.Errorf("step ca health after bootstrap stdout = %q, want ok", r.stdout)
		}
	})

	// renewed checks that name.crt now holds a new certificate for the
	// same device and key, chained to the root, and returns its serial.
	renewed := func(t *testing.T, f *fixture, name, device, oldSerial string) {
		t.Helper()
		certs := readCerts(t, filepath.Join(f.work, name+".crt"))
		if len(certs) != 2 {
			t.Fatalf("%s.crt holds %d certificates, want leaf and intermediate", name, len(certs))
		}
		serial := certs[0].SerialNumber.Text(16)
		checkDeviceCert(t, certs[0], device, serial)
		if serial == oldSerial {
			t.Errorf("%s.crt still holds serial %s, want a renewed certificate", name, serial)
		}
		if !samePublicKey(readKey(t, filepath.Join(f.work, name+".key")).Public(), certs[0].PublicKey) {
			t.Errorf("%s.crt: renewal changed the key", name)
		}
		if vr := f.tool("openssl", "verify", "-CAfile", f.root, "-untrusted", name+".crt", name+".crt"); vr.code != 0 {
			t.Errorf("openssl verify %s.crt: exit %d; %s", name, vr.code, vr.stderr)
		}
	}

	t.Run("renew over mutual TLS", func(t *testing.T) {
		testenv.Need(t, "openssl")
		f := f.with(t)
		s := newStepCLI(t, f)
		serial := f.fleetcaEnroll(f.plainToken("--device-id", "step-mtls"), "dev")
		s.must("ca", "renew", "dev.crt", "dev.key", "--force", "--ca-url", url, "--root", f.root)
		renewed(t, f, "dev", "step-mtls", serial)
	})

	t.Run("renew with a renewal token", func(t *testing.T) {
		testenv.Need(t, "openssl")
		f := f.with(t)
		s := newStepCLI(t, f)
		serial := f.fleetcaEnroll(f.plainToken("--device-id", "step-token"), "tok")
		s.must("ca", "renew", "tok.crt", "tok.key", "--force", "--mtls=false", "--ca-url", url, "--root", f.root)
		renewed(t, f, "tok", "step-token", serial)
	})

	t.Run("renew a revoked certificate", func(t *testing.T) {
		f := f.with(t)
		s := newStepCLI(t, f)
		serial := f.fleetcaEnroll(f.plainToken("--device-id", "step-revoked"), "rev")
		f.mustFleetca("revoke", "--dir", f.dataDir, "--serial", serial, "--reason", "keyCompromise")
		before := readFile(t, filepath.Join(f.work, "rev.crt"))
		for _, mtls := range []string{"--mtls=true", "--mtls=false"} {
			r := s.run("ca", "renew", "rev.crt", "rev.key", "--force", mtls, "--ca-url", url, "--root", f.root)
			t.Logf("step ca renew %s: %s", mtls, r.stderr)
			if r.code == 0 || !strings.Contains(r.stderr, "was revoked") || !strings.Contains(r.stderr, "cannot renew (") {
				t.Errorf("step ca renew %s of a revoked certificate: exit %d, stderr %q; want a failure with fleetca's message", mtls, r.code, r.stderr)
			}
		}
		if got, err := os.ReadFile(filepath.Join(f.work, "rev.crt")); err != nil || string(got) != before {
			t.Errorf("refused renewals changed rev.crt (%v)", err)
		}
	})
}
