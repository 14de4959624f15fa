package enroll

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.step.sm/crypto/jose"
	"go.step.sm/crypto/x509util"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// MaxRenewalTokenBytes bounds a renewal token: a leaf and an intermediate
// in its header, base64 twice over, are a few KiB even with RSA 8192 keys.
const MaxRenewalTokenBytes = 32 << 10

// maxJTILen bounds a renewal token's jti.
const maxJTILen = 256

// renewalTokenHint is the hint of every refused renewal token.
const renewalTokenHint = "sign a new renewal token with the certificate's key: x5c = the certificate and its chain, " +
	"sub = the device ID, aud = this CA's renew URL, exp at most 5 minutes after iat"

// renewalToken is a renewal token that passed every check but the store's
// (that it was not used before).
type renewalToken struct {
	// leaf is the certificate the token renews, verified to the fleet's
	// intermediate as of its own validity, or proved by its record.
	leaf *x509.Certificate
	// nonce spends the token: remembered until it could not be accepted
	// anyway.
	nonce store.Nonce
	// record is the store's record of leaf when verify proved the leaf by
	// it (see tokenVerifier.recorded), so that Renew need not read it
	// again; nil when the chain was verified by its signatures.
	record *store.Certificate
}

// recordLookup reads the store's record of the certificate with a serial;
// false if there is none or it cannot be read (the token is then checked
// by its chain's signatures, and the read is left to Renew).
type recordLookup func(serial *big.Int) (store.Certificate, bool)

// tokenVerifier checks renewal tokens (api.RenewalTokenClaims): the
// fleet's trust anchors and the URLs a token may name.
type tokenVerifier struct {
	// issuer holds the intermediate alone, as the anchor of a device
	// certificate's chain: one signature to check, not two (the root's
	// over the intermediate proves nothing new about a leaf the
	// intermediate signed).
	issuer *x509.CertPool
	// inter is the intermediate of issuer, for proving a leaf by its
	// record (recorded); nil leaves only the signature check.
	inter *x509.Certificate
	// none is an empty pool, never added to (see unverifiedLeaf).
	none      *x509.CertPool
	audiences []audience
}

// newTokenVerifier returns the verifier of the renewal tokens of the
// devices under the intermediate inter. Leaves are proved by their record
// (recorded) only under an intermediate for which that proves what x509's
// verification would: its key identifier is derived from its key (so a
// leaf's authority key identifier names that key, not another with the
// same name), it may sign certificates, its extended key usages allow
// clientAuth as x509 reads them, and it has no name constraints and no
// critical extension x509 does not handle. Under any other (an
// operator's ca.intermediate_cert may be anything with IsCA) every leaf is
// verified by its chain's signatures.
func newTokenVerifier(inter *x509.Certificate, auds []audience) *tokenVerifier {
	v := &tokenVerifier{issuer: x509.NewCertPool(), none: x509.NewCertPool(), audiences: auds}
	v.issuer.AddCert(inter)
	if recordProves(inter) {
		v.inter = inter
	}
	return v
}

// recordProves reports whether a leaf that names inter as its issuer
// (name and key identifier) and is byte for byte a certificate this CA
// recorded was signed by inter's key for a use x509 would let inter
// vouch for (newTokenVerifier).
func recordProves(inter *x509.Certificate) bool {
	ski, err := x509util.GenerateSubjectKeyID(inter.PublicKey)
	eku := len(inter.ExtKeyUsage) == 0 && len(inter.UnknownExtKeyUsage) == 0 ||
		slices.Contains(inter.ExtKeyUsage, x509.ExtKeyUsageClientAuth) || slices.Contains(inter.ExtKeyUsage, x509.ExtKeyUsageAny)
	return err == nil && len(inter.SubjectKeyId) > 0 && bytes.Equal(inter.SubjectKeyId, ski) &&
		inter.BasicConstraintsValid && inter.IsCA &&
		(inter.KeyUsage == 0 || inter.KeyUsage&x509.KeyUsageCertSign != 0) && eku &&
		!hasNameConstraints(inter) && len(inter.UnhandledCriticalExtensions) == 0
}

// audience is one URL a renewal token's aud may name.
type audience struct {
	host, port, path string
}

// parseAudiences parses Config.RenewURLs: absolute https URLs with a host
// and a path, without user info, query or fragment.
func parseAudiences(urls []string) ([]audience, error) {
	var out []audience
	for _, s := range urls {
		u, err := url.Parse(s)
		if err != nil || u.Scheme != "https" || u.Hostname() == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Path == "" {
			return nil, fault.New(fault.Malformed, fmt.Sprintf("the renew URL %q is not an https URL with a host and a path", s),
				"name the HTTPS listener's hosts in server.dns and server.https_addr")
		}
		out = append(out, audience{host: strings.ToLower(u.Hostname()), port: u.Port(), path: u.Path})
	}
	return out, nil
}

// matches reports whether a token's aud names a: same scheme (https),
// host and path, and the same port or none.
func (a audience) matches(u *url.URL) bool {
	return u.Scheme == "https" && strings.ToLower(u.Hostname()) == a.host && (u.Port() == a.port || u.Port() == "") &&
		u.Path == a.path && u.User == nil && u.RawQuery == "" && u.Fragment == ""
}

// verify checks a renewal token at now, in this order: size and form
// (a compact JWS, parsed by go.step.sm/crypto/jose); the certificate chain
// in its header (x5c, or step's x5cInsecure), verified to the fleet's
// intermediate alone as of the leaf's own validity (NotAfter - 1 min,
// as step-ca does, so that expiry alone does not fail it) for clientAuth
// and digitalSignature; the signature by the leaf's key, with an algorithm
// that fits it; sub = the leaf's CN (its device ID); aud = one of the
// audiences; iat and exp present, exp - iat at most
// api.RenewalTokenMaxLifetime; iat and nbf not after now +
// api.RenewalTokenSkew, exp not before now - api.RenewalTokenSkew. Whether
// the leaf may still renew (expired, revoked, the newest) is the caller's
// question. Every refusal is fault.Unauthorized, and never repeats the
// token.
//
// The chain is proved by the store's record of its leaf when lookup
// finds one equal to it byte for byte (see recorded), and by its
// signatures otherwise; lookup may be nil.
//
// The token is spent by its jti (with the leaf's serial) or, without a
// jti, by its signed payload: a hash of the whole token would let a
// re-encoded signature (ECDSA's (r, n-s)) pass as a new token.
func (v *tokenVerifier) verify(raw string, now time.Time, lookup recordLookup) (*renewalToken, error) {
	bad := func(err error, detail string) error {
		return fault.Wrap(err, fault.Unauthorized, detail, renewalTokenHint)
	}
	if len(raw) > MaxRenewalTokenBytes {
		return nil, bad(nil, fmt.Sprintf("the renewal token is %d bytes, more than %d", len(raw), MaxRenewalTokenBytes))
	}
	if strings.HasPrefix(strings.TrimSpace(raw), "{") {
		return nil, bad(nil, "the renewal token is a JWS in JSON form; send the compact form")
	}
	tok, err := jose.ParseSigned(raw)
	if err != nil {
		return nil, bad(err, "the renewal token is not a signed JWT")
	}
	if len(tok.Headers) != 1 {
		return nil, bad(nil, "the renewal token has more than one signature")
	}
	h := tok.Headers[0]
	// The token's signature by its leaf's key is checked before the leaf
	// is proved (by its record or by its chain's signatures), so that a
	// forged token costs one verification and no store read.
	var claims jose.Claims
	signedBy := func(c *x509.Certificate) error {
		if c.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
			return bad(nil, "the renewal token's certificate may not sign")
		}
		if !algorithmFits(h.Algorithm, c.PublicKey) {
			return bad(nil, fmt.Sprintf("the renewal token's algorithm %q does not fit the certificate's key", h.Algorithm))
		}
		if err := jose.Verify(tok, c.PublicKey, &claims); err != nil {
			return bad(err, "the renewal token's signature does not verify with the certificate's key")
		}
		return nil
	}
	var rec *store.Certificate
	leaf, at := v.firstCertificate(h, now)
	if leaf != nil {
		if err := signedBy(leaf); err != nil {
			return nil, err
		}
		if rec = v.recorded(leaf, at, lookup); rec == nil {
			proved, err := v.leaf(h, now)
			if err != nil {
				return nil, err
			}
			if !bytes.Equal(proved.Raw, leaf.Raw) {
				return nil, bad(nil, "the renewal token's chain does not start with the certificate that signed it")
			}
		}
	} else {
		if leaf, err = v.leaf(h, now); err != nil {
			return nil, err
		}
		if err := signedBy(leaf); err != nil {
			return nil, err
		}
	}

	device := leaf.Subject.CommonName
	if _, err := api.ParseDeviceID(device); err != nil {
		return nil, bad(err, "the renewal token's certificate does not name a device")
	}
	if claims.Subject != device {
		return nil, bad(nil, fmt.Sprintf("the renewal token's sub %q is not the certificate's device %q", truncate(claims.Subject), device))
	}
	if !v.audienceOK(claims.Audience) {
		return nil, bad(nil, fmt.Sprintf("the renewal token's aud %q is not this CA's renew URL", truncate(strings.Join(claims.Audience, " "))))
	}
	if claims.IssuedAt == nil || claims.Expiry == nil {
		return nil, bad(nil, "the renewal token has no iat or no exp")
	}
	iat, exp := claims.IssuedAt.Time(), claims.Expiry.Time()
	switch {
	case exp.Before(iat):
		return nil, bad(nil, "the renewal token's exp is before its iat")
	case exp.Sub(iat) > api.RenewalTokenMaxLifetime:
		return nil, bad(nil, fmt.Sprintf("the renewal token lives %s (exp - iat), more than %s", exp.Sub(iat), api.RenewalTokenMaxLifetime))
	case iat.After(now.Add(api.RenewalTokenSkew)):
		return nil, bad(nil, fmt.Sprintf("the renewal token was issued at %s, in the future by this CA's clock", iat.UTC().Format(time.RFC3339)))
	case claims.NotBefore != nil && claims.NotBefore.Time().After(now.Add(api.RenewalTokenSkew)):
		return nil, bad(nil, fmt.Sprintf("the renewal token is not valid before %s", claims.NotBefore.Time().UTC().Format(time.RFC3339)))
	case now.After(exp.Add(api.RenewalTokenSkew)):
		return nil, bad(nil, fmt.Sprintf("the renewal token expired at %s", exp.UTC().Format(time.RFC3339)))
	case len(claims.ID) > maxJTILen:
		return nil, bad(nil, fmt.Sprintf("the renewal token's jti is longer than %d characters", maxJTILen))
	}

	var key []byte
	if claims.ID != "" {
		key = fmt.Appendf(nil, "fleetca renewal token jti\x00%s\x00%s", leaf.SerialNumber.Text(16), claims.ID)
	} else {
		// The payload whose signature Verify checked, as it decoded it
		// (a token without a jti is rare: step's renewal tokens).
		var payload json.RawMessage
		if err := tok.UnsafeClaimsWithoutVerification(&payload); err != nil {
			return nil, bad(err, "the renewal token's claims are not JSON")
		}
		key = append([]byte("fleetca renewal token payload\x00"), payload...)
	}
	return &renewalToken{leaf: leaf, record: rec, nonce: store.Nonce{Hash: sha256.Sum256(key), Expires: exp.Add(api.RenewalTokenSkew)}}, nil
}

// firstCertificate returns the first certificate of a token's chain (x5c
// or x5cInsecure), unverified, and the time its chain would be verified
// at (now, or its NotAfter - 1 min when it has expired or comes as
// x5cInsecure, as leaf explains); nil when go-jose does not hand it out
// unverified (see unverifiedLeaf), which leaves the chain to leaf.
func (v *tokenVerifier) firstCertificate(h jose.Header, now time.Time) (*x509.Certificate, time.Time) {
	if _, insecure := h.ExtraHeaders[jose.HeaderKey(jose.X5cInsecureKey)]; insecure {
		certs, err := jose.GetX5cInsecureHeader(&jose.JSONWebToken{Headers: []jose.Header{h}})
		if err != nil || len(certs) == 0 {
			return nil, now
		}
		return certs[0], certs[0].NotAfter.Add(-time.Minute)
	}
	c := v.unverifiedLeaf(h, now)
	if c == nil {
		return nil, now
	}
	if !within(c, now) {
		return c, c.NotAfter.Add(-time.Minute)
	}
	return c, now
}

// recorded returns the store's record of c, a token's leaf whose chain
// would be verified at at, when the record proves what c's verification
// to the intermediate would: c is, byte for byte, a certificate this CA
// issued and recorded (only this CA writes its records, so a leaf that
// was altered or re-signed by another key cannot equal one), its issuer
// is the intermediate (name, and the key identifier that newTokenVerifier
// checked is derived from the intermediate's key), and at at it and the
// intermediate are within their validity, c for clientAuth, with no
// critical extension x509 does not handle. That spares an ECDSA
// verification and x509's chain building per token renewal; Renew reads
// the record anyway. The token's signature by c's key and every other
// rule are checked as before.
//
// It returns nil when any of this does not hold: the caller then verifies
// the chain by its signatures (leaf), as for any certificate this CA did
// not record, and refuses it as before.
func (v *tokenVerifier) recorded(c *x509.Certificate, at time.Time, lookup recordLookup) *store.Certificate {
	inter := v.inter
	if lookup == nil || inter == nil {
		return nil
	}
	switch {
	case !within(c, at) || !within(inter, at),
		!bytes.Equal(c.RawIssuer, inter.RawSubject),
		len(c.AuthorityKeyId) == 0 || !bytes.Equal(c.AuthorityKeyId, inter.SubjectKeyId),
		!slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth),
		len(c.UnhandledCriticalExtensions) > 0:
		return nil
	}
	rec, ok := lookup(c.SerialNumber)
	if !ok || !bytes.Equal(rec.DER, c.Raw) {
		return nil
	}
	return &rec
}

// unverifiedLeaf returns the first certificate of a header's x5c, as
// go-jose parsed it, without verifying it, or nil. go-jose hands the
// chain out only through Header.Certificates, which verifies it: asked to
// verify to an empty pool, x509 fails on the leaf and names it, as the
// certificate without a known issuer or the one out of its validity.
func (v *tokenVerifier) unverifiedLeaf(h jose.Header, now time.Time) *x509.Certificate {
	_, err := h.Certificates(x509.VerifyOptions{Roots: v.none, Intermediates: v.none, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknown):
		return unknown.Cert
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return invalid.Cert
	}
	return nil
}

// within reports whether t is within c's validity, as x509 verifies it.
func within(c *x509.Certificate, t time.Time) bool {
	return !t.Before(c.NotBefore) && !t.After(c.NotAfter)
}

// hasNameConstraints reports whether a CA certificate constrains the
// names below it (which recorded leaves to x509's verification).
func hasNameConstraints(c *x509.Certificate) bool {
	return c.PermittedDNSDomainsCritical || len(c.PermittedDNSDomains) > 0 || len(c.ExcludedDNSDomains) > 0 ||
		len(c.PermittedIPRanges) > 0 || len(c.ExcludedIPRanges) > 0 || len(c.PermittedEmailAddresses) > 0 ||
		len(c.ExcludedEmailAddresses) > 0 || len(c.PermittedURIDomains) > 0 || len(c.ExcludedURIDomains) > 0
}

// leaf returns the certificate a token's header carries, verified to the
// fleet's intermediate as of its own validity. go-jose gives an x5c chain
// only through Header.Certificates, which verifies it at a time we must
// choose before we know the leaf: verify at now, and if a certificate of
// the chain is out of its validity then, again as of that certificate's
// NotAfter - 1 min, keeping the answer only if that certificate is the
// leaf. step's x5cInsecure chain is read unverified
// (jose.GetX5cInsecureHeader) and verified here the same way. The rest of
// the token's chain is ignored (a non-nil Intermediates pool keeps go-jose
// from using it): the intermediate is the only anchor.
func (v *tokenVerifier) leaf(h jose.Header, now time.Time) (*x509.Certificate, error) {
	const detail = "the renewal token carries no certificate (x5c) that this CA issued to a device"
	opts := x509.VerifyOptions{Roots: v.issuer, Intermediates: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	var chains [][]*x509.Certificate
	var err error
	if _, insecure := h.ExtraHeaders[jose.HeaderKey(jose.X5cInsecureKey)]; insecure {
		var certs []*x509.Certificate
		certs, err = jose.GetX5cInsecureHeader(&jose.JSONWebToken{Headers: []jose.Header{h}})
		if err != nil || len(certs) == 0 {
			return nil, fault.Wrap(err, fault.Unauthorized, "the renewal token's x5cInsecure header holds no certificate", renewalTokenHint)
		}
		opts.CurrentTime = certs[0].NotAfter.Add(-time.Minute)
		chains, err = certs[0].Verify(opts)
	} else {
		opts.CurrentTime = now
		chains, err = h.Certificates(opts)
		var invalid x509.CertificateInvalidError
		if errors.As(err, &invalid) && invalid.Reason == x509.Expired && invalid.Cert != nil {
			opts.CurrentTime = invalid.Cert.NotAfter.Add(-time.Minute)
			chains, err = h.Certificates(opts)
			if err == nil && !chains[0][0].Equal(invalid.Cert) {
				err = invalid
			}
		}
	}
	if err != nil {
		return nil, fault.Wrap(err, fault.Unauthorized, detail, renewalTokenHint)
	}
	return chains[0][0], nil
}

// audienceOK reports whether one of auds names one of v's audiences.
func (v *tokenVerifier) audienceOK(auds []string) bool {
	for _, s := range auds {
		u, err := url.Parse(s)
		if err != nil {
			continue
		}
		for _, a := range v.audiences {
			if a.matches(u) {
				return true
			}
		}
	}
	return false
}

// algorithmFits reports whether a JWS alg is one a key of pub's type and
// size signs with; never "none" or an HMAC.
func algorithmFits(alg string, pub any) bool {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return k.Curve == elliptic.P256() && alg == jose.ES256 || k.Curve == elliptic.P384() && alg == jose.ES384
	case *rsa.PublicKey:
		switch alg {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
			return true
		}
	case ed25519.PublicKey:
		return alg == jose.EdDSA
	}
	return false
}

// truncate shortens a value from a token for an error detail.
func truncate(s string) string {
	const n = 100
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// RenewURLs returns the renew URLs of an HTTPS listener on port for each
// of its host names or addresses, for Config.RenewURLs: fleetca's
// (api.RenewPath) and the step CLI's (api.StepRenewPath, at the root and
// under api.StepPrefix).
func RenewURLs(hosts []string, port string) []string {
	paths := []string{api.RenewPath, api.StepRenewPath, api.StepPrefix + api.StepRenewPath}
	out := make([]string, 0, len(hosts)*len(paths))
	for _, h := range hosts {
		for _, p := range paths {
			out = append(out, "https://"+net.JoinHostPort(h, port)+p)
		}
	}
	return out
}
