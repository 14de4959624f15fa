package web

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/revocation"
)

// jwkSet is the wire form of a JWK Set, as a verifier reads it.
type jwkSet struct {
	Keys []struct {
		Kty, Kid, Use, Alg string
		X5c                []string
	}
}

func TestDeviceKeys(t *testing.T) {
	f := newFixture(t)
	h := f.srv.HTTPHandler()
	var serials []string
	for range 3 {
		rec := do(f.srv.HTTPSHandler(), "POST", "/v1/enroll", f.token(t, "dev-1"), "application/x-pem-file", csrPEM(t, "dev-1"))
		if rec.Code != http.StatusCreated {
			t.Fatalf("enroll: %d %s", rec.Code, rec.Body)
		}
		var out api.EnrollResponse
		json.Unmarshal(rec.Body.Bytes(), &out)
		serials = append(serials, out.Serial)
	}
	get := func(path, etag string) (*jwkSet, string, int) {
		t.Helper()
		req, _ := http.NewRequest("GET", path, nil)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		rec := doReq(h, req)
		if rec.Code != http.StatusOK {
			return nil, rec.Header().Get("ETag"), rec.Code
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/jwk-set+json" {
			t.Errorf("GET %s Content-Type = %q, want application/jwk-set+json", path, ct)
		}
		if cc := rec.Header().Get("Cache-Control"); cc == "" {
			t.Errorf("GET %s has no Cache-Control", path)
		}
		var s jwkSet
		if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, rec.Body)
		}
		return &s, rec.Header().Get("ETag"), rec.Code
	}
	set, etag, _ := get(api.DeviceKeysPath("dev-1"), "")
	if len(set.Keys) != 3 || etag == "" {
		t.Fatalf("dev-1 key set has %d keys, ETag %q; want 3 and an ETag", len(set.Keys), etag)
	}
	seen := map[string]bool{}
	for _, k := range set.Keys {
		if len(k.X5c) != 2 {
			t.Fatalf("key %s x5c has %d certificates, want 2", k.Kid, len(k.X5c))
		}
		der, _ := decodeB64(k.X5c[0])
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		inter, _ := decodeB64(k.X5c[1])
		if k.Kid != api.KeyID(der) || cert.Subject.CommonName != "dev-1" || k.Kty != "EC" || k.Alg != "ES256" || k.Use != "sig" ||
			string(inter) != string(f.authty.IntermediateDER()) {
			t.Errorf("key = kid %s kty %s alg %s use %s CN %s; want the certificate's fingerprint, EC ES256 sig, dev-1, intermediate second",
				k.Kid, k.Kty, k.Alg, k.Use, cert.Subject.CommonName)
		}
		seen[cert.SerialNumber.Text(16)] = true
	}
	for _, s := range serials {
		if !seen[s] {
			t.Errorf("certificate %s is not in the key set", s)
		}
	}
	if _, _, code := get(api.DeviceKeysPath("dev-1"), etag); code != http.StatusNotModified {
		t.Errorf("conditional GET with the ETag = %d, want 304", code)
	}
	if rec := do(h, "HEAD", api.DeviceKeysPath("dev-1"), "", "", ""); rec.Code != 200 || rec.Body.Len() != 0 {
		t.Errorf("HEAD = %d with %d bytes, want 200 without a body", rec.Code, rec.Body.Len())
	}
	for _, path := range []string{api.DeviceKeysPath("dev-9"), "/v1/devices/-bad/keys"} {
		rec := do(h, "GET", path, "", "", "")
		if rec.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, rec.Code)
		} else {
			problemOf(t, rec)
		}
	}
	if rec := do(f.srv.HTTPSHandler(), "GET", api.DeviceKeysPath("dev-1"), "", "", ""); rec.Code != http.StatusNotFound {
		t.Errorf("key set on the HTTPS listener = %d, want 404 (it is on the HTTP listener)", rec.Code)
	}

	// One certificate revoked: two keys; the device revoked: none.
	n, _ := parseSerial(serials[0])
	if _, err := f.rev.Revoke(t.Context(), revocation.RevokeRequest{Serial: n, Reason: api.ReasonKeyCompromise, Actor: "admin:test"}); err != nil {
		t.Fatal(err)
	}
	set, etag2, _ := get(api.DeviceKeysPath("dev-1"), etag)
	if set == nil || len(set.Keys) != 2 || etag2 == etag {
		t.Fatalf("after revoking one certificate: %v ETag %q (was %q), want 2 keys and a new ETag", set, etag2, etag)
	}
	if _, err := f.rev.Revoke(t.Context(), revocation.RevokeRequest{DeviceID: "dev-1", Reason: api.ReasonKeyCompromise, Actor: "admin:test"}); err != nil {
		t.Fatal(err)
	}
	if set, _, _ := get(api.DeviceKeysPath("dev-1"), ""); set == nil || len(set.Keys) != 0 {
		t.Errorf("revoked device's key set = %v, want empty", set)
	}
}

func doReq(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func decodeB64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
