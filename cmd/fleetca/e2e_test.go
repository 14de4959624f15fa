package main

// End-to-end tests: they build the fleetca binary once, then drive it as a
// user would, with a real server process on kernel-chosen loopback ports and
// real openssl and curl. Their helpers are in e2e_helpers_test.go.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetca/fleetca/internal/testenv"
)

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	testenv.Need(t, "openssl")
	testenv.Need(t, "curl")
	f := newFixture(t)
	D := f.dataDir
	inter := readCerts(t, filepath.Join(D, "intermediate.pem"))[0]

	// serials holds every certificate the server acknowledged, by device.
	serials := map[string]string{}

	if !t.Run("enroll with fleetca", func(t *testing.T) {
		f := f.with(t)
		tok := f.plainToken("--device-id", "dev-1")
		serial := f.fleetcaEnroll(tok, "dev-1")
		serials["dev-1"] = serial

		st, err := os.Stat(filepath.Join(f.work, "dev-1.key"))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("dev-1.key mode = %04o, want 0600", st.Mode().Perm())
		}
		r := f.tool("openssl", "verify", "-CAfile", f.root, "-untrusted", "dev-1.crt", "dev-1.crt")
		if got := strings.TrimSpace(r.stdout); r.code != 0 || got != "dev-1.crt: OK" {
			t.Errorf("openssl verify dev-1.crt: exit %d, stdout %q, want 0 and \"dev-1.crt: OK\"; stderr: %s", r.code, got, r.stderr)
		}
		certs := readCerts(t, filepath.Join(f.work, "dev-1.crt"))
		if len(certs) != 2 || !certs[1].Equal(inter) {
			t.Fatalf("dev-1.crt holds %d certificates, want the leaf then the intermediate", len(certs))
		}
		checkDeviceCert(t, certs[0], "dev-1", serial)
		key := readKey(t, filepath.Join(f.work, "dev-1.key"))
		if !samePublicKey(key.Public(), certs[0].PublicKey) {
			t.Errorf("dev-1.crt does not certify the key in dev-1.key")
		}
	}) {
		t.FailNow()
	}

	t.Run("factory script with openssl and curl", func(t *testing.T) {
		f := f.with(t)
		tok := f.plainToken("--device-id", "dev-2")
		if r := f.tool("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
			"-keyout", "dev-2.key", "-subj", "/CN=dev-2", "-out", "dev-2.csr"); r.code != 0 {
			t.Fatalf("openssl req: exit %d; stderr: %s", r.code, r.stderr)
		}
		// The script's curl command, plus -w to see the status.
		r := f.tool("curl", "-sS", "--fail-with-body", "--cacert", f.root, "-H", "Authorization: Bearer "+tok,
			"--data-binary", "@dev-2.csr", f.srv.httpsURL+"/v1/enroll", "-w", "\n%{http_code}")
		i := strings.LastIndexByte(r.stdout, '\n')
		body, status := r.stdout[:max(i, 0)], r.stdout[i+1:]
		if r.code != 0 || status != "201" {
			t.Fatalf("curl /v1/enroll: exit %d, stdout %q, want exit 0 and status 201; stderr: %s", r.code, r.stdout, r.stderr)
		}
		var got enrollment
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("enroll answer %q is not JSON: %v", body, err)
		}
		if got.DeviceID != "dev-2" || got.Serial == "" || got.Certificate == "" || got.Chain == "" {
			t.Fatalf("enroll answer = %+v, want device_id dev-2, serial, certificate and chain", got)
		}
		if _, err := time.Parse(time.RFC3339, got.NotAfter); err != nil {
			t.Errorf("not_after = %q, want RFC 3339: %v", got.NotAfter, err)
		}
		serials["dev-2"] = got.Serial
		writeFile(t, filepath.Join(f.work, "cert.pem"), got.Certificate)
		writeFile(t, filepath.Join(f.work, "chain.pem"), got.Chain)
		vr := f.tool("openssl", "verify", "-CAfile", f.root, "-untrusted", "chain.pem", "cert.pem")
		if out := strings.TrimSpace(vr.stdout); vr.code != 0 || out != "cert.pem: OK" {
			t.Errorf("openssl verify cert.pem: exit %d, stdout %q, want 0 and \"cert.pem: OK\"; stderr: %s", vr.code, out, vr.stderr)
		}
		leaf := readCerts(t, filepath.Join(f.work, "cert.pem"))
		chain := readCerts(t, filepath.Join(f.work, "chain.pem"))
		if len(leaf) != 1 || len(chain) != 2 || !chain[0].Equal(leaf[0]) || !chain[1].Equal(inter) {
			t.Fatalf("certificate has %d certs and chain %d, want 1, and the leaf then the intermediate", len(leaf), len(chain))
		}
		checkDeviceCert(t, leaf[0], "dev-2", got.Serial)
		csr := readCSR(t, filepath.Join(f.work, "dev-2.csr"))
		if !samePublicKey(csr.PublicKey, leaf[0].PublicKey) {
			t.Errorf("the certificate does not certify dev-2.csr's key")
		}
	})

	t.Run("pattern token", func(t *testing.T) {
		f := f.with(t)
		tok, id := f.token("--device-pattern", "line3-*", "--uses", "3", "--ttl", "8h")
		for _, dev := range []string{"line3-1", "line3-2"} {
			serials[dev] = f.fleetcaEnroll(tok, dev, "--device-id", dev)
			checkDeviceCert(t, readCerts(t, filepath.Join(f.work, dev+".crt"))[0], dev, serials[dev])
		}
		r := f.fleetca("enroll", "--ca", f.srv.httpsURL, "--fingerprint", f.srv.fingerprint, "--token", tok,
			"--key", "line4-1.key", "--cert", "line4-1.crt", "--device-id", "line4-1")
		if r.code != 1 || !oneLineError.MatchString(r.stderr) {
			t.Errorf("fleetca enroll --device-id line4-1 with a line3-* token: exit %d, stderr %q, want 1 and one line \"fleetca: ... (...)\"", r.code, r.stderr)
		}
		for _, name := range []string{"line4-1.key", "line4-1.crt"} {
			if _, err := os.Stat(filepath.Join(f.work, name)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("after a refused enrollment, stat %s: %v, want it not to exist", name, err)
			}
		}
		if got := f.tokenSpent(id); got != 2 {
			t.Errorf("pattern token spent = %d after 2 enrollments and a refusal, want 2", got)
		}
	})

	// usedUp is a token with no uses left, for the checks after a restart.
	var usedUp string
	t.Run("refusals keep the token", func(t *testing.T) {
		f := f.with(t)
		tok, id := f.token("--device-id", "dev-3")
		f.opensslCSR("ec", "dev-3", "dev-3", "ec_paramgen_curve:P-256")
		f.opensslCSR("rsa:1024", "dev-3", "rsa1024")
		f.opensslCSR("ec", "dev-99", "other-cn", "ec_paramgen_curve:P-256")
		big := bytes.Repeat([]byte("A"), 64<<10+1)
		writeFile(t, filepath.Join(f.work, "big.bin"), string(big))
		auth := "Authorization: Bearer " + tok
		url := f.srv.httpsURL + "/v1/enroll"

		for _, tc := range []struct {
			name   string
			args   []string
			status int
			kind   string
		}{
			{"RSA-1024 key", []string{"-H", auth, "--data-binary", "@rsa1024.csr", url}, 400, "badKey"},
			{"CSR for another CN", []string{"-H", auth, "--data-binary", "@other-cn.csr", url}, 400, "badCSR"},
			{"wrong content type", []string{"-H", auth, "-H", "Content-Type: image/png", "--data-binary", "@dev-3.csr", url}, 400, "malformed"},
			{"body over 64 KiB", []string{"-H", auth, "--data-binary", "@big.bin", url}, 413, "tooLarge"},
			{"no Authorization", []string{"--data-binary", "@dev-3.csr", url}, 401, "unauthorized"},
		} {
			res := f.curl(tc.args...)
			f.wantProblem(tc.name, res, tc.status, tc.kind)
			if tc.status == 401 && !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s: WWW-Authenticate = %q, want a Bearer challenge", tc.name, res.header.Get("WWW-Authenticate"))
			}
			if got := f.tokenSpent(id); got != 0 {
				t.Errorf("%s: token spent = %d after the refusal, want 0", tc.name, got)
			}
		}

		res := f.curl("-H", auth, "--data-binary", "@dev-3.csr", url)
		if res.status != 201 {
			t.Fatalf("enroll dev-3 with the token after the refusals: status %d, want 201; body: %s", res.status, res.body)
		}
		var got enrollment
		if err := json.Unmarshal(res.body, &got); err != nil || got.DeviceID != "dev-3" {
			t.Fatalf("enroll answer %s (%v), want device_id dev-3", res.body, err)
		}
		serials["dev-3"] = got.Serial

		res = f.curl("-H", auth, "--data-binary", "@dev-3.csr", url)
		f.wantProblem("used-up token", res, 401, "unauthorized")
		usedUp = tok
	})

	t.Run("one-use token raced by 16 clients", func(t *testing.T) {
		f := f.with(t)
		tok := f.plainToken("--device-id", "dev-4")
		const n = 16
		bodies := make([][]byte, n)
		for i := range bodies {
			bodies[i] = newCSRPEM(t, "dev-4")
		}
		type answer struct {
			status int
			body   []byte
			err    error
		}
		answers := make([]answer, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				req, err := http.NewRequestWithContext(t.Context(), "POST", f.srv.httpsURL+"/v1/enroll", bytes.NewReader(bodies[i]))
				if err != nil {
					answers[i].err = err
					return
				}
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/x-pem-file")
				resp, err := f.client.Do(req)
				if err != nil {
					answers[i].err = err
					return
				}
				defer resp.Body.Close()
				answers[i].status = resp.StatusCode
				answers[i].body, answers[i].err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			})
		}
		close(start)
		wg.Wait()
		counts := map[int]int{}
		for i, a := range answers {
			if a.err != nil {
				t.Fatalf("request %d: %v", i, a.err)
			}
			counts[a.status]++
			if a.status == http.StatusCreated {
				var got enrollment
				if err := json.Unmarshal(a.body, &got); err != nil {
					t.Fatalf("201 body %s: %v", a.body, err)
				}
				serials["dev-4"] = got.Serial
			}
		}
		if counts[201] != 1 || counts[401] != n-1 {
			t.Errorf("statuses of %d concurrent enrollments with a 1-use token = %v, want 1 × 201 and %d × 401", n, counts, n-1)
		}
	})

	t.Run("devices and certs", func(t *testing.T) {
		f := f.with(t)
		r := f.mustFleetca("devices", "list", "--dir", D)
		for dev := range serials {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(dev) + `\s+active\s`).MatchString(r.stdout) {
				t.Errorf("devices list = %q, want a line for active device %s", r.stdout, dev)
			}
		}
		r = f.mustFleetca("devices", "show", "dev-1", "--dir", D)
		if !strings.Contains(r.stdout, "device:   dev-1\n") || !strings.Contains(r.stdout, serials["dev-1"]) {
			t.Errorf("devices show dev-1 = %q, want device dev-1 and serial %s", r.stdout, serials["dev-1"])
		}
		r = f.mustFleetca("certs", "list", "--device-id", "dev-1", "--dir", D)
		if !regexp.MustCompile(`(?m)^`+serials["dev-1"]+`\s+dev-1\s`).MatchString(r.stdout) || strings.Contains(r.stdout, serials["dev-2"]) {
			t.Errorf("certs list --device-id dev-1 = %q, want serial %s of dev-1 and no other device's", r.stdout, serials["dev-1"])
		}
		r = f.fleetca("devices", "show", "nope", "--dir", D)
		if r.code != 1 || !oneLineError.MatchString(r.stderr) || r.stdout != "" {
			t.Errorf("devices show nope: exit %d, stdout %q, stderr %q, want 1, nothing, and one line \"fleetca: ... (...)\"", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("admin API refusals are audited", func(t *testing.T) {
		f := f.with(t)
		wrong := "fca_admin_" + strings.Repeat("A", 43) // well formed, not this CA's
		res := f.curl("-H", "Authorization: Bearer "+wrong, f.srv.httpsURL+"/v1/admin/devices")
		f.wantProblem("wrong admin token", res, 401, "unauthorized")
		adminTok, err := os.ReadFile(filepath.Join(D, "admin-token"))
		if err != nil {
			t.Fatal(err)
		}
		res = f.curl("-H", "Authorization: Bearer "+strings.TrimSpace(string(adminTok)), f.srv.httpsURL+"/v1/admin/audit?limit=1000")
		if res.status != 200 {
			t.Fatalf("GET /v1/admin/audit: status %d, want 200; body: %s", res.status, res.body)
		}
		var audit struct {
			Events []struct{ Action, Actor, Detail string }
		}
		if err := json.Unmarshal(res.body, &audit); err != nil {
			t.Fatalf("audit %s: %v", res.body, err)
		}
		failed := 0
		for _, ev := range audit.Events {
			if ev.Action == "admin.auth_failed" {
				failed++
			}
		}
		if failed != 1 {
			t.Errorf("audit log has %d admin.auth_failed events, want 1; events: %+v", failed, audit.Events)
		}
	})

	t.Run("HTTP listener", func(t *testing.T) {
		f := f.with(t)
		res := f.curl(f.srv.httpURL + "/roots.pem")
		if want := readFile(t, f.root); res.status != 200 || string(res.body) != want {
			t.Errorf("GET /roots.pem: status %d, body %q, want 200 and root.pem %q", res.status, res.body, want)
		}
		res = f.curl(f.srv.httpURL + "/chain.pem")
		chain := parseCerts(t, res.body)
		if res.status != 200 || !slices.ContainsFunc(chain, inter.Equal) {
			t.Errorf("GET /chain.pem: status %d, %d certificates, want 200 and the intermediate among them", res.status, len(chain))
		}
		res = f.curl(f.srv.httpURL + "/intermediate.crt")
		if res.status != 200 || !bytes.Equal(res.body, inter.Raw) {
			t.Errorf("GET /intermediate.crt: status %d, %d bytes, want 200 and the intermediate's %d DER bytes", res.status, len(res.body), len(inter.Raw))
		}
		if ct := res.header.Get("Content-Type"); ct != "application/pkix-cert" {
			t.Errorf("GET /intermediate.crt: Content-Type = %q, want application/pkix-cert", ct)
		}
		for _, base := range []string{f.srv.httpsURL, f.srv.httpURL} {
			if res := f.curl(base + "/healthz"); res.status != 200 {
				t.Errorf("GET %s/healthz: status %d, want 200; body: %s", base, res.status, res.body)
			}
		}
		// Metrics are on their own listener, never the public ones (issue 12, defect 10).
		for _, base := range []string{f.srv.httpsURL, f.srv.httpURL} {
			if res := f.curl(base + "/metrics"); res.status != 404 {
				t.Errorf("GET %s/metrics: status %d, want 404", base, res.status)
			}
		}
		if !strings.HasPrefix(f.srv.metricsURL, "http://127.0.0.1:") {
			t.Fatalf("serve logged metrics at %q, want a loopback URL", f.srv.metricsURL)
		}
		res = f.curl(f.srv.metricsURL)
		m := regexp.MustCompile(`(?m)^fleetca_enroll_certificates_total (\S+)$`).FindSubmatch(res.body)
		if res.status != 200 || m == nil {
			t.Fatalf("GET /metrics: status %d, want 200 and fleetca_enroll_certificates_total; body:\n%s", res.status, res.body)
		}
		if got, want := string(m[1]), strconv.Itoa(len(serials)); got != want {
			t.Errorf("fleetca_enroll_certificates_total = %s, want %s (certificates issued so far)", got, want)
		}
	})

	t.Run("restart keeps what was acknowledged", func(t *testing.T) {
		// The restarted server belongs to this subtest, the last: it is
		// stopped (and its exit status checked) when the subtest ends.
		f := f.with(t)
		old := f.srv
		// Our client's spare keep-alive connections (dialled during the race
		// above but never used) are StateNew to the server, which
		// http.Server.Shutdown waits 5 s for before it counts them idle.
		f.client.CloseIdleConnections()
		old.stop(t)
		f.start()
		if f.srv.httpsURL == old.httpsURL && f.srv.httpURL == old.httpURL {
			t.Logf("the kernel gave the restarted server the same ports")
		}
		r := f.mustFleetca("certs", "list", "--dir", D)
		for dev, serial := range serials {
			if !regexp.MustCompile(`(?m)^` + serial + `\s+` + regexp.QuoteMeta(dev) + `\s`).MatchString(r.stdout) {
				t.Errorf("after a restart, certs list = %q, want serial %s of %s", r.stdout, serial, dev)
			}
		}
		if len(serials) != 6 {
			t.Errorf("acknowledged %d certificates before the restart, want 6 (dev-1..4, line3-1, line3-2)", len(serials))
		}
		if usedUp == "" {
			t.Fatal("no used-up token from the refusals subtest")
		}
		res := f.curl("-H", "Authorization: Bearer "+usedUp, "--data-binary", "@dev-3.csr", f.srv.httpsURL+"/v1/enroll")
		f.wantProblem("used-up token after a restart", res, 401, "unauthorized")
	})
}

// with returns a copy of f whose helpers report to t (a subtest).
func TestEnrollCLIWithCSR(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.plainToken("--device-id", "se-1")
	csrPEM := newCSRPEM(t, "se-1")
	writeFile(t, filepath.Join(f.work, "se-1.csr"), string(csrPEM))
	r := f.mustFleetca("enroll", "--ca", f.srv.httpsURL, "--fingerprint", f.srv.fingerprint, "--token", tok,
		"--csr", "se-1.csr", "--cert", "se-1.crt")
	if !enrolledLine.MatchString(r.stdout) {
		t.Errorf("fleetca enroll --csr stdout = %q, want \"enrolled device se-1: ...\"", r.stdout)
	}
	certs := readCerts(t, filepath.Join(f.work, "se-1.crt"))
	csr := readCSR(t, filepath.Join(f.work, "se-1.csr"))
	if len(certs) != 2 || !samePublicKey(csr.PublicKey, certs[0].PublicKey) || certs[0].Subject.CommonName != "se-1" {
		t.Errorf("se-1.crt: %d certificates, want the leaf for se-1.csr's key then the intermediate", len(certs))
	}
	if got, want := dirNames(t, f.work), []string{"se-1.crt", "se-1.csr"}; !slices.Equal(got, want) {
		t.Errorf("files after fleetca enroll --csr = %v, want %v (the certificate only; no key)", got, want)
	}
}

func TestEnrollWrongFingerprint(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.plainToken("--device-id", "dev-1")
	sum := sha256.Sum256([]byte("not this CA's root"))
	wrong := hex.EncodeToString(sum[:])
	r := f.fleetca("enroll", "--ca", f.srv.httpsURL, "--fingerprint", wrong, "--token", tok,
		"--key", "dev-1.key", "--cert", "dev-1.crt")
	if r.code != 1 || !oneLineError.MatchString(r.stderr) {
		t.Errorf("fleetca enroll --fingerprint WRONG: exit %d, stderr %q, want 1 and one line \"fleetca: ... (...)\"", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "fingerprint "+wrong) {
		t.Errorf("fleetca enroll --fingerprint WRONG: stderr %q, want it to say no root has fingerprint %s", r.stderr, wrong)
	}
	if got := dirNames(t, f.work); len(got) != 0 {
		t.Errorf("files after a refused enrollment = %v, want none", got)
	}
}

// checkDeviceCert checks the device certificate profile's names and serial.
