package redact

import "testing"

func TestURL(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"plain", "http://ca.example:8080", "http://ca.example:8080"},
		{"path kept", "https://ca.example:8443/v1/revocations", "https://ca.example:8443/v1/revocations"},
		{"userinfo dropped", "https://user:secret@ca.example/crl", "https://ca.example/crl"},
		{"query dropped", "http://ca.example/crl?token=secret", "http://ca.example/crl"},
		{"empty query dropped", "http://ca.example/crl?", "http://ca.example/crl"},
		{"fragment dropped", "http://ca.example/crl#secret", "http://ca.example/crl"},
		{"file path as it is", "/etc/fleetca/crl.pem", "/etc/fleetca/crl.pem"},
		{"unparsable as it is", "http://[::1", "http://[::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := URL(tc.in); got != tc.want {
				t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
