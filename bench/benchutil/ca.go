package benchutil

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/ca"
)

// OpenCA loads, in process, the CA of the data directory dir that
// `fleetca init --no-password` made, for a benchmark that signs with its
// intermediate (a large CRL) beside the running server. It only reads the
// directory. Certificates it signed would point at http://127.0.0.1:1;
// CRLs carry no URL.
func OpenCA(ctx context.Context, dir string) (*ca.Authority, error) {
	b, err := os.ReadFile(filepath.Join(dir, "fleetca.yaml"))
	if err != nil {
		return nil, err
	}
	// The part of fleetca.yaml read here; other keys are ignored.
	var c struct {
		TrustDomain string    `yaml:"trust_domain"`
		CA          ca.Config `yaml:"ca"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("fleetca.yaml: %w", err)
	}
	td := c.TrustDomain
	if td == "" {
		td = "bench.invalid"
	}
	auth, err := ca.New(ctx, c.CA, ca.Deps{Dir: dir, PublicURL: "http://127.0.0.1:1", TrustDomain: api.TrustDomain(td)})
	if err != nil {
		return nil, fmt.Errorf("load the CA of %s: %w", dir, err)
	}
	return auth, nil
}
