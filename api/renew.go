package api

import "time"

// RenewPath is where a device renews its certificate on the HTTPS listener.
// It authenticates with its current certificate over mutual TLS, or, once
// that certificate has expired, with a renewal token (Authorization: Bearer
// <JWT>, see RenewalTokenClaims). An empty body renews the same key; a CSR
// (as for EnrollPath) rekeys. The answer is an EnrollResponse with
// RenewAfter, RenewalInfo and ParentSerial set: 201 for a new certificate,
// 200 for a retry that returns the certificate already issued.
const RenewPath = "/v1/renew"

// RenewalInfoPath is followed by a certificate's serial (lowercase hex):
// GET /v1/renewal-info/{serial} answers a RenewalInfo and a Retry-After
// header saying when to ask again, in the spirit of ACME ARI (RFC 9773).
const RenewalInfoPath = "/v1/renewal-info/"

// RenewalInfo is the window in which a certificate should be renewed
// (RFC 9773 §4.2). A window whose start has passed means "renew now": after
// an admin's renew-now, or once the certificate is revoked or its issuer
// replaced.
type RenewalInfo struct {
	SuggestedWindow Window `json:"suggestedWindow"`
	// ExplanationURL, if set, says why the window moved.
	ExplanationURL string `json:"explanationURL,omitempty"`
}

// Window is a time interval, RFC 3339 on the wire.
type Window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// The renewal token: a JWT signed by the key of the certificate to renew,
// for a device whose certificate has expired (its TLS handshake would
// fail). Its header carries the certificate and its chain, leaf first, as
// "x5c" (or step's "x5cInsecure"); its claims are RenewalTokenClaims.
const (
	// RenewalTokenMaxLifetime bounds exp - iat.
	RenewalTokenMaxLifetime = 5 * time.Minute
	// RenewalTokenSkew is the clock skew allowed on iat, nbf and exp.
	RenewalTokenSkew = 10 * time.Minute
)

// RenewalTokenClaims are the claims of a renewal token. Aud is the full
// renew URL the token is sent to (https://HOST:PORT/v1/renew), Sub the
// device ID; ID (jti) is random, and a token is accepted once. Times are
// NumericDate (seconds since the epoch).
type RenewalTokenClaims struct {
	Issuer    string `json:"iss,omitempty"`
	Subject   string `json:"sub"`
	Audience  string `json:"aud"`
	IssuedAt  int64  `json:"iat"`
	NotBefore int64  `json:"nbf,omitempty"`
	Expiry    int64  `json:"exp"`
	ID        string `json:"jti"`
}

// RenewNowResponse is the answer to POST /v1/admin/devices/{id}/renew-now
// and POST /v1/admin/devices/renew-now (the whole fleet): from At on, the
// renewal window of every certificate issued before At (of that device, or
// of every device) starts at once, and agents renew at their next check.
type RenewNowResponse struct {
	// DeviceID is empty for the whole fleet.
	DeviceID string `json:"device_id,omitempty"`
	At       string `json:"at"`
}
