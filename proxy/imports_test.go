package proxy

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/fleetca/fleetca/internal/testenv"
)

// TestNoCASideInTheProxy: the proxy, and the verifier side it is built on,
// link nothing of the CA's: no ca, store, enroll or revocation package and
// no KMS code (docs/ARCHITECTURE.md, "Packages"). `go list -deps` is the import
// graph the linker sees.
func TestNoCASideInTheProxy(t *testing.T) {
	goTool := testenv.Need(t, "go")
	out, err := exec.CommandContext(t.Context(), goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const mod = "github.com/fleetca/fleetca/"
	forbidden := []string{mod + "ca", mod + "store", mod + "enroll", mod + "revocation", "go.step.sm/crypto/kms"}
	deps := strings.Fields(string(out))
	for _, dep := range deps {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("proxy depends on %s", dep)
			}
		}
	}
	if !strings.Contains(string(out), mod+"verify\n") {
		t.Errorf("go list -deps . lists no %sverify; is this the proxy package?\n%s", mod, out)
	}
}
