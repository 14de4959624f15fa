package api

import "strconv"

// Paths on the CA's plain-HTTP listener (default 127.0.0.1:8080), which
// verifiers and clients reach before they can trust anything: what they
// fetch there is either signed (CRLs, OCSP responses) or proves nothing by
// itself (the CA certificates: a client pins the root by its SHA-256). A
// verifier is given the listener's base URL (http://ca.example:8080) and
// appends these; the CA's web package serves them. The feed, on the HTTPS
// listener, is FeedPath.
const (
	// CRLPath is the device CRL, DER (application/pkix-crl), signed by the
	// intermediate; CRLPEMPath is the same CRL as PEM.
	CRLPath    = "/crl"
	CRLPEMPath = "/crl.pem"
	// RootCRLPath is the root's CRL over intermediates, DER, signed by the
	// root: verifiers built on OpenSSL's CRL_CHECK_ALL want a CRL for
	// every CA in the chain.
	RootCRLPath = "/root.crl"
	// PartitionsPath is the discovery document of the partitioned CRLs
	// (revocation.crl_partitions), JSON: CRLPartitions. Partition p's CRL
	// is at PartitionCRLPath(p), DER, and the same with ".pem" as PEM.
	PartitionsPath = "/crl/partitions"
	// OCSPPath is the OCSP responder: POST OCSPPath, or
	// GET OCSPPath/{base64 request} (RFC 6960 Appendix A, RFC 5019 §5).
	OCSPPath = "/ocsp"
	// RootsPEMPath serves the trusted roots as a PEM bundle; ChainPEMPath
	// the intermediate(s) as a PEM bundle; IntermediatePath the
	// intermediate, DER (the caIssuers target of device certificates).
	RootsPEMPath     = "/roots.pem"
	ChainPEMPath     = "/chain.pem"
	IntermediatePath = "/intermediate.crt"
	// HealthPath answers 200 while the CA can work (both listeners).
	HealthPath = "/healthz"
)

// EST (RFC 7030, with RFC 8951's clarifications), on the HTTPS listener:
// ESTPrefix + "/" + an ESTOp*, or ESTPrefix + "/<label>/" + an ESTOp*,
// where the label must be the configured web.est_label.
const (
	ESTPrefix = "/.well-known/est"

	ESTOpCACerts        = "cacerts"
	ESTOpSimpleEnroll   = "simpleenroll"
	ESTOpSimpleReenroll = "simplereenroll"
	ESTOpCSRAttrs       = "csrattrs"
	ESTOpServerKeygen   = "serverkeygen"

	// ESTRealm is the realm of the HTTP Basic challenge on simpleenroll.
	ESTRealm = "fleetca"
)

// MaxCRLPartitions bounds revocation.crl_partitions: partitions are
// numbered 0 to MaxCRLPartitions-1.
const MaxCRLPartitions = 256

// PartitionCRLPath is the path of partition p's CRL, "/crl/<p>" (DER);
// a certificate assigned partition p carries it, on the CA's public URL,
// as its CRL distribution point.
func PartitionCRLPath(p int) string { return CRLPath + "/" + strconv.Itoa(p) }

// CRLPartitions is the discovery document at PartitionsPath: the CRLs a
// verifier loads to check every certificate of the CA.
type CRLPartitions struct {
	// Partitions is the number of partition CRLs published: the
	// configured revocation.crl_partitions, or more while certificates
	// assigned under a larger setting may be live.
	Partitions int `json:"partitions"`
	// CRLs are the partition CRLs, by partition.
	CRLs []PartitionCRL `json:"crls"`
	// Full is the full CRL, which lists every revoked certificate.
	Full FullCRL `json:"full"`
}

// PartitionCRL is one partition's CRL in CRLPartitions.
type PartitionCRL struct {
	Partition int `json:"partition"`
	// URL is the CRL's distribution point, as certificates carry it.
	URL string `json:"url"`
	// Number is the CRL number, decimal; NextUpdate RFC 3339.
	Number     string `json:"number"`
	NextUpdate string `json:"next_update"`
}

// FullCRL is the full CRL in CRLPartitions.
type FullCRL struct {
	URL string `json:"url"`
	// Needed says whether a live certificate may have no partition (issued
	// before partitions were configured): its distribution point is the
	// full CRL, which a verifier must then load as well.
	Needed bool `json:"needed"`
}
