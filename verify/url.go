package verify

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/internal/redact"
)

// caFiles are what the CA serves under its listeners' base URLs, by path,
// with what to call each in an error.
var caFiles = []struct{ path, name string }{
	{api.CRLPath, "device CRL"},
	{api.CRLPEMPath, "device CRL"},
	{api.RootCRLPath, "root CRL"},
	{api.OCSPPath, "OCSP responder"},
	{api.RootsPEMPath, "root certificate"},
	{api.ChainPEMPath, "intermediate certificate"},
	{api.IntermediatePath, "intermediate certificate"},
	{api.FeedPath, "revocation feed"},
	{api.HealthPath, "health check"},
}

// BaseURL checks that raw is the base URL of one of the CA's listeners,
// with one of the given schemes and a host (http://ca.example:8080, or
// behind a proxy http://ca.example/fleet), and returns it without a
// trailing slash. Verifiers take base URLs and append the api paths
// (api.CRLPath, api.RootCRLPath, api.FeedPath).
//
// A URL whose path ends in one of those paths (…/crl, …/crl.pem,
// …/root.crl, …/v1/revocations) names a file under the listener, not the
// listener, and is refused: fetching <URL>/crl would be a 404. The error,
// a fault.Malformed, says which URL was expected.
func BaseURL(raw string, schemes ...string) (string, error) {
	want := strings.Join(schemes, " or ")
	u, err := url.Parse(raw)
	if err != nil || !slices.Contains(schemes, u.Scheme) || u.Host == "" || u.Opaque != "" {
		return "", fault.Wrap(err, fault.Malformed, fmt.Sprintf("%q is not an %s URL with a host", redact.URL(raw), want),
			"give the base URL of the CA's listener, such as "+example(schemes))
	}
	base := strings.TrimRight(raw, "/")
	path := strings.TrimRight(u.Path, "/")
	for _, f := range caFiles {
		if strings.HasSuffix(path, f.path) {
			fixed := strings.TrimRight(strings.TrimSuffix(base, f.path), "/")
			return "", fault.New(fault.Malformed,
				fmt.Sprintf("%s is the URL of the CA's %s, not the base URL of its listener", redact.URL(raw), f.name),
				fmt.Sprintf("give the base URL alone, here %s: verifiers fetch %s, %s and %s under it", redact.URL(fixed), api.CRLPath, api.RootCRLPath, api.FeedPath))
		}
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fault.New(fault.Malformed, fmt.Sprintf("the base URL %s has a query or a fragment", redact.URL(raw)),
			"give the base URL of the CA's listener alone, such as "+example(schemes))
	}
	return base, nil
}

// example is an example base URL of the CA's listener for the schemes.
func example(schemes []string) string {
	if slices.Contains(schemes, "http") {
		return "http://ca.example:8080"
	}
	return "https://ca.example:8443"
}

// isURL reports whether s is an http(s) URL rather than a file path.
func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}
