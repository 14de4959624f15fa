package api

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/fleetca/fleetca/internal/testenv"
)

// TestImportsOnlyLeaves: api imports nothing of ours but what
// docs/ARCHITECTURE.md allows it, since both ends of the wire import it.
func TestImportsOnlyLeaves(t *testing.T) {
	goTool := testenv.Need(t, "go")
	out, err := exec.CommandContext(t.Context(), goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const mod = "github.com/fleetca/fleetca/"
	allowed := []string{mod + "internal/fault", mod + "api"}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, mod) && !slices.Contains(allowed, dep) {
			t.Errorf("api depends on %s; it may import only %v", dep, allowed)
		}
		if strings.HasPrefix(dep, "go.step.sm/crypto/kms") {
			t.Errorf("api depends on %s", dep)
		}
	}
}
