package ca

// API SKETCH — the helper implementing package ca replaces this file with the
// real implementation (split into ca/config.go, ca/init.go, ca/authority.go,
// ca/profile.go, ...). Signatures here are the contract other packages code
// against; keep them (extend freely).

import (
	"context"
	"crypto"
	"crypto/x509"
	"log/slog"
	"net"
	"time"
)

// KeyType names a key algorithm for CA keys and device keys made by fleetca.
type KeyType string

// Key types.
const (
	KeyECP256  KeyType = "ec-p256" // default
	KeyECP384  KeyType = "ec-p384"
	KeyRSA3072 KeyType = "rsa-3072"
	KeyEd25519 KeyType = "ed25519"
)

// GenerateKey makes a new private key of type t (go.step.sm/crypto/keyutil).
func GenerateKey(t KeyType) (crypto.Signer, error) { panic("sketch") }

// InitOptions configures Init.
type InitOptions struct {
	Dir      string  // data directory; created if missing (0700)
	Name     string  // CA name: root CN "<Name> Root CA", intermediate CN "<Name> Intermediate CA", O=<Name>
	KeyType  KeyType // "" means KeyECP256
	Password []byte  // nil: keys written unencrypted, mode 0600; else encrypted PKCS#8 (pemutil WithPKCS8(true))
	Now      time.Time
}

// InitResult is what Init wrote.
type InitResult struct {
	Config          Config // the ca section to write into fleetca.yaml (paths relative to Dir)
	Root            *x509.Certificate
	Intermediate    *x509.Certificate
	RootFingerprint string // SHA-256 of root DER, lowercase hex (go.step.sm/crypto/fingerprint)
}

// Init creates the root (20 y) and intermediate (5 y) under opts.Dir:
// root.pem, intermediate.pem, secrets/root.key, secrets/intermediate.key.
// It refuses (fault.Conflict) when root.pem already exists.
func Init(ctx context.Context, opts InitOptions) (*InitResult, error) { panic("sketch") }

// Config is the ca section of fleetca.yaml. Paths are relative to the data dir.
type Config struct {
	RootCert         string `yaml:"root_cert"`         // default "root.pem"
	IntermediateCert string `yaml:"intermediate_cert"` // default "intermediate.pem"
	// RootKey and IntermediateKey are a file path or a KMS URI
	// ("softkms:path=..." / "pkcs11:..."); RootKey may be "" (offline root).
	RootKey         string `yaml:"root_key"`         // default "secrets/root.key"
	IntermediateKey string `yaml:"intermediate_key"` // default "secrets/intermediate.key"
	// DeviceValidity is the lifetime of device certificates; default 2160h (90 d), range 1h..8760h... (helper decides, documents)
	DeviceValidity time.Duration `yaml:"device_validity"`
	// ServerValidity is the lifetime of the HTTPS listener's certificate; default 168h.
	ServerValidity time.Duration `yaml:"server_validity"`
	// Backdate is subtracted from NotBefore for clock skew; default 1m.
	Backdate time.Duration `yaml:"backdate"`
}

// Deps are the runtime values New needs.
type Deps struct {
	Dir         string       // data dir that Config paths are relative to
	Password    []byte       // decrypts the keys; nil if they are not encrypted
	PublicURL   string       // base URL of the HTTP listener, for AIA (OCSP, caIssuers) and CRL DP
	TrustDomain string       // SPIFFE trust domain for device URI SANs
	Now         func() time.Time
	Logger      *slog.Logger
}

// Authority holds the key hierarchy and signs.
type Authority struct{}

// New loads the certificates and keys (kms softkms by default) and checks they match.
func New(ctx context.Context, cfg Config, deps Deps) (*Authority, error) { panic("sketch") }

// Root returns the root certificate.
func (a *Authority) Root() *x509.Certificate { panic("sketch") }

// Intermediate returns the issuing intermediate.
func (a *Authority) Intermediate() *x509.Certificate { panic("sketch") }

// DeviceRequest is what SignDevice certifies. The caller (enroll) has
// already checked the CSR, the key and the names.
type DeviceRequest struct {
	DeviceID  string
	PublicKey crypto.PublicKey
}

// SignDevice issues a device certificate with the profile of DESIGN.md.
func (a *Authority) SignDevice(ctx context.Context, req DeviceRequest) (*x509.Certificate, error) { panic("sketch") }

// SignServer issues a TLS server certificate (EKU serverAuth) for the names.
func (a *Authority) SignServer(ctx context.Context, dns []string, ips []net.IP, pub crypto.PublicKey) (*x509.Certificate, error) {
	panic("sketch")
}
