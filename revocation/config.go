package revocation

import (
	"fmt"
	"time"

	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/internal/fault"
)

// Config is the revocation section of fleetca.yaml. Zero values mean the
// defaults.
type Config struct {
	// CRLValidity is a device CRL's nextUpdate minus thisUpdate. Default
	// 24h; range 10m..720h. A new CRL is published after every revocation
	// and at the latest when half of this has passed.
	CRLValidity time.Duration `yaml:"crl_validity"`
	// CRLPublishDelay coalesces revocations: a CRL is built at most this
	// long after the first revocation it has not yet listed. Default 200ms;
	// range 0..1s.
	CRLPublishDelay time.Duration `yaml:"crl_publish_delay"`
	// RootCRLValidity is the root CRL's validity when this server signs it
	// (the root key is present), and the default of 'fleetca crl
	// sign-root'. Default 720h; range 1h..8760h.
	RootCRLValidity time.Duration `yaml:"root_crl_validity"`
	// OCSPValidity is an OCSP response's nextUpdate minus thisUpdate
	// (RFC 5019 §4: what caches may keep). Cached responses are re-signed
	// once half of it has passed. Default 1h; range 1m..168h, and at most
	// a third of ResponderValidity, so that no response outlives the
	// responder certificate that signed it (renewed at two thirds).
	OCSPValidity time.Duration `yaml:"ocsp_validity"`
	// ResponderValidity is the lifetime of the delegated OCSP responder
	// certificate, renewed at two thirds. Default 72h; range 1h..720h.
	ResponderValidity time.Duration `yaml:"ocsp_responder_validity"`
	// OCSPCacheEntries bounds the pre-signed response cache. Default
	// 1000000; range 1000..100000000.
	OCSPCacheEntries int `yaml:"ocsp_cache_entries"`
	// PollInterval is how often the Service reads the store's revocation
	// log and latest CRL besides the store's change signals, which are
	// lost while a shared database's listener reconnects: a revocation
	// made through another replica reaches this one's OCSP answers, feed
	// and CRL within it at worst. Default 1s; range 100ms..1m.
	PollInterval time.Duration `yaml:"poll_interval"`
	// CRLLease is how long a replica holds the CRL signer's lease
	// (store.Replication.LeaseCRL) once it takes it to build a CRL: the
	// others serve its CRL meanwhile, and a holder that died is replaced
	// once it runs out. It must outlast the signing of the largest CRL.
	// Default 15s; range 2s..10m.
	CRLLease time.Duration `yaml:"crl_lease"`
	// CRLPartitions is the number of partition CRLs: 1 (the default)
	// publishes the full CRL alone, as before; a power of two N up to
	// 256 assigns each new device certificate partition p (from its
	// serial), whose CRL distribution point is <public_url>/crl/<p>, and
	// publishes each partition's CRL there, beside the full CRL.
	// Certificates keep the partition they were issued with when N
	// changes.
	CRLPartitions int `yaml:"crl_partitions"`
}

// WithDefaults returns a copy of c with zero fields set to the defaults.
func (c Config) WithDefaults() Config {
	if c.CRLValidity == 0 {
		c.CRLValidity = 24 * time.Hour
	}
	if c.CRLPublishDelay == 0 {
		c.CRLPublishDelay = 200 * time.Millisecond
	}
	if c.RootCRLValidity == 0 {
		c.RootCRLValidity = 720 * time.Hour
	}
	if c.OCSPValidity == 0 {
		c.OCSPValidity = time.Hour
	}
	if c.ResponderValidity == 0 {
		c.ResponderValidity = 72 * time.Hour
	}
	if c.OCSPCacheEntries == 0 {
		c.OCSPCacheEntries = 1_000_000
	}
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
	}
	if c.CRLLease == 0 {
		c.CRLLease = 15 * time.Second
	}
	if c.CRLPartitions == 0 {
		c.CRLPartitions = 1
	}
	return c
}

// Validate checks a Config that WithDefaults filled. It changes nothing.
func (c Config) Validate() error {
	type rng struct {
		key       string
		v, lo, hi time.Duration
	}
	for _, r := range []rng{
		{"crl_validity", c.CRLValidity, 10 * time.Minute, 720 * time.Hour},
		{"crl_publish_delay", c.CRLPublishDelay, 0, time.Second},
		{"root_crl_validity", c.RootCRLValidity, time.Hour, 8760 * time.Hour},
		{"ocsp_validity", c.OCSPValidity, time.Minute, 168 * time.Hour},
		{"ocsp_responder_validity", c.ResponderValidity, time.Hour, 720 * time.Hour},
		{"poll_interval", c.PollInterval, 100 * time.Millisecond, time.Minute},
		{"crl_lease", c.CRLLease, 2 * time.Second, 10 * time.Minute},
	} {
		if r.v < r.lo || r.v > r.hi {
			return fault.New(fault.Malformed, fmt.Sprintf("revocation.%s is %s, outside %s..%s", r.key, r.v, r.lo, r.hi),
				"set it in that range in fleetca.yaml")
		}
	}
	if c.OCSPCacheEntries < 1000 || c.OCSPCacheEntries > 100_000_000 {
		return fault.New(fault.Malformed, fmt.Sprintf("revocation.ocsp_cache_entries is %d, outside 1000..100000000", c.OCSPCacheEntries),
			"set it in that range in fleetca.yaml")
	}
	if err := ca.CheckCRLPartitions(c.CRLPartitions); err != nil {
		return err
	}
	if c.OCSPValidity > c.ResponderValidity/3 {
		return fault.New(fault.Malformed, fmt.Sprintf("revocation.ocsp_validity %s is more than a third of revocation.ocsp_responder_validity %s: "+
			"OCSP responses would outlive the responder certificate that signed them", c.OCSPValidity, c.ResponderValidity),
			"lower ocsp_validity or raise ocsp_responder_validity in fleetca.yaml")
	}
	return nil
}
