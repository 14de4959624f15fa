package verify

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fleetca/fleetca/internal/fault"
)

func TestBaseURL(t *testing.T) {
	for _, tc := range []struct {
		name    string
		raw     string
		schemes []string
		want    string // the base, or for a failure a part of the error
	}{
		{"ok/http", "http://127.0.0.1:8080", []string{"http", "https"}, "http://127.0.0.1:8080"},
		{"ok/trailing-slash", "http://127.0.0.1:8080/", []string{"http", "https"}, "http://127.0.0.1:8080"},
		{"ok/path-prefix", "https://lb.example/fleet/", []string{"http", "https"}, "https://lb.example/fleet"},
		{"ok/feed", "https://ca.example:8443", []string{"https"}, "https://ca.example:8443"},
		{"ok/path-ending-like-crl", "http://ca.example/mycrl", []string{"http"}, "http://ca.example/mycrl"},
		{"fail/device-crl", "http://127.0.0.1:8080/crl", []string{"http", "https"}, "here http://127.0.0.1:8080:"},
		{"fail/device-crl-slash", "http://127.0.0.1:8080/crl/", []string{"http", "https"}, "here http://127.0.0.1:8080:"},
		{"fail/crl-pem", "http://ca.example/fleet/crl.pem", []string{"http", "https"}, "here http://ca.example/fleet:"},
		{"fail/root-crl", "http://ca.example/root.crl", []string{"http", "https"}, "root CRL"},
		{"fail/feed-path", "https://ca.example:8443/v1/revocations", []string{"https"}, "revocation feed"},
		{"fail/scheme", "http://ca.example:8443", []string{"https"}, "not an https URL"},
		{"fail/ftp", "ftp://ca.example", []string{"http", "https"}, "not an http or https URL"},
		{"fail/no-host", "http:///crl", []string{"http"}, "with a host"},
		{"fail/file-path", "/etc/crl.pem", []string{"http"}, "not an http URL"},
		{"fail/query", "http://ca.example:8080/?x=1", []string{"http"}, "query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := BaseURL(tc.raw, tc.schemes...)
			if strings.HasPrefix(tc.name, "ok/") {
				if err != nil || got != tc.want {
					t.Errorf("BaseURL(%q) = %q, %v, want %q", tc.raw, got, err, tc.want)
				}
				return
			}
			if !errors.Is(err, fault.New(fault.Malformed, "", "")) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("BaseURL(%q) = %q, %v, want Malformed saying %q", tc.raw, got, err, tc.want)
			}
		})
	}
}

// TestCRL404SaysWhichURL: a CA that answers 404 for the CRL is not the
// listener the base URL should name, and the error says what was expected.
func TestCRL404SaysWhichURL(t *testing.T) {
	ca := newTestCA(t)
	hs := httptest.NewServer(http.NotFoundHandler())
	defer hs.Close()
	c, err := NewChecker(CheckerConfig{CRL: hs.URL + "/elsewhere", Issuer: ca.Intermediate}, CheckerDeps{Client: hs.Client(), Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Refresh(t.Context())
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "expected "+hs.URL+"/elsewhere to be the base URL of the CA's HTTP listener") {
		t.Errorf("Refresh against a 404 = %v, want an error saying which URL was expected", err)
	}
}
