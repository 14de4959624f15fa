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
)

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
