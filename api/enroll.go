package api

// EnrollPath is where a device posts its CSR on the HTTPS listener, with
// Authorization: Bearer <enrollment token> and the CSR as PEM
// (application/x-pem-file), base64 DER (application/pkcs10) or JSON
// {"csr": "<PEM>"}.
const EnrollPath = "/v1/enroll"

// EnrollResponse is the 201 body of POST /v1/enroll and POST /v1/renew.
type EnrollResponse struct {
	DeviceID string `json:"device_id"`
	// Serial is the certificate's serial, lowercase hex.
	Serial string `json:"serial"`
	// NotAfter is RFC 3339, UTC.
	NotAfter    string `json:"not_after"`
	Certificate string `json:"certificate"`
	// Chain is the leaf then the intermediate(s), root excluded, as PEM.
	Chain string `json:"chain"`
	// RenewAfter (RFC 3339, UTC) is when the device should renew: two
	// thirds of the validity, with a jitter of ±1 % of the validity.
	RenewAfter string `json:"renew_after,omitempty"`
	// RenewalInfo is the suggested renewal window, as GET
	// /v1/renewal-info/{serial} gives it.
	RenewalInfo *RenewalInfo `json:"renewal_info,omitempty"`
	// ParentSerial, on a renewal, is the serial of the certificate it
	// renewed (lowercase hex).
	ParentSerial string `json:"parent_serial,omitempty"`
}
