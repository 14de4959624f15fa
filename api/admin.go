package api

// AdminPrefix starts every admin API path on the HTTPS listener. Every admin
// request carries Authorization: Bearer <admin token>. Times are RFC 3339
// in UTC, empty when unset; serials are lowercase hex.
const AdminPrefix = "/v1/admin"

// TokenRequest is the body of POST /v1/admin/tokens: exactly one of DeviceID
// and DevicePattern (a path.Match glob of new device IDs).
type TokenRequest struct {
	DeviceID      string `json:"device_id,omitempty"`
	DevicePattern string `json:"device_pattern,omitempty"`
	// AnyDevice confirms that DevicePattern matches every device ID ("*",
	// "?*", "[A-Za-z0-9]*", ...), so that the token enrolls any new
	// device. Such a pattern is refused without it, and it is refused with
	// a pattern that does not match every ID or with a DeviceID.
	AnyDevice bool `json:"any_device,omitempty"`
	// TTL is a Go duration ("8h"), from 1m to the CA's
	// enroll.max_token_ttl; empty (or absent) means the CA's
	// enroll.default_token_ttl. "0s" and negative TTLs are refused.
	TTL string `json:"ttl,omitempty"`
	// Uses is how many devices the token may enroll; 0 means 1.
	Uses int `json:"uses,omitempty"`
	// Format is "" for a fleetca token, or "step" for a one-time token in
	// the step CLI's JWK-provisioner form (a JWT for one device ID, one
	// use), which `step ca certificate ID crt key --token T` redeems.
	Format string `json:"format,omitempty"`
	// RevokeSerial, with Format "step" and no device, asks for a one-use
	// step revocation token for the certificate with this serial (hex):
	// `step ca revoke SERIAL --token T`, SERIAL in decimal, redeems it.
	RevokeSerial string `json:"revoke_serial,omitempty"`
}

// MaxTokenBatch is the most device IDs one POST /v1/admin/tokens/batch
// names; a client mints more in chunks of this size.
const MaxTokenBatch = 500

// TokenBatchRequest is the body of POST /v1/admin/tokens/batch: one
// one-use token for each device ID, minted and stored in one transaction
// (all or none). TTL and Format are as in TokenRequest.
type TokenBatchRequest struct {
	DeviceIDs []string `json:"device_ids"`
	TTL       string   `json:"ttl,omitempty"`
	Format    string   `json:"format,omitempty"`
}

// TokenBatch answers POST /v1/admin/tokens/batch: the tokens, secrets
// included, in the order of the request's device IDs.
type TokenBatch struct {
	Tokens []Token `json:"tokens"`
}

// Token is an enrollment token as the admin API shows it: never its hash,
// and its secret only in the answer to its creation.
type Token struct {
	ID            string `json:"id"`
	DeviceID      string `json:"device_id,omitempty"`
	DevicePattern string `json:"device_pattern,omitempty"`
	Uses          int    `json:"uses"`
	Spent         int    `json:"spent"`
	CreatedAt     string `json:"created_at"`
	ExpiresAt     string `json:"expires_at"`
	RevokedAt     string `json:"revoked_at,omitempty"`

	// AnyDevice is set when DevicePattern matches every device ID: the
	// token enrolls any new device.
	AnyDevice bool `json:"any_device,omitempty"`
	// Token is the secret, present only in the answer to its creation.
	Token string `json:"token,omitempty"`
}

// Device is a device as the admin API shows it.
type Device struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
	// Certificates are the device's certificates, in GET
	// /v1/admin/devices/{id} only.
	Certificates []Certificate `json:"certificates,omitempty"`
}

// Certificate is an issued certificate as the admin API shows it.
type Certificate struct {
	Serial    string `json:"serial"`
	DeviceID  string `json:"device_id"`
	NotBefore string `json:"not_before"`
	NotAfter  string `json:"not_after"`
	IssuedAt  string `json:"issued_at"`
	RevokedAt string `json:"revoked_at,omitempty"`
	// Reason is the RFC 5280 §5.3.1 reason code of a revoked certificate.
	Reason int `json:"reason,omitempty"`
	// ParentSerial is the serial of the certificate this one renewed;
	// empty for an enrollment. Following it gives the chain of renewals.
	ParentSerial string `json:"parent_serial,omitempty"`
	// Certificate is the PEM, in GET /v1/admin/certificates/{serial} only.
	Certificate string `json:"certificate,omitempty"`
}

// TokenPage, DevicePage and CertificatePage are one page of an admin
// listing (GET /v1/admin/tokens, devices, certificates with
// ?limit=N&after=CURSOR): the items, and Next, the cursor to pass as after
// for the next page, empty on the last one.
type TokenPage struct {
	Tokens []Token `json:"tokens"`
	Next   string  `json:"next"`
}

// DevicePage is a page of GET /v1/admin/devices; see TokenPage.
type DevicePage struct {
	Devices []Device `json:"devices"`
	Next    string   `json:"next"`
}

// CertificatePage is a page of GET /v1/admin/certificates; see TokenPage.
type CertificatePage struct {
	Certificates []Certificate `json:"certificates"`
	Next         string        `json:"next"`
}

// RevokeRequest is the optional body of POST
// /v1/admin/certificates/{serial}/revoke and /v1/admin/devices/{id}/revoke.
type RevokeRequest struct {
	// Reason is an RFC 5280 reason name (keyCompromise, superseded, ...);
	// empty means unspecified.
	Reason string `json:"reason,omitempty"`
}

// RevokeResponse is the answer to a revocation: every certificate it
// revoked.
type RevokeResponse struct {
	Revoked []RevokedCertificate `json:"revoked"`
}

// RevokedCertificate is one certificate a revocation revoked.
type RevokedCertificate struct {
	Serial    string `json:"serial"`
	DeviceID  string `json:"device_id"`
	RevokedAt string `json:"revoked_at"`
	// Reason is the RFC 5280 reason name.
	Reason string `json:"reason"`
}

// ServerCertRequest is the body of POST /v1/admin/certificates/server.
type ServerCertRequest struct {
	// CSR is a PEM CERTIFICATE REQUEST; only its key is certified.
	CSR string `json:"csr"`
	// DNS and IPs are the certificate's names.
	DNS []string `json:"dns,omitempty"`
	IPs []string `json:"ips,omitempty"`
}

// ServerCertResponse is the 201 body of POST /v1/admin/certificates/server.
type ServerCertResponse struct {
	Serial      string `json:"serial"`
	NotAfter    string `json:"not_after"`
	Certificate string `json:"certificate"`
	// Chain is the leaf then the intermediate(s), root excluded: what a
	// TLS server sends.
	Chain string `json:"chain"`
}

// AdminRequest is the body of POST /v1/admin/admins: a new admin's name
// ([a-z0-9][a-z0-9._-]{0,63}) and role (viewer, operator or owner).
type AdminRequest struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// Admin is an admin as the admin API shows it. Its token is never shown,
// except once, in Token, in the answer to its creation or rotation.
type Admin struct {
	Name       string `json:"name"`
	Role       string `json:"role"`
	CreatedAt  string `json:"created_at"`
	DisabledAt string `json:"disabled_at,omitempty"`
	RotatedAt  string `json:"rotated_at,omitempty"`
	// TokenID is the public handle of its current token (as audit rows
	// name it).
	TokenID string `json:"token_id"`
	Token   string `json:"token,omitempty"`
}

// AdminList is the answer to GET /v1/admin/admins.
type AdminList struct {
	Admins []Admin `json:"admins"`
}
