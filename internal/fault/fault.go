package fault

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies an error a user can see. The zero value is not a valid
// kind: every *Error names one of the constants below.
type Kind int

// The kinds. Their HTTP mapping lives in web/problem.go, nowhere else.
const (
	_ Kind = iota
	// Malformed: the request could not be decoded (bad JSON, bad PEM, wrong
	// content type, a missing field).
	Malformed
	// BadCSR: the CSR decoded but is unacceptable (bad signature, names
	// that are not the device's).
	BadCSR
	// BadKey: the public key is of a refused type or strength.
	BadKey
	// Unauthorized: no credential, or one that is unknown, expired, revoked
	// or used up.
	Unauthorized
	// Forbidden: a valid credential that does not allow this request.
	Forbidden
	// NotFound: the named thing does not exist.
	NotFound
	// Conflict: the request collides with existing state.
	Conflict
	// AlreadyRevoked: the certificate or device was revoked before.
	AlreadyRevoked
	// TooLarge: the request body or a field is over its limit.
	TooLarge
	// Unavailable: the service cannot do this now (a key is offline, the
	// store is closing); trying later may work.
	Unavailable
	// RateLimited: the request is allowed, but not this often (a device
	// that renewed moments ago); Error.RetryAfter says when to try again.
	RateLimited
)

// Kinds lists every valid Kind, for tables that must cover them all.
var Kinds = []Kind{Malformed, BadCSR, BadKey, Unauthorized, Forbidden, NotFound, Conflict, AlreadyRevoked, TooLarge, Unavailable, RateLimited}

var kindNames = map[Kind]string{
	Malformed:      "malformed",
	BadCSR:         "badCSR",
	BadKey:         "badKey",
	Unauthorized:   "unauthorized",
	Forbidden:      "forbidden",
	NotFound:       "notFound",
	Conflict:       "conflict",
	AlreadyRevoked: "alreadyRevoked",
	TooLarge:       "tooLarge",
	Unavailable:    "unavailable",
	RateLimited:    "rateLimited",
}

// String returns the kind's camelCase name, as used in problem type URIs.
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Error is an error a user can see and act on.
type Error struct {
	// Kind classifies the error.
	Kind Kind
	// Detail is a sentence saying what was wrong, naming the offending
	// value where that is safe (never a token, key or password).
	Detail string
	// Hint is a sentence saying what to do about it; may be empty. It
	// speaks the raiser's language: a request field or a configuration
	// key, never a command-line flag or an environment variable.
	Hint string
	// Field is the request field the error is about, as the request names
	// it ("ttl", "device_id"), when it is about one; "" otherwise. Front
	// ends point at it in their own terms: web as a JSON pointer in the
	// problem, the CLI as the flag that sets it.
	Field string
	// Key is the configuration key the error is about, as fleetca.yaml
	// names it, dotted ("ca.device_validity", "password_file"), when it
	// is about one; "" otherwise. The CLI adds the flag or environment
	// variable that stands in for it, if there is one.
	Key string
	// RetryAfter, if positive, is how long the caller should wait before
	// trying again (a RateLimited or Unavailable error); web sends it as
	// the Retry-After header, and package client reads it back.
	RetryAfter time.Duration
	// Err is the underlying cause, if any; it is not shown to users.
	Err error
}

// New returns an *Error of kind with the given detail and hint.
func New(kind Kind, detail, hint string) *Error {
	return &Error{Kind: kind, Detail: detail, Hint: hint}
}

// Wrap is New with an underlying cause kept for errors.Is/As and logs.
func Wrap(err error, kind Kind, detail, hint string) *Error {
	return &Error{Kind: kind, Detail: detail, Hint: hint, Err: err}
}

// WithField returns err naming field as the request field it is about: a
// copy of err with Field set, if err is a *Error; err itself otherwise (nil,
// an internal error, or a *Error wrapped in another error).
func WithField(err error, field string) error {
	e, ok := err.(*Error)
	if !ok {
		return err
	}
	c := *e
	c.Field = field
	return &c
}

// WithKey returns err naming key as the configuration key it is about: a
// copy of err with Key set, if err is a *Error; err itself otherwise.
func WithKey(err error, key string) error {
	e, ok := err.(*Error)
	if !ok {
		return err
	}
	c := *e
	c.Key = key
	return &c
}

// Error returns "detail (hint)", the one-line form logs and tests see.
// Field and Key are not in it: they are for front ends to render.
func (e *Error) Error() string {
	if e.Hint == "" {
		return e.Detail
	}
	return e.Detail + " (" + e.Hint + ")"
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is a *Error of the same Kind and nothing else
// set, so that errors.Is(err, &fault.Error{Kind: fault.BadKey}) tests the
// kind.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Kind == e.Kind && t.Detail == "" && t.Hint == "" && t.Field == "" && t.Key == "" && t.RetryAfter == 0 && t.Err == nil
}

// KindOf returns the Kind of the first *Error in err's chain, and false if
// there is none (the error is internal).
func KindOf(err error) (Kind, bool) {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Kind, true
	}
	return 0, false
}
