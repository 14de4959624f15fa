package enroll

import (
	"slices"
	"testing"
	"time"

	"github.com/fleetca/fleetca/internal/fault"
)

func TestConfigRenewal(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		key  string // the fault's Key; "" for valid
	}{
		{"ok/defaults", Config{}, ""},
		{"ok/grace-year", Config{RenewAfterExpiry: 8760 * time.Hour}, ""},
		{"ok/interval-1s", Config{RenewMinInterval: time.Second}, ""},
		{"ok/urls", Config{RenewURLs: []string{"https://ca.example.net:8443/v1/renew", "https://[::1]:8443/v1/renew"}}, ""},
		{"fail/grace-negative", Config{RenewAfterExpiry: -time.Second}, "ca.renew_after_expiry"},
		{"fail/grace-long", Config{RenewAfterExpiry: 8761 * time.Hour}, "ca.renew_after_expiry"},
		{"fail/interval-short", Config{RenewMinInterval: time.Millisecond}, "ca.renew_min_interval"},
		{"fail/interval-long", Config{RenewMinInterval: 169 * time.Hour}, "ca.renew_min_interval"},
		{"fail/url-http", Config{RenewURLs: []string{"http://ca.example.net:8443/v1/renew"}}, ""},
		{"fail/url-no-path", Config{RenewURLs: []string{"https://ca.example.net:8443"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.TrustDomain = testTrustDomain
			err := tc.cfg.WithDefaults().Validate()
			if tc.name[:3] == "ok/" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			fe, ok := err.(*fault.Error)
			if !ok || fe.Kind != fault.Malformed || fe.Key != tc.key {
				t.Errorf("Validate() = %#v, want Malformed with Key %q", err, tc.key)
			}
		})
	}
	if got := (Config{}).WithDefaults().RenewMinInterval; got != time.Hour {
		t.Errorf("default RenewMinInterval = %s, want 1h", got)
	}
}

func TestRenewURLs(t *testing.T) {
	got := RenewURLs([]string{"ca.example.net", "::1"}, "8443")
	want := []string{
		"https://ca.example.net:8443/v1/renew", "https://ca.example.net:8443/renew", "https://ca.example.net:8443/1.0/renew",
		"https://[::1]:8443/v1/renew", "https://[::1]:8443/renew", "https://[::1]:8443/1.0/renew",
	}
	if !slices.Equal(got, want) {
		t.Errorf("RenewURLs = %q, want %q", got, want)
	}
	if _, err := parseAudiences(got); err != nil {
		t.Errorf("parseAudiences(RenewURLs(...)): %v", err)
	}
}
