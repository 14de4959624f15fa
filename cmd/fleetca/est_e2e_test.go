package main

// End-to-end test of EST (issue 13) against the real serve, with curl and
// openssl driven by bash exactly as a factory script would: cacerts through
// base64 -d | openssl pkcs7, simpleenroll with -u dev:$TOKEN, and
// simplereenroll with the device's --cert/--key; and with Bouncy Castle's
// EST client, driven by testdata/est/ESTDriver.java, which the test
// compiles with javac.

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetca/fleetca/internal/testenv"
)

func TestESTCurlEndToEnd(t *testing.T) {
	t.Parallel()
	testenv.Need(t, "curl")
	testenv.Need(t, "openssl")
	testenv.Need(t, "bash")
	f := newFixture(t)
	est := f.srv.httpsURL + "/.well-known/est"

	// script runs a bash script in the work directory, as a factory
	// station would, with URL, ROOT and TOKEN in its environment.
	script := func(f *fixture, token, s string) result {
		f.t.Helper()
		r := execIn(f.t, f.work, baseEnv("URL="+est, "ROOT="+f.root, "TOKEN="+token), "bash", "-c", "set -eo pipefail\n"+s)
		if r.code != 0 {
			f.t.Fatalf("script exit %d:\n%s\nstdout: %s\nstderr: %s", r.code, s, r.stdout, r.stderr)
		}
		return r
	}

	t.Run("cacerts, simpleenroll, simplereenroll", func(t *testing.T) {
		f := f.with(t)
		token, id := f.token("--device-id", "est-1")

		script(f, token, `curl -sSf --cacert "$ROOT" "$URL/cacerts" | base64 -d | openssl pkcs7 -inform DER -print_certs > cacerts.pem`)
		cas := readCerts(t, f.work+"/cacerts.pem")
		if len(cas) != 2 || !cas[1].Equal(readCerts(t, f.root)[0]) {
			t.Fatalf("cacerts: %d certificates, want the intermediate and the root", len(cas))
		}

		// The credential-less request Bouncy Castle sends first: a Basic
		// challenge with an empty body, and nothing spent.
		script(f, token, `openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout d.key -subj /CN=est-1 -outform DER | base64 > csr.b64`)
		res := f.curl("-H", "Content-Type: application/pkcs10", "--data-binary", "@csr.b64", est+"/simpleenroll")
		if res.status != 401 || res.header.Get("WWW-Authenticate") != `Basic realm="fleetca"` || len(res.body) != 0 {
			t.Errorf("no credentials: %d %v %q, want 401 with a Basic challenge and no body", res.status, res.header, res.body)
		}
		if n := f.tokenSpent(id); n != 0 {
			t.Errorf("the challenge spent the token (%d uses)", n)
		}

		script(f, token, `curl -sSf --cacert "$ROOT" -u "est-1:$TOKEN" -H 'Content-Type: application/pkcs10' --data-binary @csr.b64 \
  "$URL/fleet/simpleenroll" | base64 -d | openssl pkcs7 -inform DER -print_certs > d.crt`)
		leaf := readCerts(t, f.work+"/d.crt")[0]
		checkDeviceCert(t, leaf, "est-1", leaf.SerialNumber.Text(16))
		if !samePublicKey(readKey(t, f.work+"/d.key").Public(), leaf.PublicKey) {
			t.Error("d.crt does not certify d.key")
		}
		f.mustTool("openssl", "verify", "-CAfile", f.root, "-untrusted", "cacerts.pem", "d.crt")
		if n := f.tokenSpent(id); n != 1 {
			t.Errorf("token spent %d times, want 1", n)
		}

		// The same Basic password again is refused, as problem JSON.
		res = f.curl("-u", "est-1:"+token, "-H", "Content-Type: application/pkcs10", "--data-binary", "@csr.b64", est+"/simpleenroll")
		f.wantProblem("replayed password", res, 401, "unauthorized")

		// Renewal with the same key, over mutual TLS.
		script(f, "", `openssl req -new -key d.key -subj /CN=est-1 -outform DER | base64 > re.b64
curl -sSf --cacert "$ROOT" --cert d.crt --key d.key -H 'Content-Type: application/pkcs10' --data-binary @re.b64 \
  "$URL/simplereenroll" | base64 -d | openssl pkcs7 -inform DER -print_certs > d2.crt`)
		renewed := readCerts(t, f.work+"/d2.crt")[0]
		if renewed.SerialNumber.Cmp(leaf.SerialNumber) == 0 || !samePublicKey(renewed.PublicKey, leaf.PublicKey) {
			t.Errorf("simplereenroll: serial %x (was %x), same key %v; want a new serial for the same key",
				renewed.SerialNumber, leaf.SerialNumber, samePublicKey(renewed.PublicKey, leaf.PublicKey))
		}

		// A CSR whose subject differs from the certificate is refused.
		script(f, "", `openssl req -new -key d.key -subj /CN=est-2 -outform DER | base64 > bad.b64`)
		res = f.curl("--cert", "d2.crt", "--key", "d.key", "-H", "Content-Type: application/pkcs10", "--data-binary", "@bad.b64", est+"/simplereenroll")
		p := f.wantProblem("reenroll with another subject", res, 400, "badCSR")
		if !strings.Contains(p.Detail, "subject") {
			t.Errorf("reenroll with another subject: detail %q does not name the subject", p.Detail)
		}

		// A new key: a rekey (of another device: est-1 just renewed, and
		// ca.renew_min_interval limits it).
		script(f, f.plainToken("--device-id", "est-2"), `openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout e.key -subj /CN=est-2 -outform DER | base64 > e.b64
curl -sSf --cacert "$ROOT" -u "est-2:$TOKEN" --data-binary @e.b64 "$URL/simpleenroll" | base64 -d | openssl pkcs7 -inform DER -print_certs > e.crt
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -keyout d3.key -subj /CN=est-2 -outform DER | base64 > rk.b64
curl -sSf --cacert "$ROOT" --cert e.crt --key e.key -H 'Content-Type: application/pkcs10' --data-binary @rk.b64 \
  "$URL/simplereenroll" | base64 -d | openssl pkcs7 -inform DER -print_certs > d3.crt`)
		rekeyed := readCerts(t, f.work+"/d3.crt")[0]
		if !samePublicKey(readKey(t, f.work+"/d3.key").Public(), rekeyed.PublicKey) || rekeyed.Subject.CommonName != "est-2" {
			t.Errorf("simplereenroll with a new key: subject %v, certifies the new key %v",
				rekeyed.Subject, samePublicKey(readKey(t, f.work+"/d3.key").Public(), rekeyed.PublicKey))
		}

		res = f.curl("-X", "POST", est+"/serverkeygen")
		f.wantProblem("serverkeygen", res, 501, "notImplemented")
	})
}

func TestESTBouncyCastleEndToEnd(t *testing.T) {
	t.Parallel()
	cp := testenv.NeedBouncyCastle(t)
	testenv.Need(t, "openssl")
	src, err := filepath.Abs(filepath.Join("testdata", "est", "ESTDriver.java"))
	if err != nil {
		t.Fatal(err)
	}
	classes := t.TempDir()
	if r := execIn(t, classes, baseEnv(), "javac", "-d", classes, "-cp", cp, src); r.code != 0 {
		t.Fatalf("javac: exit %d; %s%s", r.code, r.stdout, r.stderr)
	}
	f := newFixture(t)
	token, id := f.token("--device-id", "bc-1")
	hostPort := strings.TrimPrefix(f.srv.httpsURL, "https://")
	r := execIn(t, f.work, baseEnv(), "java", "-cp", classes+string(filepath.ListSeparator)+cp, "ESTDriver",
		hostPort, f.root, "bc-1", token, f.work)
	if r.code != 0 || !strings.HasSuffix(r.stdout, "ok\n") {
		t.Fatalf("ESTDriver: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	for _, oid := range []string{"2.5.4.3", "1.2.840.10045.2.1", "1.3.101.112"} {
		if !strings.Contains(r.stdout, "csrattr "+oid+"\n") {
			t.Errorf("Bouncy Castle's csrattrs lack %s: %s", oid, r.stdout)
		}
	}
	if cas := readCerts(t, filepath.Join(f.work, "cacerts.pem")); len(cas) != 2 || !cas[1].Equal(readCerts(t, f.root)[0]) {
		t.Errorf("cacerts through Bouncy Castle: %d certificates, want the intermediate and the root", len(cas))
	}
	leaf := readCerts(t, filepath.Join(f.work, "bc.crt"))[0]
	checkDeviceCert(t, leaf, "bc-1", leaf.SerialNumber.Text(16))
	f.mustTool("openssl", "verify", "-CAfile", f.root, "-untrusted", "cacerts.pem", "bc.crt")
	if n := f.tokenSpent(id); n != 1 {
		t.Errorf("token spent %d times, want 1 (Bouncy Castle's credential-less first request must burn nothing)", n)
	}
	renewed := readCerts(t, filepath.Join(f.work, "bc-renewed.crt"))[0]
	checkDeviceCert(t, renewed, "bc-1", renewed.SerialNumber.Text(16))
	if renewed.SerialNumber.Cmp(leaf.SerialNumber) == 0 || !samePublicKey(renewed.PublicKey, leaf.PublicKey) {
		t.Errorf("simplereenroll through Bouncy Castle: serial %x (was %x); want a new serial for the same key", renewed.SerialNumber, leaf.SerialNumber)
	}
}
