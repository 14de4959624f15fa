package ca

import (
	"crypto/x509"
	"net"
	"sort"
	"testing"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"
)

// webPKISources are the zlint sources we do not hold our certificates to.
// fleetca is a private PKI in no root program: the CA/Browser Forum
// requirements and the root store policies govern publicly trusted
// certificates. What they flag here, and why we accept it:
//
//   - CABF_BR on the root and intermediate: no countryName
//     (e_ca_country_name_missing), no certificate policies
//     (e_sub_ca_certificate_policies_missing,
//     e_invalid_ca_certificate_policies: we assert no CABF policy because
//     we follow none), no AIA on the intermediate (w_sub_ca_aia_missing:
//     there is no DER root URL to point at), a root pathLenConstraint
//     (w_root_ca_basic_constraints_path_len_constraint_field_present: ours
//     limits the hierarchy to root, intermediate, leaf on purpose), and
//     Ed25519 (e_signature_algorithm_not_supported,
//     e_algorithm_identifier_improper_encoding: the BRs allow only RSA and
//     ECDSA; RFC 8410 allows Ed25519 and no RFC lint objects).
//   - CABF_BR on the server certificate: no certificate policies, a
//     subject CN and an SKI (BR 7.1.2.7 discourages both; our profile wants
//     them), and localhost and 127.0.0.1 as names
//     (e_dnsname_not_valid_tld, e_ext_san_contains_reserved_ip: the
//     listener's certificate names where it really listens).
//   - Notices only: Apple n_ct_sct_policy_count_unsatisfied (no CT for a
//     private CA), Mozilla n_mp_allowed_eku and CABF n_sub_ca_eku_missing
//     (an intermediate without EKU), CABF n_ca_digital_signature_not_set
//     (the root signs no OCSP), Community n_san_iana_pub_suffix_empty.
//
// Device certificates (clientAuth only) are outside the CABF BRs' scope
// anyway: zlint skips those lints for them. Every other source (RFC 5280
// and the other RFCs, Community) must report nothing at Warn or worse.
var webPKISources = map[lint.LintSource]bool{
	lint.CABFBaselineRequirements:      true,
	lint.CABFEVGuidelines:              true,
	lint.CABFSMIMEBaselineRequirements: true,
	lint.CABFCSBaselineRequirements:    true,
	lint.MozillaRootStorePolicy:        true,
	lint.AppleRootStorePolicy:          true,
	lint.ChromeRootStorePolicy:         true,
	lint.EtsiEsi:                       true,
}

// lintFinding is one lint result of Notice or worse.
type lintFinding struct {
	cert, name string
	source     lint.LintSource
	status     lint.LintStatus
	details    string
}

// runZlint lints der with every registered lint and returns the results
// of status Notice or worse.
func runZlint(t *testing.T, label string, der []byte) []lintFinding {
	t.Helper()
	zc, err := zx509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("%s: zcrypto cannot parse: %v", label, err)
	}
	var out []lintFinding
	for name, r := range zlint.LintCertificate(zc).Results {
		if r.Status >= lint.Notice {
			out = append(out, lintFinding{label, name, r.LintMetadata.Source, r.Status, r.Details})
		}
	}
	return out
}

// TestZlint lints the root, the intermediate, device certificates for
// every device key type and a server certificate, for every CA key type.
// Run with -v to see the findings of the excluded sources.
func TestZlint(t *testing.T) {
	var findings []lintFinding
	for _, caType := range KeyTypes() {
		a := newAuthority(t, caType)
		certs := map[string]*x509.Certificate{
			"root":         a.Root(),
			"intermediate": a.Intermediate(),
		}
		for _, dev := range deviceKeyTypes {
			c, err := a.SignDevice(t.Context(), DeviceRequest{DeviceID: "sensor-0042", PublicKey: deviceKey(t, dev).Public()})
			if err != nil {
				t.Fatal(err)
			}
			certs["device/"+dev] = c
		}
		for _, dev := range []string{"ec-p256", "rsa-2048"} {
			c, err := a.SignServer(t.Context(), []string{"ca.example.net", "localhost"},
				[]net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}, deviceKey(t, dev).Public())
			if err != nil {
				t.Fatal(err)
			}
			certs["server/"+dev] = c
		}
		for label, c := range certs {
			findings = append(findings, runZlint(t, "ca="+string(caType)+" "+label, c.Raw)...)
		}
	}
	sort.Slice(findings, func(i, j int) bool {
		a, b := findings[i], findings[j]
		if a.source != b.source {
			return a.source < b.source
		}
		if a.name != b.name {
			return a.name < b.name
		}
		return a.cert < b.cert
	})
	for _, f := range findings {
		switch {
		case webPKISources[f.source] || f.status < lint.Warn:
			t.Logf("accepted: %s %s %s on %s: %s", f.source, f.status, f.name, f.cert, f.details)
		default:
			t.Errorf("%s %s %s on %s: %s", f.source, f.status, f.name, f.cert, f.details)
		}
	}
}
