package api

// The step CLI's routes (smallstep/certificates' api package, v0.30.2),
// served on the HTTPS listener at the root and again under StepPrefix, so
// that `step ca ...` works against fleetca unchanged. Their answers and
// errors have step-ca's JSON shapes, not fleetca's.
const (
	// StepPrefix is the second mount point of the step routes: step-ca
	// serves its API at "/" and "/1.0/".
	StepPrefix = "/1.0"
	// StepHealthPath answers StepHealthResponse.
	StepHealthPath = "/health"
	// StepVersionPath answers StepVersionResponse.
	StepVersionPath = "/version"
	// StepRootsPath answers 201 (as step-ca does) StepRootsResponse.
	StepRootsPath = "/roots"
	// StepRootPath is followed by the hex SHA-256 of a root's DER and
	// answers StepRootResponse, or 404.
	StepRootPath = "/root/"
	// StepRenewPath renews over mutual TLS with an empty body, or with
	// "Authorization: Bearer <renewal token>" (step's x5cInsecure token,
	// aud = this path's URL, with or without StepPrefix). It answers 201
	// StepSignResponse, a retry included.
	StepRenewPath = "/renew"
	// StepRekeyPath takes StepRekeyRequest over mutual TLS and answers 201
	// StepSignResponse.
	StepRekeyPath = "/rekey"
	// StepSignPath takes StepSignRequest (a CSR and a one-time token that
	// fleetca minted in step's form) and answers 201 StepSignResponse.
	StepSignPath = "/sign"
	// StepRevokePath takes StepRevokeRequest over mutual TLS with the
	// certificate to revoke and answers StepHealthResponse.
	StepRevokePath = "/revoke"
)

// StepSignRequest is the body of POST /sign. NotBefore and NotAfter are
// "", RFC 3339 times or Go durations; fleetca issues its profile's
// validity and refuses any other.
type StepSignRequest struct {
	CSR          string         `json:"csr"`
	OTT          string         `json:"ott"`
	NotBefore    string         `json:"notBefore,omitempty"`
	NotAfter     string         `json:"notAfter,omitempty"`
	TemplateData map[string]any `json:"templateData,omitempty"`
}

// StepRevokeRequest is the body of POST /revoke: Serial is decimal, as
// step sends it.
type StepRevokeRequest struct {
	Serial     string `json:"serial"`
	OTT        string `json:"ott,omitempty"`
	ReasonCode int    `json:"reasonCode,omitempty"`
	Reason     string `json:"reason,omitempty"`
	Passive    bool   `json:"passive,omitempty"`
}

// StepHealthResponse is {"status":"ok"}.
type StepHealthResponse struct {
	Status string `json:"status"`
}

// StepVersionResponse names the server's version.
type StepVersionResponse struct {
	Version string `json:"version"`
}

// StepRootsResponse lists the fleet's roots, PEM each.
type StepRootsResponse struct {
	Certificates []string `json:"crts"`
}

// StepRootResponse is one root, PEM.
type StepRootResponse struct {
	RootPEM string `json:"ca"`
}

// StepRekeyRequest is the body of POST /rekey: a PEM PKCS #10 request for
// the new key.
type StepRekeyRequest struct {
	CSR string `json:"csr"`
}

// StepSignResponse is a new certificate: the leaf, its issuer, and the
// chain (leaf, then intermediate), PEM each.
type StepSignResponse struct {
	ServerPEM    string   `json:"crt"`
	CaPEM        string   `json:"ca"`
	CertChainPEM []string `json:"certChain"`
}

// StepError is the body of every error on the step routes; the step CLI
// prints Message.
type StepError struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
}
