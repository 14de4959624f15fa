package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"go.step.sm/crypto/pemutil"

	"github.com/fleetca/fleetca/internal/fault"
)

// StepProvisionerKey loads the step provisioner key (the ES256 key that
// signs the step CLI's one-time tokens) from cfg.StepProvisionerKey, a
// PKCS#8 PEM file relative to dir unless absolute. If the file is absent it
// creates one, encrypted with password unless password is nil, and reports
// created: a CA made before fleetca had step tokens gets its key on its
// first start.
func StepProvisionerKey(dir string, cfg Config, password []byte) (key *ecdsa.PrivateKey, created bool, err error) {
	cfg = cfg.WithDefaults()
	path := resolvePath(dir, cfg.StepProvisionerKey)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, false, fmt.Errorf("generate step provisioner key: %w", err)
		}
		data, err := serializeKey(k, password)
		if err != nil {
			return nil, false, err
		}
		if err := writeNew(path, data, 0o600); err != nil {
			return nil, false, err
		}
		return k, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read step provisioner key: %w", err)
	}
	var opts []pemutil.Options
	if password != nil {
		opts = append(opts, pemutil.WithPassword(password))
	}
	parsed, err := pemutil.ParseKey(b, opts...)
	if err != nil {
		return nil, false, fault.WithKey(fault.Wrap(err, fault.Unauthorized,
			fmt.Sprintf("the step provisioner key %s cannot be read (wrong password, or not a PEM private key)", path),
			"give the CA keys' password (password_file), or move the file away to have a new key made"), "ca.step_provisioner_key")
	}
	k, ok := parsed.(*ecdsa.PrivateKey)
	if !ok || k.Curve != elliptic.P256() {
		return nil, false, fault.WithKey(fault.New(fault.Malformed,
			fmt.Sprintf("the step provisioner key %s is not an ECDSA P-256 key", path),
			"point ca.step_provisioner_key at an EC P-256 key, or at a missing file to have one made"), "ca.step_provisioner_key")
	}
	return k, false, nil
}
