package auditlog

import (
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/fleetca/fleetca/internal/fault"
)

var testTime = time.Date(2026, 12, 5, 18, 0, 0, 0, time.UTC)

func testKey(t testing.TB, name string) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(nil, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func TestParseCheckpoint(t *testing.T) {
	root := tlog.RecordHash([]byte("x"))
	good := FormatCheckpoint("ca/fleetca-audit", 42, root, testTime)
	tests := []struct {
		name string
		text string
		ok   bool
	}{
		{"ok/formatted", good, true},
		{"ok/size-zero", FormatCheckpoint("o", 0, root, testTime), true},
		{"fail/empty", "", false},
		{"fail/no-final-newline", strings.TrimSuffix(good, "\n"), false},
		{"fail/extra-line", good + "more\n", false},
		{"fail/no-time", "o\n1\n" + root.String() + "\n", false},
		{"fail/origin-space", strings.Replace(good, "ca/fleetca-audit", "a b", 1), false},
		{"fail/empty-origin", strings.Replace(good, "ca/fleetca-audit", "", 1), false},
		{"fail/size-leading-zero", strings.Replace(good, "\n42\n", "\n042\n", 1), false},
		{"fail/size-negative", strings.Replace(good, "\n42\n", "\n-1\n", 1), false},
		{"fail/size-plus", strings.Replace(good, "\n42\n", "\n+42\n", 1), false},
		{"fail/root-short", strings.Replace(good, root.String(), "AAAA", 1), false},
		{"fail/time-local", strings.Replace(good, "2026-12-05T18:00:00Z", "2026-12-05T19:00:00+01:00", 1), false},
		{"fail/time-garbage", strings.Replace(good, "time 2026", "time x2026", 1), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			origin, c, err := ParseCheckpoint(tc.text)
			if !tc.ok {
				if k, ok := fault.KindOf(err); !ok || k != fault.Malformed {
					t.Fatalf("ParseCheckpoint(%q) = %v, want Malformed", tc.text, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCheckpoint(%q) = %v", tc.text, err)
			}
			if back := FormatCheckpoint(origin, c.Size, c.Root, c.Time); back != tc.text {
				t.Errorf("re-encoded %q, want %q", back, tc.text)
			}
		})
	}
}

func TestOpenCheckpoint(t *testing.T) {
	s, v := testKey(t, "ca/fleetca-audit")
	other, _ := testKey(t, "ca/fleetca-audit")
	root := tlog.RecordHash([]byte("x"))
	cp, err := SignCheckpoint(s, 7, root, testTime)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenCheckpoint(cp.Note, v)
	if err != nil || got.Size != 7 || got.Root != root || !got.Time.Equal(testTime) {
		t.Fatalf("OpenCheckpoint = %+v, %v; want size 7", got, err)
	}
	forged, err := SignCheckpoint(other, 7, root, testTime)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCheckpoint(forged.Note, v); !isKind(err, fault.Unauthorized) {
		t.Errorf("checkpoint signed by another key: %v, want Unauthorized", err)
	}
	edited := []byte(strings.Replace(string(cp.Note), "\n7\n", "\n8\n", 1))
	if _, err := OpenCheckpoint(edited, v); !isKind(err, fault.Unauthorized) {
		t.Errorf("edited checkpoint: %v, want Unauthorized", err)
	}
	otherName, ov := testKey(t, "elsewhere/fleetca-audit")
	msg, err := note.Sign(&note.Note{Text: FormatCheckpoint("ca/fleetca-audit", 1, root, testTime)}, otherName)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCheckpoint(msg, ov); !isKind(err, fault.Malformed) {
		t.Errorf("origin other than the key's name: %v, want Malformed", err)
	}
}

func isKind(err error, k fault.Kind) bool {
	got, ok := fault.KindOf(err)
	return ok && got == k
}

// FuzzParseCheckpoint: no panic; a rejection is Malformed; what is
// accepted re-encodes to the same text.
func FuzzParseCheckpoint(f *testing.F) {
	root := tlog.RecordHash([]byte("x"))
	f.Add(FormatCheckpoint("ca/fleetca-audit", 42, root, testTime))
	f.Add("o\n0\n" + root.String() + "\ntime 2026-01-01T00:00:00Z\n")
	f.Add("o\n1\n\n\n")
	f.Fuzz(func(t *testing.T, text string) {
		origin, c, err := ParseCheckpoint(text)
		if err != nil {
			var fe *fault.Error
			if !errors.As(err, &fe) || fe.Kind != fault.Malformed {
				t.Fatalf("ParseCheckpoint(%q) = %v, want a Malformed fault", text, err)
			}
			return
		}
		if back := FormatCheckpoint(origin, c.Size, c.Root, c.Time); back != text {
			t.Fatalf("ParseCheckpoint(%q) re-encodes to %q", text, back)
		}
	})
}
