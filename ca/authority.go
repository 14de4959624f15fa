package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.step.sm/crypto/pemutil"
	"go.step.sm/crypto/x509util"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
)

// Deps are the runtime values New needs.
type Deps struct {
	// Dir is the data directory that Config's relative paths are
	// relative to.
	Dir string
	// Password decrypts encrypted key files; nil if they are not
	// encrypted. New keeps a copy, to decrypt the root key when RootSigner
	// is first called.
	Password []byte
	// PublicURL is the base URL of the HTTP listener, absolute http or
	// https, without query or fragment ("http://ca.example.net:8080").
	// Certificates point at PublicURL+"/ocsp" (OCSP), +"/intermediate.crt"
	// (caIssuers, the intermediate as DER) and +"/crl" (CRL distribution
	// point). Required.
	PublicURL string
	// TrustDomain is the SPIFFE trust domain of device URI SANs
	// ("fleet.example.net"), as api.ParseTrustDomain returns it. Required.
	// New checks it again with that rule, since it signs with it.
	TrustDomain api.TrustDomain
	// CRLPartitions is revocation.crl_partitions: 0 or 1, device
	// certificates point at PublicURL+"/crl", the full CRL; a power of
	// two N up to api.MaxCRLPartitions, each is assigned partition
	// PartitionOfSerial(serial, N) and points at PartitionURL(PublicURL,
	// p) instead. Server certificates always point at the full CRL.
	CRLPartitions int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives state changes; nil means discard.
	Logger *slog.Logger
}

// Authority holds the key hierarchy and signs. It is safe for concurrent
// use; everything but the lazily loaded root key is fixed by New.
type Authority struct {
	root, inter *x509.Certificate
	rootPEM     []byte
	chainPEM    []byte
	rootFP      string

	signer  crypto.Signer // the intermediate's key
	profile profile
	now     func() time.Time
	log     *slog.Logger

	issuerIDs []issuerID // the intermediate's OCSP CertID hashes (MatchesIssuer)

	rootKey     keyRef
	rootKeyHere bool
	password    []byte

	mu         sync.Mutex // guards the fields below
	rootSigner crypto.Signer
	closers    []func() error
	closed     bool
}

// New loads the root and intermediate certificates and the intermediate
// key and checks that they belong together: the key is the intermediate's
// and the intermediate chains to the root at deps.Now(). A key given as a
// path is loaded with softkms (decrypted with deps.Password); a KMS URI
// with go.step.sm/crypto/kms. The root key is not loaded, only looked for:
// see HasRootKey and RootSigner.
//
// Errors the operator can fix are *fault.Error: a bad Config, PublicURL
// or TrustDomain is Malformed, a missing file NotFound, an encrypted key
// without a password Unavailable, a wrong password Unauthorized, files that
// do not belong together Malformed, an expired intermediate Unavailable.
// Call Close when done with the Authority.
//
// New reads every field of cfg and deps.
func New(ctx context.Context, cfg Config, deps Deps) (*Authority, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	baseURL, err := checkPublicURL(deps.PublicURL)
	if err != nil {
		return nil, err
	}
	if _, err := api.ParseTrustDomain(string(deps.TrustDomain)); err != nil {
		return nil, fault.WithKey(err, "trust_domain")
	}
	if err := CheckCRLPartitions(deps.CRLPartitions); err != nil {
		return nil, err
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	root, err := readCert(deps.Dir, "root", "ca.root_cert", cfg.RootCert)
	if err != nil {
		return nil, err
	}
	inter, err := readCert(deps.Dir, "intermediate", "ca.intermediate_cert", cfg.IntermediateCert)
	if err != nil {
		return nil, err
	}
	if err := checkChain(root, inter, now()); err != nil {
		return nil, err
	}

	interKey, err := resolveKey(deps.Dir, "intermediate", "ca.intermediate_key", cfg.IntermediateKey)
	if err != nil {
		return nil, err
	}
	rootKey, err := resolveKey(deps.Dir, "root", "ca.root_key", cfg.RootKey)
	if err != nil {
		return nil, err
	}
	rootKeyHere, err := rootKey.present()
	if err != nil {
		return nil, err
	}
	// The root key is loaded only when it signs, but a readable one is
	// refused now, with the intermediate's, rather than the first time
	// the root CRL is signed.
	if rootKeyHere {
		if err := checkPresentKeyFileMode(rootKey); err != nil {
			return nil, err
		}
	}
	signer, closeKMS, err := loadSigner(ctx, interKey, deps.Password)
	if err != nil {
		return nil, err
	}
	a := &Authority{
		root:        root,
		inter:       inter,
		rootPEM:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}),
		chainPEM:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: inter.Raw}),
		rootFP:      x509util.Fingerprint(root),
		signer:      signer,
		now:         now,
		log:         log,
		rootKey:     rootKey,
		rootKeyHere: rootKeyHere,
		password:    bytes.Clone(deps.Password),
		closers:     []func() error{closeKMS},
	}
	if err := checkKeyPair(interKey, signer, inter, "ca.intermediate_cert"); err != nil {
		_ = a.Close()
		return nil, err
	}
	a.profile, err = newProfile(cfg, baseURL, deps.TrustDomain, deps.CRLPartitions, inter, signer.Public())
	if err != nil {
		_ = a.Close()
		return nil, err
	}
	if a.issuerIDs, err = newIssuerIDs(inter); err != nil {
		_ = a.Close()
		return nil, err
	}

	log.Info("certificate authority loaded",
		slog.String("issuer", inter.Subject.CommonName),
		slog.String("root_fingerprint", a.rootFP),
		slog.Time("intermediate_not_after", inter.NotAfter),
		slog.Bool("root_key_present", rootKeyHere))
	if !rootKeyHere {
		// Not the configured value: a KMS URI may carry a PIN.
		log.Info("root key is offline: the root CRL and new intermediates cannot be signed")
	}
	return a, nil
}

// readCert reads the one certificate in the PEM (or DER) file name under
// dir.
func readCert(dir, role, field, name string) (*x509.Certificate, error) {
	p := resolvePath(dir, name)
	cert, err := pemutil.ReadCertificate(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fault.Wrap(err, fault.NotFound,
			fmt.Sprintf("%s certificate %s does not exist", role, p),
			"run fleetca init, or set "+field)
	case err != nil:
		return nil, fault.Wrap(err, fault.Malformed,
			fmt.Sprintf("cannot read the %s certificate %s", role, p),
			"check "+field)
	case !cert.IsCA || !cert.BasicConstraintsValid:
		return nil, fault.New(fault.Malformed,
			fmt.Sprintf("%s certificate %s is not a CA certificate", role, p),
			"check "+field)
	}
	return cert, nil
}

// checkChain verifies that inter chains to root at now (RFC 5280 §6.1,
// as crypto/x509 implements it).
func checkChain(root, inter *x509.Certificate, now time.Time) error {
	roots := x509.NewCertPool()
	roots.AddCert(root)
	_, err := inter.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err == nil {
		return nil
	}
	if invalid, ok := errors.AsType[x509.CertificateInvalidError](err); ok && invalid.Reason == x509.Expired {
		return fault.Wrap(err, fault.Unavailable,
			fmt.Sprintf("the intermediate or root certificate is not valid at %s (intermediate valid %s to %s)",
				now.UTC().Format(time.RFC3339), inter.NotBefore.UTC().Format(time.RFC3339), inter.NotAfter.UTC().Format(time.RFC3339)),
			"issue a new intermediate, or check the clock")
	}
	return fault.Wrap(err, fault.Malformed,
		"the intermediate certificate does not chain to the root certificate",
		"point ca.root_cert and ca.intermediate_cert at the same CA's files")
}

// checkPublicURL returns the URL without a trailing slash, or a Malformed
// fault.
func checkPublicURL(s string) (string, error) {
	const hint = `use an absolute http or https URL such as "http://ca.example.net:8080"`
	if s == "" {
		return "", fault.New(fault.Malformed, "the public URL is not set", hint)
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", fault.Wrap(err, fault.Malformed, fmt.Sprintf("the public URL %q does not parse", s), hint)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fault.New(fault.Malformed, fmt.Sprintf("the public URL %q is not http or https", s), hint)
	case u.Host == "" || u.Hostname() == "":
		return "", fault.New(fault.Malformed, fmt.Sprintf("the public URL %q has no host", s), hint)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return "", fault.New(fault.Malformed,
			fmt.Sprintf("the public URL %q has user info, a query or a fragment", s), hint)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// Root returns the root certificate. The caller must not modify it.
func (a *Authority) Root() *x509.Certificate { return a.root }

// Intermediate returns the issuing intermediate. The caller must not
// modify it.
func (a *Authority) Intermediate() *x509.Certificate { return a.inter }

// RootPEM returns the root certificate as PEM.
func (a *Authority) RootPEM() []byte { return bytes.Clone(a.rootPEM) }

// ChainPEM returns the chain a leaf needs besides itself and the root: the
// intermediate, as PEM.
func (a *Authority) ChainPEM() []byte { return bytes.Clone(a.chainPEM) }

// IntermediateDER returns the intermediate certificate as DER (for the
// caIssuers URL, RFC 5280 §4.2.2.1).
func (a *Authority) IntermediateDER() []byte { return bytes.Clone(a.inter.Raw) }

// RootFingerprint returns the SHA-256 of the root's DER, lowercase hex.
func (a *Authority) RootFingerprint() string { return a.rootFP }

// HasRootKey reports whether the root key was present when New ran: a key
// file that exists, or any KMS URI.
func (a *Authority) HasRootKey() bool { return a.rootKeyHere }

// RootSigner loads the root key on first use and returns it; later calls
// return the same signer. It returns a *fault.Error of kind Unavailable if
// the key is offline (HasRootKey is false, or the file has gone since),
// and the errors New returns for a key (encrypted without a password,
// wrong password, not the root's key). Only the root CRL and new
// intermediates need it.
func (a *Authority) RootSigner(ctx context.Context) (crypto.Signer, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.closed:
		return nil, errors.New("ca: authority closed")
	case a.rootSigner != nil:
		return a.rootSigner, nil
	case !a.rootKeyHere:
		return nil, fault.New(fault.Unavailable, "the root key is offline",
			"put the root key back at ca.root_key to sign the root CRL or a new intermediate")
	}
	s, closeKMS, err := loadSigner(ctx, a.rootKey, a.password)
	if k, ok := fault.KindOf(err); ok && k == fault.NotFound {
		return nil, fault.Wrap(err, fault.Unavailable, "the root key is offline",
			"put the root key back at ca.root_key to sign the root CRL or a new intermediate")
	}
	if err != nil {
		return nil, err
	}
	if err := checkKeyPair(a.rootKey, s, a.root, "ca.root_cert"); err != nil {
		_ = closeKMS()
		return nil, err
	}
	a.rootSigner = s
	a.closers = append(a.closers, closeKMS)
	return s, nil
}

// Close releases the KMS connections of the keys. Signing after Close is a
// programmer error; it may fail.
func (a *Authority) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	var errs []error
	for _, c := range a.closers {
		errs = append(errs, c())
	}
	clear(a.password)
	return errors.Join(errs...)
}
