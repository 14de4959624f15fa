package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BouncyCastleJars are the jars of Bouncy Castle's EST client as Debian
// installs them (libbcprov-java, libbcpkix-java, and libbcutil-java, which
// comes along).
var BouncyCastleJars = []string{"/usr/share/java/bcprov.jar", "/usr/share/java/bcpkix.jar", "/usr/share/java/bcutil.jar"}

// NeedBouncyCastle returns the class path of Bouncy Castle's jars, after
// Need(t, "java") and Need(t, "javac"). A missing jar fails the test in CI
// and skips it elsewhere.
func NeedBouncyCastle(t testing.TB) string {
	t.Helper()
	Need(t, "java")
	Need(t, "javac")
	for _, jar := range BouncyCastleJars {
		if _, err := os.Stat(jar); err != nil {
			const hint = "apt-get install libbcpkix-java libbcprov-java"
			if InCI() {
				t.Fatalf("%s is required in CI but missing (%s; .ci/run should install it)", filepath.Base(jar), hint)
			}
			t.Skipf("%s missing: %s to run this test", jar, hint)
		}
	}
	return strings.Join(BouncyCastleJars, string(os.PathListSeparator))
}
