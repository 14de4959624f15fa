package testenv

import (
	"os/exec"
	"testing"
)

// pythonModuleHints says which Debian package provides each Python module
// a test may need.
var pythonModuleHints = map[string]string{
	"jwt": "apt-get install python3-jwt python3-cryptography",
}

// NeedPythonModule returns the path of a python3 that can import module:
// the one on PATH, else Debian's /usr/bin/python3 (a pyenv or virtualenv
// python3 first on PATH does not see Debian's packages). When none can,
// the test fails in CI and is skipped elsewhere, saying how to install it.
func NeedPythonModule(t testing.TB, module string) string {
	t.Helper()
	var candidates []string
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	candidates = append(candidates, "/usr/bin/python3")
	for _, p := range candidates {
		if exec.CommandContext(t.Context(), p, "-c", "import "+module).Run() == nil {
			return p
		}
	}
	hint := pythonModuleHints[module]
	if hint == "" {
		hint = "install the Python module " + module
	}
	if InCI() {
		t.Fatalf("the Python module %s is required in CI but no python3 imports it (%s; .ci/run should install it)", module, hint)
	}
	t.Skipf("no python3 imports %s: %s to run this test", module, hint)
	return ""
}
