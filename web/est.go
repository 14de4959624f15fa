package web

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"

	"github.com/labstack/echo/v4"
	"github.com/smallstep/pkcs7"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/enroll"
	"github.com/fleetca/fleetca/internal/fault"
)

// EST (RFC 7030 with RFC 8951's clarifications) at api.ESTPrefix, and
// again under api.ESTPrefix/<label>/ where the label must be Config.ESTLabel
// (one profile for now). Request bodies are base64 DER whatever
// Content-Transfer-Encoding says; response bodies are base64 DER with
// Content-Transfer-Encoding: base64 and a Content-Length (Bouncy Castle's
// client decodes only with that header, and reads no chunked body).
// Errors are problem JSON, except the challenge of simpleenroll (estAuth).

// ctxEST marks a request on an EST path: a 401 then challenges for Basic.
const ctxEST = "est"

// Media types of EST's answers (RFC 7030 §4.1.3, §4.2.3, §4.5.2).
const (
	estCertsOnly = "application/pkcs7-mime; smime-type=certs-only"
	estCACerts   = "application/pkcs7-mime"
	estCSRAttrs  = "application/csrattrs"
)

// estRoutes registers the EST operations on the HTTPS listener.
func (s *Server) estRoutes() {
	for _, prefix := range []string{api.ESTPrefix, api.ESTPrefix + "/:label"} {
		g := s.https.Group(prefix, s.estLabel)
		for op, h := range map[string]echo.HandlerFunc{api.ESTOpCACerts: s.estCACerts, api.ESTOpCSRAttrs: s.estCSRAttrs} {
			g.GET("/"+op, h)
			g.HEAD("/"+op, h)
		}
		g.POST("/"+api.ESTOpSimpleEnroll, s.estSimpleEnroll)
		g.POST("/"+api.ESTOpSimpleReenroll, s.estSimpleReenroll)
		g.POST("/"+api.ESTOpServerKeygen, s.estServerKeygen)
	}
}

// estLabel marks the request as EST and refuses a label that names no profile.
func (s *Server) estLabel(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Set(ctxEST, true)
		if l := c.Param("label"); l != "" && l != s.cfg.ESTLabel {
			return fault.New(fault.NotFound, fmt.Sprintf("this CA has no EST profile labelled %q", truncateParam(l)),
				fmt.Sprintf("use %s/ or %s/%s/ (web.est_label)", api.ESTPrefix, api.ESTPrefix, s.cfg.ESTLabel))
		}
		return next(c)
	}
}

// estCACerts answers the intermediate and the roots, certs-only PKCS #7
// (RFC 7030 §4.1.3).
func (s *Server) estCACerts(c echo.Context) error {
	ders := append([][]byte{s.deps.CA.IntermediateDER()}, s.rootsDER()...)
	p7, err := pkcs7.DegenerateCertificate(bytes.Join(ders, nil))
	if err != nil {
		return fmt.Errorf("est cacerts: %w", err)
	}
	return writeBase64(c, http.StatusOK, estCACerts, p7)
}

// estSimpleEnroll enrolls with HTTP Basic: user = device ID, password = an
// enrollment token, spent as on POST /v1/enroll. The CSR's CN must be the
// user. Without an Authorization header, a TLS client certificate is taken
// for a manufacturer certificate (RFC 7030 §3.3.2, as on POST /v1/enroll);
// its refusal is a 401 that challenges for Basic too.
func (s *Server) estSimpleEnroll(c echo.Context) error {
	r := c.Request()
	if r.Header.Get("Authorization") == "" && r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		body, err := s.readBody(c)
		if err != nil {
			return err
		}
		der, err := DecodeESTBody(body)
		if err != nil {
			return err
		}
		res, err := s.deps.Enroll.EnrollWithManufacturer(r.Context(), r.TLS.PeerCertificates, der)
		if err != nil {
			return err
		}
		return s.estIssued(c, res)
	}
	if r.Header.Get("Authorization") == "" {
		// The challenge Bouncy Castle's client waits for before it sends
		// credentials: nothing checked, nothing spent, nothing audited.
		// The body is read (bounded) and dropped first: answering an
		// HTTP/2 request whose body is still arriving resets its stream,
		// which curl reports as a framing error instead of the 401.
		if _, err := s.readBody(c); err != nil {
			return err
		}
		c.Response().Header().Set("WWW-Authenticate", `Basic realm="`+api.ESTRealm+`"`)
		return c.NoContent(http.StatusUnauthorized)
	}
	user, token, ok := r.BasicAuth()
	if !ok || user == "" || token == "" {
		return fault.New(fault.Unauthorized, "simpleenroll needs HTTP Basic credentials",
			"send the device ID as the user and an enrollment token as the password")
	}
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	der, err := DecodeESTBody(body)
	if err != nil {
		return err
	}
	// Unparseable CSRs go on to enroll, which names what is wrong.
	if csr, err := x509.ParseCertificateRequest(der); err == nil && csr.Subject.CommonName != user {
		return fault.New(fault.BadCSR,
			fmt.Sprintf("the CSR names device %q but the Basic user is %q", csr.Subject.CommonName, user),
			fmt.Sprintf("make the CSR with -subj /CN=%s", user))
	}
	res, err := s.deps.Enroll.Enroll(r.Context(), token, der)
	if err != nil {
		return err
	}
	return s.estIssued(c, res)
}

// estSimpleReenroll renews the TLS client certificate (RFC 7030 §4.2.2):
// the CSR's subject, and its SANs if it has any, must be the
// certificate's; the same key renews, a new key rekeys.
func (s *Server) estSimpleReenroll(c echo.Context) error {
	r := c.Request()
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return fault.New(fault.Unauthorized, "simplereenroll needs the certificate being renewed as the TLS client certificate",
			"connect with the device's certificate and key (curl --cert --key)")
	}
	leaf := r.TLS.PeerCertificates[0]
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	der, err := DecodeESTBody(body)
	if err != nil {
		return err
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return fault.Wrap(err, fault.BadCSR, "the request body is not a PKCS #10 CSR", estBodyHint)
	}
	if err := sameNames(csr, leaf); err != nil {
		return err
	}
	req := enroll.RenewRequest{PeerCertificates: r.TLS.PeerCertificates, NoTokenForm: true}
	if !bytes.Equal(csr.RawSubjectPublicKeyInfo, leaf.RawSubjectPublicKeyInfo) {
		req.CSR = der // a new key: a rekey, under the enrollment CSR policy
	} else if err := csr.CheckSignature(); err != nil {
		return fault.Wrap(err, fault.BadCSR, "the CSR's signature does not verify", "sign the CSR with the key it certifies")
	}
	res, err := s.deps.Enroll.Renew(r.Context(), req)
	if err != nil {
		return err
	}
	return s.estIssued(c, res)
}

// sameNames refuses a reenroll CSR whose subject differs from the
// certificate's, or that has SANs other than the certificate's. A CSR
// without SANs is accepted: fleetca takes the names from its record.
func sameNames(csr *x509.CertificateRequest, leaf *x509.Certificate) error {
	const hint = "make the CSR with the subject and SANs of the certificate being renewed (RFC 7030 §4.2.2)"
	if csr.Subject.String() != leaf.Subject.String() {
		return fault.New(fault.BadCSR, fmt.Sprintf("the CSR's subject %q differs from the certificate's %q",
			csr.Subject.String(), leaf.Subject.String()), hint)
	}
	csrSANs := len(csr.DNSNames) + len(csr.EmailAddresses) + len(csr.IPAddresses) + len(csr.URIs)
	if csrSANs == 0 {
		return nil
	}
	uris := func(s []string) []string { slices.Sort(s); return s }
	var a, b []string
	for _, u := range csr.URIs {
		a = append(a, u.String())
	}
	for _, u := range leaf.URIs {
		b = append(b, u.String())
	}
	ipsEqual := slices.EqualFunc(csr.IPAddresses, leaf.IPAddresses, func(x, y net.IP) bool { return x.Equal(y) })
	if !slices.Equal(uris(a), uris(b)) || !slices.Equal(csr.DNSNames, leaf.DNSNames) ||
		!slices.Equal(csr.EmailAddresses, leaf.EmailAddresses) || !ipsEqual {
		return fault.New(fault.BadCSR, "the CSR's subject alternative names differ from the certificate's", hint)
	}
	return nil
}

// estIssued answers the new certificate, certs-only PKCS #7 (RFC 7030 §4.2.3).
func (s *Server) estIssued(c echo.Context, res *enroll.Result) error {
	c.Set(ctxDeviceID, string(res.DeviceID))
	p7, err := pkcs7.DegenerateCertificate(res.Certificate.Raw)
	if err != nil {
		return fmt.Errorf("est certs-only: %w", err)
	}
	return writeBase64(c, http.StatusOK, estCertsOnly, p7)
}

// OIDs of what csrattrs asks for.
var (
	oidCommonName     = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidECPublicKey    = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidP256           = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidP384           = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
	oidECDSAWithSHA56 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidRSAEncryption  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidEd25519        = asn1.ObjectIdentifier{1, 3, 101, 112}
)

// csrAttrs is the DER CsrAttrs (RFC 7030 §4.5.2) of csrattrs: the
// commonName (the device ID), the key types enroll's key policy accepts
// (ECDSA on P-256 or P-384, RSA, Ed25519) and ECDSA with SHA-256.
var csrAttrs = func() []byte {
	type attribute struct {
		Type   asn1.ObjectIdentifier
		Values []asn1.ObjectIdentifier `asn1:"set"`
	}
	var seq []asn1.RawValue
	for _, v := range []any{
		oidCommonName,
		attribute{oidECPublicKey, []asn1.ObjectIdentifier{oidP256, oidP384}},
		oidRSAEncryption,
		oidEd25519,
		oidECDSAWithSHA56,
	} {
		b, err := asn1.Marshal(v)
		if err != nil {
			panic("web: csrattrs: " + err.Error())
		}
		seq = append(seq, asn1.RawValue{FullBytes: b})
	}
	b, err := asn1.Marshal(seq)
	if err != nil {
		panic("web: csrattrs: " + err.Error())
	}
	return b
}()

// estCSRAttrs answers what fleetca wants in a CSR.
func (s *Server) estCSRAttrs(c echo.Context) error {
	return writeBase64(c, http.StatusOK, estCSRAttrs, csrAttrs)
}

// estServerKeygen is 501: keys are made on the device.
func (s *Server) estServerKeygen(c echo.Context) error {
	p := api.Problem{Type: api.ProblemTypePrefix + "notImplemented", Title: "Not implemented", Status: http.StatusNotImplemented,
		Detail: "fleetca does not generate keys for devices", Hint: "make the key on the device and use simpleenroll with a CSR",
		RequestID: c.Response().Header().Get(echo.HeaderXRequestID)}
	c.Response().Header().Set(echo.HeaderContentType, api.ProblemContentType)
	c.Response().WriteHeader(p.Status)
	return jsonEncode(c.Response(), p)
}

// writeBase64 writes der as base64 in lines of 76 columns, with
// Content-Transfer-Encoding: base64 and a Content-Length.
func writeBase64(c echo.Context, status int, contentType string, der []byte) error {
	enc := base64.StdEncoding.EncodeToString(der)
	var b bytes.Buffer
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\n")
		enc = enc[76:]
	}
	b.WriteString(enc)
	b.WriteString("\n")
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, contentType)
	h.Set("Content-Transfer-Encoding", "base64")
	h.Set(echo.HeaderContentLength, strconv.Itoa(b.Len()))
	c.Response().WriteHeader(status)
	if c.Request().Method == http.MethodHead {
		return nil
	}
	_, err := c.Response().Write(b.Bytes())
	return err
}
