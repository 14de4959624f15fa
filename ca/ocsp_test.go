package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	"golang.org/x/crypto/ocsp"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/internal/testenv"
)

// ocspHashesUnderTest are the CertID hashes a client may use.
var ocspHashesUnderTest = []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512}

// newResponder makes an OCSP responder of a with the default validity.
func newResponder(t testing.TB, a *Authority) *OCSPResponder {
	t.Helper()
	r, err := a.NewOCSPResponder(t.Context(), 0)
	if err != nil {
		t.Fatalf("NewOCSPResponder() error = %v", err)
	}
	return r
}

// signLeaf issues a device certificate from a.
func signLeaf(t testing.TB, a *Authority, id string) *x509.Certificate {
	t.Helper()
	c, err := a.SignDevice(t.Context(), DeviceRequest{DeviceID: api.DeviceID(id), PublicKey: deviceKey(t, "ec-p256").Public()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewOCSPResponder(t *testing.T) {
	for _, kt := range KeyTypes() {
		t.Run(string(kt), func(t *testing.T) {
			a := newAuthority(t, kt)
			inter := a.Intermediate()
			c := newResponder(t, a).Certificate()

			if err := c.CheckSignatureFrom(inter); err != nil {
				t.Errorf("responder certificate is not signed by the intermediate: %v", err)
			}
			if want := testName + " Intermediate CA OCSP Responder"; c.Subject.CommonName != want {
				t.Errorf("subject CN = %q, want %q", c.Subject.CommonName, want)
			}
			if len(c.Subject.Organization) != 1 || c.Subject.Organization[0] != testName {
				t.Errorf("subject O = %q, want [%q]", c.Subject.Organization, testName)
			}
			if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageOCSPSigning || len(c.UnknownExtKeyUsage) != 0 {
				t.Errorf("EKU = %v %v, want OCSPSigning alone", c.ExtKeyUsage, c.UnknownExtKeyUsage)
			}
			if c.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("KU = %b, want digitalSignature alone", c.KeyUsage)
			}
			if !c.BasicConstraintsValid || c.IsCA {
				t.Errorf("basicConstraints valid=%v cA=%v, want present, cA false", c.BasicConstraintsValid, c.IsCA)
			}
			if !bytes.Equal(c.AuthorityKeyId, inter.SubjectKeyId) || len(c.SubjectKeyId) == 0 {
				t.Errorf("AKI = %x (want %x), SKI = %x (want set)", c.AuthorityKeyId, inter.SubjectKeyId, c.SubjectKeyId)
			}
			if len(c.OCSPServer) != 0 || len(c.IssuingCertificateURL) != 0 || len(c.CRLDistributionPoints) != 0 {
				t.Errorf("OCSP %v, caIssuers %v, CRL DP %v: want none", c.OCSPServer, c.IssuingCertificateURL, c.CRLDistributionPoints)
			}
			var nocheck, ku *pkix.Extension
			for i, e := range c.Extensions {
				switch {
				case e.Id.Equal(oidOCSPNoCheck):
					nocheck = &c.Extensions[i]
				case e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 15}): // key usage
					ku = &c.Extensions[i]
				case e.Id.Equal(asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 1}), // AIA
					e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 31}): // CRL distribution points
					t.Errorf("extension %v present", e.Id)
				}
			}
			if nocheck == nil || nocheck.Critical || !bytes.Equal(nocheck.Value, []byte{5, 0}) {
				t.Errorf("id-pkix-ocsp-nocheck = %+v, want present, non-critical, NULL", nocheck)
			}
			if ku == nil || !ku.Critical {
				t.Errorf("key usage extension = %+v, want critical", ku)
			}
			if len(c.UnhandledCriticalExtensions) != 0 {
				t.Errorf("unhandled critical extensions %v", c.UnhandledCriticalExtensions)
			}
			if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
				t.Errorf("responder key = %T, want ECDSA P-256", c.PublicKey)
			}
			if c.SignatureAlgorithm != a.profile.sigAlg {
				t.Errorf("signature algorithm = %v, want %v", c.SignatureAlgorithm, a.profile.sigAlg)
			}
			if !c.NotBefore.Equal(testNow.Add(-DefaultBackdate)) || !c.NotAfter.Equal(testNow.Add(DefaultOCSPResponderValidity)) {
				t.Errorf("validity %v to %v, want %v to %v", c.NotBefore, c.NotAfter,
					testNow.Add(-DefaultBackdate), testNow.Add(DefaultOCSPResponderValidity))
			}
			// It chains for OCSP signing, to the root, as a client checks.
			roots := x509.NewCertPool()
			roots.AddCert(a.Root())
			inters := x509.NewCertPool()
			inters.AddCert(inter)
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: testNow,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}}); err != nil {
				t.Errorf("responder certificate does not verify for OCSP signing: %v", err)
			}
		})
	}
}

func TestNewOCSPResponderValidity(t *testing.T) {
	a := newAuthority(t, KeyECP256)
	tests := []struct {
		name         string
		validity     time.Duration
		wantNotAfter time.Time
		wantKind     fault.Kind // 0: success
	}{
		{"ok/default", 0, testNow.Add(DefaultOCSPResponderValidity), 0},
		{"ok/1h", time.Hour, testNow.Add(time.Hour), 0},
		{"ok/clamped-to-intermediate", 20 * 365 * 24 * time.Hour, a.Intermediate().NotAfter, 0},
		{"fail/negative", -time.Hour, time.Time{}, fault.Malformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := a.NewOCSPResponder(t.Context(), tc.validity)
			if tc.wantKind != 0 {
				wantKind(t, "NewOCSPResponder()", err, tc.wantKind)
				return
			}
			if err != nil {
				t.Fatalf("NewOCSPResponder() error = %v", err)
			}
			if !r.NotAfter().Equal(tc.wantNotAfter) || !r.Certificate().NotAfter.Equal(tc.wantNotAfter) {
				t.Errorf("NotAfter() = %v, want %v", r.NotAfter(), tc.wantNotAfter)
			}
		})
	}
}

func TestNewOCSPResponderExpiredIntermediate(t *testing.T) {
	dir, res := sharedCA(t, KeyECP256)
	now := testNow
	deps := testDeps(dir)
	deps.Now = func() time.Time { return now }
	a, err := New(t.Context(), Config{}, deps)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	now = res.Intermediate.NotAfter
	_, err = a.NewOCSPResponder(t.Context(), 0)
	wantKind(t, "NewOCSPResponder(intermediate expired)", err, fault.Unavailable)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := a.NewOCSPResponder(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("NewOCSPResponder(canceled) error = %v, want context.Canceled", err)
	}
}

func TestResponderCN(t *testing.T) {
	name48 := strings.Repeat("n", maxNameLen)
	long := strings.Repeat("é", 70)
	tests := []struct {
		name, issuerCN, want string
	}{
		{"ok/fits", "Test Fleet Intermediate CA", "Test Fleet Intermediate CA OCSP Responder"},
		{"ok/longest-init-name", name48 + " Intermediate CA", name48 + " OCSP Responder"},
		{"ok/truncated", long, strings.Repeat("é", 64-len(" OCSP Responder")) + " OCSP Responder"},
		{"ok/truncated-at-space", strings.Repeat("a", 48) + " " + strings.Repeat("b", 20), strings.Repeat("a", 48) + " OCSP Responder"},
		{"ok/empty", "", "OCSP Responder"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := responderCN(tc.issuerCN)
			if got != tc.want {
				t.Errorf("responderCN(%q) = %q, want %q", tc.issuerCN, got, tc.want)
			}
			if n := utf8.RuneCountInString(got); n > 64 {
				t.Errorf("responderCN(%q) has %d characters, over 64", tc.issuerCN, n)
			}
		})
	}
}

func TestMatchesIssuer(t *testing.T) {
	a := newAuthority(t, KeyECP256)
	// Same CA name, so the same issuer DN, but another key: only the key
	// hash tells them apart.
	other := newAuthority(t, KeyECP384)
	if !bytes.Equal(a.Intermediate().RawSubject, other.Intermediate().RawSubject) {
		t.Fatal("the shared CAs should have the same intermediate subject")
	}
	leaf, otherLeaf := signLeaf(t, a, "sensor-1"), signLeaf(t, other, "sensor-2")
	request := func(leaf, issuer *x509.Certificate, h crypto.Hash) *ocsp.Request {
		der, err := ocsp.CreateRequest(leaf, issuer, &ocsp.RequestOptions{Hash: h})
		if err != nil {
			t.Fatal(err)
		}
		req, err := ocsp.ParseRequest(der)
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	for _, h := range ocspHashesUnderTest {
		if !a.MatchesIssuer(request(leaf, a.Intermediate(), h)) {
			t.Errorf("MatchesIssuer(own leaf, %v) = false, want true", h)
		}
		if a.MatchesIssuer(request(otherLeaf, other.Intermediate(), h)) {
			t.Errorf("MatchesIssuer(other CA's leaf, %v) = true, want false", h)
		}
	}
	req := request(leaf, a.Intermediate(), crypto.SHA256)
	tests := []struct {
		name string
		req  *ocsp.Request
	}{
		{"fail/nil", nil},
		{"fail/md5", &ocsp.Request{HashAlgorithm: crypto.MD5, IssuerNameHash: req.IssuerNameHash, IssuerKeyHash: req.IssuerKeyHash}},
		{"fail/hash-mislabelled", &ocsp.Request{HashAlgorithm: crypto.SHA384, IssuerNameHash: req.IssuerNameHash, IssuerKeyHash: req.IssuerKeyHash}},
		{"fail/name-only", &ocsp.Request{HashAlgorithm: crypto.SHA256, IssuerNameHash: req.IssuerNameHash, IssuerKeyHash: make([]byte, 32)}},
		{"fail/key-only", &ocsp.Request{HashAlgorithm: crypto.SHA256, IssuerNameHash: make([]byte, 32), IssuerKeyHash: req.IssuerKeyHash}},
		{"fail/empty", &ocsp.Request{HashAlgorithm: crypto.SHA256}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if a.MatchesIssuer(tc.req) {
				t.Errorf("MatchesIssuer(%+v) = true, want false", tc.req)
			}
		})
	}
}

// testOCSPTemplate returns a template for leaf in status status.
func testOCSPTemplate(leaf *x509.Certificate, status int) ocsp.Response {
	tmpl := ocsp.Response{
		Status:       status,
		SerialNumber: leaf.SerialNumber,
		ThisUpdate:   testNow,
		NextUpdate:   testNow.Add(time.Hour),
	}
	if status == ocsp.Revoked {
		tmpl.RevokedAt = testNow.Add(-time.Hour)
		tmpl.RevocationReason = ocsp.KeyCompromise
	}
	return tmpl
}

func TestOCSPSign(t *testing.T) {
	for _, kt := range KeyTypes() {
		t.Run(string(kt), func(t *testing.T) {
			a := newAuthority(t, kt)
			r := newResponder(t, a)
			leaf := signLeaf(t, a, "sensor-0042")
			tests := []struct {
				name   string
				status int
				reason int
			}{
				{"good", ocsp.Good, 0},
				{"revoked/key-compromise", ocsp.Revoked, ocsp.KeyCompromise},
				{"revoked/unspecified", ocsp.Revoked, ocsp.Unspecified},
				{"revoked/superseded", ocsp.Revoked, ocsp.Superseded},
				{"unknown", ocsp.Unknown, 0},
			}
			for _, tc := range tests {
				for _, h := range ocspHashesUnderTest {
					t.Run(fmt.Sprintf("%s/%v", tc.name, h), func(t *testing.T) {
						// The request a client sends, and the template
						// package revocation makes from it.
						reqDER, err := ocsp.CreateRequest(leaf, a.Intermediate(), &ocsp.RequestOptions{Hash: h})
						if err != nil {
							t.Fatal(err)
						}
						req, err := ocsp.ParseRequest(reqDER)
						if err != nil {
							t.Fatal(err)
						}
						tmpl := testOCSPTemplate(leaf, tc.status)
						tmpl.SerialNumber = req.SerialNumber
						tmpl.IssuerHash = req.HashAlgorithm
						tmpl.RevocationReason = tc.reason
						der, err := r.Sign(tmpl)
						if err != nil {
							t.Fatalf("Sign() error = %v", err)
						}
						resp, err := ocsp.ParseResponseForCert(der, leaf, a.Intermediate())
						if err != nil {
							t.Fatalf("ParseResponseForCert() error = %v", err)
						}
						checkResponse(t, resp, r, tmpl)
					})
				}
			}
		})
	}
}

// checkResponse checks a parsed response against the template it was
// signed from.
func checkResponse(t *testing.T, resp *ocsp.Response, r *OCSPResponder, tmpl ocsp.Response) {
	t.Helper()
	wantHash := tmpl.IssuerHash
	if wantHash == 0 {
		wantHash = crypto.SHA1
	}
	switch {
	case resp.Status != tmpl.Status:
		t.Errorf("status = %d, want %d", resp.Status, tmpl.Status)
	case resp.SerialNumber.Cmp(tmpl.SerialNumber) != 0:
		t.Errorf("serial = %x, want %x", resp.SerialNumber, tmpl.SerialNumber)
	case !resp.ThisUpdate.Equal(tmpl.ThisUpdate) || !resp.NextUpdate.Equal(tmpl.NextUpdate):
		t.Errorf("thisUpdate, nextUpdate = %v, %v, want %v, %v", resp.ThisUpdate, resp.NextUpdate, tmpl.ThisUpdate, tmpl.NextUpdate)
	case !resp.ProducedAt.Equal(testNow):
		t.Errorf("producedAt = %v, want the clock's %v", resp.ProducedAt, testNow)
	case resp.IssuerHash != wantHash:
		t.Errorf("CertID hash = %v, want %v", resp.IssuerHash, wantHash)
	case resp.Certificate == nil || !resp.Certificate.Equal(r.Certificate()):
		t.Errorf("embedded certificate is not the responder's")
	case !bytes.Equal(resp.RawResponderName, r.Certificate().RawSubject):
		t.Errorf("responder ID = %x, want byName %x", resp.RawResponderName, r.Certificate().RawSubject)
	case resp.SignatureAlgorithm != x509.ECDSAWithSHA256:
		t.Errorf("signature algorithm = %v, want ECDSA-SHA256", resp.SignatureAlgorithm)
	}
	if tmpl.Status == ocsp.Revoked {
		if !resp.RevokedAt.Equal(tmpl.RevokedAt) || resp.RevocationReason != tmpl.RevocationReason {
			t.Errorf("revoked at %v for %d, want %v for %d", resp.RevokedAt, resp.RevocationReason, tmpl.RevokedAt, tmpl.RevocationReason)
		}
	}
	// ParseResponse checked the response's signature with the embedded
	// certificate and that certificate's with the issuer; check again,
	// independently of it.
	if err := resp.CheckSignatureFrom(r.Certificate()); err != nil {
		t.Errorf("response signature does not verify with the responder certificate: %v", err)
	}
}

// TestOCSPSignWrongIssuer checks that ParseResponse verifies the embedded
// responder certificate against the issuer it is given: another CA's
// intermediate (same name, other key) must not accept our responses.
func TestOCSPSignWrongIssuer(t *testing.T) {
	a, other := newAuthority(t, KeyECP256), newAuthority(t, KeyEd25519)
	r := newResponder(t, a)
	leaf := signLeaf(t, a, "sensor-0042")
	der, err := r.Sign(testOCSPTemplate(leaf, ocsp.Good))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ocsp.ParseResponseForCert(der, nil, a.Intermediate()); err != nil {
		t.Fatalf("ParseResponseForCert(own intermediate) error = %v", err)
	}
	_, err = ocsp.ParseResponseForCert(der, nil, other.Intermediate())
	if err == nil {
		t.Fatalf("ParseResponseForCert(other CA's intermediate) error = nil, want a bad signature")
	}
	if _, ok := errors.AsType[ocsp.ParseError](err); !ok {
		t.Errorf("ParseResponseForCert(other CA's intermediate) error = %v (%T), want an ocsp.ParseError", err, err)
	}
}

// TestOCSPSignNonce checks that an echoed nonce goes into
// responseExtensions (RFC 6960 §4.4.1), where OpenSSL looks for it, while
// other extensions stay in singleExtensions.
func TestOCSPSignNonce(t *testing.T) {
	a := newAuthority(t, KeyECP256)
	r := newResponder(t, a)
	leaf := signLeaf(t, a, "sensor-0042")
	nonce := pkix.Extension{Id: oidOCSPNonce, Value: []byte{0x04, 0x02, 0xca, 0xfe}}
	other := pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Value: []byte{5, 0}}
	tmpl := testOCSPTemplate(leaf, ocsp.Good)
	tmpl.ExtraExtensions = []pkix.Extension{nonce, other}
	der, err := r.Sign(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ocsp.ParseResponseForCert(der, leaf, a.Intermediate())
	if err != nil {
		t.Fatalf("ParseResponseForCert() error = %v", err)
	}
	if len(resp.Extensions) != 1 || !resp.Extensions[0].Id.Equal(other.Id) {
		t.Errorf("singleExtensions = %v, want only %v", resp.Extensions, other.Id)
	}
	var tbs struct {
		Version     int `asn1:"optional,default:0,explicit,tag:0"`
		ResponderID asn1.RawValue
		ProducedAt  time.Time `asn1:"generalized"`
		Responses   []asn1.RawValue
		Extensions  []pkix.Extension `asn1:"explicit,tag:1,optional"`
	}
	if rest, err := asn1.Unmarshal(resp.TBSResponseData, &tbs); err != nil || len(rest) != 0 {
		t.Fatalf("parse ResponseData: %v (%d bytes left)", err, len(rest))
	}
	if len(tbs.Extensions) != 1 || !tbs.Extensions[0].Id.Equal(nonce.Id) || !bytes.Equal(tbs.Extensions[0].Value, nonce.Value) {
		t.Errorf("responseExtensions = %v, want the nonce %v", tbs.Extensions, nonce)
	}
}

// TestOCSPSignMatchesCreateResponse checks that Sign writes the same
// ResponseData as golang.org/x/crypto/ocsp.CreateResponse would, given
// the producedAt CreateResponse takes from the wall clock.
func TestOCSPSignMatchesCreateResponse(t *testing.T) {
	a := newAuthority(t, KeyECP256)
	// CreateResponse's producedAt is the wall clock's: the responder must
	// be valid then, so it lives as long as the intermediate.
	r, err := a.NewOCSPResponder(t.Context(), 100*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf := signLeaf(t, a, "sensor-0042")
	ext := pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Value: []byte{5, 0}}
	for _, status := range []int{ocsp.Good, ocsp.Revoked, ocsp.Unknown} {
		for _, h := range ocspHashesUnderTest {
			t.Run(fmt.Sprintf("%d/%v", status, h), func(t *testing.T) {
				tmpl := testOCSPTemplate(leaf, status)
				tmpl.IssuerHash = h
				tmpl.ExtraExtensions = []pkix.Extension{ext}
				tmpl.Certificate = r.Certificate()
				for range 3 { // a new minute may start between the calls
					want, err := ocsp.CreateResponse(a.Intermediate(), r.Certificate(), tmpl, r.key)
					if err != nil {
						t.Fatal(err)
					}
					wantResp, err := ocsp.ParseResponse(want, a.Intermediate())
					if err != nil {
						t.Fatal(err)
					}
					ours := tmpl
					ours.ProducedAt = wantResp.ProducedAt
					der, err := r.Sign(ours)
					if _, ok := fault.KindOf(err); ok {
						// The wall clock is outside the test CA's life.
						t.Skipf("Sign() at the wall clock's producedAt: %v", err)
					}
					if err != nil {
						t.Fatal(err)
					}
					got, err := ocsp.ParseResponse(der, a.Intermediate())
					if err != nil {
						t.Fatal(err)
					}
					if len(got.Extensions) != 1 || !got.Extensions[0].Id.Equal(ext.Id) {
						t.Errorf("singleExtensions = %v, want %v", got.Extensions, ext)
					}
					if bytes.Equal(got.TBSResponseData, wantResp.TBSResponseData) {
						// The outer structure: everything after the
						// signature is the same too.
						if !bytes.HasSuffix(der, r.certs) || !bytes.HasSuffix(want, r.certs) {
							t.Errorf("the responses do not end with the responder certificate")
						}
						return
					}
					t.Logf("ResponseData differs:\n got %x\nwant %x", got.TBSResponseData, wantResp.TBSResponseData)
				}
				t.Errorf("Sign() and CreateResponse() wrote different ResponseData")
			})
		}
	}
}

func TestOCSPSignTemplate(t *testing.T) {
	a := newAuthority(t, KeyECP256)
	r := newResponder(t, a)
	leaf := signLeaf(t, a, "sensor-0042")
	tests := []struct {
		name     string
		tmpl     func(tmpl *ocsp.Response)
		wantKind fault.Kind // 0: success
	}{
		{"ok/no-next-update", func(tmpl *ocsp.Response) { tmpl.NextUpdate = time.Time{} }, 0},
		{"ok/this-update-subsecond", func(tmpl *ocsp.Response) { tmpl.ThisUpdate = testNow.Add(999 * time.Millisecond) }, 0},
		{"ok/produced-at-later", func(tmpl *ocsp.Response) { tmpl.ProducedAt = testNow.Add(time.Minute) }, 0},
		{"ok/certificate-ignored", func(tmpl *ocsp.Response) { tmpl.Certificate = leaf }, 0},
		{"fail/no-serial", func(tmpl *ocsp.Response) { tmpl.SerialNumber = nil }, fault.Malformed},
		{"fail/server-failed", func(tmpl *ocsp.Response) { tmpl.Status = ocsp.ServerFailed }, fault.Malformed},
		{"fail/status-9", func(tmpl *ocsp.Response) { tmpl.Status = 9 }, fault.Malformed},
		{"fail/md5", func(tmpl *ocsp.Response) { tmpl.IssuerHash = crypto.MD5 }, fault.Malformed},
		{"fail/no-this-update", func(tmpl *ocsp.Response) { tmpl.ThisUpdate = time.Time{} }, fault.Malformed},
		{"fail/this-update-after-produced-at", func(tmpl *ocsp.Response) { tmpl.ThisUpdate = testNow.Add(time.Second) }, fault.Malformed},
		{"fail/next-update-before-this-update", func(tmpl *ocsp.Response) { tmpl.NextUpdate = testNow.Add(-time.Second) }, fault.Malformed},
		{"fail/revoked-no-time", func(tmpl *ocsp.Response) {
			tmpl.Status, tmpl.RevokedAt = ocsp.Revoked, time.Time{}
		}, fault.Malformed},
		{"fail/revoked-after-this-update", func(tmpl *ocsp.Response) {
			tmpl.Status, tmpl.RevokedAt = ocsp.Revoked, testNow.Add(time.Second)
		}, fault.Malformed},
		{"fail/revoked-reason-7", func(tmpl *ocsp.Response) {
			tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, testNow, 7
		}, fault.Malformed},
		{"fail/revoked-remove-from-crl", func(tmpl *ocsp.Response) {
			tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, testNow, ocsp.RemoveFromCRL
		}, fault.Malformed},
		{"fail/produced-before-responder", func(tmpl *ocsp.Response) {
			tmpl.ThisUpdate = testNow.Add(-time.Hour)
			tmpl.ProducedAt = testNow.Add(-time.Hour)
		}, fault.Unavailable},
		{"fail/produced-after-responder", func(tmpl *ocsp.Response) {
			tmpl.ProducedAt = r.NotAfter().Add(time.Second)
		}, fault.Unavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := testOCSPTemplate(leaf, ocsp.Good)
			tc.tmpl(&tmpl)
			der, err := r.Sign(tmpl)
			if tc.wantKind != 0 {
				wantKind(t, "Sign()", err, tc.wantKind)
				return
			}
			if err != nil {
				t.Fatalf("Sign() error = %v", err)
			}
			resp, err := ocsp.ParseResponseForCert(der, leaf, a.Intermediate())
			if err != nil {
				t.Fatal(err)
			}
			if !resp.Certificate.Equal(r.Certificate()) {
				t.Errorf("embedded certificate is not the responder's")
			}
		})
	}
}

// TestOCSPSignConcurrent signs from several goroutines (run with -race).
func TestOCSPSignConcurrent(t *testing.T) {
	a := newAuthority(t, KeyECP256)
	r := newResponder(t, a)
	leaf := signLeaf(t, a, "sensor-0042")
	var wg sync.WaitGroup
	errs := make(chan error, 8*16)
	for g := range 8 {
		wg.Go(func() {
			for i := range 16 {
				tmpl := testOCSPTemplate(leaf, []int{ocsp.Good, ocsp.Revoked}[(g+i)%2])
				tmpl.SerialNumber = big.NewInt(int64(g*100 + i))
				der, err := r.Sign(tmpl)
				if err == nil {
					var resp *ocsp.Response
					resp, err = ocsp.ParseResponse(der, a.Intermediate())
					if err == nil && (resp.SerialNumber.Cmp(tmpl.SerialNumber) != 0 || resp.Status != tmpl.Status) {
						err = fmt.Errorf("response for %v/%d is for %v/%d", tmpl.SerialNumber, tmpl.Status, resp.SerialNumber, resp.Status)
					}
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestOCSPOpenSSL checks responses with `openssl ocsp`, which verifies the
// delegation: the responder certificate is issued by the certificate's
// issuer and has id-kp-OCSPSigning (RFC 6960 §4.2.2.2).
func TestOCSPOpenSSL(t *testing.T) {
	openssl := testenv.Need(t, "openssl")
	for _, kt := range KeyTypes() {
		t.Run(string(kt), func(t *testing.T) {
			a := newAuthority(t, kt)
			r := newResponder(t, a)
			leaf := signLeaf(t, a, "sensor-0042")
			dir := t.TempDir()
			write := func(name string, data []byte) string {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, data, 0o644); err != nil {
					t.Fatal(err)
				}
				return p
			}
			args := []string{"ocsp", "-no_nonce",
				"-attime", fmt.Sprint(testNow.Add(time.Minute).Unix()),
				"-issuer", write("intermediate.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.Intermediate().Raw})),
				"-CAfile", write("root.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.Root().Raw})),
				"-cert", write("leaf.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})),
			}
			for _, tc := range []struct {
				name   string
				status int
				want   *regexp.Regexp
			}{
				{"good", ocsp.Good, regexp.MustCompile(`(?m)(: |^)good$`)},
				{"revoked", ocsp.Revoked, regexp.MustCompile(`(?m)(: |^)revoked$`)},
				{"unknown", ocsp.Unknown, regexp.MustCompile(`(?m)(: |^)unknown$`)},
			} {
				der, err := r.Sign(testOCSPTemplate(leaf, tc.status))
				if err != nil {
					t.Fatal(err)
				}
				out, err := exec.CommandContext(t.Context(), openssl,
					append(args, "-respin", write(tc.name+".der", der))...).CombinedOutput()
				if err != nil {
					t.Errorf("openssl ocsp %s: %v\n%s", tc.name, err, out)
					continue
				}
				// openssl checks thisUpdate and nextUpdate against the wall
				// clock, not -attime: it warns "Status times invalid" and
				// prints the status on a line of its own.
				if !strings.Contains(string(out), "Response verify OK") || !tc.want.Match(out) {
					t.Errorf("openssl ocsp %s:\n%s\nwant Response verify OK and %v", tc.name, out, tc.want)
				}
			}
		})
	}
}

// TestZlintOCSP lints the responder certificate and responses, per CA key
// type, with the rules of TestZlint.
func TestZlintOCSP(t *testing.T) {
	var findings []lintFinding
	for _, kt := range KeyTypes() {
		a := newAuthority(t, kt)
		r := newResponder(t, a)
		label := "ca=" + string(kt)
		zc, err := zx509.ParseCertificate(r.Certificate().Raw)
		if err != nil {
			t.Fatalf("%s: zcrypto cannot parse the responder certificate: %v", label, err)
		}
		findings = append(findings, zlintFindings(label+" ocsp-responder", zlint.LintCertificate(zc))...)

		leaf := signLeaf(t, a, "sensor-0042")
		for _, status := range []int{ocsp.Good, ocsp.Revoked, ocsp.Unknown} {
			der, err := r.Sign(testOCSPTemplate(leaf, status))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := ocsp.ParseResponse(der, a.Intermediate())
			if err != nil {
				t.Fatal(err)
			}
			findings = append(findings, zlintFindings(fmt.Sprintf("%s ocsp-response/%d", label, status), zlint.LintOcspResponse(resp))...)
		}
	}
	reportFindings(t, findings)
}

// BenchmarkOCSPSign measures Sign for a good response ("fleetca", and
// from all CPUs, "fleetca-parallel") and, for comparison,
// golang.org/x/crypto/ocsp.CreateResponse with the same template and key
// ("x-crypto").
func BenchmarkOCSPSign(b *testing.B) {
	a := newAuthority(b, KeyECP256)
	r := newResponder(b, a)
	leaf := signLeaf(b, a, "sensor-0042")
	tmpl := testOCSPTemplate(leaf, ocsp.Good)
	b.Run("fleetca", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Sign(tmpl); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fleetca-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := r.Sign(tmpl); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("x-crypto", func(b *testing.B) {
		b.ReportAllocs()
		xt := tmpl
		xt.Certificate = r.Certificate()
		for b.Loop() {
			if _, err := ocsp.CreateResponse(a.Intermediate(), r.Certificate(), xt, r.key); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("match-issuer", func(b *testing.B) {
		der, err := ocsp.CreateRequest(leaf, a.Intermediate(), nil)
		if err != nil {
			b.Fatal(err)
		}
		req, err := ocsp.ParseRequest(der)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if !a.MatchesIssuer(req) {
				b.Fatal("MatchesIssuer() = false")
			}
		}
	})
}
