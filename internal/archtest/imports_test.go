package archtest

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/fleetca/fleetca/internal/testenv"
)

const mod = "github.com/fleetca/fleetca/"

// leaves are the packages of ours that import nothing of ours but each
// other, and that any package may use.
var leaves = []string{"internal/fault", "internal/atomicfile", "internal/certutil", "internal/redact", "internal/tlsconf"}

// TestImportRules: the verifier side (proxy, verify), the device side
// (client, agent) and the wire types (api) depend on nothing of the CA's;
// the store's backends on nothing of fleetca's but the store.
func TestImportRules(t *testing.T) {
	goTool := testenv.Need(t, "go")
	for _, tc := range []struct {
		pkg     string
		mayUse  []string // besides itself and the leaves
		mustUse string   // a dependency that proves the graph was read
		caSide  bool     // may reach the CA's key code (KMS), through ca
	}{
		{"api", nil, "internal/fault", false},
		{"verify", []string{"api"}, "api", false},
		{"proxy", []string{"api", "verify", "proxy/internal/fastpath"}, "verify", false},
		{"client", []string{"api"}, "api", false},
		{"agent", []string{"api", "client"}, "client", false},
		// The store's backends share their rules through store/internal/backend,
		// which knows nothing of either.
		{"store/internal/backend", []string{"store"}, "store", false},
		{"store/boltstore", []string{"store", "store/internal/backend"}, "store/internal/backend", false},
		{"store/pgstore", []string{"store", "store/internal/backend"}, "store/internal/backend", false},
		// The audit log's checkpoints, proofs and verification read the
		// store, and nothing else of ours: an auditor's tool could be
		// built from it.
		{"auditlog", []string{"store"}, "store", false},
		// The console renders and calls the domain packages; it knows
		// nothing of web (which mounts it) or of the CLI.
		{"web/ui", []string{"api", "enroll", "revocation", "ca", "store", "internal/adminctx"}, "revocation", true},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			out, err := exec.CommandContext(t.Context(), goTool, "list", "-deps", "../../"+tc.pkg).Output()
			if err != nil {
				t.Fatalf("go list -deps %s: %v", tc.pkg, err)
			}
			allowed := append(append([]string{tc.pkg}, leaves...), tc.mayUse...)
			deps := strings.Fields(string(out))
			for _, dep := range deps {
				if !tc.caSide && strings.HasPrefix(dep, "go.step.sm/crypto/kms") {
					t.Errorf("%s depends on %s", tc.pkg, dep)
				}
				if own, ok := strings.CutPrefix(dep, mod); ok && !slices.Contains(allowed, own) {
					t.Errorf("%s depends on %s; it may use only %v", tc.pkg, dep, allowed)
				}
			}
			if !slices.Contains(deps, mod+tc.mustUse) {
				t.Errorf("go list -deps %s lists no %s%s; is the package path right?", tc.pkg, mod, tc.mustUse)
			}
		})
	}
}
