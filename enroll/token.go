package enroll

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"

	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// Secret is a bearer credential (an enrollment or admin token). It logs as
// REDACTED; print it with string(s) only where the user must see it once.
type Secret string

// LogValue keeps secrets out of logs.
func (Secret) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// Token prefixes, recognisable by people and secret scanners.
const (
	EnrollTokenPrefix = "fca_et_"
	AdminTokenPrefix  = "fca_admin_"
)

// secretBytes is the entropy of every token: 256 bits.
const secretBytes = 32

// encodedLen is the length of the base64url (unpadded) body of a token.
var encodedLen = base64.RawURLEncoding.EncodedLen(secretBytes)

// newSecret returns a fresh token with the prefix.
func newSecret(prefix string) (Secret, error) {
	var b [secretBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("read random token: %w", err)
	}
	return Secret(prefix + base64.RawURLEncoding.EncodeToString(b[:])), nil
}

// hashSecret returns the stored form of a token.
func hashSecret(s Secret) store.TokenHash { return sha256.Sum256([]byte(s)) }

// TokenID returns the public handle of a token hash: the first 16 hex
// digits. Safe to log and show.
func TokenID(h store.TokenHash) string { return hex.EncodeToString(h[:8]) }

// ParseToken checks the form of a presented token with the given prefix and
// returns its hash. It does not look the token up. A malformed token is
// fault.Unauthorized, and the error never repeats the token.
func ParseToken(prefix, s string) (store.TokenHash, error) {
	const hint = "pass the whole token, as it was given when it was created"
	body, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return store.TokenHash{}, fault.New(fault.Unauthorized,
			fmt.Sprintf("the token does not start with %q", prefix), hint)
	}
	if len(body) != encodedLen {
		return store.TokenHash{}, fault.New(fault.Unauthorized,
			fmt.Sprintf("the token has %d characters after its prefix, want %d", len(body), encodedLen), hint)
	}
	var raw [secretBytes]byte
	if n, err := base64.RawURLEncoding.Strict().Decode(raw[:], []byte(body)); err != nil || n != secretBytes {
		return store.TokenHash{}, fault.New(fault.Unauthorized, "the token is not valid base64url", hint)
	}
	return hashSecret(Secret(s)), nil
}
