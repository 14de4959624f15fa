package enroll

import (
	"fmt"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
)

// Config is the enroll section of fleetca.yaml. The zero value of each field
// means its default.
type Config struct {
	// MaxActiveCertificates is how many live (unexpired, unrevoked)
	// certificates one device may hold at once. Default 3; range 1..100.
	MaxActiveCertificates int `yaml:"max_active_certificates"`
	// DefaultTokenTTL is a token's lifetime when the admin gives none.
	// Default 24h; range 1m..MaxTokenTTL.
	DefaultTokenTTL time.Duration `yaml:"default_token_ttl"`
	// MaxTokenTTL is the longest lifetime a token may be given.
	// Default 720h (30 days); range 1m..8760h.
	MaxTokenTTL time.Duration `yaml:"max_token_ttl"`
	// MaxTokenUses is the most uses one token may be given.
	// Default 100000; range 1..10000000.
	MaxTokenUses int `yaml:"max_token_uses"`

	// TrustDomain is the SPIFFE trust domain of device URI SANs, as
	// api.ParseTrustDomain returns it. It is not read from the enroll
	// section: cmd/fleetca parses the top-level trust_domain key into it.
	// Required.
	TrustDomain api.TrustDomain `yaml:"-"`

	// RenewAfterExpiry is how long after its NotAfter a certificate may
	// still renew, with a renewal token only. Zero: never (the default);
	// at most 8760h. cmd/fleetca sets it from ca.renew_after_expiry.
	RenewAfterExpiry time.Duration `yaml:"-"`
	// RenewMinInterval is the least time between two renewals of one
	// device; retries are exempt. Default 1h; range 1s..168h. cmd/fleetca
	// sets it from ca.renew_min_interval.
	RenewMinInterval time.Duration `yaml:"-"`
	// RenewURLs are the URLs a renewal token's aud may name: the renew
	// path (api.RenewPath) on each name of the HTTPS listener, like
	// "https://ca.example.net:8443/v1/renew". An aud without a port also
	// matches a URL of the same host. cmd/fleetca makes them from
	// server.dns, the loopback names and the listener's port. Empty: every
	// renewal token is refused (renewal over mutual TLS still works).
	RenewURLs []string `yaml:"-"`
}

// Defaults.
const (
	defaultMaxActive   = 3
	defaultTokenTTL    = 24 * time.Hour
	defaultMaxTokenTTL = 720 * time.Hour
	defaultMaxUses     = 100_000
	minTokenTTL        = time.Minute
	// defaultRenewMinInterval is ca.DefaultRenewMinInterval; enroll
	// keeps its own default so that a Config built in a test needs none.
	defaultRenewMinInterval = time.Hour
	maxRenewAfterExpiry     = 8760 * time.Hour
)

// WithDefaults returns a copy of c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.MaxActiveCertificates == 0 {
		c.MaxActiveCertificates = defaultMaxActive
	}
	if c.MaxTokenTTL == 0 {
		c.MaxTokenTTL = defaultMaxTokenTTL
	}
	if c.DefaultTokenTTL == 0 {
		c.DefaultTokenTTL = min(defaultTokenTTL, c.MaxTokenTTL)
	}
	if c.MaxTokenUses == 0 {
		c.MaxTokenUses = defaultMaxUses
	}
	if c.RenewMinInterval == 0 {
		c.RenewMinInterval = defaultRenewMinInterval
	}
	return c
}

// Validate checks a Config that WithDefaults filled. It changes nothing.
func (c Config) Validate() error {
	bad := func(key, got, want string) error {
		return fault.New(fault.Malformed,
			fmt.Sprintf("enroll.%s is %s, outside its range", key, got),
			fmt.Sprintf("set it to %s in fleetca.yaml", want))
	}
	switch {
	case c.MaxActiveCertificates < 1 || c.MaxActiveCertificates > 100:
		return bad("max_active_certificates", fmt.Sprint(c.MaxActiveCertificates), "1..100")
	case c.MaxTokenTTL < minTokenTTL || c.MaxTokenTTL > 8760*time.Hour:
		return bad("max_token_ttl", c.MaxTokenTTL.String(), "1m..8760h")
	case c.DefaultTokenTTL < minTokenTTL || c.DefaultTokenTTL > c.MaxTokenTTL:
		return bad("default_token_ttl", c.DefaultTokenTTL.String(), "1m..max_token_ttl")
	case c.MaxTokenUses < 1 || c.MaxTokenUses > 10_000_000:
		return bad("max_token_uses", fmt.Sprint(c.MaxTokenUses), "1..10000000")
	}
	if _, err := api.ParseTrustDomain(string(c.TrustDomain)); err != nil {
		return fault.WithKey(err, "trust_domain")
	}
	ca := func(key, got, want string) error {
		return fault.WithKey(fault.New(fault.Malformed, fmt.Sprintf("ca.%s is %s, outside its range", key, got),
			fmt.Sprintf("set it to %s in fleetca.yaml", want)), "ca."+key)
	}
	switch {
	case c.RenewAfterExpiry < 0 || c.RenewAfterExpiry > maxRenewAfterExpiry:
		return ca("renew_after_expiry", c.RenewAfterExpiry.String(), "0 (never) .. 8760h")
	case c.RenewMinInterval < time.Second || c.RenewMinInterval > 168*time.Hour:
		return ca("renew_min_interval", c.RenewMinInterval.String(), "1s..168h")
	}
	if _, err := parseAudiences(c.RenewURLs); err != nil {
		return err
	}
	return nil
}
