package ca

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.step.sm/crypto/pemutil"
	"go.step.sm/crypto/x509util"

	"github.com/fleetca/fleetca/internal/atomicfile"
	"github.com/fleetca/fleetca/internal/fault"
)

// Lifetimes of the CA certificates Init makes.
const (
	rootYears         = 20
	intermediateYears = 5
)

// maxNameLen keeps "<Name> Intermediate CA" within the 64 characters of
// ub-common-name (RFC 5280 Appendix A.1).
const maxNameLen = 64 - len(" Intermediate CA")

// InitOptions configures Init.
type InitOptions struct {
	// Dir is the data directory; created (mode 0700) if missing.
	Dir string
	// Name is the CA's name, 1 to 48 printable characters: the root's
	// subject is CN "<Name> Root CA", O <Name>; the intermediate's CN
	// "<Name> Intermediate CA", O <Name>.
	Name string
	// KeyType is the type of both CA keys; "" means KeyECP256.
	KeyType KeyType
	// Password, if not nil, encrypts both key files (PKCS#8, PBES2 with
	// AES-256-CBC); nil writes them unencrypted. Key files are mode 0600
	// either way. An empty non-nil password is refused.
	Password []byte
	// PublicURL, if set, is the base URL of the HTTP listener (as
	// Deps.PublicURL): the intermediate then carries a CRL distribution
	// point PublicURL+"/root.crl" (RFC 5280 §4.2.1.13), the root's CRL over
	// intermediates. Optional.
	PublicURL string
	// Now is the time the certificates start at; the zero value means
	// time.Now().
	Now time.Time
}

// InitResult is what Init wrote.
type InitResult struct {
	// Config is the ca section to write into fleetca.yaml: the file names,
	// relative to Dir. Durations are left zero (their defaults).
	Config Config
	// Root is the self-signed root certificate.
	Root *x509.Certificate
	// Intermediate is the issuing intermediate, signed by Root.
	Intermediate *x509.Certificate
	// RootFingerprint is the SHA-256 of the root's DER, lowercase hex; it
	// is what `fleetca enroll --fingerprint` takes.
	RootFingerprint string
}

// Init creates a CA under opts.Dir: a root (20 years, self-signed, path
// length 1, key usage certSign and cRLSign) and an intermediate signed by
// it (5 years, path length 0, key usage certSign, cRLSign and
// digitalSignature, the last so that it may sign OCSP responses itself).
// It writes DIR/root.pem, DIR/intermediate.pem, DIR/secrets/root.key and
// DIR/secrets/intermediate.key; DIR and DIR/secrets are mode 0700, the key
// files 0600, the certificates 0644. Every file is written to a temporary
// name, fsynced and linked into place, so a crash leaves no partial file.
//
// Init never replaces a CA: if root.pem or any of the other files exists
// it returns a *fault.Error of kind Conflict and writes nothing. A bad
// Name, KeyType or PublicURL is a Malformed fault. ctx is checked between
// the slow steps (key generation, writing). If writing fails half way,
// Init removes the files it wrote.
//
// Init reads opts.Dir, Name, KeyType, Password, PublicURL and Now.
func Init(ctx context.Context, opts InitOptions) (*InitResult, error) {
	keyType, err := checkKeyType(opts.KeyType)
	if err != nil {
		return nil, err
	}
	if err := checkCAName(opts.Name); err != nil {
		return nil, err
	}
	if opts.Dir == "" {
		return nil, fault.New(fault.Malformed, "the data directory is not set", "name the directory to create the CA in")
	}
	if opts.Password != nil && len(opts.Password) == 0 {
		return nil, fault.New(fault.Malformed, "the password is empty",
			"use a non-empty password, or none at all to write unencrypted keys")
	}
	var rootCRL []string
	if opts.PublicURL != "" {
		base, err := checkPublicURL(opts.PublicURL)
		if err != nil {
			return nil, err
		}
		rootCRL = []string{base + "/root.crl"}
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}

	cfg := Config{
		RootCert:         DefaultRootCert,
		IntermediateCert: DefaultIntermediateCert,
		RootKey:          DefaultRootKey,
		IntermediateKey:  DefaultIntermediateKey,
	}
	paths := []string{cfg.RootCert, cfg.IntermediateCert, cfg.RootKey, cfg.IntermediateKey}
	for _, p := range paths {
		if err := refuseExisting(opts.Dir, p); err != nil {
			return nil, err
		}
	}

	rootKey, err := GenerateKey(keyType)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	interKey, err := GenerateKey(keyType)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	notBefore := now.Add(-DefaultBackdate)
	rootTmpl, err := caTemplate(opts.Name+" Root CA", opts.Name, rootKey.Public(),
		notBefore, now.AddDate(rootYears, 0, 0), 1, x509.KeyUsageCertSign|x509.KeyUsageCRLSign)
	if err != nil {
		return nil, err
	}
	root, err := x509util.CreateCertificate(rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("sign root: %w", err)
	}
	interTmpl, err := caTemplate(opts.Name+" Intermediate CA", opts.Name, interKey.Public(),
		notBefore, now.AddDate(intermediateYears, 0, 0), 0,
		x509.KeyUsageCertSign|x509.KeyUsageCRLSign|x509.KeyUsageDigitalSignature)
	if err != nil {
		return nil, err
	}
	interTmpl.CRLDistributionPoints = rootCRL
	inter, err := x509util.CreateCertificate(interTmpl, root, interKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("sign intermediate: %w", err)
	}

	rootKeyPEM, err := serializeKey(rootKey, opts.Password)
	if err != nil {
		return nil, err
	}
	interKeyPEM, err := serializeKey(interKey, opts.Password)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	w := &initWriter{dir: opts.Dir}
	if err := w.write(cfg, rootKeyPEM, interKeyPEM, root, inter); err != nil {
		w.undo()
		return nil, err
	}
	if _, _, err := StepProvisionerKey(opts.Dir, cfg, opts.Password); err != nil {
		w.undo()
		return nil, err
	}
	if _, _, _, err := AuditKey(opts.Dir, cfg, opts.Name, opts.Password); err != nil {
		w.undo()
		return nil, err
	}
	return &InitResult{
		Config:          cfg,
		Root:            root,
		Intermediate:    inter,
		RootFingerprint: x509util.Fingerprint(root),
	}, nil
}

// checkCAName returns a Malformed fault unless name is 1 to maxNameLen
// printable characters without leading or trailing space.
func checkCAName(name string) error {
	const hint = "use 1 to 48 printable characters, such as \"Acme Devices\""
	switch {
	case name == "":
		return fault.New(fault.Malformed, "the CA name is empty", hint)
	case !utf8.ValidString(name):
		return fault.New(fault.Malformed, "the CA name is not valid UTF-8", hint)
	case utf8.RuneCountInString(name) > maxNameLen:
		return fault.New(fault.Malformed, fmt.Sprintf("the CA name %q is too long", name), hint)
	case strings.TrimSpace(name) != name:
		return fault.New(fault.Malformed, fmt.Sprintf("the CA name %q has leading or trailing space", name), hint)
	case strings.IndexFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return fault.New(fault.Malformed, fmt.Sprintf("the CA name %q has unprintable characters", name), hint)
	}
	return nil
}

// caTemplate returns a CA certificate template (x509util.Certificate) with
// subject CN cn, O org, a fresh serial, and basicConstraints cA with the
// path length (RFC 5280 §4.2.1.9).
func caTemplate(cn, org string, pub crypto.PublicKey, notBefore, notAfter time.Time, maxPathLen int, ku x509.KeyUsage) (*x509.Certificate, error) {
	serial, err := newSerial(notBefore)
	if err != nil {
		return nil, err
	}
	sigAlg, err := signatureAlgorithm(pub)
	if err != nil {
		return nil, err
	}
	c := x509util.Certificate{
		Subject:            x509util.Subject{CommonName: cn, Organization: x509util.MultiString{org}},
		SerialNumber:       x509util.SerialNumber{Int: serial},
		NotBefore:          notBefore,
		NotAfter:           notAfter,
		KeyUsage:           x509util.KeyUsage(ku),
		BasicConstraints:   &x509util.BasicConstraints{IsCA: true, MaxPathLen: maxPathLen},
		SignatureAlgorithm: x509util.SignatureAlgorithm(sigAlg),
		PublicKey:          pub,
	}
	return c.GetCertificate(), nil
}

// serializeKey returns key as PKCS#8 PEM, encrypted with password unless
// it is nil.
func serializeKey(key crypto.Signer, password []byte) ([]byte, error) {
	opts := []pemutil.Options{pemutil.WithPKCS8(true)}
	if password != nil {
		opts = append(opts, pemutil.WithPassword(password))
	}
	block, err := pemutil.Serialize(key, opts...)
	if err != nil {
		return nil, fmt.Errorf("serialize key: %w", err)
	}
	return pem.EncodeToMemory(block), nil
}

// refuseExisting returns a Conflict fault if dir/name exists.
func refuseExisting(dir, name string) error {
	p := filepath.Join(dir, name)
	_, err := os.Lstat(p)
	switch {
	case err == nil:
		return fault.New(fault.Conflict,
			fmt.Sprintf("a CA already exists in %s (%s is there)", dir, name),
			"use another data directory; fleetca never overwrites a CA")
	case errors.Is(err, fs.ErrNotExist):
		return nil
	}
	return fmt.Errorf("check %s: %w", p, err)
}

// initWriter writes Init's files and remembers them, so that a failed Init
// can remove what it wrote.
type initWriter struct {
	dir     string
	written []string
}

// write creates the directories and writes the keys, then the
// intermediate, then root.pem last: root.pem is what marks a data
// directory as holding a CA.
func (w *initWriter) write(cfg Config, rootKey, interKey []byte, root, inter *x509.Certificate) error {
	if err := os.MkdirAll(w.dir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	secrets := filepath.Join(w.dir, filepath.Dir(cfg.RootKey))
	if err := os.MkdirAll(secrets, 0o700); err != nil {
		return fmt.Errorf("create secrets directory: %w", err)
	}
	// The secrets directory may have existed with a looser mode.
	if err := os.Chmod(secrets, 0o700); err != nil {
		return fmt.Errorf("create secrets directory: %w", err)
	}
	files := []struct {
		name string
		data []byte
		perm fs.FileMode
	}{
		{cfg.RootKey, rootKey, 0o600},
		{cfg.IntermediateKey, interKey, 0o600},
		{cfg.IntermediateCert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: inter.Raw}), 0o644},
		{cfg.RootCert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}), 0o644},
	}
	for _, f := range files {
		p := filepath.Join(w.dir, f.name)
		if err := writeNew(p, f.data, f.perm); err != nil {
			return err
		}
		w.written = append(w.written, p)
	}
	return nil
}

// undo removes the files write wrote.
func (w *initWriter) undo() {
	for _, p := range w.written {
		_ = os.Remove(p)
	}
}

// writeNew writes data to path, which must not exist, with mode perm
// (atomicfile.WriteNew: never over an existing file, durable when it
// returns). A Conflict fault if path exists.
func writeNew(path string, data []byte, perm fs.FileMode) error {
	err := atomicfile.WriteNew(path, data, perm)
	if errors.Is(err, fs.ErrExist) {
		return fault.Wrap(err, fault.Conflict,
			fmt.Sprintf("%s appeared while fleetca init was running", path),
			"run init only once per data directory")
	}
	return err
}
