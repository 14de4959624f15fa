package verify

import (
	"crypto/x509"
	"time"
)

// This file holds the types of the device-JWT check that jwt-core owns
// (brief-17's shared API), so that the proxy's MQTT mode can be built
// against them before jwt-core lands. It goes when branch jwt-core is
// merged: jwt-core's own definitions replace it.

// DeviceJWT is a device token that passed every check.
type DeviceJWT struct {
	DeviceID    string            // aud's last segment = the certificate's CN
	Certificate *x509.Certificate // the live certificate whose key signed it
	KeyID       string            // the kid used: lowercase hex SHA-256 of Certificate.Raw
	Expiry      time.Time         // exp
}

// The reasons a device JWT is refused (JWTError.Reason).
const (
	ReasonMalformed    = "malformed"
	ReasonBadAlgorithm = "bad_algorithm"
	ReasonExpired      = "expired"
	ReasonNotYetValid  = "not_yet_valid"
	ReasonLifetime     = "lifetime_too_long"
	ReasonBadAudience  = "bad_audience"
	ReasonUnknownKey   = "unknown_key"
	ReasonBadSignature = "bad_signature"
	ReasonRevoked      = "revoked"
	ReasonBadChain     = "bad_chain"
	ReasonUnavailable  = "unavailable"
)

// JWTError is why a token was refused; Reason is one of the Reason
// constants.
type JWTError struct{ Reason, Detail string }

func (e *JWTError) Error() string {
	if e.Detail == "" {
		return "device jwt refused: " + e.Reason
	}
	return "device jwt refused: " + e.Reason + ": " + e.Detail
}
