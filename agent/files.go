package agent

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"go.step.sm/crypto/pemutil"

	"github.com/fleetca/fleetca/internal/atomicfile"
	"github.com/fleetca/fleetca/internal/fault"
)

// The crash-safe swap of a key and its certificate (a rekey changes both,
// in two files that no single rename can replace together).
//
// A rekey goes through these durable steps, each a write to a temporary
// file, an fsync and a rename, then an fsync of the directory:
//
//  1. the new key is written to KEY.next (mode 0600), before the CSR is
//     sent: if the answer is lost, the next try sends the same key, and
//     the CA's retry rule (same predecessor, same key) returns the
//     certificate it already issued instead of refusing the old
//     certificate as superseded;
//  2. the new certificate and chain are written to CERT.next;
//  3. KEY.next is renamed to KEY;
//  4. CERT.next is renamed to CERT.
//
// Between 3 and 4 KEY and CERT do not match; CERT.next says how to finish.
// recover, run before anything else, repairs every state a crash can leave:
// CERT.next whose key is KEY.next: steps 3 and 4; CERT.next whose key is
// KEY's: step 4; CERT.next that matches neither: removed. KEY.next alone
// is a rekey whose answer never arrived: kept, and the next renewal sends
// that key again. A renewal of the same key writes CERT alone, in one
// step.

// nextSuffix names the files of a swap in progress.
const nextSuffix = ".next"

// errCrash is what a step hook returns to stop a swap where it is, as a
// crash would: nothing after it runs, nothing is undone.
var errCrash = errors.New("simulated crash")

// files are the device's certificate and key files.
type files struct {
	cert, key string
	// step, if set, is called before each durable step with its name; an
	// error stops the swap there, as a crash would (tests).
	step func(name string) error
}

// state is what the files hold.
type state struct {
	// chain is the certificate, then its intermediates.
	chain []*x509.Certificate
	key   crypto.Signer
	// pending is the key in KEY.next: a rekey whose certificate has not
	// arrived; nil if none.
	pending crypto.Signer
	// certMode is the certificate file's mode, kept on rewrite.
	certMode fs.FileMode
}

func (f files) certNext() string { return f.cert + nextSuffix }
func (f files) keyNext() string  { return f.key + nextSuffix }

func (f files) do(name string, fn func() error) error {
	if f.step != nil {
		if err := f.step(name); err != nil {
			return err
		}
	}
	return fn()
}

// load reads the certificate, its key and any pending key. A BadKey fault
// if the key is not the certificate's; NotFound or Malformed for a file
// that is missing or not what it should be.
func (f files) load() (state, error) {
	var st state
	info, err := os.Stat(f.cert)
	if err != nil {
		return st, fault.Wrap(err, fault.NotFound, "cannot read the certificate "+f.cert, "give the certificate file that fleetca enroll wrote")
	}
	st.certMode = info.Mode().Perm()
	if st.chain, err = readChain(f.cert); err != nil {
		return st, err
	}
	if st.key, err = readKey(f.key); err != nil {
		return st, err
	}
	if !samePublic(st.chain[0].PublicKey, st.key.Public()) {
		return st, fault.New(fault.BadKey, fmt.Sprintf("the key in %s is not the key of the certificate in %s", f.key, f.cert),
			"give the key that was made with the certificate")
	}
	if _, err := os.Stat(f.keyNext()); err == nil {
		if st.pending, err = readKey(f.keyNext()); err != nil {
			return st, err
		}
	}
	return st, nil
}

// recover finishes or undoes a swap that a crash interrupted (see the
// comment at the top of this file), and says what it did ("" for
// nothing).
func (f files) recover() (string, error) {
	if _, err := os.Stat(f.certNext()); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	chain, err := readChain(f.certNext())
	if err != nil {
		return "removed " + f.certNext() + ", which holds no certificate", removeSynced(f.certNext())
	}
	newPub := chain[0].PublicKey
	if pending, err := readKey(f.keyNext()); err == nil && samePublic(newPub, pending.Public()) {
		if err := renameSynced(f.keyNext(), f.key); err != nil {
			return "", err
		}
		if err := renameSynced(f.certNext(), f.cert); err != nil {
			return "", err
		}
		return "installed the new key and certificate of a rekey that was interrupted", nil
	}
	if key, err := readKey(f.key); err == nil && samePublic(newPub, key.Public()) {
		if err := renameSynced(f.certNext(), f.cert); err != nil {
			return "", err
		}
		return "installed the new certificate of a rekey that was interrupted", nil
	}
	return "removed " + f.certNext() + ", whose key is neither " + f.key + " nor " + f.keyNext(), removeSynced(f.certNext())
}

// savePending writes key to KEY.next (step 1 of a rekey).
func (f files) savePending(key crypto.Signer) error {
	b, err := keyPEM(key)
	if err != nil {
		return err
	}
	return f.do("write key.next", func() error { return atomicfile.Write(f.keyNext(), b, 0o600) })
}

// install writes a renewed chain (PEM, leaf first). For a rekey (the
// chain certifies st.pending) it runs steps 2 to 4; otherwise it replaces
// the certificate file in one atomic write.
func (f files) install(st state, chainPEM []byte, rekey bool) error {
	if !rekey {
		return f.do("write cert", func() error { return atomicfile.Write(f.cert, chainPEM, st.certMode) })
	}
	if err := f.do("write cert.next", func() error { return atomicfile.Write(f.certNext(), chainPEM, st.certMode) }); err != nil {
		return err
	}
	if err := f.do("install key", func() error { return renameSynced(f.keyNext(), f.key) }); err != nil {
		return err
	}
	return f.do("install cert", func() error { return renameSynced(f.certNext(), f.cert) })
}

func readChain(file string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fault.Wrap(err, fault.NotFound, "cannot read the certificate "+file, "give the certificate file that fleetca enroll wrote")
	}
	certs, err := pemutil.ParseCertificateBundle(b)
	if err != nil || len(certs) == 0 {
		return nil, fault.Wrap(err, fault.Malformed, file+" holds no PEM certificate", "give the certificate file that fleetca enroll wrote")
	}
	return certs, nil
}

func readKey(file string) (crypto.Signer, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fault.Wrap(err, fault.NotFound, "cannot read the private key "+file, "give the key file that fleetca enroll wrote")
	}
	k, err := pemutil.Parse(b)
	if err != nil {
		return nil, fault.Wrap(err, fault.Malformed, file+" is not an unencrypted PEM private key", "give the key file that fleetca enroll wrote")
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fault.New(fault.Malformed, file+" is not a private key", "give the key file that fleetca enroll wrote")
	}
	return s, nil
}

// keyPEM encodes a private key as PKCS #8 PEM, as fleetca enroll writes it.
func keyPEM(key crypto.Signer) ([]byte, error) {
	block, err := pemutil.Serialize(key, pemutil.WithPKCS8(true))
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(block), nil
}

// newKeyLike makes a key of the same type and size as pub: a rekey keeps
// the device's choice.
func newKeyLike(pub crypto.PublicKey) (crypto.Signer, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return ecdsa.GenerateKey(k.Curve, rand.Reader)
	case *rsa.PublicKey:
		return rsa.GenerateKey(rand.Reader, max(k.N.BitLen(), 2048))
	case ed25519.PublicKey:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
	return nil, fault.New(fault.BadKey, fmt.Sprintf("cannot make a new key like a %T", pub), "rekey needs an ECDSA, RSA or Ed25519 key")
}

// renameSynced renames from to to (both in one directory) and fsyncs the
// directory, so that the rename survives a crash.
func renameSynced(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		return err
	}
	return syncDir(filepath.Dir(to))
}

// removeSynced removes file durably.
func removeSynced(file string) error {
	if err := os.Remove(file); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncDir(filepath.Dir(file))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

func samePublic(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
