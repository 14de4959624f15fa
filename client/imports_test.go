package client

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/fleetca/fleetca/internal/testenv"
)

// TestImportsOnlyLeaves: client imports nothing of ours but what
// docs/ARCHITECTURE.md allows it, since the client links nothing of the CA's internals: a device or a script that enrolls carries no CA code.
func TestImportsOnlyLeaves(t *testing.T) {
	goTool := testenv.Need(t, "go")
	out, err := exec.CommandContext(t.Context(), goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const mod = "github.com/fleetca/fleetca/"
	allowed := []string{mod + "api", mod + "internal/fault", mod + "internal/certutil", mod + "client"}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, mod) && !slices.Contains(allowed, dep) {
			t.Errorf("client depends on %s; it may import only %v", dep, allowed)
		}
		if strings.HasPrefix(dep, "go.step.sm/crypto/kms") {
			t.Errorf("client depends on %s", dep)
		}
	}
}
