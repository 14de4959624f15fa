package main

// End-to-end test of renewal (issue 11) over mutual TLS with the real curl
// against the real serve: renew, the retry, the rate limit, a rekey with an
// openssl CSR, a revoked device refused, a server certificate refused at
// the handshake, renew-now moving the renewal-info window, and the lineage
// in `fleetca certs list`. The renewal token, which a device needs once
// its certificate has expired, is proven end to end by `fleetca renew`'s
// own tests.

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/testenv"
)

func TestRenewEndToEnd(t *testing.T) {
	t.Parallel()
	testenv.Need(t, "openssl")
	testenv.Need(t, "curl")
	f := newFixture(t)
	D := f.dataDir
	renewURL := f.srv.httpsURL + api.RenewPath

	// renew POSTs to /v1/renew with the device's certificate and key, as a
	// device's script would, with extra curl arguments (a CSR).
	renew := func(f *fixture, crt, key string, extra ...string) httpResult {
		return f.curl(append([]string{"--cert", crt, "--key", key, "-X", "POST", renewURL}, extra...)...)
	}
	// issued decodes a renewal's answer, checks it, and writes the chain
	// (leaf, intermediate) where curl can present it next.
	issued := func(t *testing.T, f *fixture, res httpResult, status int, out string) api.EnrollResponse {
		t.Helper()
		if res.status != status || res.header.Get("Content-Type") != "application/json" {
			t.Fatalf("POST /v1/renew: status %d, Content-Type %q, body %s; want %d JSON", res.status, res.header.Get("Content-Type"), res.body, status)
		}
		var got api.EnrollResponse
		if err := json.Unmarshal(res.body, &got); err != nil {
			t.Fatalf("renew answer %q: %v", res.body, err)
		}
		writeFile(t, filepath.Join(f.work, out), got.Chain)
		writeFile(t, filepath.Join(f.work, "leaf-"+out), got.Certificate)
		vr := f.tool("openssl", "verify", "-CAfile", f.root, "-untrusted", out, "leaf-"+out)
		if o := strings.TrimSpace(vr.stdout); vr.code != 0 || o != "leaf-"+out+": OK" {
			t.Errorf("openssl verify %s: exit %d, stdout %q; stderr: %s", out, vr.code, o, vr.stderr)
		}
		if got.RenewalInfo == nil || got.RenewAfter == "" {
			t.Errorf("renew answer has renew_after %q, renewal_info %v; want both", got.RenewAfter, got.RenewalInfo)
		}
		return got
	}

	var renewed api.EnrollResponse
	enrolled := ""
	t.Run("renew over mutual TLS with curl", func(t *testing.T) {
		f := f.with(t)
		enrolled = f.fleetcaEnroll(f.plainToken("--device-id", "dev-r"), "dev-r")
		renewed = issued(t, f, renew(f, "dev-r.crt", "dev-r.key"), 201, "dev-r-1.crt")
		leaf := readCerts(t, filepath.Join(f.work, "dev-r-1.crt"))[0]
		checkDeviceCert(t, leaf, "dev-r", renewed.Serial)
		if renewed.ParentSerial != enrolled || renewed.Serial == enrolled {
			t.Errorf("renewal serial %s, parent_serial %s; want a new serial whose parent is %s", renewed.Serial, renewed.ParentSerial, enrolled)
		}
		if !samePublicKey(readKey(t, filepath.Join(f.work, "dev-r.key")).Public(), leaf.PublicKey) {
			t.Error("a renewal without a CSR changed the key")
		}

		// The answer was lost: the same request returns the same certificate.
		again := renew(f, "dev-r.crt", "dev-r.key")
		if got := issued(t, f, again, 200, "dev-r-retry.crt"); got.Serial != renewed.Serial {
			t.Errorf("retry: serial %s, want the renewal's %s", got.Serial, renewed.Serial)
		}

		// Renewing again at once, with the new certificate: 429.
		res := renew(f, "dev-r-1.crt", "dev-r.key")
		f.wantProblem("renewal within ca.renew_min_interval", res, 429, "rateLimited")
		if secs, err := strconv.Atoi(res.header.Get("Retry-After")); err != nil || secs < 1 || secs > 3600 {
			t.Errorf("429 Retry-After = %q, want 1..3600 seconds", res.header.Get("Retry-After"))
		}

		// The older certificate, once out of the retry rule (a new key): 409.
		f.opensslCSR("ec", "dev-r", "dev-r-other", "ec_paramgen_curve:P-256")
		res = renew(f, "dev-r.crt", "dev-r.key", "--data-binary", "@dev-r-other.csr")
		p := f.wantProblem("renewal of the older certificate", res, 409, "conflict")
		if !strings.Contains(p.Hint, renewed.Serial) {
			t.Errorf("409 hint %q does not name the newest serial %s", p.Hint, renewed.Serial)
		}
	})

	t.Run("rekey with an openssl CSR", func(t *testing.T) {
		f := f.with(t)
		f.fleetcaEnroll(f.plainToken("--device-id", "dev-k"), "dev-k")
		f.opensslCSR("ec", "dev-k", "dev-k-new", "ec_paramgen_curve:P-256")
		got := issued(t, f, renew(f, "dev-k.crt", "dev-k.key", "--data-binary", "@dev-k-new.csr"), 201, "dev-k-new.crt")
		leaf := readCerts(t, filepath.Join(f.work, "dev-k-new.crt"))[0]
		checkDeviceCert(t, leaf, "dev-k", got.Serial)
		if !samePublicKey(readKey(t, filepath.Join(f.work, "dev-k-new.key")).Public(), leaf.PublicKey) {
			t.Error("the rekeyed certificate does not certify the CSR's key")
		}

		// A CSR that names another device is refused, as at enrollment.
		f.opensslCSR("ec", "dev-other", "dev-k-bad", "ec_paramgen_curve:P-256")
		f.wantProblem("rekey naming another device", renew(f, "dev-k-new.crt", "dev-k-new.key", "--data-binary", "@dev-k-bad.csr"), 400, "badCSR")

		// Once the device is revoked, its newest certificate still opens
		// the TLS session, and the renewal is refused with what to do.
		f.mustFleetca("revoke", "--dir", D, "--device-id", "dev-k", "--reason", "cessationOfOperation")
		p := f.wantProblem("renewal of a revoked device", renew(f, "dev-k-new.crt", "dev-k-new.key"), 403, "forbidden")
		if !strings.Contains(p.Hint, "reset") {
			t.Errorf("403 hint %q does not say to reset the device", p.Hint)
		}
	})

	t.Run("a server certificate cannot renew", func(t *testing.T) {
		f := f.with(t)
		f.mustFleetca("cert", "server", "--dir", D, "--dns", "proxy.fleet.test", "--key", "srv.key", "--cert", "srv.crt")
		r := f.tool("curl", "-sS", "--cacert", f.root, "--cert", "srv.crt", "--key", "srv.key", "-X", "POST", renewURL)
		if r.code == 0 {
			t.Errorf("curl --cert srv.crt POST /v1/renew: exit 0, stdout %s; want the TLS handshake refused", r.stdout)
		}
	})

	t.Run("renew-now moves the renewal window", func(t *testing.T) {
		f := f.with(t)
		info := func() api.RenewalInfo {
			t.Helper()
			res := f.curl(f.srv.httpsURL + api.RenewalInfoPath + renewed.Serial)
			if res.status != 200 || res.header.Get("Content-Type") != "application/json" {
				t.Fatalf("GET renewal-info: %d %q %s", res.status, res.header.Get("Content-Type"), res.body)
			}
			if secs, err := strconv.Atoi(res.header.Get("Retry-After")); err != nil || secs < 3600 {
				t.Errorf("renewal-info Retry-After = %q, want hours in seconds", res.header.Get("Retry-After"))
			}
			var out api.RenewalInfo
			if err := json.Unmarshal(res.body, &out); err != nil {
				t.Fatal(err)
			}
			return out
		}
		if renewed.Serial == "" {
			t.Skip("the renewal above failed")
		}
		before := info()
		if !before.SuggestedWindow.Start.After(time.Now().Add(30 * 24 * time.Hour)) {
			t.Errorf("window of a fresh 90-day certificate starts %s, want two thirds through", before.SuggestedWindow.Start)
		}
		r := f.mustFleetca("devices", "renew-now", "--dir", D, "dev-r")
		if !strings.HasPrefix(r.stdout, "device dev-r is asked to renew, as of ") {
			t.Errorf("devices renew-now stdout = %q", r.stdout)
		}
		after := info()
		if start := after.SuggestedWindow.Start; start.After(time.Now()) || start.Before(time.Now().Add(-time.Hour)) {
			t.Errorf("after renew-now the window starts %s, want now", start)
		}
		if r := f.mustFleetca("devices", "renew-now", "--dir", D, "--all"); !strings.HasPrefix(r.stdout, "every device is asked to renew") {
			t.Errorf("devices renew-now --all stdout = %q", r.stdout)
		}
		if r := f.fleetca("devices", "renew-now", "--dir", D); r.code != 2 {
			t.Errorf("devices renew-now without ID or --all: exit %d, want 2 (usage)", r.code)
		}
		if r := f.fleetca("devices", "renew-now", "--dir", D, "nobody"); r.code != 1 || !oneLineError.MatchString(r.stderr) {
			t.Errorf("devices renew-now nobody: exit %d, stderr %q; want 1 and one line", r.code, r.stderr)
		}
	})

	t.Run("certs list shows the lineage", func(t *testing.T) {
		f := f.with(t)
		r := f.mustFleetca("certs", "list", "--dir", D, "--device-id", "dev-r")
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 3 || !strings.Contains(lines[0], "PARENT") {
			t.Fatalf("certs list --device-id dev-r = %q, want a header with PARENT and two certificates", r.stdout)
		}
		parents := map[string]string{}
		for _, l := range lines[1:] {
			fields := strings.Fields(l)
			parents[fields[0]] = fields[len(fields)-1]
		}
		if parents[enrolled] != "-" || parents[renewed.Serial] != enrolled {
			t.Errorf("PARENT by serial = %v, want %s <- %s", parents, enrolled, renewed.Serial)
		}
	})
}
