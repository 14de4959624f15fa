package api

// Paths on the CA's plain-HTTP listener that carry what a verifier needs
// before it can trust anything: the CA certificates. They prove nothing by
// themselves; a client pins the root by its SHA-256.
const (
	// RootsPEMPath serves the trusted roots as a PEM bundle.
	RootsPEMPath = "/roots.pem"
	// ChainPEMPath serves the intermediate(s) as a PEM bundle.
	ChainPEMPath = "/chain.pem"
)
