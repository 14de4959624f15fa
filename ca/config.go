package ca

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	"github.com/fleetca/fleetca/internal/fault"
)

// Defaults of Config. A zero field of Config means its default.
const (
	DefaultRootCert         = "root.pem"
	DefaultIntermediateCert = "intermediate.pem"
	DefaultRootKey          = "secrets/root.key"
	DefaultIntermediateKey  = "secrets/intermediate.key"
	// DefaultStepProvisionerKey is where the step provisioner key is.
	DefaultStepProvisionerKey = "secrets/step_provisioner.key"
	// DefaultStepProvisioner is the step provisioner's name (tokens' iss).
	DefaultStepProvisioner = "fleetca"
	// DefaultAuditKey is where the audit log's checkpoint signing key is.
	DefaultAuditKey       = "secrets/audit.key"
	DefaultDeviceValidity = 2160 * time.Hour // 90 days
	DefaultServerValidity = 168 * time.Hour  // 7 days
	DefaultBackdate       = time.Minute
	// DefaultRenewMinInterval is the least time between two renewals of
	// one device. There is no DefaultRenewAfterExpiry: zero, never, is it.
	DefaultRenewMinInterval = time.Hour
)

// Allowed ranges of Config's durations (inclusive). Zero is always allowed:
// it means the default.
const (
	minDeviceValidity = time.Hour
	maxDeviceValidity = 87600 * time.Hour // 10 years
	minServerValidity = time.Hour
	maxServerValidity = 2160 * time.Hour // 90 days
	maxBackdate       = time.Hour
	// MaxRenewAfterExpiry bounds RenewAfterExpiry: a year.
	MaxRenewAfterExpiry = 8760 * time.Hour
	minRenewMinInterval = time.Second
	maxRenewMinInterval = 168 * time.Hour
)

// Config is the ca section of fleetca.yaml. The zero value of every field
// means its default; WithDefaults fills them in, Validate checks them.
type Config struct {
	// RootCert is the root certificate's PEM file, relative to the data
	// directory unless absolute. Default "root.pem".
	RootCert string `yaml:"root_cert,omitempty"`
	// IntermediateCert is the issuing intermediate certificate's PEM file,
	// relative to the data directory unless absolute. Default
	// "intermediate.pem".
	IntermediateCert string `yaml:"intermediate_cert,omitempty"`
	// RootKey is where the root key is: a PEM file (PKCS#8, encrypted or
	// not) relative to the data directory unless absolute, or a KMS URI
	// ("softkms:path=...", "pkcs11:..."). Default "secrets/root.key". The
	// root key may be taken offline after init by removing the file: it
	// is needed only to sign the root CRL and new intermediates, never to
	// issue device certificates.
	RootKey string `yaml:"root_key,omitempty"`
	// IntermediateKey is where the issuing intermediate's key is, in the
	// same forms as RootKey. It must be present. Default
	// "secrets/intermediate.key".
	IntermediateKey string `yaml:"intermediate_key,omitempty"`
	// DeviceValidity is the lifetime of device certificates, a Go
	// duration. Default 2160h (90 days); range 1h to 87600h (10 years).
	// A certificate never outlives the intermediate: its NotAfter is
	// clamped to the intermediate's.
	DeviceValidity time.Duration `yaml:"device_validity,omitempty"`
	// ServerValidity is the lifetime of the HTTPS listener's certificate,
	// a Go duration. Default 168h (7 days); range 1h to 2160h (90 days).
	ServerValidity time.Duration `yaml:"server_validity,omitempty"`
	// Backdate is how far before the signing time a certificate's
	// NotBefore is set, so that verifiers whose clocks lag still accept
	// it, a Go duration. Default 1m; range 0 to 1h (0 means the default).
	Backdate time.Duration `yaml:"backdate,omitempty"`
	// RenewAfterExpiry is how long after its NotAfter a device certificate
	// may still be renewed, with a renewal token only (its TLS handshake
	// fails once it has expired), for devices that were offline when it
	// expired. A Go duration. Default 0: never; range 0 to 8760h (a
	// year). Package ca does not read it: cmd/fleetca gives it to enroll.
	RenewAfterExpiry time.Duration `yaml:"renew_after_expiry,omitempty"`
	// RenewMinInterval is the least time between two renewals of one
	// device (a retry of a renewal whose answer was lost is exempt), so
	// that a stolen certificate cannot mint certificates in a loop. A Go
	// duration. Default 1h; range 1s to 168h. Read by enroll, like
	// RenewAfterExpiry.
	RenewMinInterval time.Duration `yaml:"renew_min_interval,omitempty"`
	// StepProvisionerKey is the ES256 key that signs the step CLI's
	// one-time tokens (token create with format step): a PKCS#8 PEM file
	// relative to the data directory unless absolute, encrypted like the
	// CA keys. init makes it; serve makes it when it is missing. Default
	// "secrets/step_provisioner.key".
	StepProvisionerKey string `yaml:"step_provisioner_key,omitempty"`
	// StepProvisioner is the step provisioner's name, the iss of its
	// tokens. Default "fleetca".
	StepProvisioner string `yaml:"step_provisioner,omitempty"`
	// AuditKey is the Ed25519 key that signs the audit log's checkpoints
	// (never a CA key): a PKCS#8 PEM file relative to the data directory
	// unless absolute, encrypted like the CA keys. init makes it; serve
	// makes it when it is missing (a CA made before the audit log had
	// checkpoints). Its public half, as a note verifier key, is
	// DIR/audit.pub. Default "secrets/audit.key".
	AuditKey string `yaml:"audit_key,omitempty"`
}

// WithDefaults returns a copy of c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	c.RootCert = cmp.Or(c.RootCert, DefaultRootCert)
	c.IntermediateCert = cmp.Or(c.IntermediateCert, DefaultIntermediateCert)
	c.RootKey = cmp.Or(c.RootKey, DefaultRootKey)
	c.IntermediateKey = cmp.Or(c.IntermediateKey, DefaultIntermediateKey)
	c.DeviceValidity = cmp.Or(c.DeviceValidity, DefaultDeviceValidity)
	c.ServerValidity = cmp.Or(c.ServerValidity, DefaultServerValidity)
	c.Backdate = cmp.Or(c.Backdate, DefaultBackdate)
	c.RenewMinInterval = cmp.Or(c.RenewMinInterval, DefaultRenewMinInterval)
	c.StepProvisionerKey = cmp.Or(c.StepProvisionerKey, DefaultStepProvisionerKey)
	c.StepProvisioner = cmp.Or(c.StepProvisioner, DefaultStepProvisioner)
	c.AuditKey = cmp.Or(c.AuditKey, DefaultAuditKey)
	return c
}

// Validate checks c and returns a *fault.Error of kind Malformed naming the
// first bad key and its allowed range. Zero values are valid (they mean the
// default). It never changes c.
func (c Config) Validate() error {
	durations := []struct {
		key      string
		v        time.Duration
		min, max time.Duration
		def      time.Duration
	}{
		{"device_validity", c.DeviceValidity, minDeviceValidity, maxDeviceValidity, DefaultDeviceValidity},
		{"server_validity", c.ServerValidity, minServerValidity, maxServerValidity, DefaultServerValidity},
		{"backdate", c.Backdate, 0, maxBackdate, DefaultBackdate},
		{"renew_after_expiry", c.RenewAfterExpiry, 0, MaxRenewAfterExpiry, 0},
		{"renew_min_interval", c.RenewMinInterval, minRenewMinInterval, maxRenewMinInterval, DefaultRenewMinInterval},
	}
	for _, d := range durations {
		if d.v != 0 && (d.v < d.min || d.v > d.max) {
			def := fmtDuration(d.def)
			if d.def == 0 {
				def = "0 (never)"
			}
			return fault.New(fault.Malformed,
				fmt.Sprintf("ca.%s %s is out of range", d.key, d.v),
				fmt.Sprintf("use a duration from %s to %s, or leave it unset for %s",
					fmtDuration(d.min), fmtDuration(d.max), def))
		}
	}
	paths := []struct {
		key, v string
		isKey  bool
	}{
		{"root_cert", c.RootCert, false},
		{"intermediate_cert", c.IntermediateCert, false},
		{"root_key", c.RootKey, true},
		{"intermediate_key", c.IntermediateKey, true},
		{"step_provisioner_key", c.StepProvisionerKey, false},
		{"step_provisioner", c.StepProvisioner, false},
		{"audit_key", c.AuditKey, false},
	}
	for _, p := range paths {
		if strings.ContainsRune(p.v, 0) {
			return fault.New(fault.Malformed,
				fmt.Sprintf("ca.%s contains a NUL byte", p.key), "use a file path")
		}
		if p.isKey && isKMSURI(p.v) {
			// resolveKey checks the scheme and the softkms path; the
			// directory does not matter for that.
			if _, err := resolveKey("", "", "ca."+p.key, p.v); err != nil {
				return err
			}
		}
	}
	return nil
}

// fmtDuration prints whole hours as "87600h" rather than "87600h0m0s".
func fmtDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}
