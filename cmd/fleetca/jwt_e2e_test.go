package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetca/fleetca/internal/testenv"
)

// pyJWTSign is a PyJWT script: argv = key file, alg, kid ("" for none),
// claims as JSON. alg "none" signs nothing; alg "HS256" keys the HMAC with
// the DER of the public key in the key file (the classic confusion attack).
const pyJWTSign = `
import json, sys, jwt
from cryptography.hazmat.primitives import serialization
key_file, alg, kid, claims = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
pem = open(key_file, "rb").read()
headers = {"kid": kid} if kid else None
if alg == "none":
    key = None
elif alg == "HS256":
    priv = serialization.load_pem_private_key(pem, password=None)
    key = priv.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
else:
    key = pem
print(jwt.encode(claims, key, algorithm=alg, headers=headers))
`

// TestJWTEndToEnd: tokens nobody here wrote, signed by the step CLI and by
// PyJWT with keys fleetca certified, go through a real `fleetca serve` and
// `fleetca proxy --auth jwt` to a loopback upstream: accepted with the
// device's identity; refused, each with its reason in the 401, the proxy's
// log and its metric, for a wrong aud, an expired or far-future exp, the
// kid of another device, alg none, HS256 keyed with the public key, the key
// of a revoked certificate and a fourth key; the revocation also closes
// the device's open connection.
func TestJWTEndToEnd(t *testing.T) {
	t.Parallel()
	testenv.Need(t, "openssl")
	step := testenv.NeedStep(t)
	python := testenv.NeedPythonModule(t, "jwt")
	f := newFixture(t)
	D := f.dataDir
	f.mustFleetca("cert", "server", "--dir", D, "--dns", "localhost", "--ip", "127.0.0.1", "--key", "proxy.key", "--cert", "proxy.crt")
	bundle := filepath.Join(f.work, "fleet-ca.pem")
	writeFile(t, bundle, string(f.curl(f.srv.httpURL+"/roots.pem").body)+string(f.curl(f.srv.httpURL+"/chain.pem").body))
	up := newUpstream(t)
	const aud = "https://api.example.com"
	hp := startProxy(t, f, "--listen", "127.0.0.1:0", "--upstream", up.URL, "--metrics-addr", "127.0.0.1:0", "--ca", bundle,
		"--cert", "proxy.crt", "--key", "proxy.key", "--crl-url", f.srv.httpURL, "--revocation-feed", f.srv.httpsURL,
		"--auth", "jwt", "--jwt-audience", aud)

	kids := map[string]string{}
	enroll := func(device, name, keyType string) {
		f.fleetcaEnroll(f.plainToken("--device-id", device), name, "--key-type", keyType)
		sum := sha256.Sum256(readCerts(t, filepath.Join(f.work, name+".crt"))[0].Raw)
		kids[name] = hex.EncodeToString(sum[:])
	}
	enroll("dev-1", "dev-1", "ec-p256")
	enroll("dev-2", "dev-2", "ec-p384")
	enroll("dev-rsa", "dev-rsa", "rsa-3072")
	enroll("dev-ed", "dev-ed", "ed25519")
	enroll("dev-3", "dev-3", "ec-p256")
	for _, n := range []string{"dev-4a", "dev-4b", "dev-4c"} {
		enroll("dev-4", n, "ec-p256")
	}
	// A fourth key for dev-4: the CA refuses to certify it (three live
	// certificates at most).
	if r := f.fleetca("enroll", "--ca", f.srv.httpsURL, "--fingerprint", f.srv.fingerprint, "--token", f.plainToken("--device-id", "dev-4"),
		"--key", "dev-4d.key", "--cert", "dev-4d.crt"); r.code == 0 {
		t.Fatalf("a fourth certificate for dev-4 was issued; want it refused (max_active_certificates 3)")
	}
	f.mustTool("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "dev-4d.key")

	now := time.Now()
	stepSign := func(key string, args ...string) string {
		t.Helper()
		r := execIn(t, f.work, baseEnv("STEPPATH="+t.TempDir()), step, append([]string{"crypto", "jwt", "sign", "--key", key}, args...)...)
		if r.code != 0 {
			t.Fatalf("step crypto jwt sign %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
		}
		return strings.TrimSpace(r.stdout)
	}
	stdStep := func(device, key, kid string, extra ...string) string {
		args := []string{"--aud", aud + "/devices/" + device, "--sub", device, "--iss", device,
			"--exp", strconv.FormatInt(now.Add(time.Hour).Unix(), 10)}
		if kid != "" {
			args = append(args, "--kid", kid)
		}
		return stepSign(key, append(args, extra...)...)
	}
	pySign := func(key, alg, kid string, claims map[string]any) string {
		t.Helper()
		b, _ := json.Marshal(claims)
		r := execIn(t, f.work, baseEnv(), python, "-c", pyJWTSign, key, alg, kid, string(b))
		if r.code != 0 {
			t.Fatalf("PyJWT %s: exit %d: %s", alg, r.code, r.stderr)
		}
		return strings.TrimSpace(r.stdout)
	}
	claims := func(device string, iat, exp time.Time) map[string]any {
		return map[string]any{"aud": aud + "/devices/" + device, "sub": device, "iat": iat.Unix(), "exp": exp.Unix()}
	}

	// The CA's key set: each key's kid is the certificate's SHA-256, its x5c
	// the certificate; step's RFC 7638 thumbprint of the key is not the kid.
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(f.curl(f.srv.httpURL+"/v1/devices/dev-4/keys").body, &set); err != nil || len(set.Keys) != 3 {
		t.Fatalf("dev-4's key set: %v, %d keys; want 3", err, len(set.Keys))
	}
	thumbprints := map[string]string{}
	for _, raw := range set.Keys {
		var k struct {
			Kid string   `json:"kid"`
			X5c []string `json:"x5c"`
		}
		json.Unmarshal(raw, &k)
		name := ""
		for n, kid := range kids {
			if kid == k.Kid {
				name = n
			}
		}
		if name == "" || len(k.X5c) != 2 {
			t.Fatalf("key set entry kid %s x5c %d: want a kid of dev-4's certificates and x5c of 2", k.Kid, len(k.X5c))
		}
		der, _ := base64.StdEncoding.DecodeString(k.X5c[0])
		if cert := readCerts(t, filepath.Join(f.work, name+".crt"))[0]; string(der) != string(cert.Raw) {
			t.Errorf("key %s: x5c[0] is not %s.crt", k.Kid, name)
		}
		r := execInStdin(t, f.work, string(raw), step, "crypto", "jwk", "thumbprint")
		tp := strings.TrimSpace(r.stdout)
		if r.code != 0 || tp == "" || tp == k.Kid {
			t.Errorf("step crypto jwk thumbprint of %s = %q (exit %d, %s), want a thumbprint that is not the kid", name, tp, r.code, r.stderr)
		}
		thumbprints[name] = tp
	}

	client := &http.Client{Timeout: cmdTimeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: rootPool(t, f.root)}}}
	t.Cleanup(client.CloseIdleConnections)
	call := func(token string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), "GET", "https://"+hp.addr+"/echo", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET through the proxy: %v", err)
		}
		defer resp.Body.Close()
		var h http.Header
		if resp.StatusCode == 200 {
			json.NewDecoder(resp.Body).Decode(&h)
		}
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), h
	}

	t.Run("accepted", func(t *testing.T) {
		fleetcaJWT := f.mustFleetca("jwt", "--key", "dev-1.key", "--cert", "dev-1.crt", "--aud", aud+"/devices/dev-1", "--ttl", "10m").stdout
		for _, tc := range []struct{ signer, device, kid, token string }{
			{"step ES256", "dev-1", kids["dev-1"], stdStep("dev-1", "dev-1.key", kids["dev-1"])},
			{"step ES256 without kid (one key)", "dev-1", kids["dev-1"], stdStep("dev-1", "dev-1.key", "")},
			{"step ES384", "dev-2", kids["dev-2"], stdStep("dev-2", "dev-2.key", kids["dev-2"])},
			{"step EdDSA", "dev-ed", kids["dev-ed"], stdStep("dev-ed", "dev-ed.key", kids["dev-ed"])},
			{"step x5c", "dev-1", kids["dev-1"], stdStep("dev-1", "dev-1.key", "", "--x5c-cert", "dev-1.crt")},
			{"step kid = RFC 7638 thumbprint", "dev-4", kids["dev-4b"], stdStep("dev-4", "dev-4b.key", thumbprints["dev-4b"])},
			{"PyJWT ES256", "dev-1", kids["dev-1"], pySign("dev-1.key", "ES256", kids["dev-1"], claims("dev-1", now, now.Add(time.Hour)))},
			{"PyJWT RS256", "dev-rsa", kids["dev-rsa"], pySign("dev-rsa.key", "RS256", kids["dev-rsa"], claims("dev-rsa", now, now.Add(time.Hour)))},
			{"PyJWT ES256, one of three keys", "dev-4", kids["dev-4c"], pySign("dev-4c.key", "ES256", kids["dev-4c"], claims("dev-4", now, now.Add(time.Hour)))},
			{"fleetca jwt", "dev-1", kids["dev-1"], strings.TrimSpace(fleetcaJWT)},
		} {
			status, challenge, h := call(tc.token)
			if status != 200 {
				t.Errorf("%s: %d %s, want 200", tc.signer, status, challenge)
				continue
			}
			if h.Get("X-Device-Id") != tc.device || h.Get("X-Device-Key-Id") != tc.kid || h.Get("Authorization") != "" {
				t.Errorf("%s: upstream saw device %q kid %q Authorization %q; want %s %s and no token", tc.signer,
					h.Get("X-Device-Id"), h.Get("X-Device-Key-Id"), h.Get("Authorization"), tc.device, tc.kid)
			}
		}
	})

	refused := func(t *testing.T, what, token, reason string) {
		t.Helper()
		status, challenge, _ := call(token)
		want := `error="invalid_token", error_description="` + reason + `"`
		if status != http.StatusUnauthorized || !strings.Contains(challenge, want) {
			t.Errorf("%s: %d WWW-Authenticate %q, want 401 with %s", what, status, challenge, want)
		}
		hp.waitLog(t, `"reason":"`+reason+`"`)
	}
	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct{ what, token, reason string }{
			{"step: wrong aud", stepSign("dev-1.key", "--aud", "https://other.example.com/devices/dev-1", "--sub", "dev-1", "--iss", "dev-1",
				"--kid", kids["dev-1"], "--exp", strconv.FormatInt(now.Add(time.Hour).Unix(), 10)), "bad_audience"},
			{"PyJWT: expired", pySign("dev-1.key", "ES256", kids["dev-1"], claims("dev-1", now.Add(-2*time.Hour), now.Add(-time.Hour))), "expired"},
			{"step: exp 48h away", stdStep("dev-1", "dev-1.key", kids["dev-1"], "--exp", strconv.FormatInt(now.Add(48*time.Hour).Unix(), 10)), "lifetime_too_long"},
			{"PyJWT: exp a year away, no iat", pySign("dev-1.key", "ES256", kids["dev-1"],
				map[string]any{"aud": aud + "/devices/dev-1", "exp": now.Add(365 * 24 * time.Hour).Unix()}), "lifetime_too_long"},
			{"step: kid of another device", stdStep("dev-1", "dev-1.key", kids["dev-2"]), "unknown_key"},
			{"PyJWT: alg none", pySign("dev-1.key", "none", kids["dev-1"], claims("dev-1", now, now.Add(time.Hour))), "bad_algorithm"},
			{"PyJWT: HS256 keyed with the public key", pySign("dev-1.key", "HS256", kids["dev-1"], claims("dev-1", now, now.Add(time.Hour))), "bad_algorithm"},
			{"step: a fourth key, no kid", stdStep("dev-4", "dev-4d.key", ""), "unknown_key"},
			{"step: a fourth key under a live key's kid", stdStep("dev-4", "dev-4d.key", kids["dev-4a"]), "bad_signature"},
		} {
			refused(t, tc.what, tc.token, tc.reason)
		}
	})

	t.Run("revoked", func(t *testing.T) {
		token := stdStep("dev-3", "dev-3.key", kids["dev-3"])
		conn, err := tls.Dial("tcp", hp.addr, &tls.Config{RootCAs: rootPool(t, f.root)})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		fmt.Fprintf(conn, "GET /echo HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n\r\n", token)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("dev-3 before its revocation: %v %v, want 200", resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		f.mustFleetca("revoke", "--dir", D, "--device-id", "dev-3")
		conn.SetReadDeadline(time.Now().Add(closeWait))
		if _, err := br.ReadByte(); err == nil {
			t.Errorf("dev-3's open connection got bytes after its revocation, want it closed")
		} else if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
			t.Errorf("dev-3's open connection is still open %s after its revocation", closeWait)
		}
		refused(t, "step: key of a revoked certificate", token, "revoked")
	})

	t.Run("metrics", func(t *testing.T) {
		resp, err := f.client.Get(hp.metrics)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, reason := range []string{"bad_audience", "expired", "lifetime_too_long", "unknown_key", "bad_algorithm", "bad_signature", "revoked"} {
			line := `fleetca_proxy_jwt_total{outcome="refused",reason="` + reason + `"} `
			if i := strings.Index(string(b), line); i < 0 || strings.HasPrefix(string(b)[i+len(line):], "0\n") {
				t.Errorf("metrics: %s is missing or 0", line)
			}
		}
		if !strings.Contains(string(b), `fleetca_proxy_jwt_total{outcome="accepted",reason="ok"} `) {
			t.Errorf("metrics lack fleetca_proxy_jwt_total{outcome=\"accepted\",reason=\"ok\"}")
		}
	})
}

// rootPool is a pool of the certificate in file.
func rootPool(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(readCerts(t, file)[0])
	return pool
}

// execInStdin is execIn with stdin.
func execInStdin(t *testing.T, dir, stdin, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env, cmd.Stdin = dir, baseEnv(), strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := errors.AsType[*exec.ExitError](err); ok && ee.Exited() {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %s: %v", filepath.Base(name), strings.Join(args, " "), err)
	}
	return r
}
