package fastpath

import (
	"bytes"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// requestHead is an HTTP/1.1 request head that the fast path serves
// itself. Its strings point into the head it was parsed from.
type requestHead struct {
	method string
	path   string // the request target up to '?': only plain bytes (see plainPathByte)
	query  string // the rest of the target from '?' on, as sent; "" without '?'
	host   string // the one Host header
	close  bool   // Connection: close
	// fields are the header lines in the order sent, Host included, with
	// canonical names (textproto.CanonicalMIMEHeaderKey) and values
	// without leading or trailing blanks, as net/http's server reads them.
	fields []Field
}

// Field is one header line.
type Field struct{ Name, Value string }

// maxQueryParams is ReverseProxy's bound on query parameters: a query
// with more is re-encoded (httputil's cleanQueryParams), so it takes the
// slow path.
const maxQueryParams = 10000

// parseRequestHead parses head, a request line and header lines up to and
// including the empty line that ends them, into rh (reusing rh.fields),
// and reports whether the fast path serves the request. It accepts only a
// subset of what net/http's server accepts, and reads it the way net/http
// does, so that serving it here is indistinguishable from the slow path
// (http.Server and httputil.ReverseProxy):
//
//   - the request line is "GET|HEAD|OPTIONS|TRACE <origin-form> HTTP/1.1"
//     with single spaces: the methods that have no body and that a
//     pooled upstream connection may retry;
//   - the target's path has only bytes that url.ParseRequestURI keeps as
//     they are and URL.EscapedPath does not escape (no '%'), so its raw
//     form is its decoded form; its query has only printable ASCII but
//     '#' and ';', well-formed %XX escapes and at most 10000 parameters,
//     which ReverseProxy passes on untouched;
//   - every line ends in CRLF; no line is folded (obs-fold); names are
//     RFC 9110 tokens followed at once by ':'; values hold no control
//     byte but HTAB (RFC 9110 §5.5);
//   - there is exactly one Host header, non-empty and valid
//     (httpguts.ValidHostHeader);
//   - no body: no Transfer-Encoding, and a Content-Length only if it is
//     one header "0";
//   - no Expect (100-continue is net/http's to answer) and no Upgrade,
//     nor "upgrade" in Connection (protocol switches are ReverseProxy's).
//
// Anything else, malformed requests included, is net/http's to serve or
// refuse (400, 431, 501, ...): the caller hands it the connection.
func parseRequestHead(head string, rh *requestHead) bool {
	*rh = requestHead{fields: rh.fields[:0]}
	line, rest, ok := strings.Cut(head, "\r\n")
	if !ok || !parseRequestLine(line, rh) {
		return false
	}
	hosts := 0
	for {
		line, rest, ok = strings.Cut(rest, "\r\n")
		if !ok {
			return false
		}
		if line == "" {
			break
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !validToken(name) {
			return false
		}
		value = strings.Trim(value, " \t")
		for i := 0; i < len(value); i++ {
			if c := value[i]; (c < ' ' && c != '\t') || c == 0x7f {
				return false
			}
		}
		name = http.CanonicalHeaderKey(name)
		switch name {
		case "Host":
			hosts++
			rh.host = value
		case "Content-Length":
			if value != "0" {
				return false
			}
		case "Transfer-Encoding", "Expect", "Upgrade":
			return false
		case "Connection":
			if httpguts.HeaderValuesContainsToken([]string{value}, "upgrade") {
				return false
			}
			if httpguts.HeaderValuesContainsToken([]string{value}, "close") {
				rh.close = true
			}
		}
		rh.fields = append(rh.fields, Field{name, value})
	}
	if rest != "" || hosts != 1 || rh.host == "" || !httpguts.ValidHostHeader(rh.host) {
		return false
	}
	// Two Content-Length headers, even equal, are net/http's to merge.
	n := 0
	for _, f := range rh.fields {
		if f.Name == "Content-Length" {
			n++
		}
	}
	return n <= 1
}

// parseRequestLine reads "METHOD TARGET HTTP/1.1" into rh.
func parseRequestLine(line string, rh *requestHead) bool {
	method, rest, ok := strings.Cut(line, " ")
	if !ok {
		return false
	}
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
	default:
		return false
	}
	target, proto, ok := strings.Cut(rest, " ")
	if !ok || proto != "HTTP/1.1" || target == "" || target[0] != '/' {
		return false
	}
	path, query, hasQuery := strings.Cut(target, "?")
	for i := 0; i < len(path); i++ {
		if !plainPathByte(path[i]) {
			return false
		}
	}
	if hasQuery && !plainQuery(query) {
		return false
	}
	rh.method = method
	rh.path = path
	rh.query = target[len(path):]
	return true
}

// plainPathByte reports whether c may appear in a fast-path request path:
// the bytes for which url.ParseRequestURI sets URL.Path to the raw path
// with an empty URL.RawPath, and URL.EscapedPath gives it back unchanged
// (TestPlainPathBytes checks it against net/url).
func plainPathByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("$&+,-./:;=@_~", c) >= 0
}

// plainQuery reports whether ReverseProxy passes q (without its '?') on
// unchanged: httputil's cleanQueryParams re-encodes a query with ';', a
// malformed escape or too many parameters. It also keeps to printable
// ASCII without '#'.
func plainQuery(q string) bool {
	params := 1
	for i := 0; i < len(q); i++ {
		switch c := q[i]; {
		case c <= ' ' || c >= 0x7f || c == '#' || c == ';':
			return false
		case c == '&':
			params++
		case c == '%':
			if i+2 >= len(q) || !isHex(q[i+1]) || !isHex(q[i+2]) {
				return false
			}
		}
	}
	return params <= maxQueryParams
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// validToken reports whether s is an RFC 9110 token (a header name).
func validToken(s string) bool {
	return s != "" && httpguts.ValidHeaderFieldName(s)
}

// headEnd returns the length of the request head at the start of b (up to
// and including the first empty line, which ends in LF or CRLF), or 0 if
// b does not hold all of it. The search starts at from, a length of b
// already searched.
func headEnd(b []byte, from int) int {
	// Back up to the start of the line that from is in.
	i := from
	for i > 0 && b[i-1] != '\n' {
		i--
	}
	for i < len(b) {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return 0
		}
		if j == 0 || (j == 1 && b[i] == '\r') {
			return i + j + 1
		}
		i += j + 1
	}
	return 0
}
