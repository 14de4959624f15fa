package api

import "strconv"

// Partitioned CRLs (issue 18), on the CA's plain-HTTP listener beside
// CRLPath. With revocation.crl_partitions N > 1 each new certificate
// records a partition p in [0, N) and names CRLPartitionPath(p) in its CRL
// distribution point; that partition's CRL carries an Issuing Distribution
// Point (RFC 5280 §5.2.5) whose fullName is exactly that URL, so OpenSSL
// uses it only for the certificates of its partition.
const (
	// CRLPartitionsPath is the discovery document, JSON: CRLPartitions. A
	// CA without partitions (or older than them) answers 404 there.
	CRLPartitionsPath = "/crl/partitions"
)

// CRLPartitionPath is partition p's CRL, DER; CRLPartitionPath(p)+".pem"
// is the same CRL as PEM.
func CRLPartitionPath(p int) string { return CRLPath + "/" + strconv.Itoa(p) }

// CRLPartitions is the discovery document at CRLPartitionsPath.
type CRLPartitions struct {
	// Partitions is N; 1 means the full CRL alone, as before partitions.
	Partitions int `json:"partitions"`
	// CRLs has one entry per partition, in partition order.
	CRLs []CRLPartition `json:"crls"`
	// Full is the full CRL (CRLPath), which lists every revoked device
	// certificate.
	Full CRLFull `json:"full"`
}

// CRLPartition describes one partition's current CRL.
type CRLPartition struct {
	Partition int `json:"partition"`
	// URL is the public URL, as in the certificates' CDP and the CRL's IDP.
	URL string `json:"url"`
	// Number is the CRL number, decimal; NextUpdate is RFC 3339.
	Number     string `json:"number"`
	NextUpdate string `json:"next_update"`
}

// CRLFull describes the full CRL.
type CRLFull struct {
	URL string `json:"url"`
	// Needed says that some live certificate has no partition (it was
	// issued while N was 1, and names CRLPath), so verifiers must load
	// the full CRL as well as the partitions.
	Needed bool `json:"needed"`
}
