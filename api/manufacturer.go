package api

// ManufacturersPath is the admin collection of manufacturers, under
// AdminPrefix: POST a ManufacturerRequest to add one (201, Manufacturer),
// GET for a ManufacturerList, DELETE ManufacturersPath/{name} to remove
// one (204).
const ManufacturersPath = AdminPrefix + "/manufacturers"

// Where a manufacturer certificate's device ID is read
// (ManufacturerRequest.DeviceIDFrom).
const (
	DeviceIDFromCN           = "cn"
	DeviceIDFromSerialNumber = "serialNumber"
)

// ManufacturerRequest is the body of POST /v1/admin/manufacturers. A
// device whose certificate (IDevID, installed in the factory) chains to CA
// may then enroll, on POST /v1/enroll without a token, by presenting it
// over mutual TLS.
type ManufacturerRequest struct {
	// Name is unique, with the syntax of a device ID ("acme").
	Name string `json:"name"`
	// CA is the manufacturer's CA certificate(s), PEM.
	CA string `json:"ca"`
	// DeviceIDFrom is "cn" (the subject common name) or "serialNumber"
	// (the subject serialNumber attribute).
	DeviceIDFrom string `json:"device_id_from"`
	// DevicePattern, if set, is a glob (path.Match) every device ID must
	// match ("acme-*").
	DevicePattern string `json:"device_pattern,omitempty"`
}

// Manufacturer is a manufacturer as the admin API shows it.
type Manufacturer struct {
	Name          string `json:"name"`
	DeviceIDFrom  string `json:"device_id_from"`
	DevicePattern string `json:"device_pattern,omitempty"`
	// CA is the CA certificate(s), PEM; CASHA256 the SHA-256 of each
	// certificate's DER, lowercase hex, in the same order.
	CA        string   `json:"ca"`
	CASHA256  []string `json:"ca_sha256"`
	CreatedAt string   `json:"created_at"`
}

// ManufacturerList is the answer to GET /v1/admin/manufacturers, by name.
type ManufacturerList struct {
	Manufacturers []Manufacturer `json:"manufacturers"`
}
