package ca

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"go.step.sm/crypto/pemutil"
	"golang.org/x/mod/sumdb/note"

	"github.com/fleetca/fleetca/internal/atomicfile"
	"github.com/fleetca/fleetca/internal/fault"
)

// AuditPublicKeyFile is the audit key's public half in the data
// directory, as a note verifier key ("<name>+<hash>+<base64 key>", one
// line): what an auditor or a witness pins (fleetca audit verify --key,
// fleetca audit watch --key) and what GET /v1/audit/key serves.
const AuditPublicKeyFile = "audit.pub"

// auditKeySuffix ends every audit key's name: "<CA name>/fleetca-audit".
const auditKeySuffix = "/fleetca-audit"

// notNameChar is what a note key name may not hold (whitespace, '+') and
// what we leave out besides, so that the name reads like a host.
var notNameChar = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// AuditKeyName is the note key name (and the checkpoints' origin line) of
// the audit key of the CA named caName: its name with every run of
// characters other than letters, digits, '.', '_' and '-' made one '-',
// then "/fleetca-audit" ("Acme Devices" -> "Acme-Devices/fleetca-audit").
func AuditKeyName(caName string) string {
	n := strings.Trim(notNameChar.ReplaceAllString(caName, "-"), "-")
	if n == "" {
		n = "fleetca"
	}
	return n + auditKeySuffix
}

// AuditKey loads the audit key, the Ed25519 key that signs the audit
// log's checkpoints (RFC 8032 through golang.org/x/mod/sumdb/note), from
// cfg.AuditKey, a PKCS#8 PEM file relative to dir unless absolute. If the
// file is absent it makes one (note.GenerateKey), encrypted with password
// unless password is nil, writes its verifier key to dir/audit.pub and
// reports created: a CA made before the audit log had checkpoints gets its
// key on its first start. The key's name is the one audit.pub holds, or
// AuditKeyName(caName) when there is none; audit.pub is written when it
// is missing. It returns the signer and the verifier key text.
//
// A key that audit.pub does not match, or an audit.pub without its key,
// is a fault.Conflict: checkpoints signed with another key would not
// verify with the published one.
func AuditKey(dir string, cfg Config, caName string, password []byte) (signer note.Signer, vkey string, created bool, err error) {
	cfg = cfg.WithDefaults()
	path := resolvePath(dir, cfg.AuditKey)
	pubPath := filepath.Join(dir, AuditPublicKeyFile)
	name := AuditKeyName(caName)
	pub, err := os.ReadFile(pubPath)
	switch {
	case err == nil:
		if n, _, ok := strings.Cut(strings.TrimSpace(string(pub)), "+"); ok && n != "" {
			name = n
		}
	case errors.Is(err, fs.ErrNotExist):
		pub = nil
	default:
		return nil, "", false, fmt.Errorf("read audit public key: %w", err)
	}

	var seed []byte
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && pub != nil:
		// A published key whose secret is gone (a replica's data
		// directory copied without secrets/, a lost file): a new key
		// would sign checkpoints that witnesses pinning audit.pub refuse.
		return nil, "", false, fault.WithKey(fault.New(fault.Conflict,
			fmt.Sprintf("%s is published but the audit key %s is missing", pubPath, path),
			"copy the audit key from the CA's other replica or a backup; or remove audit.pub to make a new key (witnesses will see a new key)"), "ca.audit_key")
	case errors.Is(err, fs.ErrNotExist):
		seed = make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return nil, "", false, fmt.Errorf("generate audit key: %w", err)
		}
		data, err := serializeKey(ed25519.NewKeyFromSeed(seed), password)
		if err != nil {
			return nil, "", false, err
		}
		if err := writeNew(path, data, 0o600); err != nil {
			return nil, "", false, err
		}
		created = true
	case err != nil:
		return nil, "", false, fmt.Errorf("read audit key: %w", err)
	default:
		var opts []pemutil.Options
		if password != nil {
			opts = append(opts, pemutil.WithPassword(password))
		}
		parsed, err := pemutil.ParseKey(b, opts...)
		if err != nil {
			return nil, "", false, fault.WithKey(fault.Wrap(err, fault.Unauthorized,
				fmt.Sprintf("the audit key %s cannot be read (wrong password, or not a PEM private key)", path),
				"give the CA keys' password (password_file)"), "ca.audit_key")
		}
		k, ok := parsed.(ed25519.PrivateKey)
		if !ok {
			return nil, "", false, fault.WithKey(fault.New(fault.Malformed,
				fmt.Sprintf("the audit key %s is not an Ed25519 key", path),
				"point ca.audit_key at the Ed25519 key init made"), "ca.audit_key")
		}
		seed = k.Seed()
	}

	// note.GenerateKey reads the Ed25519 seed from its reader
	// (ed25519.GenerateKey is deterministic in it): given the stored seed
	// it makes the note key texts of the stored key.
	skey, vkey, err := note.GenerateKey(bytes.NewReader(seed), name)
	if err != nil {
		return nil, "", false, fmt.Errorf("audit key %q: %w", name, err)
	}
	if signer, err = note.NewSigner(skey); err != nil {
		return nil, "", false, fmt.Errorf("audit key %q: %w", name, err)
	}
	switch {
	case pub == nil:
		if err := atomicfile.Write(pubPath, []byte(vkey+"\n"), 0o644); err != nil {
			return nil, "", false, fmt.Errorf("write audit public key: %w", err)
		}
	case strings.TrimSpace(string(pub)) != vkey:
		return nil, "", false, fault.WithKey(fault.New(fault.Conflict,
			fmt.Sprintf("%s is not the public key of the audit key %s", pubPath, path),
			"restore the audit key that audit.pub was made from, or remove audit.pub to publish this key's (witnesses will see a new key)"), "ca.audit_key")
	}
	return signer, vkey, created, nil
}
