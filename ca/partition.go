package ca

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"math/bits"
	"strconv"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
)

// oidIssuingDistributionPoint is id-ce-IssuingDistributionPoint (RFC 5280
// §5.2.5).
var oidIssuingDistributionPoint = asn1.ObjectIdentifier{2, 5, 29, 28}

// CheckCRLPartitions returns a Malformed fault naming
// revocation.crl_partitions unless n is 0 (the default, 1), or a power of
// two from 1 to api.MaxCRLPartitions.
func CheckCRLPartitions(n int) error {
	if n == 0 || n > 0 && n <= api.MaxCRLPartitions && bits.OnesCount(uint(n)) == 1 {
		return nil
	}
	return fault.New(fault.Malformed,
		fmt.Sprintf("revocation.crl_partitions is %d, not a power of two from 1 to %d", n, api.MaxCRLPartitions),
		"set it to 1 (one full CRL), 2, 4, ... or 256 in fleetca.yaml")
}

// PartitionOfSerial is the CRL partition of n (a power of two) that a
// certificate with serial is assigned at issuance: the serial's low
// log2(n) bits, uniform since serials are random. What counts afterwards
// is the partition recorded with the certificate (store.Certificate
// Partition, PartitionOf), never this again: a change of n moves no
// certificate.
func PartitionOfSerial(serial *big.Int, n int) int {
	w := serial.Bits()
	if n <= 1 || len(w) == 0 {
		return 0
	}
	return int(uint(w[0]) & uint(n-1))
}

// PartitionURL is partition p's CRL distribution point on baseURL (the
// public URL without its trailing slash): baseURL+"/crl/<p>", the URL a
// partitioned certificate's CDP and its partition CRL's issuing
// distribution point both name.
func PartitionURL(baseURL string, p int) string {
	return strings.TrimSuffix(baseURL, "/") + api.PartitionCRLPath(p)
}

// PartitionOf returns the CRL partition a certificate this CA issued was
// assigned, read from its CRL distribution point (".../crl/<p>"), or nil
// for one that points at the full CRL (".../crl") or has none.
func PartitionOf(cert *x509.Certificate) *int {
	for _, u := range cert.CRLDistributionPoints {
		i := strings.LastIndex(u, api.CRLPath+"/")
		if i < 0 {
			continue
		}
		digits := u[i+len(api.CRLPath)+1:]
		p, err := strconv.Atoi(digits)
		if err != nil || p < 0 || p >= api.MaxCRLPartitions || strconv.Itoa(p) != digits {
			continue
		}
		return &p
	}
	return nil
}

// IssuingDistributionPoint returns the extension SignCRL gives a
// partition CRL (CRLTemplate.DistributionPoint). It encodes the IDP extension of a partition CRL
// (RFC 5280 §5.2.5), critical as the RFC requires: distributionPoint
// fullName the one URI url, exactly as partitioned certificates carry it
// in their CRL distribution point (so that OpenSSL and the other
// verifiers match them), and onlyContainsUserCerts, since a partition
// covers end-entity certificates only.
//
//	IssuingDistributionPoint ::= SEQUENCE {
//	    distributionPoint      [0] DistributionPointName OPTIONAL,
//	    onlyContainsUserCerts  [1] BOOLEAN DEFAULT FALSE, ... }
//	DistributionPointName ::= CHOICE { fullName [0] GeneralNames, ... }
//	GeneralName ::= CHOICE { ..., uniformResourceIdentifier [6] IA5String, ... }
func IssuingDistributionPoint(url string) (pkix.Extension, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(idp *cryptobyte.Builder) {
		idp.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(dpn *cryptobyte.Builder) {
			dpn.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(names *cryptobyte.Builder) {
				names.AddASN1(cbasn1.Tag(6).ContextSpecific(), func(uri *cryptobyte.Builder) {
					uri.AddBytes([]byte(url))
				})
			})
		})
		idp.AddASN1(cbasn1.Tag(1).ContextSpecific(), func(only *cryptobyte.Builder) {
			only.AddUint8(0xff)
		})
	})
	der, err := b.Bytes()
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("encode issuing distribution point: %w", err)
	}
	return pkix.Extension{Id: oidIssuingDistributionPoint, Critical: true, Value: der}, nil
}
