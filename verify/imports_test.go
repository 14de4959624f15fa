package verify

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/fleetca/fleetca/internal/testenv"
)

// TestImportsOnlyLeaves: verify imports nothing of ours but the wire types
// and the leaf helpers, so that a verifier links nothing of the CA's.
func TestImportsOnlyLeaves(t *testing.T) {
	goTool := testenv.Need(t, "go")
	out, err := exec.CommandContext(t.Context(), goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const mod = "github.com/fleetca/fleetca/"
	allowed := []string{mod + "api", mod + "internal/fault", mod + "internal/atomicfile", mod + "internal/certutil", mod + "internal/redact", mod + "verify"}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, mod) && !slices.Contains(allowed, dep) {
			t.Errorf("verify depends on %s; it may import only %v", dep, allowed)
		}
		if strings.HasPrefix(dep, "go.step.sm/crypto/kms") {
			t.Errorf("verify depends on %s", dep)
		}
	}
}
