package api

import (
	"crypto/sha256"
	"encoding/hex"
)

// DeviceKeysPath returns the path, on the CA's plain-HTTP listener, of
// the JWK Set of a device's live certificate keys (GET, with an ETag): the
// keys a device may sign its JWTs with. Each key's kid is KeyID of its
// certificate and its x5c the certificate and the intermediate.
func DeviceKeysPath(id DeviceID) string { return "/v1/devices/" + string(id) + "/keys" }

// DeviceKeysRoute is DeviceKeysPath in a router's pattern syntax.
const DeviceKeysRoute = "/v1/devices/:id/keys"

// KeyID is the kid of a device JWT signed with the key of certificate
// der: the lowercase hex SHA-256 of the certificate's DER.
func KeyID(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// JWTDevicesSegment joins a verifier's audience base and a device ID into
// the aud a device JWT must carry: <base>/devices/<id>.
const JWTDevicesSegment = "/devices/"
