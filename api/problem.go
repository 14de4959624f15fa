package api

import "strings"

// ProblemTypePrefix starts every problem type URI (RFC 9457 §3.1.1): a URN,
// since fleetca has no documentation host to point at. The rest is a
// fault kind's name (internal/fault: "malformed", "unauthorized", ...) or
// one of "http", "methodNotAllowed", "internal".
const ProblemTypePrefix = "urn:fleetca:problem:"

// ProblemContentType is the media type of a problem answer (RFC 9457 §3).
const ProblemContentType = "application/problem+json"

// Problem is an RFC 9457 problem details object, the body of every error
// answer from the CA's own API, with fleetca's extension members hint (what
// to do), pointer (which request member it is about) and request_id (for a
// 5xx, what to quote to the operator).
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	Hint   string `json:"hint,omitempty"`
	// Pointer is a JSON Pointer (RFC 6901) in URI fragment form, as in
	// RFC 9457 §3's example ("#/ttl"), to the member of the request body
	// the problem is about, when it is about one. It is the wire form of
	// fault.Error.Field: web writes it, package client reads it back.
	Pointer   string `json:"pointer,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// FieldPointer returns the Pointer to the top-level request member field
// ("ttl" -> "#/ttl"), "" for "".
func FieldPointer(field string) string {
	if field == "" {
		return ""
	}
	return "#/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(field)
}

// PointerField returns the top-level request member a Pointer names
// ("#/ttl" -> "ttl"), and false for "" or any other pointer.
func PointerField(pointer string) (string, bool) {
	rest, ok := strings.CutPrefix(pointer, "#/")
	if !ok || rest == "" || strings.Contains(rest, "/") {
		return "", false
	}
	return strings.NewReplacer("~1", "/", "~0", "~").Replace(rest), true
}
