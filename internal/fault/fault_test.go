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

func TestWithFieldAndKey(t *testing.T) {
	orig := New(Malformed, "the token TTL 1s is too short", "give a ttl of at least 1m")
	err := WithField(orig, "ttl")
	fe, ok := err.(*Error)
	if !ok || fe.Field != "ttl" || fe.Kind != Malformed || fe.Detail != orig.Detail || fe.Hint != orig.Hint {
		t.Fatalf("WithField = %#v, want a copy of %#v with Field ttl", err, orig)
	}
	if orig.Field != "" {
		t.Errorf("WithField changed its argument: Field = %q", orig.Field)
	}
	if got := err.Error(); got != orig.Error() {
		t.Errorf("Error() with a field = %q, want %q: Field is for front ends to render", got, orig.Error())
	}
	if !errors.Is(err, &Error{Kind: Malformed}) || errors.Is(err, &Error{Kind: Malformed, Field: "uses"}) {
		t.Error("errors.Is by kind does not ignore Field, or matches a target with a field")
	}

	cause := errors.New("x509: decryption password incorrect")
	keyed := WithKey(Wrap(cause, Unauthorized, "cannot decrypt the root key", "check the password"), "password_file")
	if fe, ok := keyed.(*Error); !ok || fe.Key != "password_file" || !errors.Is(keyed, cause) {
		t.Errorf("WithKey = %#v, want Key password_file and the cause kept", keyed)
	}

	plain := errors.New("internal")
	if WithField(plain, "ttl") != plain || WithKey(plain, "ca.backdate") != plain {
		t.Error("WithField or WithKey changed an internal error")
	}
	if WithField(nil, "ttl") != nil || WithKey(nil, "k") != nil {
		t.Error("WithField or WithKey made an error of nil")
	}
	wrapped := fmt.Errorf("context: %w", orig)
	if WithField(wrapped, "ttl") != wrapped {
		t.Error("WithField changed a wrapped *Error")
	}
}
