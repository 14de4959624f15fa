package fault

import (
	"errors"
	"fmt"
	"testing"
)

func TestKindsAreNamed(t *testing.T) {
	seen := map[string]Kind{}
	for _, k := range Kinds {
		name := k.String()
		if name == "" || name == fmt.Sprintf("Kind(%d)", int(k)) {
			t.Errorf("kind %d has no name", int(k))
		}
		if prev, dup := seen[name]; dup {
			t.Errorf("kinds %d and %d share the name %q", int(prev), int(k), name)
		}
		seen[name] = k
	}
	if got := Kind(0).String(); got != "Kind(0)" {
		t.Errorf("zero kind String() = %q, want Kind(0)", got)
	}
}

func TestErrorChain(t *testing.T) {
	cause := errors.New("x509: malformed")
	err := fmt.Errorf("enroll: %w", Wrap(cause, BadCSR, "the CSR is bad", "make another"))
	if k, ok := KindOf(err); !ok || k != BadCSR {
		t.Errorf("KindOf = %v, %v; want BadCSR, true", k, ok)
	}
	if !errors.Is(err, &Error{Kind: BadCSR}) || errors.Is(err, &Error{Kind: BadKey}) {
		t.Error("errors.Is by kind does not match the kind alone")
	}
	if !errors.Is(err, cause) {
		t.Error("the cause is not reachable with errors.Is")
	}
	if got, want := err.Error(), "enroll: the CSR is bad (make another)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if _, ok := KindOf(cause); ok {
		t.Error("KindOf found a kind in a plain error")
	}
	if got := New(NotFound, "gone", "").Error(); got != "gone" {
		t.Errorf("Error() without hint = %q, want gone", got)
	}
}
