// Package api is fleetca's public contract as Go types: what crosses the
// wire between the CA and its clients and verifiers, and the identity
// formats a device certificate carries.
//
// # Basics
//
// Both ends use these definitions and no others: the CA's HTTP handlers
// (package web) encode them, and the client package, the verifier package
// (verify) and the reference proxy decode them. A change here is a change
// of the wire format, so fields are only ever added. enroll.go holds the
// enrollment call, renew.go renewal (the call, renewal-info, the renewal
// token), admin.go the admin API's requests and answers, problem.go the
// problem document every error answer is (RFC 9457) and its pointer to a
// request member, feed.go the revocation feed (path, query, JSON, wait
// limits), paths.go the plain-HTTP listener's paths that verifiers fetch,
// reason.go the RFC 5280 reasons, step.go the step CLI's routes and
// their JSON (smallstep/certificates' shapes, not fleetca's).
//
// identity.go holds the identity formats, each rule written once:
// DeviceID and TrustDomain with their parsers (ParseDeviceID,
// ParseTrustDomain), and the device's SPIFFE ID
// spiffe://<trust domain>/device/<device ID> (DeviceSPIFFEID).
//
// # Invariants
//
// This package is a leaf: it imports nothing of ours but internal/fault,
// and holds no I/O and no state. Anything that parses untrusted input
// (a device ID, a trust domain) returns a *fault.Error of an input kind.
package api
