// Package certutil holds the small certificate predicates that the
// verifier side, the client and the CLI share, written once. It imports
// nothing of ours.
package certutil

import (
	"bytes"
	"crypto/x509"
)

// SelfSigned reports whether c is a root: issued by itself (issuer and
// subject are the same bytes), with a signature its own key verifies.
func SelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}
