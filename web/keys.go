package web

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"go.step.sm/crypto/jose"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
)

// deviceKeysMaxAge is how long a cache may keep a device's key set without
// revalidating it: a new key is found at once anyway (verifiers refetch on
// an unknown kid), and a revoked key is refused by the CRL or feed.
const deviceKeysMaxAge = time.Minute

// deviceKeys serves GET /v1/devices/{id}/keys on the HTTP listener: the JWK
// Set of the device's live certificate keys (kid = api.KeyID, x5c = the
// certificate and the intermediate), with an ETag for conditional GETs.
// A revoked device has an empty set; an unknown device is a 404 problem.
func (s *Server) deviceKeys(c echo.Context) error {
	id, err := deviceParam(c)
	if err != nil {
		return fault.Wrap(err, fault.NotFound, fmt.Sprintf("no device has ID %q", c.Param("id")), api.DeviceIDHint)
	}
	certs, err := s.deps.Enroll.DeviceKeys(c.Request().Context(), id)
	if err != nil {
		return err
	}
	inter := s.deps.CA.Intermediate()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, rec := range certs {
		cert, err := x509.ParseCertificate(rec.DER)
		if err != nil {
			return fmt.Errorf("device keys of %q: certificate %s: %w", id, rec.Serial.Text(16), err)
		}
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: cert.PublicKey, KeyID: api.KeyID(rec.DER), Use: "sig",
			Algorithm: jwtAlgorithm(cert), Certificates: []*x509.Certificate{cert, inter}})
	}
	body, err := json.Marshal(set)
	if err != nil {
		return fmt.Errorf("device keys of %q: %w", id, err)
	}
	sum := sha256.Sum256(body)
	h := c.Response().Header()
	h.Set("Content-Type", "application/jwk-set+json")
	h.Set("ETag", `"`+hex.EncodeToString(sum[:16])+`"`)
	h.Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(deviceKeysMaxAge.Seconds())))
	c.Set(ctxDeviceID, string(id))
	http.ServeContent(c.Response(), c.Request(), "", time.Time{}, bytes.NewReader(body))
	return nil
}

// jwtAlgorithm is the JWS alg of a certificate's key type (RFC 7517 "alg").
func jwtAlgorithm(cert *x509.Certificate) string {
	switch k := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		return string(jose.RS256)
	case ed25519.PublicKey:
		return string(jose.EdDSA)
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return string(jose.ES256)
		case elliptic.P384():
			return string(jose.ES384)
		}
	}
	return ""
}
