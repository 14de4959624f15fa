package main

// End-to-end test of enrollment with a manufacturer certificate (issue 13):
// an openssl-made manufacturer CA and device certificate (IDevID),
// `fleetca manufacturer add|list|remove`, and a factory script's
// `curl --cert` on POST /v1/enroll with no Authorization header.

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/testenv"
)

func TestManufacturerEndToEnd(t *testing.T) {
	t.Parallel()
	testenv.Need(t, "openssl")
	testenv.Need(t, "curl")
	f := newFixture(t)
	D := f.dataDir
	url := f.srv.httpsURL + "/v1/enroll"

	// The manufacturer's CA, and the certificate its factory put in a
	// device: no extended key usage, as many IDevIDs.
	f.mustTool("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", "acme-ca.key", "-out", "acme-ca.pem", "-subj", "/O=Acme/CN=Acme Factory CA", "-days", "3650",
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
	idevid := func(name, cn string) {
		f.mustTool("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
			"-keyout", name+".key", "-subj", "/O=Acme/CN="+cn, "-out", name+".req")
		f.mustTool("openssl", "x509", "-req", "-in", name+".req", "-CA", "acme-ca.pem", "-CAkey", "acme-ca.key",
			"-set_serial", "0x"+strings.Repeat("1f", 8), "-days", "365", "-out", name+".crt")
	}
	idevid("mfr", "acme-0001")

	r := f.mustFleetca("manufacturer", "add", "--dir", D, "--name", "acme", "--ca", "acme-ca.pem",
		"--device-id-from", "cn", "--device-pattern", "acme-*")
	if !strings.Contains(r.stdout, "manufacturer acme added") {
		t.Errorf("fleetca manufacturer add stdout = %q, want \"manufacturer acme added ...\"", r.stdout)
	}
	if r := f.fleetca("manufacturer", "add", "--dir", D, "--name", "acme", "--ca", "acme-ca.pem", "--device-id-from", "cn"); r.code != 1 ||
		!oneLineError.MatchString(r.stderr) {
		t.Errorf("fleetca manufacturer add of acme again: exit %d, stderr %q, want 1 and one line", r.code, r.stderr)
	}
	if r := f.fleetca("manufacturer", "add", "--dir", D, "--name", "bolt", "--ca", "mfr.crt", "--device-id-from", "cn"); r.code != 1 ||
		!strings.Contains(r.stderr, "not a CA") {
		t.Errorf("fleetca manufacturer add with a device certificate as CA: exit %d, stderr %q, want 1 naming it not a CA", r.code, r.stderr)
	}
	r = f.mustFleetca("manufacturer", "list", "--dir", D)
	if !strings.Contains(r.stdout, "acme") || !strings.Contains(r.stdout, "acme-*") {
		t.Errorf("fleetca manufacturer list stdout = %q, want acme with its pattern", r.stdout)
	}

	f.opensslCSR("ec", "acme-0001", "dev", "ec_paramgen_curve:P-256")
	enroll := func() httpResult {
		return f.curl("--cert", "mfr.crt", "--key", "mfr.key", "-H", "Content-Type: application/x-pem-file",
			"--data-binary", "@dev.csr", url)
	}
	res := enroll()
	if res.status != 201 {
		t.Fatalf("curl --cert mfr.crt /v1/enroll: status %d, want 201; body: %s", res.status, res.body)
	}
	var out enrollment
	if err := json.Unmarshal(res.body, &out); err != nil || out.DeviceID != "acme-0001" {
		t.Fatalf("enrollment answer %s (%v), want device_id acme-0001", res.body, err)
	}
	checkDeviceCert(t, parseCerts(t, []byte(out.Certificate))[0], "acme-0001", out.Serial)

	// The manufacturer certificate's serial is in the audit row.
	mfrSerial := readCerts(t, filepath.Join(f.work, "mfr.crt"))[0].SerialNumber.Text(16)
	var audit struct {
		Events []struct{ Action, Actor, DeviceID, Serial, Detail string } `json:"events"`
	}
	f.adminGET("/v1/admin/audit?limit=1000", &audit)
	found := false
	for _, e := range audit.Events {
		if e.Action == "certificate.issue" && e.Serial == out.Serial {
			found = true
			if e.Actor != "manufacturer:acme" || !strings.Contains(e.Detail, "manufacturer_serial="+mfrSerial) {
				t.Errorf("audit row %+v, want actor manufacturer:acme and manufacturer_serial=%s", e, mfrSerial)
			}
		}
	}
	if !found {
		t.Errorf("no certificate.issue audit row for serial %s in %+v", out.Serial, audit.Events)
	}

	// Once only.
	p := f.wantProblem("second enrollment with the same manufacturer certificate", enroll(), 409, "conflict")
	if !strings.Contains(p.Hint, "reset") {
		t.Errorf("second enrollment hint = %q, want it to say the device must be reset", p.Hint)
	}
	// Until an admin revokes and resets the device.
	f.mustFleetca("revoke", "--dir", D, "--device-id", "acme-0001")
	f.mustFleetca("devices", "reset", "acme-0001", "--dir", D)
	f.opensslCSR("ec", "acme-0001", "dev2", "ec_paramgen_curve:P-256")
	res = f.curl("--cert", "mfr.crt", "--key", "mfr.key", "--data-binary", "@dev2.csr", url)
	if res.status != 201 {
		t.Errorf("enrollment after reset: status %d, want 201; body: %s", res.status, res.body)
	}

	// A device outside the pattern is refused.
	idevid("other", "bolt-0001")
	f.opensslCSR("ec", "bolt-0001", "dev3", "ec_paramgen_curve:P-256")
	f.wantProblem("a device outside the pattern", f.curl("--cert", "other.crt", "--key", "other.key", "--data-binary", "@dev3.csr", url), 403, "forbidden")

	// Removed: the listener refuses the certificate again.
	f.mustFleetca("manufacturer", "remove", "acme", "--dir", D)
	if r := f.mustFleetca("manufacturer", "list", "--dir", D); strings.Contains(r.stdout, "acme") {
		t.Errorf("fleetca manufacturer list after remove = %q, want no acme", r.stdout)
	}
	idevid("late", "acme-0002")
	f.opensslCSR("ec", "acme-0002", "dev4", "ec_paramgen_curve:P-256")
	if r := f.tool("curl", "-sS", "--cacert", f.root, "--cert", "late.crt", "--key", "late.key", "--data-binary", "@dev4.csr",
		"-o", "/dev/null", "-w", "%{http_code}", url); r.code == 0 && strings.TrimSpace(r.stdout) == "201" {
		t.Errorf("enrollment after the manufacturer's removal: %s, want a refusal", r.stdout)
	}
	if r := f.fleetca("manufacturer", "remove", "acme", "--dir", D); r.code != 1 {
		t.Errorf("fleetca manufacturer remove acme again: exit %d, want 1", r.code)
	}
}

// TestManufacturerStepSignEndToEnd: step's POST /sign with no token (ott
// empty) enrolls with the manufacturer certificate presented over mutual
// TLS, as /v1/enroll does: an openssl-made CA and IDevID, curl --cert, the
// step JSON in and out; once only; outside the pattern refused; and no
// token and no certificate refused for the missing token.
func TestManufacturerStepSignEndToEnd(t *testing.T) {
	t.Parallel()
	testenv.Need(t, "openssl")
	testenv.Need(t, "curl")
	f := newFixture(t)
	url := f.srv.httpsURL + api.StepPrefix + api.StepSignPath

	f.mustTool("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", "acme-ca.key", "-out", "acme-ca.pem", "-subj", "/O=Acme/CN=Acme Factory CA", "-days", "3650",
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
	idevid := func(name, cn, serial string) {
		f.mustTool("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
			"-keyout", name+".key", "-subj", "/O=Acme/CN="+cn, "-out", name+".req")
		f.mustTool("openssl", "x509", "-req", "-in", name+".req", "-CA", "acme-ca.pem", "-CAkey", "acme-ca.key",
			"-set_serial", serial, "-days", "365", "-out", name+".crt")
	}
	f.mustFleetca("manufacturer", "add", "--dir", f.dataDir, "--name", "acme", "--ca", "acme-ca.pem",
		"--device-id-from", "cn", "--device-pattern", "acme-*")

	// signBody writes step's /sign JSON for a new key's CSR, with no ott.
	signBody := func(cn, name string) string {
		f.opensslCSR("ec", cn, name, "ec_paramgen_curve:P-256")
		b, err := json.Marshal(api.StepSignRequest{CSR: readFile(t, filepath.Join(f.work, name+".csr"))})
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(f.work, name+".json"), string(b))
		return "@" + name + ".json"
	}
	sign := func(cert, body string) httpResult {
		args := []string{"-H", "Content-Type: application/json", "--data-binary", body, url}
		if cert != "" {
			args = append([]string{"--cert", cert + ".crt", "--key", cert + ".key"}, args...)
		}
		return f.curl(args...)
	}
	stepErr := func(what string, res httpResult, status int, in string) {
		t.Helper()
		var e api.StepError
		if err := json.Unmarshal(res.body, &e); err != nil || res.status != status || e.Status != status || !strings.Contains(e.Message, in) {
			t.Errorf("%s: %d %s (%v), want %d with a step message containing %q", what, res.status, res.body, err, status, in)
		}
	}

	idevid("mfr", "acme-0101", "0x"+strings.Repeat("2e", 8))
	res := sign("mfr", signBody("acme-0101", "dev"))
	var out api.StepSignResponse
	if err := json.Unmarshal(res.body, &out); res.status != 201 || err != nil || len(out.CertChainPEM) != 2 {
		t.Fatalf("curl --cert mfr.crt %s: %d %s (%v), want 201 with step's crt, ca and certChain", url, res.status, res.body, err)
	}
	leaf := parseCerts(t, []byte(out.ServerPEM))[0]
	checkDeviceCert(t, leaf, "acme-0101", leaf.SerialNumber.Text(16))
	if !samePublicKey(readKey(t, filepath.Join(f.work, "dev.key")).Public(), leaf.PublicKey) {
		t.Errorf("the certificate is not for the CSR's key")
	}

	// The audit row names the manufacturer and its certificate's serial.
	var audit struct {
		Events []struct{ Action, Actor, Serial, Detail string } `json:"events"`
	}
	f.adminGET("/v1/admin/audit?limit=1000", &audit)
	found := false
	for _, e := range audit.Events {
		if e.Action == "certificate.issue" && e.Serial == leaf.SerialNumber.Text(16) {
			found = e.Actor == "manufacturer:acme" && strings.Contains(e.Detail, "manufacturer_serial="+strings.Repeat("2e", 8))
		}
	}
	if !found {
		t.Errorf("no certificate.issue row by manufacturer:acme with its serial in %+v", audit.Events)
	}

	stepErr("a second /sign with the same manufacturer certificate", sign("mfr", signBody("acme-0101", "again")), 409, "reset")
	idevid("bolt", "bolt-0001", "0x"+strings.Repeat("3f", 8))
	stepErr("a device outside the pattern", sign("bolt", signBody("bolt-0001", "bolt-dev")), 403, "bolt-0001")
	stepErr("no token and no certificate", sign("", signBody("acme-0102", "bare")), 401, "ott")
}
