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
