// Package redact makes values safe to log. Verifiers log the CA's URLs
// they were given (--crl-url, --url, --revocation-feed, an upstream), and
// such a URL may carry credentials (user:password@) or a token in its
// query; URL drops what may be secret and keeps what an operator needs to
// recognise the URL.
//
// # Invariants
//
//   - For an absolute URL, what URL returns holds no userinfo, query or
//     fragment of it.
//   - A string that does not parse as an absolute URL (a file path) is
//     returned as it is: callers log only what they were configured with.
//
// It imports nothing of ours.
package redact
