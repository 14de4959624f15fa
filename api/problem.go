package api

// ProblemTypePrefix starts every problem type URI (RFC 9457 §3.1.1): a URN,
// since fleetca has no documentation host to point at. The rest is a
// fault kind's name (internal/fault: "malformed", "unauthorized", ...) or
// one of "http", "methodNotAllowed", "internal".
const ProblemTypePrefix = "urn:fleetca:problem:"

// ProblemContentType is the media type of a problem answer (RFC 9457 §3).
const ProblemContentType = "application/problem+json"

// Problem is an RFC 9457 problem details object, the body of every error
// answer from the CA's own API, with fleetca's extension members hint (what
// to do) and request_id (for a 5xx, what to quote to the operator).
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Hint      string `json:"hint,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}
