// Package fault holds the errors a user of fleetca can see and act on.
//
// # Basics
//
// A *Error has a Kind (what sort of mistake: Malformed, Unauthorized,
// NotFound, ...), a Detail (what was wrong, naming the offending value
// where that is safe) and a Hint (what to do). Packages below web (ca,
// enroll, revocation, export, api's parsers) return a *Error for anything
// the caller caused or can fix, and a plain error, wrapped with %w, for
// anything else: that is internal, logged and never shown.
//
// The front ends render a *Error, and only they do: web maps its Kind to an
// RFC 9457 problem (the one table is in web/problem.go), the CLI prints it
// as one line, "fleetca: <detail> (<hint>)". Err, the cause, is kept for
// errors.Is/As and for logs; it is not shown.
//
// # Hints speak the domain
//
// The same *Error reaches an API client as problem JSON and an operator as
// a CLI line, so Detail and Hint are written in the raiser's own terms: a
// hint names the request field ("ttl", "device_id") or the configuration
// key as fleetca.yaml spells it ("ca.device_validity", "password_file"),
// never a command-line flag or an environment variable.
//
// Field and Key say the same in machine-readable form: the request field,
// or the configuration key, the error is about. A front end that has its
// own name for that input adds it beside the hint, from Field or Key:
//
//   - web puts a JSON pointer to the request member in the problem
//     ("pointer": "#/ttl"), and package client turns it back into Field;
//   - the CLI adds the flag or environment variable that sets it
//     ("... (raise enroll.max_token_ttl; flag --ttl)").
//
// RetryAfter, on a RateLimited (or Unavailable) error, says how long to
// wait: web sends it as the Retry-After header, and package client reads
// it back.
//
// Nobody rewrites Detail or Hint on the way: they are the raiser's, whole.
// WithField and WithKey name the input on an error a parser returned (the
// parsers in package api do not know which field they were given).
//
// # Invariants
//
//   - Every *Error names one of Kinds; the zero Kind is never used.
//   - Detail and Hint never hold a token, key, password or secret-bearing
//     URL, and never the text of another error copied in: a cause is
//     wrapped (Wrap), not flattened.
//   - errors.Is(err, &Error{Kind: k}) tests the kind alone; KindOf finds
//     the first *Error in a chain.
//
// This package has no logic beyond that and imports nothing of ours.
package fault
