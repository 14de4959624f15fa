package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetca/fleetca/internal/testenv"
)

// TestProxyMQTTJWT is issue 17's MQTT story, as the README tells it:
// serve, two enrolled devices, `fleetca jwt`, `fleetca proxy --mqtt --auth
// jwt` in front of a real Mosquitto, and the real mosquitto_pub and
// mosquitto_sub with -i DEVICE -u x -P "$JWT" over TLS to the proxy.
func TestProxyMQTTJWT(t *testing.T) {
	t.Parallel()
	mosquitto := testenv.Need(t, "mosquitto")
	pub := testenv.Need(t, "mosquitto_pub")
	sub := testenv.Need(t, "mosquitto_sub")
	f := newFixture(t)
	D := f.dataDir

	f.mustFleetca("cert", "server", "--dir", D, "--dns", "localhost", "--ip", "127.0.0.1", "--key", "proxy.key", "--cert", "proxy.crt")
	bundle := filepath.Join(f.work, "fleet-ca.pem")
	writeFile(t, bundle, string(f.curl(f.srv.httpURL+"/roots.pem").body)+string(f.curl(f.srv.httpURL+"/chain.pem").body))

	// The broker: anonymous clients allowed, so that the username it
	// sees is read from its log (u'...'), which names it per connection.
	brokerAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	conf := filepath.Join(f.work, "mosquitto.conf")
	writeFile(t, conf, fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\nlog_dest stderr\nlog_type all\n", strings.TrimPrefix(brokerAddr, "127.0.0.1:")))
	broker := startDaemon(t, "mosquitto", brokerAddr, mosquitto, "-c", conf)

	for _, name := range []string{"dev-1", "dev-2"} {
		f.fleetcaEnroll(f.plainToken("--device-id", name), name)
	}
	const audience = "https://mqtt.example.com"
	jwt := func(name, aud string) string {
		r := f.mustFleetca("jwt", "--key", name+".key", "--cert", name+".crt", "--aud", aud, "--ttl", "1h")
		return strings.TrimSpace(r.stdout)
	}
	tok1, tok2 := jwt("dev-1", audience+"/devices/dev-1"), jwt("dev-2", audience+"/devices/dev-2")

	p := startProxy(t, f, "--listen", "127.0.0.1:0", "--upstream", "tcp://"+brokerAddr, "--mqtt", "--auth", "jwt",
		"--jwt-audience", audience, "--ca", bundle, "--cert", "proxy.crt", "--key", "proxy.key",
		"--crl-url", f.srv.httpURL, "--revocation-feed", f.srv.httpsURL)
	port := p.addr[strings.LastIndex(p.addr, ":")+1:]
	client := func(ctx context.Context, bin, version, id, token string, args ...string) *exec.Cmd {
		base := []string{"-h", "127.0.0.1", "-p", port, "--cafile", bundle, "-V", version, "-i", id, "-u", "x", "-P", token}
		cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
		cmd.Dir = f.work
		return cmd
	}
	run := func(bin, version, id, token string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), closeWait)
		defer cancel()
		out, err := client(ctx, bin, version, id, token, args...).CombinedOutput()
		return string(out), err
	}
	brokerLogged := func(what string) {
		t.Helper()
		waitUntil(t, time.Now(), "mosquitto logs "+what, func() bool { return strings.Contains(broker.log.String(), what) })
	}

	// dev-1 publishes (MQTT 5), retained; dev-2 reads it (MQTT 3.1.1).
	if out, err := run(pub, "mqttv5", "dev-1", tok1, "-t", "devices/dev-1/hello", "-m", "hi from dev-1", "-r", "-q", "1"); err != nil {
		t.Fatalf("mosquitto_pub as dev-1: %v\n%s", err, out)
	}
	if out, err := run(sub, "mqttv311", "dev-2", tok2, "-t", "devices/dev-1/hello", "-C", "1", "-v"); err != nil || out != "devices/dev-1/hello hi from dev-1\n" {
		t.Fatalf("mosquitto_sub as dev-2: %v, output %q; want dev-1's message", err, out)
	}
	// The broker got each device ID as the username (and no password).
	brokerLogged("as dev-1 (p5, c1, k60, u'dev-1')")
	brokerLogged("as dev-2 (p2, c1, k60, u'dev-2')")

	// Bad tokens: CONNACK not authorised.
	for _, tc := range []struct{ name, version, id, token string }{
		{"another device's token", "mqttv311", "dev-1", tok2},
		{"a token for another audience", "mqttv5", "dev-1", jwt("dev-1", "https://other.example.com/devices/dev-1")},
	} {
		out, err := run(pub, tc.version, tc.id, tc.token, "-t", "t", "-m", "m")
		// 3.1.1: "Connection Refused: not authorised."; 5: "Not authorized".
		if err == nil || !strings.Contains(strings.ToLower(out), "not authori") {
			t.Errorf("mosquitto_pub -V %s with %s: %v, output %q; want a refusal, not authorised", tc.version, tc.name, err, out)
		}
	}
	p.waitLog(t, `"reason":"client_id_mismatch"`)
	p.waitLog(t, `"reason":"bad_audience"`)

	// Revoking dev-2 ends its open subscription.
	ctx, cancel := context.WithTimeout(t.Context(), closeWait)
	defer cancel()
	held := client(ctx, sub, "mqttv311", "dev-2", tok2, "-t", "devices/#")
	var heldOut lockedBuffer
	held.Stdout, held.Stderr = &heldOut, &heldOut
	if err := held.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- held.Wait() }()
	brokerLogged("dev-2 0 devices/#") // its subscription: the connection is up, and registered at the proxy
	f.mustFleetca("revoke", "--dir", D, "--device-id", "dev-2")
	select {
	case err := <-exited:
		if ctx.Err() != nil {
			t.Fatalf("mosquitto_sub as dev-2 still ran %s after the revocation; output %q", closeWait, heldOut.String())
		}
		t.Logf("mosquitto_sub as dev-2 after its revocation: %v, output %q", err, heldOut.String())
	case <-ctx.Done():
		t.Fatalf("mosquitto_sub as dev-2 still ran %s after the revocation; output %q", closeWait, heldOut.String())
	}
	p.waitLog(t, "closed the connections of a revoked certificate")
	// Its token is refused from now on; dev-1's still works.
	if out, err := run(pub, "mqttv311", "dev-2", tok2, "-t", "t", "-m", "m"); err == nil || !strings.Contains(out, "not authorised") {
		t.Errorf("mosquitto_pub as the revoked dev-2: %v, output %q; want not authorised", err, out)
	}
	if out, err := run(pub, "mqttv311", "dev-1", tok1, "-t", "devices/dev-1/hello", "-m", "still here"); err != nil {
		t.Errorf("mosquitto_pub as dev-1 after dev-2's revocation: %v\n%s", err, out)
	}
}
