package auditlog

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// MaxCheckpointBytes bounds a checkpoint note (text and signatures).
const MaxCheckpointBytes = 8 << 10

// timePrefix starts the checkpoint's time extension line.
const timePrefix = "time "

// FormatCheckpoint returns the text of the checkpoint of the tree of size
// size and hash root, signed at t, for the log named origin (a C2SP
// tlog-checkpoint body: origin, size, base64 root, then our extension
// line "time <RFC 3339, UTC, seconds>").
func FormatCheckpoint(origin string, size int64, root tlog.Hash, t time.Time) string {
	return fmt.Sprintf("%s\n%d\n%s\n%s%s\n", origin, size, root, timePrefix, t.UTC().Format(time.RFC3339))
}

// ParseCheckpoint parses a checkpoint's text (the note's Text, without
// signatures) as FormatCheckpoint writes it, strictly: exactly those four
// lines, a size without sign or leading zeros, a 32-byte root. Anything
// else is a fault.Malformed. The Checkpoint it returns has Size, Root and
// Time; Note is not set.
func ParseCheckpoint(text string) (origin string, c store.Checkpoint, err error) {
	bad := func(what string) error {
		return fault.New(fault.Malformed, "the checkpoint is malformed: "+what,
			"a checkpoint is four lines: origin, tree size, base64 root hash, time")
	}
	if len(text) > MaxCheckpointBytes {
		return "", c, bad("too long")
	}
	lines := strings.Split(text, "\n")
	if len(lines) != 5 || lines[4] != "" {
		return "", c, bad("not four lines ending in a newline")
	}
	origin = lines[0]
	if origin == "" || strings.ContainsAny(origin, " \t\r+") {
		return "", c, bad("bad origin line")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return "", c, bad("bad size line")
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil || root.String() != lines[2] {
		return "", c, bad("bad root hash line")
	}
	ts, ok := strings.CutPrefix(lines[3], timePrefix)
	if !ok {
		return "", c, bad("no time line")
	}
	t, err := time.Parse(time.RFC3339, ts)
	if err != nil || t.UTC().Format(time.RFC3339) != ts {
		return "", c, bad("bad time line")
	}
	return origin, store.Checkpoint{Size: size, Root: root, Time: t.UTC()}, nil
}

// SignCheckpoint signs the checkpoint of (size, root) at t with s; its
// origin is s's name. The Checkpoint's Note is the signed note.
func SignCheckpoint(s note.Signer, size int64, root tlog.Hash, t time.Time) (store.Checkpoint, error) {
	t = t.UTC().Truncate(time.Second)
	msg, err := note.Sign(&note.Note{Text: FormatCheckpoint(s.Name(), size, root, t)}, s)
	if err != nil {
		return store.Checkpoint{}, fmt.Errorf("sign checkpoint: %w", err)
	}
	return store.Checkpoint{Size: size, Root: root, Time: t, Note: msg}, nil
}

// NewVerifier parses a verifier key (the text of DIR/audit.pub) as a
// fault.Malformed on error.
func NewVerifier(vkey []byte) (note.Verifier, error) {
	v, err := note.NewVerifier(strings.TrimSpace(string(vkey)))
	if err != nil {
		return nil, fault.Wrap(err, fault.Malformed, "the audit key is not a note verifier key",
			"use the CA's audit.pub (GET /v1/audit/key)")
	}
	return v, nil
}

// OpenCheckpoint checks that msg is a note signed by v whose text is a
// checkpoint of the log named v.Name(), and returns it (Note = msg). A bad
// or missing signature is a fault.Unauthorized, anything else malformed a
// fault.Malformed.
func OpenCheckpoint(msg []byte, v note.Verifier) (store.Checkpoint, error) {
	if len(msg) > MaxCheckpointBytes {
		return store.Checkpoint{}, fault.New(fault.TooLarge, "the checkpoint is larger than 8 KiB", "")
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) || errors.As(err, &invalid) {
			return store.Checkpoint{}, fault.Wrap(err, fault.Unauthorized,
				fmt.Sprintf("the checkpoint is not signed by the audit key %s", v.Name()), "check it with the CA's audit.pub")
		}
		return store.Checkpoint{}, fault.Wrap(err, fault.Malformed, "the checkpoint is not a signed note", "")
	}
	origin, c, err := ParseCheckpoint(n.Text)
	if err != nil {
		return store.Checkpoint{}, err
	}
	if origin != v.Name() {
		return store.Checkpoint{}, fault.New(fault.Malformed,
			fmt.Sprintf("the checkpoint's origin %q is not the audit key's name %q", origin, v.Name()), "")
	}
	c.Note = bytes.Clone(msg)
	return c, nil
}
