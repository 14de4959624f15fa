package testenv

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// installHints says how to get each tool a test may need (Debian packages).
var installHints = map[string]string{
	"openssl":       "apt-get install openssl",
	"curl":          "apt-get install curl",
	"nginx":         "apt-get install nginx",
	"haproxy":       "apt-get install haproxy",
	"mosquitto":     "apt-get install mosquitto",
	"mosquitto_pub": "apt-get install mosquitto-clients",
	"mosquitto_sub": "apt-get install mosquitto-clients",
	"java":          "apt-get install default-jdk-headless",
	"javac":         "apt-get install default-jdk-headless",
}

// InCI reports whether the tests run in CI (CI=true), where a missing tool
// is a failure, never a skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Need returns the path of the program name. When it is missing the test
// fails in CI and is skipped elsewhere, with a message saying how to install it.
func Need(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	// Debian installs servers (nginx, haproxy, mosquitto) in /usr/sbin,
	// which a user's PATH often lacks.
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if path, err := exec.LookPath(filepath.Join(dir, name)); err == nil {
			return path
		}
	}
	hint := installHints[name]
	if hint == "" {
		hint = "install " + name
	}
	if InCI() {
		t.Fatalf("%s is required in CI but not found on PATH (%s; .ci/run should install it)", name, hint)
	}
	t.Skipf("%s not found on PATH: %s to run this test", name, hint)
	return ""
}

// Listen returns a TCP listener on 127.0.0.1 with a port the kernel chose.
// It is closed when the test ends. Pass the listener itself to the server
// under test: never close it and reuse its port.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on loopback: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}
