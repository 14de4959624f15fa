package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"go.step.sm/crypto/x509util"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"

	"github.com/fleetca/fleetca/internal/fault"
)

// DefaultOCSPResponderValidity is the lifetime of an OCSP responder
// certificate when NewOCSPResponder is given 0.
const DefaultOCSPResponderValidity = 168 * time.Hour // 7 days

// Object identifiers of RFC 6960 and the algorithms it uses.
var (
	// id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1).
	oidOCSPNoCheck = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}
	// id-pkix-ocsp-nonce (RFC 6960 §4.4.1), a response extension.
	oidOCSPNonce = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}
	// id-pkix-ocsp-basic (RFC 6960 §4.2.1).
	oidOCSPBasic = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}
	// ecdsa-with-SHA256 (RFC 5758 §3.2), which a P-256 responder signs with.
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
)

// asn1NULL is the DER of an ASN.1 NULL: the value of id-pkix-ocsp-nocheck.
var asn1NULL = []byte{0x05, 0x00}

// ocspHashes are the CertID hash algorithms we answer for, with their
// OIDs (those golang.org/x/crypto/ocsp parses): SHA-1, which nearly every
// client sends (RFC 5019 §2.1.1), and the SHA-2 family.
var ocspHashes = []struct {
	hash crypto.Hash
	oid  asn1.ObjectIdentifier
}{
	{crypto.SHA1, asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}},
	{crypto.SHA256, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}},
	{crypto.SHA384, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}},
	{crypto.SHA512, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}},
}

// issuerID is the issuer half of an OCSP CertID (RFC 6960 §4.1.1) for one
// hash algorithm: the hash of the issuer's subject DN and the hash of its
// public key (the contents of the subjectPublicKey BIT STRING, without
// tag, length and unused-bits octet).
type issuerID struct {
	hash              crypto.Hash
	nameHash, keyHash []byte
	// certIDPrefix is the DER of the CertID's first three fields
	// (hashAlgorithm, issuerNameHash, issuerKeyHash); a response appends
	// the serial number.
	certIDPrefix []byte
}

// newIssuerIDs returns issuer's issuerID for every hash of ocspHashes.
func newIssuerIDs(issuer *x509.Certificate) ([]issuerID, error) {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if rest, err := asn1.Unmarshal(issuer.RawSubjectPublicKeyInfo, &spki); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("parse the public key of %q: %w", issuer.Subject.CommonName, err)
	}
	key := spki.PublicKey.RightAlign()
	ids := make([]issuerID, 0, len(ocspHashes))
	for _, h := range ocspHashes {
		id := issuerID{hash: h.hash}
		w := h.hash.New()
		w.Write(issuer.RawSubject)
		id.nameHash = w.Sum(nil)
		w.Reset()
		w.Write(key)
		id.keyHash = w.Sum(nil)
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(h.oid)
			// As golang.org/x/crypto/ocsp writes it, and most
			// responders: parameters NULL.
			b.AddASN1NULL()
		})
		b.AddASN1OctetString(id.nameHash)
		b.AddASN1OctetString(id.keyHash)
		prefix, err := b.Bytes()
		if err != nil {
			return nil, fmt.Errorf("encode CertID: %w", err)
		}
		id.certIDPrefix = prefix
		ids = append(ids, id)
	}
	return ids, nil
}

// issuerIDFor returns the issuerID for hash h, or nil.
func issuerIDFor(ids []issuerID, h crypto.Hash) *issuerID {
	for i := range ids {
		if ids[i].hash == h {
			return &ids[i]
		}
	}
	return nil
}

// MatchesIssuer reports whether req asks about a certificate issued by the
// intermediate: whether its IssuerNameHash and IssuerKeyHash are the
// intermediate's under req.HashAlgorithm (RFC 6960 §4.1.1). SHA-1,
// SHA-256, SHA-384 and SHA-512 are recognised; any other algorithm, or a
// nil req, is false. The hashes are computed once, in New, so this is two
// short comparisons. It reads req.HashAlgorithm, IssuerNameHash and
// IssuerKeyHash, not the serial number.
func (a *Authority) MatchesIssuer(req *ocsp.Request) bool {
	if req == nil {
		return false
	}
	id := issuerIDFor(a.issuerIDs, req.HashAlgorithm)
	return id != nil && bytes.Equal(id.nameHash, req.IssuerNameHash) && bytes.Equal(id.keyHash, req.IssuerKeyHash)
}

// OCSPResponder signs OCSP responses for the intermediate's certificates
// as its delegated responder (RFC 6960 §4.2.2.2), with a key of its own
// that never leaves memory. NewOCSPResponder makes one; package
// revocation replaces it before NotAfter. It is immutable and safe for
// concurrent use.
type OCSPResponder struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	ids  []issuerID // the Authority's, read-only
	now  func() time.Time

	// Precomputed DER of the parts every response shares.
	responderID []byte // ResponderID byName: [1] EXPLICIT Name
	sigAlg      []byte // AlgorithmIdentifier ecdsa-with-SHA256
	certs       []byte // [0] EXPLICIT SEQUENCE OF Certificate: cert
}

// NewOCSPResponder makes a fresh ECDSA P-256 key and issues it, from the
// intermediate, a delegated OCSP responder certificate (RFC 6960
// §4.2.2.2):
//
//   - subject CN "<intermediate CN> OCSP Responder" (when that is over 64
//     characters, " Intermediate CA" is dropped from the intermediate's
//     CN, or else the CN is shortened), O the intermediate's;
//   - EKU id-kp-OCSPSigning alone; KU digitalSignature, critical;
//     basicConstraints cA false, critical;
//   - id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1), non-critical: clients
//     do not check the responder certificate's revocation, so it is
//     short-lived instead and has no AIA or CRL distribution point (an
//     OCSP URL there would send a client asking about the responder to
//     the responder);
//   - subject and authority key identifiers, a serial of 159 random bits;
//   - NotBefore now minus Config.Backdate, NotAfter now plus validity
//     (DefaultOCSPResponderValidity if 0) but never after the
//     intermediate's NotAfter.
//
// A negative validity is a Malformed fault, an expired intermediate
// Unavailable; key generation and signing failures are internal. ctx is
// checked before signing.
func (a *Authority) NewOCSPResponder(ctx context.Context, validity time.Duration) (*OCSPResponder, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch {
	case validity < 0:
		return nil, fault.New(fault.Malformed,
			fmt.Sprintf("the OCSP responder validity %s is negative", validity),
			"use a positive duration, or 0 for "+fmtDuration(DefaultOCSPResponderValidity))
	case validity == 0:
		validity = DefaultOCSPResponderValidity
	}
	now := a.now()
	if !now.Before(a.inter.NotAfter) {
		return nil, fault.New(fault.Unavailable,
			fmt.Sprintf("the intermediate expired at %s", a.inter.NotAfter.UTC().Format(time.RFC3339)),
			"issue a new intermediate")
	}
	notAfter := now.Add(validity)
	if notAfter.After(a.inter.NotAfter) {
		notAfter = a.inter.NotAfter
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate OCSP responder key: %w", err)
	}
	serial, err := newSerial(now)
	if err != nil {
		return nil, err
	}
	ski, err := x509util.GenerateSubjectKeyID(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("OCSP responder key identifier: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:   responderCN(a.inter.Subject.CommonName),
			Organization: a.inter.Subject.Organization,
		},
		NotBefore:             now.Add(-a.profile.backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning},
		BasicConstraintsValid: true,
		SubjectKeyId:          ski,
		// AuthorityKeyId comes from the issuer's SubjectKeyId.
		ExtraExtensions:    []pkix.Extension{{Id: oidOCSPNoCheck, Value: asn1NULL}},
		SignatureAlgorithm: a.profile.sigAlg,
	}
	cert, err := x509util.CreateCertificate(tmpl, a.inter, &key.PublicKey, a.signer)
	if err != nil {
		return nil, fmt.Errorf("sign OCSP responder certificate: %w", err)
	}
	r, err := newOCSPResponder(cert, key, a.issuerIDs, a.now)
	if err != nil {
		return nil, err
	}
	a.log.Info("OCSP responder certificate issued",
		slog.String("serial", fmt.Sprintf("%x", cert.SerialNumber)),
		slog.String("issuer", a.inter.Subject.CommonName),
		slog.Time("not_after", cert.NotAfter))
	return r, nil
}

// newOCSPResponder precomputes the DER every response of cert shares.
func newOCSPResponder(cert *x509.Certificate, key *ecdsa.PrivateKey, ids []issuerID, now func() time.Time) (*OCSPResponder, error) {
	r := &OCSPResponder{cert: cert, key: key, ids: ids, now: now}
	parts := []struct {
		dst *[]byte
		f   cryptobyte.BuilderContinuation
	}{
		{&r.responderID, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddBytes(cert.RawSubject)
			})
		}},
		{&r.sigAlg, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidECDSAWithSHA256)
			})
		}},
		{&r.certs, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddBytes(cert.Raw)
				})
			})
		}},
	}
	for _, p := range parts {
		var b cryptobyte.Builder
		p.f(&b)
		der, err := b.Bytes()
		if err != nil {
			return nil, fmt.Errorf("encode OCSP responder: %w", err)
		}
		*p.dst = der
	}
	return r, nil
}

// responderCN returns the responder certificate's CN for an issuer CN,
// within ub-common-name (64 characters, RFC 5280 Appendix A.1).
func responderCN(issuerCN string) string {
	const suffix = " OCSP Responder"
	const maxBase = 64 - len(suffix)
	base := issuerCN
	if utf8.RuneCountInString(base) > maxBase {
		if s, ok := strings.CutSuffix(base, " Intermediate CA"); ok {
			base = s
		}
	}
	if r := []rune(base); len(r) > maxBase {
		base = string(r[:maxBase])
	}
	return strings.TrimSpace(strings.TrimSpace(base) + suffix)
}

// Certificate returns the responder certificate. The caller must not
// modify it.
func (r *OCSPResponder) Certificate() *x509.Certificate { return r.cert }

// NotAfter returns the end of the responder certificate's validity: the
// responder must be replaced before then.
func (r *OCSPResponder) NotAfter() time.Time { return r.cert.NotAfter }

// Sign signs one OCSP response (RFC 6960 §4.2.1, a BasicOCSPResponse with
// one SingleResponse) about a certificate of the intermediate and returns
// the DER of the OCSPResponse, with status successful. It reads these
// fields of tmpl, which the caller (package revocation) decides:
//
//   - Status: ocsp.Good, ocsp.Revoked or ocsp.Unknown;
//   - SerialNumber: the certificate's serial; required;
//   - IssuerHash: the CertID hash algorithm, which must be the request's
//     (SHA-1, SHA-256, SHA-384 or SHA-512); 0 means SHA-1;
//   - ThisUpdate, required, and NextUpdate, optional (the zero time
//     leaves it out) but after ThisUpdate when set;
//   - RevokedAt, required for Revoked and not after ThisUpdate, and
//     RevocationReason, 0 (unspecified: written as no reason) to 6, 9 or 10;
//   - ProducedAt: the zero time means now, from Deps.Now; ThisUpdate must
//     not be after it (RFC 6960 §2.4);
//   - ExtraExtensions: copied into singleExtensions, except a nonce
//     (id-pkix-ocsp-nonce), which goes into responseExtensions, where
//     RFC 6960 §4.4.1 puts it and clients (OpenSSL's OCSP_check_nonce)
//     look for it.
//
// The other fields are ignored; in particular the response always embeds
// the responder certificate (RFC 6960 §4.2.2.2: the client checks it was
// issued by the intermediate) and is signed with ECDSA P-256 and SHA-256.
// The responder ID is byName, the responder certificate's subject.
// Times are written to the second, in UTC.
//
// A template that breaks these rules is a Malformed fault; signing when
// ProducedAt is outside the responder certificate's validity is
// Unavailable (make a new responder). Sign is safe for concurrent use; it
// does no I/O, so it takes no context.
//
// Sign produces what golang.org/x/crypto/ocsp.CreateResponse(issuer,
// Certificate(), tmpl, key) would with tmpl.Certificate set to the
// responder certificate, except that CreateResponse takes producedAt from
// time.Now, truncated to the minute: that breaks the injected clock and,
// with ThisUpdate set to now, RFC 6960 §2.4; and that CreateResponse puts
// a nonce among the singleExtensions, where no client finds it.
func (r *OCSPResponder) Sign(tmpl ocsp.Response) ([]byte, error) {
	producedAt := tmpl.ProducedAt
	if producedAt.IsZero() {
		producedAt = r.now()
	}
	producedAt = producedAt.UTC().Truncate(time.Second)
	id, err := r.checkTemplate(&tmpl, producedAt)
	if err != nil {
		return nil, err
	}

	var single, response []pkix.Extension
	for _, e := range tmpl.ExtraExtensions {
		if e.Id.Equal(oidOCSPNonce) {
			response = append(response, e)
		} else {
			single = append(single, e)
		}
	}

	b := cryptobyte.NewBuilder(make([]byte, 0, 256))
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // ResponseData
		b.AddBytes(r.responderID)
		b.AddASN1GeneralizedTime(producedAt)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // responses
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SingleResponse
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // CertID
					b.AddBytes(id.certIDPrefix)
					b.AddASN1BigInt(tmpl.SerialNumber)
				})
				addCertStatus(b, &tmpl)
				b.AddASN1GeneralizedTime(tmpl.ThisUpdate.UTC())
				if !tmpl.NextUpdate.IsZero() {
					b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
						b.AddASN1GeneralizedTime(tmpl.NextUpdate.UTC())
					})
				}
				if len(single) > 0 {
					b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
						addExtensions(b, single)
					})
				}
			})
		})
		if len(response) > 0 { // responseExtensions [1] EXPLICIT
			b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				addExtensions(b, response)
			})
		}
	})
	tbs, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encode OCSP response: %w", err)
	}
	digest := sha256.Sum256(tbs)
	sig, err := ecdsa.SignASN1(rand.Reader, r.key, digest[:])
	if err != nil {
		return nil, fmt.Errorf("sign OCSP response: %w", err)
	}

	b = cryptobyte.NewBuilder(make([]byte, 0, len(tbs)+len(r.certs)+len(sig)+64))
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // OCSPResponse
		b.AddASN1Enum(int64(ocsp.Success))
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // ResponseBytes
				b.AddASN1ObjectIdentifier(oidOCSPBasic)
				b.AddASN1(cbasn1.OCTET_STRING, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // BasicOCSPResponse
						b.AddBytes(tbs)
						b.AddBytes(r.sigAlg)
						b.AddASN1BitString(sig)
						b.AddBytes(r.certs)
					})
				})
			})
		})
	})
	der, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encode OCSP response: %w", err)
	}
	return der, nil
}

// checkTemplate returns the issuerID for tmpl's hash, or a fault for the
// first rule of Sign that tmpl breaks at producedAt.
func (r *OCSPResponder) checkTemplate(tmpl *ocsp.Response, producedAt time.Time) (*issuerID, error) {
	const hint = "this is a bug in the caller of ca.OCSPResponder.Sign"
	hash := tmpl.IssuerHash
	if hash == 0 {
		hash = crypto.SHA1
	}
	id := issuerIDFor(r.ids, hash)
	thisUpdate := tmpl.ThisUpdate.Truncate(time.Second)
	switch {
	case id == nil:
		return nil, fault.New(fault.Malformed,
			fmt.Sprintf("OCSP CertID hash %v is not supported", hash), hint)
	case tmpl.SerialNumber == nil:
		return nil, fault.New(fault.Malformed, "the OCSP response has no serial number", hint)
	case tmpl.Status != ocsp.Good && tmpl.Status != ocsp.Revoked && tmpl.Status != ocsp.Unknown:
		return nil, fault.New(fault.Malformed,
			fmt.Sprintf("OCSP status %d is not good, revoked or unknown", tmpl.Status), hint)
	case tmpl.ThisUpdate.IsZero():
		return nil, fault.New(fault.Malformed, "the OCSP response's thisUpdate is not set", hint)
	case thisUpdate.After(producedAt):
		return nil, fault.New(fault.Malformed,
			fmt.Sprintf("the OCSP response's thisUpdate %s is after its producedAt %s",
				tmpl.ThisUpdate.UTC().Format(time.RFC3339), producedAt.Format(time.RFC3339)), hint)
	case !tmpl.NextUpdate.IsZero() && !tmpl.NextUpdate.After(tmpl.ThisUpdate):
		return nil, fault.New(fault.Malformed,
			fmt.Sprintf("the OCSP response's nextUpdate %s is not after its thisUpdate %s",
				tmpl.NextUpdate.UTC().Format(time.RFC3339), tmpl.ThisUpdate.UTC().Format(time.RFC3339)), hint)
	case tmpl.Status == ocsp.Revoked && tmpl.RevokedAt.IsZero():
		return nil, fault.New(fault.Malformed,
			fmt.Sprintf("the OCSP response revokes %x without a revocation time", tmpl.SerialNumber), hint)
	case tmpl.Status == ocsp.Revoked && tmpl.RevokedAt.Truncate(time.Second).After(thisUpdate):
		return nil, fault.New(fault.Malformed,
			fmt.Sprintf("the OCSP response revokes %x at %s, after its thisUpdate %s", tmpl.SerialNumber,
				tmpl.RevokedAt.UTC().Format(time.RFC3339), tmpl.ThisUpdate.UTC().Format(time.RFC3339)), hint)
	case tmpl.Status == ocsp.Revoked && !validCRLReason(tmpl.RevocationReason):
		return nil, fault.New(fault.Malformed,
			fmt.Sprintf("OCSP revocation reason %d is not allowed", tmpl.RevocationReason), hint)
	case producedAt.Before(r.cert.NotBefore) || producedAt.After(r.cert.NotAfter):
		return nil, fault.New(fault.Unavailable,
			fmt.Sprintf("the OCSP responder certificate is not valid at %s (valid %s to %s)",
				producedAt.Format(time.RFC3339), r.cert.NotBefore.UTC().Format(time.RFC3339),
				r.cert.NotAfter.UTC().Format(time.RFC3339)),
			"make a new OCSP responder")
	}
	return id, nil
}

// addCertStatus writes the CertStatus CHOICE (RFC 6960 §4.2.1): good [0]
// and unknown [2] are IMPLICIT NULL; revoked [1] is an IMPLICIT
// RevokedInfo, whose revocationReason [0] EXPLICIT is left out when it is
// 0 (unspecified), as RFC 5280 §5.3.1 asks of CRLs.
func addCertStatus(b *cryptobyte.Builder, tmpl *ocsp.Response) {
	empty := func(*cryptobyte.Builder) {}
	switch tmpl.Status {
	case ocsp.Good:
		b.AddASN1(cbasn1.Tag(0).ContextSpecific(), empty)
	case ocsp.Unknown:
		b.AddASN1(cbasn1.Tag(2).ContextSpecific(), empty)
	case ocsp.Revoked:
		b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1GeneralizedTime(tmpl.RevokedAt.UTC())
			if tmpl.RevocationReason != 0 {
				b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
					b.AddASN1Enum(int64(tmpl.RevocationReason))
				})
			}
		})
	default:
		panic(fmt.Sprintf("ca: checkTemplate let OCSP status %d through", tmpl.Status))
	}
}

// addExtensions writes Extensions ::= SEQUENCE SIZE (1..MAX) OF Extension
// (RFC 5280 §4.1), leaving out critical when false (its DEFAULT).
func addExtensions(b *cryptobyte.Builder, exts []pkix.Extension) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, e := range exts {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(e.Id)
				if e.Critical {
					b.AddASN1Boolean(true)
				}
				b.AddASN1OctetString(e.Value)
			})
		}
	})
}
