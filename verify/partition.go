package verify

import (
	"context"
	"crypto/x509"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	cryptobyte_asn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/redact"
)

// oidIDP is id-ce-issuingDistributionPoint (RFC 5280 §5.2.5).
var oidIDP = asn1.ObjectIdentifier{2, 5, 29, 28}

// crlScope returns the URIs in the fullName of rl's Issuing Distribution
// Point (RFC 5280 §5.2.5), and whether it has one. A CRL without IDP is
// complete for every certificate of its issuer: OpenSSL then uses it for
// any of them, which is why a partition CRL without one is refused (it
// would stand in for the other partitions' CRLs, missing their entries).
// We do not follow nameRelativeToCRLIssuer, reasons or indirect CRLs:
// fleetca issues none of them, and an IDP with any of them is refused.
func crlScope(rl *x509.RevocationList) (uris []string, has bool, err error) {
	for _, ext := range rl.Extensions {
		if !ext.Id.Equal(oidIDP) {
			continue
		}
		if has {
			return nil, false, errors.New("two issuing distribution point extensions")
		}
		has = true
		in := cryptobyte.String(ext.Value)
		var idp cryptobyte.String
		if !in.ReadASN1(&idp, cryptobyte_asn1.SEQUENCE) || !in.Empty() {
			return nil, false, errors.New("malformed issuing distribution point")
		}
		var dpn cryptobyte.String
		var present bool
		if !idp.ReadOptionalASN1(&dpn, &present, cryptobyte_asn1.Tag(0).Constructed().ContextSpecific()) {
			return nil, false, errors.New("malformed issuing distribution point")
		}
		if present {
			var names cryptobyte.String
			if !dpn.ReadASN1(&names, cryptobyte_asn1.Tag(0).Constructed().ContextSpecific()) || !dpn.Empty() {
				return nil, false, errors.New("issuing distribution point names no fullName")
			}
			for !names.Empty() {
				var gn cryptobyte.String
				var tag cryptobyte_asn1.Tag
				if !names.ReadAnyASN1(&gn, &tag) {
					return nil, false, errors.New("malformed issuing distribution point name")
				}
				if tag == cryptobyte_asn1.Tag(6).ContextSpecific() {
					uris = append(uris, string(gn))
				}
			}
		}
		// onlyContainsUserCerts [1], onlyContainsCACerts [2]: allowed;
		// onlySomeReasons [3], indirectCRL [4],
		// onlyContainsAttributeCerts [5]: not fleetca's, refused.
		for !idp.Empty() {
			var v cryptobyte.String
			var tag cryptobyte_asn1.Tag
			if !idp.ReadAnyASN1(&v, &tag) {
				return nil, false, errors.New("malformed issuing distribution point")
			}
			if tag != cryptobyte_asn1.Tag(1).ContextSpecific() && tag != cryptobyte_asn1.Tag(2).ContextSpecific() {
				return nil, false, fmt.Errorf("issuing distribution point has a field fleetca does not issue (tag %d)", tag&0x1f)
			}
		}
	}
	return uris, has, nil
}

// scopeIs reports whether one of uris has a URL path ending in path (the
// CA's public URL, which may have a path prefix, may differ from the base
// URL a verifier fetches from). path starts with "/", so "/crl/3" does not
// match "/crl/13".
func scopeIs(uris []string, path string) bool {
	for _, u := range uris {
		if pu, err := url.Parse(u); err == nil && strings.HasSuffix(pu.Path, path) {
			return true
		}
	}
	return false
}

// fetchPartitions reads the CA's discovery document
// (api.PartitionsPath). A CA that answers 404 (older than partitions) or
// says 0 or 1 has none: it is reported as one partition, the full CRL
// alone.
func fetchPartitions(ctx context.Context, client *http.Client, base string) (*api.CRLPartitions, error) {
	u := base + api.PartitionsPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("CRL partitions URL %q: %w", redact.URL(u), err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch CRL partitions: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return &api.CRLPartitions{Partitions: 1, Full: api.FullCRL{Needed: true}}, nil
	default:
		return nil, fmt.Errorf("fetch CRL partitions %s: %s", redact.URL(u), resp.Status)
	}
	d, err := parsePartitions(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("CRL partitions %s: %w", redact.URL(u), err)
	}
	return d, nil
}

// parsePartitions decodes a discovery document, which comes over plain
// HTTP: only Partitions and Full.Needed are used (the CRLs are fetched
// under the verifier's own base URL), and Partitions must be in
// 0..api.MaxCRLPartitions. 0 (what a CA with crl_partitions 1 says) and 1
// mean the full CRL alone.
func parsePartitions(r io.Reader) (*api.CRLPartitions, error) {
	var d api.CRLPartitions
	if err := json.NewDecoder(r).Decode(&d); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if d.Partitions < 0 || d.Partitions > api.MaxCRLPartitions {
		return nil, fmt.Errorf("%d partitions, outside 0..%d", d.Partitions, api.MaxCRLPartitions)
	}
	if d.Partitions <= 1 {
		d.Partitions, d.Full.Needed = 1, true
	}
	return &d, nil
}
