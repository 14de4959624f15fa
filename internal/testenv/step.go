package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// StepCLIVersion is the step CLI the tests drive (smallstep/cli), as
// .ci/run installs it.
const StepCLIVersion = "v0.30.2"

// stepInstall says how to get the step CLI.
const stepInstall = "GOBIN=${XDG_CACHE_HOME:-$HOME/.cache}/fleetca-tools go install github.com/smallstep/cli/cmd/step@" + StepCLIVersion

// ToolsDir is where the tests look for the Go programs they drive that
// are not in Debian (and not in go.mod): $XDG_CACHE_HOME/fleetca-tools,
// or ~/.cache/fleetca-tools.
func ToolsDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "fleetca-tools")
}

// NeedStep returns the path of the step CLI: $FLEETCA_STEP_BIN, else step
// in ToolsDir. When it is missing the test fails in CI and is skipped
// elsewhere, saying how to install it.
func NeedStep(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("FLEETCA_STEP_BIN"); p != "" {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
		if InCI() {
			t.Fatalf("FLEETCA_STEP_BIN=%s is not a file (%s)", p, stepInstall)
		}
		t.Skipf("FLEETCA_STEP_BIN=%s is not a file: %s to run this test", p, stepInstall)
	}
	if dir := ToolsDir(); dir != "" {
		p := filepath.Join(dir, "step")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	if InCI() {
		t.Fatalf("the step CLI is required in CI but neither FLEETCA_STEP_BIN nor %s names it (%s; .ci/run should install it)",
			filepath.Join(ToolsDir(), "step"), stepInstall)
	}
	t.Skipf("the step CLI is not installed: %s, or set FLEETCA_STEP_BIN, to run this test", stepInstall)
	return ""
}
