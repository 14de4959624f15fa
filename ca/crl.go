package ca

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"time"

	"github.com/fleetca/fleetca/internal/fault"
)

// maxCRLNumberBits bounds a CRL number to 20 octets as a positive DER
// INTEGER (RFC 5280 §5.2.3: CRLNumber ::= INTEGER (0..MAX), at most 20
// octets), the bound x509.CreateRevocationList enforces.
const maxCRLNumberBits = 20*8 - 1

// CRLTemplate is what SignCRL and SignRootCRL sign. Package revocation
// decides its contents; package ca only checks and signs them.
type CRLTemplate struct {
	// Number is the CRL number (RFC 5280 §5.2.3): non-negative, at most
	// 159 bits (20 octets in DER), strictly increasing from one CRL of an
	// issuer to the next. Keeping it increasing is the caller's job.
	// Required.
	Number *big.Int
	// ThisUpdate is the CRL's issue date (RFC 5280 §5.1.2.4). Required.
	ThisUpdate time.Time
	// NextUpdate is when the next CRL will be issued at the latest (RFC
	// 5280 §5.1.2.5); it must be after ThisUpdate. Required: RFC 5280
	// makes conforming issuers include it.
	NextUpdate time.Time
	// Entries are the revoked certificates, written in the order given:
	// sorting them (by serial, say, for a stable output) is the caller's
	// job. The slice and the entries are only read, never changed or
	// kept. Each entry needs a SerialNumber and a RevocationTime not after
	// ThisUpdate (RFC 5280 §5.1.2.6). ReasonCode 0 (unspecified) writes no
	// reason code extension, as RFC 5280 §5.3.1 asks; the other allowed
	// codes are 1 to 6, 9 and 10 (7 is unassigned, and 8, removeFromCRL,
	// belongs to delta CRLs, which we do not issue). ExtraExtensions of an
	// entry (an invalidity date, say) are copied as they are. May be
	// empty: the revokedCertificates field is then absent, as RFC 5280
	// §5.1.2.6 requires.
	Entries []x509.RevocationListEntry
	// DistributionPoint, if set, makes the CRL a partition CRL: it gets
	// a critical issuing distribution point extension (RFC 5280 §5.2.5)
	// whose fullName is this one URI, exactly as the partition's
	// certificates carry it in their CRL distribution point
	// (PartitionURL), with onlyContainsUserCerts. Empty: a complete CRL
	// of the issuer, without IDP.
	DistributionPoint string
}

// SignCRL signs the device CRL: the intermediate's CRL over the
// certificates it issued (RFC 5280 §5), with x509.CreateRevocationList,
// and returns it as DER.
//
// The CRL is a complete, direct v2 CRL with the extensions RFC 5280 §5.2
// requires of a conforming issuer: the authority key identifier (the
// intermediate's subject key identifier) and the CRL number. It
// deliberately has no issuing distribution point (RFC 5280 §5.2.5): the
// CRL covers every certificate of its issuer, and an IDP naming the
// distribution point URL would make OpenSSL, BoringSSL and rustls-webpki
// refuse it for any certificate whose CRL distribution point differs (one
// issued before Deps.PublicURL changed) instead of checking it, while an
// IDP without that URL makes rustls-webpki refuse it for every
// certificate that has one. A partition CRL (tmpl.DistributionPoint) is
// the exception: its IDP names its partition's URL, which only its own
// certificates carry, so that verifiers check each certificate against
// its partition's CRL alone. The signature algorithm is the one the
// intermediate signs certificates with.
//
// SignCRL does not look at the clock: the dates are tmpl's. A template
// that breaks the rules of CRLTemplate is a Malformed fault naming the
// first problem; signing failures are internal. ctx is checked before
// signing; a large CRL is not interrupted once signing started. SignCRL
// reads every field of tmpl and copies none of Entries: x509 encodes them
// directly, so that building a CRL costs what CreateRevocationList costs.
func (a *Authority) SignCRL(ctx context.Context, tmpl CRLTemplate) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return signCRL(tmpl, a.inter, a.signer, a.profile.sigAlg)
}

// SignRootCRL signs the root's CRL over intermediates (served as
// PublicURL+"/root.crl", the distribution point Init puts in the
// intermediate) with the root key, which it loads through RootSigner. The
// profile and the rules for tmpl are SignCRL's; Entries are usually empty.
//
// If the root key is offline SignRootCRL returns a *fault.Error of kind
// Unavailable whose hint says to sign the root CRL where the root key is
// (`fleetca crl sign-root`); RootSigner's other errors are returned as
// they are. ctx is passed to RootSigner.
func (a *Authority) SignRootCRL(ctx context.Context, tmpl CRLTemplate) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	const (
		detail = "the root key is offline, so the root CRL cannot be signed here"
		hint   = "run `fleetca crl sign-root` where the root key is, and publish its output as root.crl"
	)
	if !a.rootKeyHere {
		return nil, fault.New(fault.Unavailable, detail, hint)
	}
	s, err := a.RootSigner(ctx)
	if k, ok := fault.KindOf(err); ok && k == fault.Unavailable {
		return nil, fault.Wrap(err, fault.Unavailable, detail, hint)
	}
	if err != nil {
		return nil, err
	}
	sigAlg, err := signatureAlgorithm(s.Public())
	if err != nil {
		return nil, fault.Wrap(err, fault.Malformed,
			"the root key is of an unsupported type", "use an ECDSA, RSA or Ed25519 root")
	}
	return signCRL(tmpl, a.root, s, sigAlg)
}

// signCRL checks tmpl and signs it as issuer with key.
func signCRL(tmpl CRLTemplate, issuer *x509.Certificate, key crypto.Signer, sigAlg x509.SignatureAlgorithm) ([]byte, error) {
	if err := checkCRLTemplate(&tmpl); err != nil {
		return nil, err
	}
	var extra []pkix.Extension
	if tmpl.DistributionPoint != "" {
		idp, err := IssuingDistributionPoint(tmpl.DistributionPoint)
		if err != nil {
			return nil, err
		}
		extra = []pkix.Extension{idp}
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		ExtraExtensions:           extra,
		SignatureAlgorithm:        sigAlg,
		Number:                    tmpl.Number,
		ThisUpdate:                tmpl.ThisUpdate,
		NextUpdate:                tmpl.NextUpdate,
		RevokedCertificateEntries: tmpl.Entries,
	}, issuer, key)
	if err != nil {
		return nil, fmt.Errorf("sign CRL of %q: %w", issuer.Subject.CommonName, err)
	}
	return der, nil
}

// checkCRLTemplate returns a Malformed fault for the first thing in tmpl
// that CRLTemplate does not allow. It reads each entry once and allocates
// nothing unless it fails.
func checkCRLTemplate(tmpl *CRLTemplate) error {
	const hint = "this is a bug in the caller of ca.SignCRL"
	switch {
	case tmpl.Number == nil:
		return fault.New(fault.Malformed, "the CRL number is not set", hint)
	case tmpl.Number.Sign() < 0 || tmpl.Number.BitLen() > maxCRLNumberBits:
		return fault.New(fault.Malformed,
			fmt.Sprintf("the CRL number %s is negative or longer than 20 octets", tmpl.Number), hint)
	case tmpl.ThisUpdate.IsZero():
		return fault.New(fault.Malformed, "the CRL's thisUpdate is not set", hint)
	case !tmpl.NextUpdate.After(tmpl.ThisUpdate):
		return fault.New(fault.Malformed,
			fmt.Sprintf("the CRL's nextUpdate %s is not after its thisUpdate %s",
				tmpl.NextUpdate.UTC().Format(time.RFC3339), tmpl.ThisUpdate.UTC().Format(time.RFC3339)), hint)
	}
	// Times are written to the second: a revocation time is after
	// thisUpdate as written if it is at or after the next whole second.
	// (Truncate once here, not per entry: a CRL may have a million.)
	nextSecond := tmpl.ThisUpdate.Truncate(time.Second).Add(time.Second)
	for i := range tmpl.Entries {
		e := &tmpl.Entries[i]
		switch {
		case e.SerialNumber == nil:
			return fault.New(fault.Malformed, fmt.Sprintf("CRL entry %d has no serial number", i), hint)
		case e.RevocationTime.IsZero():
			return fault.New(fault.Malformed,
				fmt.Sprintf("CRL entry %d (serial %x) has no revocation time", i, e.SerialNumber), hint)
		case !e.RevocationTime.Before(nextSecond):
			return fault.New(fault.Malformed,
				fmt.Sprintf("CRL entry %d (serial %x) was revoked at %s, after the CRL's thisUpdate %s",
					i, e.SerialNumber, e.RevocationTime.UTC().Format(time.RFC3339), tmpl.ThisUpdate.UTC().Format(time.RFC3339)), hint)
		case !validCRLReason(e.ReasonCode):
			return fault.New(fault.Malformed,
				fmt.Sprintf("CRL entry %d (serial %x) has reason code %d, which a complete CRL cannot carry",
					i, e.SerialNumber, e.ReasonCode), hint)
		}
	}
	return nil
}

// validCRLReason reports whether code is a CRLReason (RFC 5280 §5.3.1) a
// complete CRL or an OCSP response may carry: 0 to 6, 9 or 10. 7 is
// unassigned; 8 (removeFromCRL) is for delta CRLs only.
func validCRLReason(code int) bool {
	return 0 <= code && code <= 6 || code == 9 || code == 10
}
