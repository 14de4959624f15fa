package api

import (
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/fleetca/fleetca/internal/fault"
)

// DeviceID names one device: 1 to 64 characters of A-Z a-z 0-9 . _ -,
// the first a letter or digit ([A-Za-z0-9][A-Za-z0-9._-]{0,63}). It is the
// subject CN of the device's certificates and the last segment of its
// SPIFFE ID (DeviceSPIFFEID).
//
// A DeviceID that ParseDeviceID returned holds to that rule. A conversion
// (DeviceID(s)) checks nothing, so a package that signs what a caller
// hands it (ca) checks the value again with ParseDeviceID: the rule is
// written here once, wherever it is applied.
type DeviceID string

// MaxDeviceIDLen is the longest device ID. fleetca's first design allowed
// 128, but the device ID is the certificate's subject CN, and RFC 5280
// Appendix A bounds a CN at ub-common-name = 64 characters (zlint
// e_subject_common_name_max_length).
const MaxDeviceIDLen = 64

// DeviceIDHint says what a device ID may be, for the hint of an error
// about one.
const DeviceIDHint = "device IDs are 1 to 64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit"

// ParseDeviceID checks s against the device ID rule and returns it as a
// DeviceID. A refusal is a *fault.Error of kind Malformed whose detail
// names the first problem (empty, too long, or the offending character
// and its position) and whose hint is DeviceIDHint. It names no field:
// the caller knows which request field or name it parsed, and says so
// with fault.WithField, or turns the kind into its own (a CSR's common
// name is BadCSR).
func ParseDeviceID(s string) (DeviceID, error) {
	switch {
	case s == "":
		return "", fault.New(fault.Malformed, "the device ID is empty", DeviceIDHint)
	case len(s) > MaxDeviceIDLen:
		return "", fault.New(fault.Malformed,
			fmt.Sprintf("the device ID is %d characters long, more than %d", len(s), MaxDeviceIDLen), DeviceIDHint)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if alnum || i > 0 && (c == '.' || c == '_' || c == '-') {
			continue
		}
		r, _ := utf8.DecodeRuneInString(s[i:])
		return "", fault.New(fault.Malformed,
			fmt.Sprintf("the device ID %q has %q at position %d", s, r, i+1), DeviceIDHint)
	}
	return DeviceID(s), nil
}

// String returns the device ID as it is written everywhere.
func (id DeviceID) String() string { return string(id) }

// TrustDomain is a SPIFFE trust domain: the authority part of the SPIFFE
// IDs in the device certificates of one CA ("fleet.example.net").
//
// The rule is SPIFFE-ID §2.1 (lowercase letters, digits, '.', '-' and '_')
// with SPIFFE's bound of 255 bytes, and also no empty label: a leading,
// trailing or doubled dot is refused. That is the stricter of the two
// rules fleetca had (ca refused empty labels, enroll did not); every name
// it accepts is a valid SPIFFE trust domain, and a DNS-like one.
//
// As with DeviceID, a conversion checks nothing; ParseTrustDomain does.
type TrustDomain string

// MaxTrustDomainLen is the longest trust domain, in bytes (SPIFFE-ID §2.1).
const MaxTrustDomainLen = 255

// TrustDomainHint says what a trust domain may be, for the hint of an
// error about one.
const TrustDomainHint = "a trust domain is lowercase letters, digits, '.', '-' and '_' in non-empty dot-separated labels, at most 255 bytes, like fleet.example.com"

// ParseTrustDomain checks s against the trust domain rule and returns it as
// a TrustDomain. A refusal is a *fault.Error of kind Malformed naming the
// first problem, with TrustDomainHint; like ParseDeviceID it names no
// field or configuration key, which is the caller's to add.
func ParseTrustDomain(s string) (TrustDomain, error) {
	switch {
	case s == "":
		return "", fault.New(fault.Malformed, "the trust domain is empty", TrustDomainHint)
	case len(s) > MaxTrustDomainLen:
		return "", fault.New(fault.Malformed,
			fmt.Sprintf("the trust domain is %d bytes long, more than %d", len(s), MaxTrustDomainLen), TrustDomainHint)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_' {
			continue
		}
		r, _ := utf8.DecodeRuneInString(s[i:])
		return "", fault.New(fault.Malformed,
			fmt.Sprintf("the trust domain %q has %q, which a SPIFFE trust domain does not allow", s, r), TrustDomainHint)
	}
	if strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") || strings.Contains(s, "..") {
		return "", fault.New(fault.Malformed,
			fmt.Sprintf("the trust domain %q has an empty label (a leading, trailing or doubled dot)", s), TrustDomainHint)
	}
	return TrustDomain(s), nil
}

// String returns the trust domain as it is written everywhere.
func (td TrustDomain) String() string { return string(td) }

// deviceSPIFFEPath starts the path of every device's SPIFFE ID.
const deviceSPIFFEPath = "/device/"

// DeviceSPIFFEID returns the SPIFFE ID a device certificate carries as its
// one URI SAN (SPIFFE X509-SVID §2): spiffe://<td>/device/<id>. For a
// parsed td and id it needs no escaping, and its String is
// DeviceSPIFFEIDPrefix(td) + id: device IDs are valid SPIFFE path segments
// (SPIFFE-ID §2.2), never "." or "..", since they start with a letter or
// digit. This is the one place the form is written; nothing in fleetca
// parses it back (the device ID is read from the CN).
func DeviceSPIFFEID(td TrustDomain, id DeviceID) *url.URL {
	return &url.URL{Scheme: "spiffe", Host: string(td), Path: deviceSPIFFEPath + string(id)}
}

// DeviceSPIFFEIDPrefix returns what the SPIFFE ID of every device of td
// starts with, "spiffe://<td>/device/": what a verifier matches to admit
// the fleet's devices and no other SVID of the trust domain (Envoy's
// match_typed_subject_alt_names prefix).
func DeviceSPIFFEIDPrefix(td TrustDomain) string {
	return "spiffe://" + string(td) + deviceSPIFFEPath
}
