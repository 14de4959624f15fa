package proxy

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/fleetca/fleetca/proxy/internal/fastpath"
)

// The headers that carry a client's identity to the upstream. Whatever the
// client sent under these names (or under names that differ only in case
// or in '_' for '-') is removed before the proxy sets its own.
const (
	HeaderDeviceID = "X-Device-Id"             // the client certificate's subject CN: fleetca's device ID
	HeaderSerial   = "X-Client-Cert-Serial"    // its serial, lowercase hex
	HeaderXFCC     = "X-Forwarded-Client-Cert" // Envoy's XFCC: Hash, Subject, URI
	// HeaderKeyID is set for a request authenticated by a device JWT: the
	// kid of the key that signed it, the lowercase hex SHA-256 of the
	// certificate (as XFCC's Hash).
	HeaderKeyID = "X-Device-Key-Id"
)

// identity is what the proxy tells the upstream about a verified client.
// It is computed once per connection; its header values are shared,
// read-only, by every request on the connection.
type identity struct {
	deviceID  string // the leaf's subject CN
	serial    string // lowercase hex
	serialKey string // the connSet key: the serial's magnitude bytes, as a Checker announces it
	keyID     string // the kid of the device JWT the client presented; "" for a client certificate

	hDeviceID, hSerial, hXFCC, hKeyID []string
	// fields are the same headers for the fast path (fastpath.Conn.Header).
	fields []fastpath.Field
}

// newIdentity reads leaf's subject CN, serial, DER, subject and URI SANs;
// the header values only if withHeaders (HTTP mode).
func newIdentity(leaf *x509.Certificate, withHeaders bool) *identity {
	id := &identity{
		deviceID:  headerSafe(leaf.Subject.CommonName),
		serial:    leaf.SerialNumber.Text(16),
		serialKey: string(leaf.SerialNumber.Bytes()),
	}
	if !withHeaders {
		return id
	}
	if id.deviceID != "" {
		id.hDeviceID = []string{id.deviceID}
	}
	id.hSerial = []string{id.serial}
	id.hXFCC = []string{xfccElement(leaf)}
	id.fields = make([]fastpath.Field, 0, 3)
	if id.deviceID != "" {
		id.fields = append(id.fields, fastpath.Field{Name: HeaderDeviceID, Value: id.deviceID})
	}
	id.fields = append(id.fields, fastpath.Field{Name: HeaderSerial, Value: id.serial}, fastpath.Field{Name: HeaderXFCC, Value: id.hXFCC[0]})
	return id
}

// setHeaders replaces any identity header in h with the client's.
func (id *identity) setHeaders(h http.Header) {
	for k := range h {
		if isIdentityHeader(k) {
			delete(h, k)
		}
	}
	if id.hDeviceID != nil {
		h[HeaderDeviceID] = id.hDeviceID
	}
	h[HeaderSerial] = id.hSerial
	h[HeaderXFCC] = id.hXFCC
	if id.hKeyID != nil {
		h[HeaderKeyID] = id.hKeyID
	}
}

// newJWTIdentity is the identity of a request authenticated by a device
// JWT signed with the key of leaf: newIdentity's headers and the kid.
func newJWTIdentity(leaf *x509.Certificate, kid string) *identity {
	id := newIdentity(leaf, true)
	id.hKeyID = []string{kid}
	id.fields = append(id.fields, fastpath.Field{Name: HeaderKeyID, Value: kid})
	return id
}

// isIdentityHeader reports whether a header name is one of ours, ignoring
// case and treating '_' as '-': CGI-style servers (and some frameworks)
// map both to the same variable, so "X_Device_ID" must not slip through.
func isIdentityHeader(k string) bool {
	var want string
	switch len(k) {
	case len(HeaderDeviceID):
		want = HeaderDeviceID
	case len(HeaderSerial):
		want = HeaderSerial
	case len(HeaderXFCC):
		want = HeaderXFCC
	case len(HeaderKeyID):
		want = HeaderKeyID
	default:
		return false
	}
	for i := 0; i < len(k); i++ {
		a, b := lower(k[i]), lower(want[i])
		if a == '_' {
			a = '-'
		}
		if a != b {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// xfccElement renders leaf as one element of Envoy's
// x-forwarded-client-cert header
// (https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_conn_man/headers#x-forwarded-client-cert):
//
//	Hash=<hex SHA-256 of the DER>;Subject="<RFC 2253 subject>";URI=<URI SAN>
//
// Subject is always double-quoted, as Envoy does; its RFC 2253 form
// already escapes '"' and '\' with a backslash, which is the escaping
// Envoy asks for. A URI is quoted only if it holds ',', ';', '=' or '"'.
// One URI pair is written per URI SAN (a fleetca device has one). The
// optional By, Cert, Chain and DNS keys are not sent.
func xfccElement(leaf *x509.Certificate) string {
	sum := sha256.Sum256(leaf.Raw)
	var b strings.Builder
	b.Grow(128)
	b.WriteString("Hash=")
	b.WriteString(hex.EncodeToString(sum[:]))
	b.WriteString(`;Subject="`)
	b.WriteString(headerSafe(rfc2253(leaf)))
	b.WriteByte('"')
	for _, u := range leaf.URIs {
		b.WriteString(";URI=")
		b.WriteString(xfccValue(headerSafe(u.String())))
	}
	return b.String()
}

// rfc2253 is the subject in RFC 2253 form, in the certificate's own RDN
// order (last RDN first), as OpenSSL's XN_FLAG_RFC2253 and so Envoy print
// it. pkix.Name.String would reorder the attributes.
func rfc2253(cert *x509.Certificate) string {
	var rdns pkix.RDNSequence
	if rest, err := asn1.Unmarshal(cert.RawSubject, &rdns); err == nil && len(rest) == 0 {
		return rdns.String()
	}
	return cert.Subject.String()
}

// xfccValue quotes v if XFCC's separators appear in it.
func xfccValue(v string) string {
	if !strings.ContainsAny(v, `,;="`) {
		return v
	}
	return `"` + strings.ReplaceAll(v, `"`, `\"`) + `"`
}

// headerSafe escapes the bytes an HTTP header value may not hold (controls
// other than tab, and DEL) as RFC 4514 hex pairs (\0a), so that a strange
// certificate cannot split or break a header. A fleetca device's names
// never have any.
func headerSafe(s string) string {
	i := 0
	for i < len(s) && !isCTL(s[i]) {
		i++
	}
	if i == len(s) {
		return s
	}
	const hexDigits = "0123456789abcdef"
	var b strings.Builder
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		if c := s[i]; isCTL(c) {
			b.WriteByte('\\')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isCTL(c byte) bool { return (c < 0x20 && c != '\t') || c == 0x7f }
