package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"go.step.sm/crypto/keyutil"
	"go.step.sm/crypto/kms"
	"go.step.sm/crypto/kms/apiv1"
	"go.step.sm/crypto/kms/softkms"
	"go.step.sm/crypto/kms/uri"

	"github.com/fleetca/fleetca/internal/fault"
)

// KeyType names a key algorithm for CA keys and device keys made by fleetca.
type KeyType string

// Key types. The zero value "" means KeyECP256 wherever a KeyType is taken.
const (
	KeyECP256  KeyType = "ec-p256" // ECDSA on NIST P-256; the default
	KeyECP384  KeyType = "ec-p384" // ECDSA on NIST P-384
	KeyRSA3072 KeyType = "rsa-3072"
	KeyEd25519 KeyType = "ed25519"
)

// KeyTypes returns the valid key types, the default first.
func KeyTypes() []KeyType {
	return []KeyType{KeyECP256, KeyECP384, KeyRSA3072, KeyEd25519}
}

// keyTypeList is KeyTypes as "a, b, c", for hints.
func keyTypeList() string {
	names := make([]string, 0, 4)
	for _, t := range KeyTypes() {
		names = append(names, string(t))
	}
	return strings.Join(names, ", ")
}

// checkKeyType returns t with "" resolved to KeyECP256, or a Malformed
// fault naming t and the valid types.
func checkKeyType(t KeyType) (KeyType, error) {
	switch t {
	case "":
		return KeyECP256, nil
	case KeyECP256, KeyECP384, KeyRSA3072, KeyEd25519:
		return t, nil
	}
	return "", fault.New(fault.Malformed,
		fmt.Sprintf("unknown key type %q", string(t)),
		"use one of "+keyTypeList())
}

// GenerateKey makes a new private key of type t with go.step.sm/crypto/keyutil.
// "" means KeyECP256. An unknown type is a *fault.Error of kind Malformed
// that names it and lists the valid ones.
func GenerateKey(t KeyType) (crypto.Signer, error) {
	t, err := checkKeyType(t)
	if err != nil {
		return nil, err
	}
	var s crypto.Signer
	switch t {
	case KeyECP256:
		s, err = keyutil.GenerateSigner("EC", "P-256", 0)
	case KeyECP384:
		s, err = keyutil.GenerateSigner("EC", "P-384", 0)
	case KeyRSA3072:
		s, err = keyutil.GenerateSigner("RSA", "", 3072)
	case KeyEd25519:
		s, err = keyutil.GenerateSigner("OKP", "Ed25519", 0)
	default:
		panic("ca: checkKeyType let through " + string(t))
	}
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", t, err)
	}
	return s, nil
}

// signatureAlgorithm returns the algorithm a CA whose public key is pub
// signs with: SHA-256 for P-256 and RSA (RSASSA-PKCS1-v1_5; RFC 8017 §8.2),
// SHA-384 for P-384, SHA-512 for P-521 (RFC 5758 §3.2: the hash matches the
// curve), PureEdDSA for Ed25519 (RFC 8410 §6).
func signatureAlgorithm(pub crypto.PublicKey) (x509.SignatureAlgorithm, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return x509.ECDSAWithSHA256, nil
		case elliptic.P384():
			return x509.ECDSAWithSHA384, nil
		case elliptic.P521():
			return x509.ECDSAWithSHA512, nil
		}
		return 0, fmt.Errorf("unsupported CA curve %s", k.Curve.Params().Name)
	case *rsa.PublicKey:
		return x509.SHA256WithRSA, nil
	case ed25519.PublicKey:
		return x509.PureEd25519, nil
	}
	return 0, fmt.Errorf("unsupported CA key type %T", pub)
}

// keyRef is a configured key location, resolved against the data directory.
type keyRef struct {
	role  string // "root" or "intermediate", for messages
	field string // the config key, for messages ("ca.intermediate_key")
	value string // as configured
	// file is the absolute path of a key file (a bare path, or the path
	// of a softkms URI); "" for a key in another KMS.
	file string
}

// resolveKey classifies value: a KMS URI ("pkcs11:...", "softkms:...") or
// a file path, relative to dir unless absolute. A softkms URI's path is
// resolved against dir too, so that a data directory can be moved whole.
func resolveKey(dir, role, field, value string) (keyRef, error) {
	ref := keyRef{role: role, field: field, value: value}
	if !isKMSURI(value) {
		ref.file = resolvePath(dir, value)
		return ref, nil
	}
	typ, err := kms.TypeOf(value)
	if err != nil {
		// Name the scheme only: a KMS URI may carry a PIN.
		return ref, fault.Wrap(err, fault.Malformed,
			fmt.Sprintf("%s has an unsupported KMS scheme %q", field, uriScheme(value)),
			"use a file path or a softkms:, pkcs11:, ... URI")
	}
	if typ == apiv1.SoftKMS {
		u, err := uri.ParseWithScheme(softkms.Scheme, value)
		if err != nil {
			return ref, fault.Wrap(err, fault.Malformed,
				fmt.Sprintf("%s is not a valid softkms URI", field),
				`use "softkms:path=secrets/intermediate.key" or a plain path`)
		}
		// The same precedence as softkms itself: path=, then the path,
		// then the opaque part.
		p := u.Get("path")
		if p == "" {
			p = u.Path
		}
		if p == "" {
			p = u.Opaque
		}
		if p == "" {
			return ref, fault.New(fault.Malformed,
				fmt.Sprintf("%s is a softkms URI that names no file", field),
				`use "softkms:path=secrets/intermediate.key" or a plain path`)
		}
		ref.file = resolvePath(dir, p)
	}
	return ref, nil
}

// isKMSURI reports whether value has a URI scheme of two or more letters
// (one letter would be a Windows drive).
func isKMSURI(value string) bool {
	u, err := url.Parse(value)
	return err == nil && len(u.Scheme) > 1
}

// uriScheme returns the scheme of a URI, the part before the first ':'.
func uriScheme(value string) string {
	scheme, _, _ := strings.Cut(value, ":")
	return scheme
}

// resolvePath returns p if absolute, else p under dir.
func resolvePath(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// present reports whether the key is there to load: for a file, whether it
// exists; a key in another KMS is assumed present (checking would mean
// logging in to it).
func (r keyRef) present() (bool, error) {
	if r.file == "" {
		return true, nil
	}
	_, err := os.Stat(r.file)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("stat %s key: %w", r.role, err)
}

// loadSigner loads the key named by ref: a file through softkms
// (decrypted with password if it is encrypted PKCS#8), anything else
// through kms.New. It returns the signer and a function that releases the
// KMS, which the caller must call when it no longer needs the signer.
func loadSigner(ctx context.Context, ref keyRef, password []byte) (crypto.Signer, func() error, error) {
	if ref.file != "" {
		s, err := loadFileSigner(ctx, ref, password)
		return s, func() error { return nil }, err
	}
	typ, err := kms.TypeOf(ref.value)
	if err != nil {
		return nil, nil, fault.Wrap(err, fault.Malformed,
			fmt.Sprintf("%s has an unsupported KMS scheme %q", ref.field, uriScheme(ref.value)), "")
	}
	if _, ok := apiv1.LoadKeyManagerNewFunc(typ); !ok {
		return nil, nil, fault.New(fault.Unavailable,
			fmt.Sprintf("%s key is in a %s KMS, which this fleetca binary does not include", ref.role, typ),
			"use a fleetca build with "+string(typ)+" support, or a key file")
	}
	km, err := kms.New(ctx, apiv1.Options{URI: ref.value})
	if err != nil {
		return nil, nil, fault.Wrap(err, fault.Unavailable,
			fmt.Sprintf("cannot open the %s KMS for the %s key", typ, ref.role),
			"check "+ref.field+" and that the KMS is reachable")
	}
	s, err := km.CreateSigner(&apiv1.CreateSignerRequest{SigningKey: ref.value, Password: password})
	if err != nil {
		_ = km.Close()
		return nil, nil, fault.Wrap(err, fault.Unavailable,
			fmt.Sprintf("cannot load the %s key from the %s KMS", ref.role, typ),
			"check "+ref.field+" and the KMS credentials")
	}
	return s, km.Close, nil
}

// loadFileSigner loads a PEM key file with softkms. It reads the file first
// to tell a missing file and an encrypted key without a password from a
// bad file: pemutil would otherwise fall back to prompting on a terminal.
// A private key file others may read is refused (CheckSecretFile),
// encrypted or not.
func loadFileSigner(ctx context.Context, ref keyRef, password []byte) (crypto.Signer, error) {
	data, err := os.ReadFile(ref.file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fault.Wrap(err, fault.NotFound,
			fmt.Sprintf("%s key file %s does not exist", ref.role, ref.file),
			"run fleetca init, or set "+ref.field)
	case err != nil:
		return nil, fmt.Errorf("read %s key: %w", ref.role, err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fault.New(fault.Malformed,
			fmt.Sprintf("%s key file %s is not PEM", ref.role, ref.file),
			"check "+ref.field)
	}
	if err := checkKeyFileMode(ref, block); err != nil {
		clear(data)
		clear(block.Bytes)
		return nil, err
	}
	encrypted := block.Type == "ENCRYPTED PRIVATE KEY" || block.Headers["Proc-Type"] == "4,ENCRYPTED"
	clear(data) // it may hold an unencrypted key
	clear(block.Bytes)
	if encrypted && len(password) == 0 {
		return nil, fault.WithKey(fault.New(fault.Unavailable,
			ref.role+" key is encrypted",
			"set password_file to the file that holds the CA keys' password"), "password_file")
	}
	sk, err := softkms.New(ctx, apiv1.Options{})
	if err != nil {
		return nil, fmt.Errorf("softkms: %w", err)
	}
	s, err := sk.CreateSigner(&apiv1.CreateSignerRequest{SigningKey: ref.file, Password: password})
	switch {
	case err != nil && encrypted:
		// Wrong password, mostly (x509.IncorrectPasswordError); a wrong
		// password can also decrypt to garbage that fails to parse.
		return nil, fault.WithKey(fault.Wrap(err, fault.Unauthorized,
			fmt.Sprintf("cannot decrypt the %s key %s with the given password", ref.role, ref.file),
			"check the password in the file password_file names"), "password_file")
	case err != nil:
		return nil, fault.Wrap(err, fault.Malformed,
			fmt.Sprintf("cannot parse the %s key file %s", ref.role, ref.file),
			"check "+ref.field)
	}
	return s, nil
}

// checkKeyFileMode refuses a key file whose first PEM block is a private
// key (PKCS #8, encrypted or not, or a traditional RSA or EC key) and that
// the group or others may read. A file that holds something else is left
// to the parse, which says what it is not.
func checkKeyFileMode(ref keyRef, block *pem.Block) error {
	if !strings.HasSuffix(block.Type, "PRIVATE KEY") {
		return nil
	}
	return CheckSecretFile(ref.role+" key file", ref.file)
}

// checkPresentKeyFileMode is checkKeyFileMode for a key that is not loaded
// yet (the root key): it reads the file to see whether it holds a private
// key. A key in another KMS, or a missing file, passes.
func checkPresentKeyFileMode(ref keyRef) error {
	if ref.file == "" {
		return nil
	}
	data, err := os.ReadFile(ref.file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s key: %w", ref.role, err)
	}
	defer clear(data) // it may hold an unencrypted key
	block, _ := pem.Decode(data)
	if block == nil {
		return nil
	}
	defer clear(block.Bytes)
	return checkKeyFileMode(ref, block)
}

// checkKeyPair returns a Malformed fault unless the signer's public key is
// the certificate's.
func checkKeyPair(ref keyRef, s crypto.Signer, cert *x509.Certificate, certField string) error {
	if keyutil.Equal(s.Public(), cert.PublicKey) {
		return nil
	}
	return fault.New(fault.Malformed,
		fmt.Sprintf("%s key (%s) does not match the %s certificate", ref.role, ref.field, ref.role),
		"point "+ref.field+" and "+certField+" at the same CA's files")
}
