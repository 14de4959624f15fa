package enroll

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"strings"

	"github.com/fleetca/fleetca/internal/adminctx"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// CheckServerCSR parses a DER CSR for a TLS server certificate and applies
// the policy every CSR meets: at most MaxCSRBytes, an accepted key (the
// device key policy of docs/ARCHITECTURE.md), a signature algorithm of SHA-256 or
// stronger, and a signature that verifies (proof of possession). It does
// not look at names: IssueServer compares them with the admin's request.
// Refusals are *fault.Error of kind TooLarge, BadCSR or BadKey.
func CheckServerCSR(der []byte) (*x509.CertificateRequest, error) {
	return parseCSR(der)
}

// ServerRequest asks for a TLS server certificate (for fleetca proxy, or
// any service in front of which devices connect). The names come from the
// admin, not from the CSR.
type ServerRequest struct {
	// CSR is the DER PKCS #10 request; only its key is certified.
	CSR []byte
	// DNSNames and IPs are the certificate's SANs; at least one name.
	DNSNames []string
	IPs      []net.IP
}

// IssueServer issues a TLS server certificate from the intermediate (EKU
// serverAuth, ca.server_validity) for an admin, and appends a
// "certificate.server_issue" audit row. The CSR passes CheckServerCSR; a
// subject or SAN it carries must be one of the requested names (the CA
// decides the names, and never rewrites a CSR silently), else BadCSR. Names
// that ca refuses (not a lowercase hostname, none at all) are Malformed.
//
// Server certificates are not device certificates: they are not recorded
// as such, not listed by the admin API, and not revocable by serial. A
// certificate signed but not audited is discarded, never returned.
func (s *Service) IssueServer(ctx context.Context, req ServerRequest) (*x509.Certificate, error) {
	csr, err := CheckServerCSR(req.CSR)
	if err != nil {
		return nil, err
	}
	if err := checkServerNames(csr, req.DNSNames, req.IPs); err != nil {
		return nil, err
	}
	cert, err := s.ca.SignServer(ctx, req.DNSNames, req.IPs, csr.PublicKey)
	if err != nil {
		if _, ok := fault.KindOf(err); ok {
			return nil, err
		}
		return nil, fmt.Errorf("sign server certificate: %w", err)
	}
	ips := make([]string, len(req.IPs))
	for i, ip := range req.IPs {
		ips[i] = ip.String()
	}
	detail := "dns=" + strings.Join(req.DNSNames, ",") + " ips=" + strings.Join(ips, ",")
	now := s.now().UTC()
	ev := store.AuditEvent{Time: now, Action: "certificate.server_issue", Actor: adminctx.Actor(ctx), Serial: SerialHex(cert), Detail: detail}
	if err := s.store.AppendAudit(ctx, ev); err != nil {
		return nil, fmt.Errorf("audit server certificate: %w", err)
	}
	s.log.InfoContext(ctx, "server certificate issued", "serial", SerialHex(cert), "dns", req.DNSNames, "ips", ips, "not_after", cert.NotAfter)
	return cert, nil
}

// checkServerNames refuses a server CSR that asks for anything the request
// does not name: a subject attribute other than CN, a CN or SAN not among
// the requested names, or a URI, email or other SAN type.
func checkServerNames(csr *x509.CertificateRequest, dns []string, ips []net.IP) error {
	const hint = "make the CSR with no subject and no SANs (fleetca cert server does), or name only what you request"
	allowed := map[string]bool{}
	for _, d := range dns {
		allowed[d] = true
	}
	for _, ip := range ips {
		allowed[ip.String()] = true
	}
	for _, atv := range csr.Subject.Names {
		if !atv.Type.Equal(oidCommonName) {
			return fault.New(fault.BadCSR, fmt.Sprintf("the CSR subject has attribute %s = %v; only CN is allowed", attrName(atv.Type), atv.Value), hint)
		}
	}
	if cn := csr.Subject.CommonName; cn != "" && !allowed[cn] {
		return fault.New(fault.BadCSR, fmt.Sprintf("the CSR's common name %q is not one of the requested names", cn), hint)
	}
	for _, d := range csr.DNSNames {
		if !allowed[d] {
			return fault.New(fault.BadCSR, fmt.Sprintf("the CSR asks for DNS name %q, which is not requested", d), hint)
		}
	}
	for _, ip := range csr.IPAddresses {
		if !allowed[ip.String()] {
			return fault.New(fault.BadCSR, fmt.Sprintf("the CSR asks for IP address %s, which is not requested", ip), hint)
		}
	}
	if len(csr.URIs) > 0 || len(csr.EmailAddresses) > 0 {
		return fault.New(fault.BadCSR, "the CSR asks for a URI or email name; a server certificate has DNS names and IP addresses only", hint)
	}
	parsed := len(csr.DNSNames) + len(csr.IPAddresses)
	for _, ext := range csr.Extensions {
		if !ext.Id.Equal(oidSAN) {
			continue
		}
		if n, ok := countGeneralNames(ext.Value); !ok || n != parsed {
			return fault.New(fault.BadCSR, "the CSR asks for a subject alternative name of a type fleetca does not issue", hint)
		}
	}
	return nil
}
