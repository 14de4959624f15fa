package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetca/fleetca/internal/testenv"
	"github.com/fleetca/fleetca/verify"
)

// mosquittoBroker is a real Mosquitto on loopback whose log the test reads
// line by line (it logs to stderr, unbuffered).
type mosquittoBroker struct {
	addr  string
	mu    sync.Mutex
	log   bytes.Buffer
	lines chan string
}

func startMosquitto(t *testing.T) *mosquittoBroker {
	t.Helper()
	bin := testenv.Need(t, "mosquitto")
	ln := testenv.Listen(t)
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	// Anonymous clients are allowed: the username the broker sees is
	// read from its log, which names it (u'...') for each connection.
	if err := os.WriteFile(conf, []byte("listener "+port+" 127.0.0.1\nallow_anonymous true\nlog_dest stderr\nlog_type all\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	m := &mosquittoBroker{addr: addr, lines: make(chan string, 1024)}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			m.mu.Lock()
			t.Logf("mosquitto log:\n%s", m.log.String())
			m.mu.Unlock()
		}
	})
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			m.mu.Lock()
			m.log.WriteString(line + "\n")
			m.mu.Unlock()
			if strings.Contains(line, "Opening ipv4 listen socket") {
				once.Do(func() { close(listening) })
			}
			select {
			case m.lines <- line:
			default:
			}
		}
	}()
	select {
	case <-listening:
	case <-time.After(waitLimit):
		t.Fatalf("mosquitto did not listen within %s", waitLimit)
	}
	return m
}

// waitLine waits for a log line containing every one of parts.
func (m *mosquittoBroker) waitLine(t *testing.T, parts ...string) string {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		select {
		case line := <-m.lines:
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(line, p)
			}
			if ok {
				return line
			}
		case <-deadline:
			t.Fatalf("mosquitto logged no line with %q within %s", parts, waitLimit)
		}
	}
}

// checkedJWT is fakeMQTTJWT that also asks the Checker, as the real verifier
// does: a revoked certificate's token is refused.
type checkedJWT struct {
	*fakeMQTTJWT
	checker *fakeChecker
}

func (c checkedJWT) VerifyDeviceJWT(ctx context.Context, token, audienceBase string) (verify.DeviceJWT, error) {
	dj, err := c.fakeMQTTJWT.VerifyDeviceJWT(ctx, token, audienceBase)
	if err == nil && c.checker.Check(ctx, dj.Certificate) != nil {
		return verify.DeviceJWT{}, &verify.JWTError{Reason: verify.ReasonRevoked}
	}
	return dj, err
}

// TestMosquittoJWT: the real mosquitto_pub and mosquitto_sub, with a
// token in -P, through the proxy's MQTT mode to a real Mosquitto. The
// token check is a fake (verify's tests and cmd/fleetca's end-to-end
// test cover the real one); the MQTT on both sides is real.
func TestMosquittoJWT(t *testing.T) {
	pub := testenv.Need(t, "mosquitto_pub")
	sub := testenv.Need(t, "mosquitto_sub")
	broker := startMosquitto(t)
	pki := newPKI(t, "Fleet")
	v := &fakeMQTTJWT{tokens: map[string]*tls.Certificate{}}
	p := startProxy(t, pki, Config{Upstream: "tcp://" + broker.addr, MQTT: true, Auth: AuthJWT, JWTAudience: "https://mqtt.example.com"},
		func(d *Deps) { d.JWT = checkedJWT{v, d.Checker.(*fakeChecker)} })
	dev1, dev2 := pki.device(t, "dev-1"), pki.device(t, "dev-2")
	v.tokens["tok-1"], v.tokens["tok-2"] = &dev1, &dev2
	cafile := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(cafile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pki.ca.Root.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(p.addr)
	client := func(bin, version, id, token string, args ...string) *exec.Cmd {
		base := []string{"-h", "127.0.0.1", "-p", port, "--cafile", cafile, "-V", version, "-i", id, "-u", "x", "-P", token}
		return exec.Command(bin, append(base, args...)...)
	}
	run := func(cmd *exec.Cmd) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
		defer cancel()
		c := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
		out, err := c.CombinedOutput()
		return string(out), err
	}

	// dev-1 publishes (MQTT 5), retained; dev-2 receives it (3.1.1).
	if out, err := run(client(pub, "mqttv5", "dev-1", "tok-1", "-t", "devices/dev-1/hello", "-m", "hi from dev-1", "-r", "-q", "1")); err != nil {
		t.Fatalf("mosquitto_pub as dev-1: %v\n%s", err, out)
	}
	// The broker saw the device ID as the username.
	broker.waitLine(t, "New client connected", "as dev-1", "u'dev-1'")
	if out, err := run(client(sub, "mqttv311", "dev-2", "tok-2", "-t", "devices/dev-1/hello", "-C", "1", "-v")); err != nil || out != "devices/dev-1/hello hi from dev-1\n" {
		t.Fatalf("mosquitto_sub as dev-2: %v, output %q; want dev-1's message", err, out)
	}
	broker.waitLine(t, "New client connected", "as dev-2", "u'dev-2'")

	// A bad token: CONNACK not authorised, for 3.1.1 and 5.
	for _, version := range []string{"mqttv311", "mqttv5"} {
		out, err := run(client(pub, version, "dev-1", "bad:"+verify.ReasonBadSignature, "-t", "t", "-m", "m"))
		if err == nil || !strings.Contains(strings.ToLower(out), "not authori") {
			t.Errorf("mosquitto_pub -V %s with a bad token: %v, output %q; want a refusal, not authorised", version, err, out)
		}
	}
	// Someone else's token.
	if out, err := run(client(pub, "mqttv311", "dev-1", "tok-2", "-t", "t", "-m", "m")); err == nil || !strings.Contains(strings.ToLower(out), "not authori") {
		t.Errorf("mosquitto_pub as dev-1 with dev-2's token: %v, output %q; want not authorised", err, out)
	}

	// Revoking dev-2 closes its open subscription: mosquitto_sub exits
	// (its reconnect is refused, the token's certificate being revoked).
	ctx, cancel := context.WithTimeout(t.Context(), 2*waitLimit)
	defer cancel()
	held := client(sub, "mqttv311", "dev-2", "tok-2", "-t", "devices/#")
	held = exec.CommandContext(ctx, held.Path, held.Args[1:]...)
	var heldOut bytes.Buffer
	held.Stdout, held.Stderr = &heldOut, &heldOut
	if err := held.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- held.Wait() }()
	broker.waitLine(t, "dev-2 0 devices/#") // its subscription: the connection is up and registered
	p.checker.revoke(dev2.Leaf.SerialNumber)
	select {
	case err := <-exited:
		if ctx.Err() != nil {
			t.Fatalf("mosquitto_sub as dev-2 still ran %s after the revocation; output %q", 2*waitLimit, heldOut.String())
		}
		t.Logf("mosquitto_sub after the revocation: %v, output %q", err, heldOut.String())
	case <-ctx.Done():
		t.Fatalf("mosquitto_sub as dev-2 still ran %s after the revocation; output %q", 2*waitLimit, heldOut.String())
	}
	p.logs.wait(t, "closed the connections of a revoked certificate", "serial", dev2.Leaf.SerialNumber.Text(16))
	// dev-1 is not affected.
	if out, err := run(client(pub, "mqttv311", "dev-1", "tok-1", "-t", "devices/dev-1/hello", "-m", "still here")); err != nil {
		t.Errorf("mosquitto_pub as dev-1 after dev-2's revocation: %v\n%s", err, out)
	}
}
