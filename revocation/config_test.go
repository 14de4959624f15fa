package revocation

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetca/fleetca/internal/fault"
)

func TestConfig(t *testing.T) {
	defaults := Config{CRLValidity: 24 * time.Hour, CRLPublishDelay: 200 * time.Millisecond, RootCRLValidity: 720 * time.Hour,
		OCSPValidity: time.Hour, ResponderValidity: 72 * time.Hour, OCSPCacheEntries: 1_000_000,
		PollInterval: time.Second, CRLLease: 15 * time.Second, CRLPartitions: 1}
	if diff := cmp.Diff(defaults, Config{}.WithDefaults()); diff != "" {
		t.Errorf("Config{}.WithDefaults() (-want +got):\n%s", diff)
	}
	set := Config{CRLValidity: time.Hour, CRLPublishDelay: time.Second, RootCRLValidity: 2 * time.Hour,
		OCSPValidity: 2 * time.Minute, ResponderValidity: 2 * time.Hour, OCSPCacheEntries: 5000,
		PollInterval: time.Minute, CRLLease: 2 * time.Second, CRLPartitions: 16}
	if diff := cmp.Diff(set, set.WithDefaults()); diff != "" {
		t.Errorf("WithDefaults changed set fields (-want +got):\n%s", diff)
	}
	if err := (Config{}).Validate(); err == nil {
		t.Error("Config{}.Validate() = nil; Validate must not fill defaults")
	}

	for _, tc := range []struct {
		name string
		edit func(*Config)
		ok   bool
	}{
		{"ok/defaults", func(*Config) {}, true},
		{"ok/crl_validity-min", func(c *Config) { c.CRLValidity = 10 * time.Minute }, true},
		{"ok/crl_validity-max", func(c *Config) { c.CRLValidity = 720 * time.Hour }, true},
		{"fail/crl_validity-below", func(c *Config) { c.CRLValidity = 10*time.Minute - 1 }, false},
		{"fail/crl_validity-above", func(c *Config) { c.CRLValidity = 720*time.Hour + 1 }, false},
		{"fail/crl_validity-negative", func(c *Config) { c.CRLValidity = -time.Hour }, false},
		{"ok/crl_publish_delay-zero", func(c *Config) { c.CRLPublishDelay = 0 }, true},
		{"ok/crl_partitions-1", func(c *Config) { c.CRLPartitions = 1 }, true},
		{"ok/crl_partitions-2", func(c *Config) { c.CRLPartitions = 2 }, true},
		{"ok/crl_partitions-16", func(c *Config) { c.CRLPartitions = 16 }, true},
		{"ok/crl_partitions-256", func(c *Config) { c.CRLPartitions = 256 }, true},
		{"fail/crl_partitions-3", func(c *Config) { c.CRLPartitions = 3 }, false},
		{"fail/crl_partitions-24", func(c *Config) { c.CRLPartitions = 24 }, false},
		{"fail/crl_partitions-512", func(c *Config) { c.CRLPartitions = 512 }, false},
		{"fail/crl_partitions-negative", func(c *Config) { c.CRLPartitions = -4 }, false},
		{"ok/crl_publish_delay-max", func(c *Config) { c.CRLPublishDelay = time.Second }, true},
		{"fail/crl_publish_delay-negative", func(c *Config) { c.CRLPublishDelay = -1 }, false},
		{"fail/crl_publish_delay-above", func(c *Config) { c.CRLPublishDelay = time.Second + 1 }, false},
		{"ok/root_crl_validity-min", func(c *Config) { c.RootCRLValidity = time.Hour }, true},
		{"ok/root_crl_validity-max", func(c *Config) { c.RootCRLValidity = 8760 * time.Hour }, true},
		{"fail/root_crl_validity-below", func(c *Config) { c.RootCRLValidity = time.Hour - 1 }, false},
		{"fail/root_crl_validity-above", func(c *Config) { c.RootCRLValidity = 8760*time.Hour + 1 }, false},
		{"ok/ocsp_validity-min", func(c *Config) { c.OCSPValidity = time.Minute }, true},
		{"ok/ocsp_validity-max", func(c *Config) { c.OCSPValidity, c.ResponderValidity = 168*time.Hour, 720*time.Hour }, true},
		{"fail/ocsp_validity-below", func(c *Config) { c.OCSPValidity = time.Minute - 1 }, false},
		{"fail/ocsp_validity-above", func(c *Config) { c.OCSPValidity, c.ResponderValidity = 168*time.Hour+1, 720*time.Hour }, false},
		{"ok/ocsp_responder_validity-min", func(c *Config) { c.ResponderValidity, c.OCSPValidity = time.Hour, time.Minute }, true},
		{"ok/ocsp_responder_validity-max", func(c *Config) { c.ResponderValidity = 720 * time.Hour }, true},
		{"fail/ocsp_responder_validity-below", func(c *Config) { c.ResponderValidity, c.OCSPValidity = time.Hour-1, time.Minute }, false},
		{"fail/ocsp_responder_validity-above", func(c *Config) { c.ResponderValidity = 720*time.Hour + 1 }, false},
		// A response must expire before the responder certificate that
		// signed it: the responder is renewed at two thirds of its life.
		{"ok/ocsp_validity-third-of-responder", func(c *Config) { c.OCSPValidity, c.ResponderValidity = 24*time.Hour, 72*time.Hour }, true},
		{"fail/ocsp_validity-outlives-responder", func(c *Config) { c.OCSPValidity, c.ResponderValidity = 24*time.Hour+1, 72*time.Hour }, false},
		{"ok/ocsp_cache_entries-min", func(c *Config) { c.OCSPCacheEntries = 1000 }, true},
		{"ok/ocsp_cache_entries-max", func(c *Config) { c.OCSPCacheEntries = 100_000_000 }, true},
		{"fail/ocsp_cache_entries-below", func(c *Config) { c.OCSPCacheEntries = 999 }, false},
		{"fail/ocsp_cache_entries-above", func(c *Config) { c.OCSPCacheEntries = 100_000_001 }, false},
		{"fail/ocsp_cache_entries-negative", func(c *Config) { c.OCSPCacheEntries = -1 }, false},
		{"ok/poll_interval-min", func(c *Config) { c.PollInterval = 100 * time.Millisecond }, true},
		{"ok/poll_interval-max", func(c *Config) { c.PollInterval = time.Minute }, true},
		{"fail/poll_interval-below", func(c *Config) { c.PollInterval = 100*time.Millisecond - 1 }, false},
		{"fail/poll_interval-above", func(c *Config) { c.PollInterval = time.Minute + 1 }, false},
		{"fail/poll_interval-negative", func(c *Config) { c.PollInterval = -time.Second }, false},
		{"ok/crl_lease-min", func(c *Config) { c.CRLLease = 2 * time.Second }, true},
		{"ok/crl_lease-max", func(c *Config) { c.CRLLease = 10 * time.Minute }, true},
		{"fail/crl_lease-below", func(c *Config) { c.CRLLease = 2*time.Second - 1 }, false},
		{"fail/crl_lease-above", func(c *Config) { c.CRLLease = 10*time.Minute + 1 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{}.WithDefaults()
			tc.edit(&c)
			before := c
			err := c.Validate()
			if c != before {
				t.Errorf("Validate changed the Config: %+v, was %+v", c, before)
			}
			if tc.ok {
				if err != nil {
					t.Errorf("Validate(%+v) = %v, want nil", c, err)
				}
				return
			}
			wantKind(t, "Validate", err, fault.Malformed)
		})
	}
}
