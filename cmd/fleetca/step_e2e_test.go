package main

// End-to-end test of the step CLI routes (issue 13) with the real step CLI
// (smallstep/cli, found by testenv.NeedStep) against the real serve: health,
// the root by fingerprint, the roots, the version, bootstrap, and renewal of a
// certificate `fleetca enroll` made, over mutual TLS and with step's
// renewal token, and a revoked certificate refused with fleetca's message;
// a certificate for a step token that fleetca minted (step ca certificate
// --token, bootstrapping from the token alone), that token refused the
// second time, and the certificate revoked by itself (step ca revoke).

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

	t.Run("certificate with a step token, then revoke", func(t *testing.T) {
		testenv.Need(t, "openssl")
		f := f.with(t)
		s := newStepCLI(t, f)
		tok := f.plainToken("--device-id", "step-ott", "--format", "step")
		// No --ca-url and no --root: the CLI fetches the root by the
		// token's sha from the token's aud.
		s.must("ca", "certificate", "step-ott", "ott.crt", "ott.key", "--token", tok)
		certs := readCerts(t, filepath.Join(f.work, "ott.crt"))
		if len(certs) != 2 {
			t.Fatalf("ott.crt holds %d certificates, want leaf and intermediate", len(certs))
		}
		serial := certs[0].SerialNumber.Text(16)
		checkDeviceCert(t, certs[0], "step-ott", serial)
		if len(certs[0].DNSNames) != 0 {
			t.Errorf("certificate DNS SANs = %v, want none (fleetca's profile)", certs[0].DNSNames)
		}
		if vr := f.tool("openssl", "verify", "-CAfile", f.root, "-untrusted", "ott.crt", "ott.crt"); vr.code != 0 {
			t.Errorf("openssl verify ott.crt: exit %d; %s", vr.code, vr.stderr)
		}

		r := s.run("ca", "certificate", "step-ott", "again.crt", "again.key", "--token", tok)
		t.Logf("step ca certificate with a spent token: %s", r.stderr)
		if r.code == 0 || !strings.Contains(r.stderr, "used up") {
			t.Errorf("step ca certificate with a spent token: exit %d, stderr %q; want a failure saying the token is used up", r.code, r.stderr)
		}

		s.must("ca", "revoke", "--cert", "ott.crt", "--key", "ott.key", "--ca-url", url, "--root", f.root)
		var c api.Certificate
		f.adminGET(api.AdminPrefix+"/certificates/"+serial, &c)
		if c.RevokedAt == "" {
			t.Errorf("after step ca revoke, certificate %s = %+v; want it revoked", serial, c)
		}
	})
}

// TestStepRevokeWithToken: an admin mints a revocation token for a serial
// (token create --format step --revoke), and step ca revoke SERIAL --token
// revokes that certificate with nothing else (no --ca-url, no --root),
// once; a token for a revoked certificate is not minted.
func TestStepRevokeWithToken(t *testing.T) {
	t.Parallel()
	testenv.NeedStep(t)
	testenv.Need(t, "openssl")
	f := newFixture(t)
	s := newStepCLI(t, f)
	serial := f.fleetcaEnroll(f.plainToken("--device-id", "step-lost"), "lost")
	dec := readCerts(t, filepath.Join(f.work, "lost.crt"))[0].SerialNumber.String()

	r := f.mustFleetca("token", "create", "--dir", f.dataDir, "--format", "step", "--revoke", serial)
	tok := strings.TrimSpace(r.stdout)
	if !strings.Contains(r.stderr, "step ca revoke "+dec+" --token") {
		t.Errorf("token create --revoke stderr = %q, want the step command with the decimal serial %s", r.stderr, dec)
	}
	r = s.run("ca", "revoke", "1"+dec, "--token", tok)
	if r.code == 0 {
		t.Errorf("step ca revoke of another serial with the token: exit 0, want a refusal")
	}
	s.must("ca", "revoke", dec, "--token", tok, "--reason", "lost in transit", "--reasonCode", "keyCompromise")
	var c api.Certificate
	f.adminGET(api.AdminPrefix+"/certificates/"+serial, &c)
	if c.RevokedAt == "" || c.Reason != 1 {
		t.Errorf("after step ca revoke --token, certificate %s = %+v; want it revoked for keyCompromise", serial, c)
	}
	r = s.run("ca", "revoke", dec, "--token", tok)
	t.Logf("step ca revoke with a spent token: %s", r.stderr)
	if r.code == 0 || !strings.Contains(r.stderr, "used up") {
		t.Errorf("step ca revoke with a spent token: exit %d, stderr %q; want a failure saying it is used up", r.code, r.stderr)
	}
	r = f.fleetca("token", "create", "--dir", f.dataDir, "--format", "step", "--revoke", serial)
	if r.code == 0 || !strings.Contains(r.stderr, "was revoked") {
		t.Errorf("token create --revoke of a revoked certificate: exit %d, stderr %q; want a refusal", r.code, r.stderr)
	}
	if r := f.fleetca("token", "create", "--dir", f.dataDir, "--revoke", serial); r.code != exitUsage || !strings.Contains(r.stderr, "--format step") {
		t.Errorf("token create --revoke without --format step: exit %d, stderr %q; want a usage error", r.code, r.stderr)
	}
}

// TestStepProvisionerKeyUpgrade: init makes the step provisioner key; serve
// on a CA without one (made before step tokens) makes it on start, logs it
// once, and mints step tokens with it.
func TestStepProvisionerKeyUpgrade(t *testing.T) {
	t.Parallel()
	f := initFixture(t)
	keyFile := filepath.Join(f.dataDir, "secrets", "step_provisioner.key")
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("after init, %s: %v (%v); want a 0600 file", keyFile, fi, err)
	}
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	const created = "created the step provisioner key"
	f.start()
	if n := strings.Count(f.srv.log.String(), created); n != 1 {
		t.Errorf("serve on a CA without the step key logged %q %d times, want once:\n%s", created, n, f.srv.log.String())
	}
	first := readFile(t, keyFile)
	f.srv.stop(t)
	f.start()
	if strings.Contains(f.srv.log.String(), created) || readFile(t, keyFile) != first {
		t.Errorf("the second start made another step key; log:\n%s", f.srv.log.String())
	}
	if tok := f.plainToken("--device-id", "dev-1", "--format", "step"); strings.Count(tok, ".") != 2 {
		t.Errorf("token create --format step printed %q, want a JWT", tok)
	}
}
