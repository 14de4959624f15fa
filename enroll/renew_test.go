package enroll

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.step.sm/crypto/jose"
	"go.step.sm/crypto/minica"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// device is an enrolled device: its certificate and key.
type device struct {
	id   string
	cert *x509.Certificate
	key  crypto.Signer
}

// enrollDevice enrolls id with a fresh P-256 key at the fixture's clock.
func (f *fixture) enrollDevice(t testing.TB, id string) device {
	t.Helper()
	secret, _ := f.token(t, TokenRequest{DeviceID: id})
	csr, key := newCSR(t, id)
	res, err := f.svc.Enroll(t.Context(), string(secret), csr)
	if err != nil {
		t.Fatalf("Enroll(%s): %v", id, err)
	}
	// The store orders a device's certificates by IssuedAt, then serial:
	// a renewal at the same instant might sort before its parent.
	f.clock.Add(time.Second)
	return device{id: id, cert: res.Certificate, key: key}
}

// chain is what the device presents: its certificate, then the intermediate.
func (f *fixture) chain(d device) []*x509.Certificate {
	return []*x509.Certificate{d.cert, f.ca.Intermediate()}
}

// mtls renews d over mutual TLS; csr, if not nil, rekeys.
func (f *fixture) mtls(t *testing.T, d device, csr []byte) (*Result, error) {
	t.Helper()
	return f.svc.Renew(t.Context(), RenewRequest{PeerCertificates: f.chain(d), CSR: csr})
}

// claims are good renewal-token claims for d at the fixture's clock.
func (f *fixture) claims(d device) jose.Claims {
	now := f.clock.Now()
	return jose.Claims{
		Subject: d.id, Audience: jose.Audience{testRenewURLs[0]}, ID: rand.Text(),
		IssuedAt: jose.NewNumericDate(now), NotBefore: jose.NewNumericDate(now), Expiry: jose.NewNumericDate(now.Add(5 * time.Minute)),
	}
}

// mint signs a renewal token with key, with chain in its x5c header (or
// step's x5cInsecure).
func mint(t testing.TB, key crypto.Signer, chain []*x509.Certificate, claims jose.Claims, insecure bool) string {
	t.Helper()
	var x5c []string
	for _, c := range chain {
		x5c = append(x5c, base64.StdEncoding.EncodeToString(c.Raw))
	}
	header := jose.HeaderKey("x5c")
	if insecure {
		header = jose.HeaderKey(jose.X5cInsecureKey)
	}
	alg := jose.ES256
	switch k := key.Public().(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P384() {
			alg = jose.ES384
		}
	case ed25519.PublicKey:
		alg = jose.EdDSA
	case *rsa.PublicKey:
		alg = jose.PS256
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: key},
		new(jose.SignerOptions).WithType("JWT").WithHeader(header, x5c))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jose.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// token renews d with a token of the given claims.
func (f *fixture) tokenRenew(t *testing.T, d device, claims jose.Claims, csr []byte) (*Result, error) {
	t.Helper()
	return f.svc.Renew(t.Context(), RenewRequest{Token: mint(t, d.key, f.chain(d), claims, false), CSR: csr})
}

// claimsRenew is a TestRenewTable case's run: a token renewal (tokenRenew)
// with f.claims(d) as edit changes them.
func claimsRenew(edit func(c *jose.Claims)) func(t *testing.T, f *fixture, d device) (*Result, error) {
	return func(t *testing.T, f *fixture, d device) (*Result, error) {
		claims := f.claims(d)
		edit(&claims)
		return f.tokenRenew(t, d, claims, nil)
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// checkRenewed checks a renewal's result: the device's names from the
// record, the parent, and the key.
func checkRenewed(t *testing.T, res *Result, d device, parent *big.Int, pub crypto.PublicKey) {
	t.Helper()
	c := res.Certificate
	if res.DeviceID != api.DeviceID(d.id) || c.Subject.CommonName != d.id || len(c.URIs) != 1 ||
		c.URIs[0].String() != "spiffe://fleet.test/device/"+d.id {
		t.Errorf("renewed certificate names %q (CN %q, URIs %v), want device %s", res.DeviceID, c.Subject.CommonName, c.URIs, d.id)
	}
	if res.Parent == nil || res.Parent.Cmp(parent) != 0 {
		t.Errorf("Parent = %v, want %s", res.Parent, parent.Text(16))
	}
	if k, ok := pub.(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(c.PublicKey) {
		t.Errorf("renewed certificate does not certify the expected key")
	}
	if c.SerialNumber.Cmp(d.cert.SerialNumber) == 0 {
		t.Errorf("renewal returned the parent certificate itself")
	}
	start, end := res.RenewalInfo.SuggestedWindow.Start, res.RenewalInfo.SuggestedWindow.End
	if res.RenewAfter.Before(start) || res.RenewAfter.After(end) || !start.After(c.NotBefore) || !end.Before(c.NotAfter) {
		t.Errorf("renew_after %s, window %s..%s: want renew_after inside the window, inside the validity %s..%s",
			res.RenewAfter, start, end, c.NotBefore, c.NotAfter)
	}
}

// TestRenewTable: each renewal rule of issue 11 on the injected clock, over
// mutual TLS and with a renewal token.
func TestRenewTable(t *testing.T) {
	const day = 24 * time.Hour
	validity := ca.DefaultDeviceValidity
	otherCA, err := minica.New()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		// run sets the scene on a fixture with device dev-1 (d) enrolled
		// at testStart, and renews.
		run  func(t *testing.T, f *fixture, d device) (*Result, error)
		want fault.Kind // 0: renewed
		// replayed is the retry answer; rekey is set when the key changed.
		replayed, rekey bool
		// grandchild: the result renewed d's renewal, not d.
		grandchild bool
		kind       string // the metric's kind label
	}{
		{name: "ok/before-window", kind: kindRenew, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			f.clock.Add(time.Minute)
			return f.mtls(t, d, nil)
		}},
		{name: "ok/in-window", kind: kindRenew, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			f.clock.Add(validity * 2 / 3)
			return f.mtls(t, d, nil)
		}},
		{name: "ok/token-in-window", kind: kindRenew, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			f.clock.Add(validity * 2 / 3)
			return f.tokenRenew(t, d, f.claims(d), nil)
		}},
		{name: "ok/token-x5cInsecure", kind: kindRenew, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			claims := f.claims(d)
			claims.ID = "" // as step's renew tokens: spent by their payload
			return f.svc.Renew(t.Context(), RenewRequest{Token: mint(t, d.key, f.chain(d), claims, true)})
		}},
		{name: "ok/token-leaf-only", kind: kindRenew, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			return f.svc.Renew(t.Context(), RenewRequest{Token: mint(t, d.key, []*x509.Certificate{d.cert}, f.claims(d), false)})
		}},
		{name: "ok/token-aud-without-port", kind: kindRenew, run: claimsRenew(func(c *jose.Claims) {
			c.Audience = jose.Audience{"https://CA.fleet.test/v1/renew"}
		})},
		{name: "ok/expired-in-grace-token", cfg: Config{RenewAfterExpiry: 30 * day}, kind: kindAfterExpiry,
			run: func(t *testing.T, f *fixture, d device) (*Result, error) {
				f.clock.Add(validity + 29*day)
				return f.tokenRenew(t, d, f.claims(d), nil)
			}},
		{name: "ok/expired-in-grace-rekey", cfg: Config{RenewAfterExpiry: 30 * day}, kind: kindAfterExpiry, rekey: true,
			run: func(t *testing.T, f *fixture, d device) (*Result, error) {
				f.clock.Add(validity + day)
				return f.tokenRenew(t, d, f.claims(d), csrFor(t, newKey(t), d.id))
			}},
		{name: "fail/expired-beyond-grace-token", cfg: Config{RenewAfterExpiry: 30 * day}, want: fault.Forbidden, kind: kindAfterExpiry,
			run: func(t *testing.T, f *fixture, d device) (*Result, error) {
				f.clock.Add(validity + 31*day)
				return f.tokenRenew(t, d, f.claims(d), nil)
			}},
		{name: "fail/expired-no-grace-token", want: fault.Forbidden, kind: kindAfterExpiry,
			run: func(t *testing.T, f *fixture, d device) (*Result, error) {
				f.clock.Add(validity + time.Second)
				return f.tokenRenew(t, d, f.claims(d), nil)
			}},
		{name: "fail/expired-in-grace-mtls", cfg: Config{RenewAfterExpiry: 30 * day}, want: fault.Unauthorized, kind: kindRenew,
			run: func(t *testing.T, f *fixture, d device) (*Result, error) {
				f.clock.Add(validity + day)
				return f.mtls(t, d, nil)
			}},
		// EST's simplereenroll has no token form (RenewRequest.NoTokenForm).
		{name: "fail/expired-in-grace-no-token-form", cfg: Config{RenewAfterExpiry: 30 * day}, want: fault.Forbidden, kind: kindAfterExpiry,
			run: func(t *testing.T, f *fixture, d device) (*Result, error) {
				f.clock.Add(validity + day)
				return f.svc.Renew(t.Context(), RenewRequest{PeerCertificates: f.chain(d), NoTokenForm: true})
			}},
		{name: "fail/expired-beyond-grace-no-token-form", cfg: Config{RenewAfterExpiry: 30 * day}, want: fault.Forbidden, kind: kindAfterExpiry,
			run: func(t *testing.T, f *fixture, d device) (*Result, error) {
				f.clock.Add(validity + 31*day)
				return f.svc.Renew(t.Context(), RenewRequest{PeerCertificates: f.chain(d), NoTokenForm: true})
			}},
		{name: "fail/expired-no-grace-no-token-form", want: fault.Forbidden, kind: kindAfterExpiry,
			run: func(t *testing.T, f *fixture, d device) (*Result, error) {
				f.clock.Add(validity + time.Second)
				return f.svc.Renew(t.Context(), RenewRequest{PeerCertificates: f.chain(d), NoTokenForm: true})
			}},
		{name: "fail/other-ca-no-token-form", want: fault.Forbidden, kind: kindRenew, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			leaf := otherCALeaf(t, otherCA, d.id, newKey(t), f.clock.Now())
			return f.svc.Renew(t.Context(), RenewRequest{PeerCertificates: []*x509.Certificate{leaf, otherCA.Intermediate}, NoTokenForm: true})
		}},
		{name: "fail/revoked", want: fault.Forbidden, kind: kindRenew, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			f.revoke(t, store.RevokeRequest{Serial: d.cert.SerialNumber, Reason: 1})
			return f.mtls(t, d, nil)
		}},
		{name: "fail/revoked-token", want: fault.Forbidden, kind: kindRenew, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			f.revoke(t, store.RevokeRequest{Serial: d.cert.SerialNumber, Reason: 5})
			return f.tokenRenew(t, d, f.claims(d), nil)
		}},
		{name: "fail/revoked-after-expiry", cfg: Config{RenewAfterExpiry: 30 * day}, want: fault.Forbidden, kind: kindAfterExpiry,
			run: func(t *testing.T, f *fixture, d device) (*Result, error) {
				f.revoke(t, store.RevokeRequest{Serial: d.cert.SerialNumber, Reason: 5})
				f.clock.Add(validity + day)
				return f.tokenRenew(t, d, f.claims(d), nil)
			}},
		{name: "fail/device-revoked", want: fault.Forbidden, kind: kindRenew, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			f.revoke(t, store.RevokeRequest{DeviceID: d.id, Reason: 5})
			return f.mtls(t, d, nil)
		}},
		{name: "fail/older-lineage", want: fault.Conflict, kind: kindRenew, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			if _, err := f.mtls(t, d, nil); err != nil {
				t.Fatalf("first renewal: %v", err)
			}
			f.clock.Add(RetryWindow + time.Second) // no longer a retry
			return f.mtls(t, d, nil)
		}},
		{name: "fail/older-than-a-new-enrollment", want: fault.Conflict, kind: kindRenew, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			f.clock.Add(time.Second)
			f.enrollDevice(t, d.id)
			return f.mtls(t, d, nil)
		}},
		{name: "ok/retry", kind: kindRenew, replayed: true, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			first, err := f.mtls(t, d, nil)
			if err != nil || first.Replayed {
				t.Fatalf("first renewal: %+v, %v", first, err)
			}
			f.clock.Add(RetryWindow - time.Second)
			again, err := f.mtls(t, d, nil)
			if err == nil && !again.Certificate.Equal(first.Certificate) {
				t.Errorf("retry returned serial %s, want the first renewal's %s", SerialHex(again.Certificate), SerialHex(first.Certificate))
			}
			return again, err
		}},
		{name: "ok/retry-rekey", kind: kindRekey, rekey: true, replayed: true, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			csr := csrFor(t, newKey(t), d.id)
			first, err := f.mtls(t, d, csr)
			if err != nil {
				t.Fatalf("first rekey: %v", err)
			}
			again, err := f.tokenRenew(t, d, f.claims(d), csr) // the other form is the same renewal
			if err == nil && !again.Certificate.Equal(first.Certificate) {
				t.Errorf("retry returned serial %s, want the first rekey's %s", SerialHex(again.Certificate), SerialHex(first.Certificate))
			}
			return again, err
		}},
		{name: "ok/rekey", kind: kindRekey, rekey: true, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			return f.mtls(t, d, csrFor(t, newKey(t), d.id))
		}},
		{name: "ok/rekey-empty-subject", kind: kindRekey, rekey: true, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			return f.mtls(t, d, csrFor(t, newKey(t), ""))
		}},
		{name: "fail/rekey-weak-key", want: fault.BadKey, kind: kindRekey, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			return f.mtls(t, d, readCSR(t, "csr-rsa1024.pem")) // CN=dev-1
		}},
		{name: "fail/rekey-other-name", want: fault.BadCSR, kind: kindRekey, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			return f.mtls(t, d, csrFor(t, newKey(t), "dev-2"))
		}},
		{name: "fail/rekey-extra-dns", want: fault.BadCSR, kind: kindRekey, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			return f.mtls(t, d, readCSR(t, "csr-extra-dns.pem"))
		}},
		// Issue 12 #6: a rekey CSR that asks for more than a device gets.
		{name: "fail/rekey-ca-true", want: fault.BadCSR, kind: kindRekey, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			return f.mtls(t, d, readCSR(t, "csr-ext-ca-true.pem"))
		}},
		{name: "fail/rekey-eku-serverauth", want: fault.BadCSR, kind: kindRekey, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			return f.mtls(t, d, readCSR(t, "csr-ext-eku-serverauth.pem"))
		}},
		{name: "fail/rekey-bad-signature", want: fault.BadCSR, kind: kindRekey, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			return f.mtls(t, d, readCSR(t, "csr-bad-signature.pem"))
		}},
		{name: "fail/rekey-blocked-key", want: fault.Forbidden, kind: kindRekey, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			other := f.enrollDevice(t, "dev-2")
			f.revoke(t, store.RevokeRequest{DeviceID: other.id, Reason: 1, BlockKeys: true})
			return f.mtls(t, d, csrFor(t, other.key, d.id))
		}},
		{name: "fail/rekey-another-devices-key", want: fault.Conflict, kind: kindRekey, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			other := f.enrollDevice(t, "dev-2")
			return f.mtls(t, d, csrFor(t, other.key, d.id))
		}},
		{name: "fail/rate-limit", want: fault.RateLimited, kind: kindRekey, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			first, err := f.mtls(t, d, nil)
			if err != nil {
				t.Fatalf("first renewal: %v", err)
			}
			f.clock.Add(10 * time.Minute)
			// The new certificate, with a new key: not a retry.
			_, err = f.mtls(t, device{id: d.id, cert: first.Certificate, key: d.key}, csrFor(t, newKey(t), d.id))
			if fe, ok := err.(*fault.Error); ok && fe.RetryAfter != 50*time.Minute {
				t.Errorf("RetryAfter = %s, want 50m (ca.renew_min_interval 1h, renewed 10m ago)", fe.RetryAfter)
			}
			return nil, err
		}},
		{name: "ok/after-min-interval", kind: kindRenew, grandchild: true, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			first, err := f.mtls(t, d, nil)
			if err != nil {
				t.Fatalf("first renewal: %v", err)
			}
			f.clock.Add(time.Hour)
			res, err := f.mtls(t, device{id: d.id, cert: first.Certificate, key: d.key}, nil)
			if err != nil {
				return nil, err
			}
			if res.Parent.Cmp(first.Certificate.SerialNumber) != 0 {
				t.Errorf("second renewal's parent = %s, want the first renewal %s", res.Parent.Text(16), SerialHex(first.Certificate))
			}
			return res, nil
		}},
		{name: "ok/token-replay-is-the-retry", kind: kindRenew, replayed: true, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			tok := mint(t, d.key, f.chain(d), f.claims(d), false)
			first, err := f.svc.Renew(t.Context(), RenewRequest{Token: tok})
			if err != nil {
				t.Fatalf("first use: %v", err)
			}
			again, err := f.svc.Renew(t.Context(), RenewRequest{Token: tok})
			if err == nil && !again.Certificate.Equal(first.Certificate) {
				t.Errorf("replayed token renewed again: serial %s, want the first answer %s", SerialHex(again.Certificate), SerialHex(first.Certificate))
			}
			return again, err
		}},
		{name: "fail/token-replay", cfg: Config{RenewMinInterval: time.Second}, want: fault.Unauthorized, kind: kindRenew,
			run: func(t *testing.T, f *fixture, d device) (*Result, error) {
				tok := mint(t, d.key, f.chain(d), f.claims(d), false)
				first, err := f.svc.Renew(t.Context(), RenewRequest{Token: tok})
				if err != nil {
					t.Fatalf("first use: %v", err)
				}
				// The renewal's certificate revoked: the parent is the
				// newest again, and the replay is no retry.
				f.revoke(t, store.RevokeRequest{Serial: first.Certificate.SerialNumber, Reason: 4})
				f.clock.Add(2 * time.Second)
				return f.svc.Renew(t.Context(), RenewRequest{Token: tok})
			}},
		{name: "fail/token-replay-step-form", cfg: Config{RenewMinInterval: time.Second}, want: fault.Unauthorized, kind: kindRenew,
			run: func(t *testing.T, f *fixture, d device) (*Result, error) {
				claims := f.claims(d)
				claims.ID = ""
				tok := mint(t, d.key, f.chain(d), claims, true)
				first, err := f.svc.Renew(t.Context(), RenewRequest{Token: tok})
				if err != nil {
					t.Fatalf("first use: %v", err)
				}
				f.revoke(t, store.RevokeRequest{Serial: first.Certificate.SerialNumber, Reason: 4})
				f.clock.Add(2 * time.Second)
				// The same claims signed again: a new token, the same payload.
				return f.svc.Renew(t.Context(), RenewRequest{Token: mint(t, d.key, f.chain(d), claims, true)})
			}},
		{name: "fail/token-wrong-aud", want: fault.Unauthorized, kind: kindRenew, run: claimsRenew(func(c *jose.Claims) {
			c.Audience = jose.Audience{"https://ca.fleet.test:8443/v1/enroll"}
		})},
		{name: "fail/token-wrong-aud-port", want: fault.Unauthorized, kind: kindRenew, run: claimsRenew(func(c *jose.Claims) {
			c.Audience = jose.Audience{"https://ca.fleet.test:9443/v1/renew"}
		})},
		{name: "fail/token-wrong-aud-host", want: fault.Unauthorized, kind: kindRenew, run: claimsRenew(func(c *jose.Claims) {
			c.Audience = jose.Audience{"https://evil.example:8443/v1/renew"}
		})},
		{name: "fail/token-http-aud", want: fault.Unauthorized, kind: kindRenew, run: claimsRenew(func(c *jose.Claims) {
			c.Audience = jose.Audience{"http://ca.fleet.test:8443/v1/renew"}
		})},
		{name: "fail/token-wrong-sub", want: fault.Unauthorized, kind: kindRenew, run: claimsRenew(func(c *jose.Claims) {
			c.Subject = "dev-2"
		})},
		{name: "fail/token-too-long-lived", want: fault.Unauthorized, kind: kindRenew, run: claimsRenew(func(c *jose.Claims) {
			c.Expiry = jose.NewNumericDate(c.IssuedAt.Time().Add(5*time.Minute + time.Second))
		})},
		{name: "fail/token-no-exp", want: fault.Unauthorized, kind: kindRenew, run: claimsRenew(func(c *jose.Claims) {
			c.Expiry = nil
		})},
		{name: "ok/token-expired-within-skew", kind: kindRenew, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			claims := f.claims(d)
			f.clock.Add(5*time.Minute + 10*time.Minute)
			return f.tokenRenew(t, d, claims, nil)
		}},
		{name: "fail/token-expired", want: fault.Unauthorized, kind: kindRenew, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			claims := f.claims(d)
			f.clock.Add(5*time.Minute + 10*time.Minute + time.Second)
			return f.tokenRenew(t, d, claims, nil)
		}},
		{name: "fail/token-from-the-future", want: fault.Unauthorized, kind: kindRenew, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			f.clock.Add(10*time.Minute + time.Second)
			claims := f.claims(d)
			f.clock.Add(-(10*time.Minute + time.Second))
			return f.tokenRenew(t, d, claims, nil)
		}},
		{name: "fail/token-other-key", want: fault.Unauthorized, kind: kindRenew, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			return f.svc.Renew(t.Context(), RenewRequest{Token: mint(t, newKey(t), f.chain(d), f.claims(d), false)})
		}},
		{name: "fail/token-other-ca", want: fault.Unauthorized, kind: kindRenew, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			key := newKey(t)
			leaf := otherCALeaf(t, otherCA, d.id, key, f.clock.Now())
			return f.svc.Renew(t.Context(), RenewRequest{Token: mint(t, key, []*x509.Certificate{leaf, otherCA.Intermediate}, f.claims(d), false)})
		}},
		// A certificate the intermediate signed that the CA did not record
		// is refused after its chain verified, as before the record could
		// prove a leaf (tokenVerifier.recorded).
		{name: "fail/token-unrecorded", want: fault.Unauthorized, kind: kindRenew, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			key := newKey(t)
			c, err := f.ca.SignDevice(t.Context(), ca.DeviceRequest{DeviceID: api.DeviceID(d.id), PublicKey: key.Public()})
			if err != nil {
				t.Fatal(err)
			}
			return f.svc.Renew(t.Context(), RenewRequest{Token: mint(t, key, []*x509.Certificate{c, f.ca.Intermediate()}, f.claims(d), false)})
		}},
		// The recorded certificate's serial and contents, signed again by a
		// key posing as the intermediate (same name and key identifier).
		{name: "fail/token-resigned-recorded-serial", want: fault.Unauthorized, kind: kindRenew, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			forged := resign(t, d.cert, f.ca.Intermediate())
			return f.svc.Renew(t.Context(), RenewRequest{Token: mint(t, d.key, []*x509.Certificate{forged, f.ca.Intermediate()}, f.claims(d), false)})
		}},
		// The recorded certificate with one byte of its signature changed.
		{name: "fail/token-modified-recorded-leaf", want: fault.Unauthorized, kind: kindRenew, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			return f.svc.Renew(t.Context(), RenewRequest{Token: mint(t, d.key, []*x509.Certificate{modified(t, d.cert), f.ca.Intermediate()}, f.claims(d), false)})
		}},
		{name: "fail/token-modified-recorded-leaf-x5cInsecure", want: fault.Unauthorized, kind: kindRenew, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			return f.svc.Renew(t.Context(), RenewRequest{Token: mint(t, d.key, []*x509.Certificate{modified(t, d.cert), f.ca.Intermediate()}, f.claims(d), true)})
		}},
		{name: "fail/token-garbage", want: fault.Unauthorized, kind: kindRenew, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			return f.svc.Renew(t.Context(), RenewRequest{Token: "not.a.jwt"})
		}},
		{name: "fail/no-credential", want: fault.Unauthorized, kind: kindRenew, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			return f.svc.Renew(t.Context(), RenewRequest{})
		}},
		{name: "fail/mtls-other-ca", want: fault.Unauthorized, kind: kindRenew, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			leaf := otherCALeaf(t, otherCA, d.id, newKey(t), f.clock.Now())
			return f.svc.Renew(t.Context(), RenewRequest{PeerCertificates: []*x509.Certificate{leaf, otherCA.Intermediate}})
		}},
		{name: "fail/mtls-server-certificate", want: fault.Unauthorized, kind: kindRenew, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			srv, err := f.ca.SignServer(t.Context(), []string{"proxy.fleet.test"}, nil, newKey(t).Public())
			if err != nil {
				t.Fatal(err)
			}
			return f.svc.Renew(t.Context(), RenewRequest{PeerCertificates: []*x509.Certificate{srv, f.ca.Intermediate()}})
		}},
		{name: "fail/mtls-unrecorded", want: fault.Unauthorized, kind: kindRenew, run: func(t *testing.T, f *fixture, d device) (*Result, error) {
			key := newKey(t)
			c, err := f.ca.SignDevice(t.Context(), ca.DeviceRequest{DeviceID: api.DeviceID(d.id), PublicKey: key.Public()})
			if err != nil {
				t.Fatal(err)
			}
			return f.mtls(t, device{id: d.id, cert: c, key: key}, nil)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.cfg)
			d := f.enrollDevice(t, "dev-1")
			res, err := tc.run(t, f, d)
			if got := kindOf(err); got != tc.want || (err != nil && tc.want == 0) {
				t.Fatalf("Renew kind = %v (err %v), want %v", got, err, tc.want)
			}
			outcome := tc.want.String()
			switch {
			case tc.want != 0:
			case tc.replayed:
				outcome = "retry"
			default:
				outcome = "issued"
			}
			if got := testutil.ToFloat64(f.svc.renewals.WithLabelValues(tc.kind, outcome)); got < 1 {
				t.Errorf("fleetca_enroll_renewals_total{kind=%q,outcome=%q} = %v, want at least 1", tc.kind, outcome, got)
			}
			if tc.want != 0 {
				if fe := err.(*fault.Error); fe.Detail == "" || fe.Hint == "" {
					t.Errorf("refusal %q has no detail or no hint", err)
				}
				return
			}
			if res.Replayed != tc.replayed {
				t.Errorf("Replayed = %v, want %v", res.Replayed, tc.replayed)
			}
			pub := d.cert.PublicKey
			if tc.rekey {
				pub = res.Certificate.PublicKey
				if k := d.cert.PublicKey.(*ecdsa.PublicKey); k.Equal(pub) {
					t.Errorf("rekey certified the old key")
				}
			}
			parent := d.cert.SerialNumber
			if tc.grandchild {
				parent = res.Parent
			}
			checkRenewed(t, res, d, parent, pub)
			stored, err := f.store.GetCertificate(t.Context(), res.Certificate.SerialNumber)
			if err != nil {
				t.Fatalf("the renewal is not recorded: %v", err)
			}
			if stored.Parent == nil || stored.Parent.Cmp(res.Parent) != 0 {
				t.Errorf("recorded parent = %v, want %s", stored.Parent, res.Parent.Text(16))
			}
		})
	}
}

// otherCALeaf is a clientAuth certificate for id from another CA.
func otherCALeaf(t *testing.T, other *minica.CA, id string, key crypto.Signer, now time.Time) *x509.Certificate {
	t.Helper()
	leaf, err := other.Sign(&x509.Certificate{
		SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: id}, PublicKey: key.Public(),
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// resign returns leaf's contents, serial included, signed by a new key
// posing as inter: a certificate with inter's subject and key identifier.
func resign(t *testing.T, leaf, inter *x509.Certificate) *x509.Certificate {
	t.Helper()
	fakeKey := newKey(t)
	fake := *inter
	fake.PublicKey = fakeKey.Public()
	tmpl := *leaf
	tmpl.ExtraExtensions = leaf.Extensions
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &fake, leaf.PublicKey, fakeKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if c.SerialNumber.Cmp(leaf.SerialNumber) != 0 || !bytes.Equal(c.RawIssuer, inter.RawSubject) || !bytes.Equal(c.AuthorityKeyId, inter.SubjectKeyId) {
		t.Fatalf("the re-signed certificate does not pose as the recorded one under the intermediate")
	}
	return c
}

// modified returns leaf with the last byte of its DER (in its signature)
// changed.
func modified(t *testing.T, leaf *x509.Certificate) *x509.Certificate {
	t.Helper()
	der := bytes.Clone(leaf.Raw)
	der[len(der)-1] ^= 0x01
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRenewTokenRecorded: a renewal token's leaf is proved by the store's
// record only when it is the recorded certificate byte for byte under the
// intermediate, within its validity (or as of NotAfter - 1 min once
// expired), in the x5c or the x5cInsecure header; anything else is left to
// the chain's signatures.
func TestRenewTokenRecorded(t *testing.T) {
	tests := []struct {
		name string
		// token returns the token for d and the clock's advance before
		// it is checked.
		token  func(t *testing.T, f *fixture, d device) (string, time.Duration)
		lookup bool // pass the store as the lookup
		want   bool // proved by the record
		// inter, if set, edits the verifier's copy of the intermediate
		// (its fields only: the tests of what recorded reads of it).
		inter func(c *x509.Certificate, now time.Time)
	}{
		{name: "ok/x5c", lookup: true, want: true, token: func(t *testing.T, f *fixture, d device) (string, time.Duration) {
			return mint(t, d.key, f.chain(d), f.claims(d), false), 0
		}},
		{name: "ok/x5c-leaf-only", lookup: true, want: true, token: func(t *testing.T, f *fixture, d device) (string, time.Duration) {
			return mint(t, d.key, []*x509.Certificate{d.cert}, f.claims(d), false), 0
		}},
		{name: "ok/x5cInsecure", lookup: true, want: true, token: func(t *testing.T, f *fixture, d device) (string, time.Duration) {
			return mint(t, d.key, f.chain(d), f.claims(d), true), 0
		}},
		{name: "ok/expired-leaf", lookup: true, want: true, token: func(t *testing.T, f *fixture, d device) (string, time.Duration) {
			return mint(t, d.key, f.chain(d), f.claims(d), false), ca.DefaultDeviceValidity + time.Hour
		}},
		{name: "no/no-lookup", token: func(t *testing.T, f *fixture, d device) (string, time.Duration) {
			return mint(t, d.key, f.chain(d), f.claims(d), false), 0
		}},
		{name: "no/unrecorded", lookup: true, token: func(t *testing.T, f *fixture, d device) (string, time.Duration) {
			key := newKey(t)
			c, err := f.ca.SignDevice(t.Context(), ca.DeviceRequest{DeviceID: api.DeviceID(d.id), PublicKey: key.Public()})
			if err != nil {
				t.Fatal(err)
			}
			return mint(t, key, []*x509.Certificate{c}, f.claims(d), false), 0
		}},
		{name: "no/resigned", lookup: true, token: func(t *testing.T, f *fixture, d device) (string, time.Duration) {
			return mint(t, d.key, []*x509.Certificate{resign(t, d.cert, f.ca.Intermediate())}, f.claims(d), false), 0
		}},
		{name: "no/modified", lookup: true, token: func(t *testing.T, f *fixture, d device) (string, time.Duration) {
			return mint(t, d.key, []*x509.Certificate{modified(t, d.cert)}, f.claims(d), false), 0
		}},
		{name: "no/modified-x5cInsecure", lookup: true, token: func(t *testing.T, f *fixture, d device) (string, time.Duration) {
			return mint(t, d.key, []*x509.Certificate{modified(t, d.cert)}, f.claims(d), true), 0
		}},
		{name: "no/expired-intermediate", lookup: true, token: func(t *testing.T, f *fixture, d device) (string, time.Duration) {
			return mint(t, d.key, f.chain(d), f.claims(d), false), 0
		}, inter: func(c *x509.Certificate, now time.Time) { c.NotAfter = now.Add(-time.Second) }},
		{name: "no/intermediate-other-key-id", lookup: true, token: func(t *testing.T, f *fixture, d device) (string, time.Duration) {
			return mint(t, d.key, f.chain(d), f.claims(d), false), 0
		}, inter: func(c *x509.Certificate, now time.Time) { c.SubjectKeyId = []byte{1, 2, 3} }},
		// An intermediate rotated to a new key under the same name and the
		// same (no longer key-derived) identifier: the leaf's authority
		// key identifier would name the new key, which did not sign it.
		{name: "no/intermediate-key-id-not-its-key", lookup: true, token: func(t *testing.T, f *fixture, d device) (string, time.Duration) {
			return mint(t, d.key, f.chain(d), f.claims(d), false), 0
		}, inter: func(c *x509.Certificate, now time.Time) { c.PublicKey = newKey(t).Public() }},
		{name: "no/intermediate-may-not-sign-certificates", lookup: true, token: func(t *testing.T, f *fixture, d device) (string, time.Duration) {
			return mint(t, d.key, f.chain(d), f.claims(d), false), 0
		}, inter: func(c *x509.Certificate, now time.Time) { c.KeyUsage = x509.KeyUsageDigitalSignature }},
		{name: "no/intermediate-unknown-eku-only", lookup: true, token: func(t *testing.T, f *fixture, d device) (string, time.Duration) {
			return mint(t, d.key, f.chain(d), f.claims(d), false), 0
		}, inter: func(c *x509.Certificate, now time.Time) {
			c.ExtKeyUsage, c.UnknownExtKeyUsage = nil, []asn1.ObjectIdentifier{{1, 3, 6, 1, 4, 1, 99999, 1}}
		}},
		{name: "no/intermediate-server-auth-only", lookup: true, token: func(t *testing.T, f *fixture, d device) (string, time.Duration) {
			return mint(t, d.key, f.chain(d), f.claims(d), false), 0
		}, inter: func(c *x509.Certificate, now time.Time) {
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		}},
		{name: "ok/intermediate-client-auth", lookup: true, want: true, token: func(t *testing.T, f *fixture, d device) (string, time.Duration) {
			return mint(t, d.key, f.chain(d), f.claims(d), false), 0
		}, inter: func(c *x509.Certificate, now time.Time) {
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}},
		{name: "no/intermediate-name-constraints", lookup: true, token: func(t *testing.T, f *fixture, d device) (string, time.Duration) {
			return mint(t, d.key, f.chain(d), f.claims(d), false), 0
		}, inter: func(c *x509.Certificate, now time.Time) { c.PermittedURIDomains = []string{"fleet.test"} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			d := f.enrollDevice(t, "dev-1")
			tok, advance := tc.token(t, f, d)
			jws, err := jose.ParseSigned(tok)
			if err != nil {
				t.Fatal(err)
			}
			var lookup recordLookup
			if tc.lookup {
				lookup = func(serial *big.Int) (store.Certificate, bool) {
					rec, err := f.store.GetCertificate(t.Context(), serial)
					return rec, err == nil
				}
			}
			v, now := f.svc.tokens, f.clock.Now().Add(advance)
			if tc.inter != nil {
				// Through newTokenVerifier, which decides whether records
				// may prove leaves under this intermediate at all.
				inter := *f.ca.Intermediate()
				tc.inter(&inter, now)
				v = newTokenVerifier(&inter, v.audiences)
			}
			leaf, at := v.firstCertificate(jws.Headers[0], now)
			if leaf == nil {
				t.Fatal("firstCertificate() = nil, want the token's leaf")
			}
			rec := v.recorded(leaf, at, lookup)
			if got := rec != nil; got != tc.want {
				t.Fatalf("recorded() = record %v; want proved %v", got, tc.want)
			}
			if tc.want && (!bytes.Equal(leaf.Raw, d.cert.Raw) || !bytes.Equal(rec.DER, d.cert.Raw)) {
				t.Errorf("recorded() proved another certificate than the device's")
			}
		})
	}
}

// TestRenewTokenSignatureBeforeStore: a renewal token's signature is
// checked before the store is read for its leaf, so that a token forged
// over a device's public certificate costs no read; a good token's leaf
// is read once and proved by the record.
func TestRenewTokenSignatureBeforeStore(t *testing.T) {
	f := newFixture(t, Config{})
	d := f.enrollDevice(t, "dev-1")
	reads := 0
	lookup := func(serial *big.Int) (store.Certificate, bool) {
		reads++
		rec, err := f.store.GetCertificate(t.Context(), serial)
		return rec, err == nil
	}
	forged := mint(t, newKey(t), f.chain(d), f.claims(d), false)
	_, err := f.svc.tokens.verify(forged, f.clock.Now(), lookup)
	if k, ok := fault.KindOf(err); !ok || k != fault.Unauthorized {
		t.Fatalf("verify(a token signed by another key) = %v, want Unauthorized", err)
	}
	if reads != 0 {
		t.Errorf("verify(a token signed by another key) read the store %d times, want none", reads)
	}
	tok, err := f.svc.tokens.verify(mint(t, d.key, f.chain(d), f.claims(d), false), f.clock.Now(), lookup)
	if err != nil {
		t.Fatal(err)
	}
	if reads != 1 || tok.record == nil || !bytes.Equal(tok.record.DER, d.cert.Raw) {
		t.Errorf("verify(a good token) read the store %d times, proved by record %v; want once, by the device's record", reads, tok.record != nil)
	}
}

// revoke revokes through the store, as an admin would.
func (f *fixture) revoke(t *testing.T, r store.RevokeRequest) []store.Revocation {
	t.Helper()
	r.At = f.clock.Now()
	r.Audit = store.AuditEvent{Time: r.At, Action: "certificate.revoke", Actor: "admin"}
	revs, err := f.store.Revoke(t.Context(), r)
	if err != nil {
		t.Fatalf("Revoke(%+v): %v", r, err)
	}
	return revs
}

// TestRenewAudited: a renewal is audited in its transaction, after expiry
// under an action of its own; a retry is not audited again.
func TestRenewAudited(t *testing.T) {
	f := newFixture(t, Config{RenewAfterExpiry: 720 * time.Hour, RenewMinInterval: time.Second})
	d := f.enrollDevice(t, "dev-a")
	first, err := f.mtls(t, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.mtls(t, d, nil); err != nil {
		t.Fatal(err)
	}
	next := device{id: d.id, cert: first.Certificate, key: d.key}
	f.clock.Add(ca.DefaultDeviceValidity + time.Hour)
	late, err := f.tokenRenew(t, next, f.claims(next), csrFor(t, newKey(t), d.id))
	if err != nil {
		t.Fatal(err)
	}
	evs, err := f.store.ListAudit(t.Context(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range evs {
		if ev.Action == "certificate.renew" || ev.Action == "certificate.renew_after_expiry" {
			got = append(got, ev.Action+" "+ev.Serial+" "+ev.Actor)
		}
	}
	want := []string{
		"certificate.renew " + SerialHex(first.Certificate) + " device:dev-a",
		"certificate.renew_after_expiry " + SerialHex(late.Certificate) + " device:dev-a",
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("renewal audit rows = %q, want %q", got, want)
	}
}

// TestRenewSupersedes: a renewal beyond max_active_certificates revokes
// the oldest live certificate as superseded, and Deps.Revoked hears of it.
func TestRenewSupersedes(t *testing.T) {
	f := newFixture(t, Config{MaxActiveCertificates: 1})
	d := f.enrollDevice(t, "dev-s")
	res, err := f.mtls(t, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	told := f.told()
	if len(told) != 1 || told[0].Serial.Cmp(d.cert.SerialNumber) != 0 || told[0].Reason != int(api.ReasonSuperseded) {
		t.Fatalf("Deps.Revoked was told %+v, want the parent %s, superseded", told, SerialHex(d.cert))
	}
	// The retry still answers, though its parent is now revoked.
	again, err := f.mtls(t, d, nil)
	if err != nil || !again.Replayed || !again.Certificate.Equal(res.Certificate) {
		t.Fatalf("retry after the parent was superseded: %+v, %v; want the renewal again", again, err)
	}
	if len(f.told()) != 1 {
		t.Errorf("a retry told Deps.Revoked again: %+v", f.told())
	}
}

// TestRenewRace: 32 identical renewals at once give one new certificate;
// the others get it as a retry.
func TestRenewRace(t *testing.T) {
	f := newFixture(t, Config{})
	d := f.enrollDevice(t, "dev-r")
	const n = 32
	var wg sync.WaitGroup
	results := make([]*Result, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { results[i], errs[i] = f.mtls(t, d, nil) })
	}
	wg.Wait()
	serials := map[string]bool{}
	fresh := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("renewal %d: %v", i, errs[i])
		}
		serials[SerialHex(results[i].Certificate)] = true
		if !results[i].Replayed {
			fresh++
		}
	}
	if len(serials) != 1 || fresh != 1 {
		t.Errorf("32 identical renewals gave %d serials, %d not replayed; want 1 and 1", len(serials), fresh)
	}
	certs, err := f.store.ListCertificates(t.Context(), d.id, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 2 {
		t.Errorf("device has %d certificates recorded, want 2 (the enrollment and one renewal)", len(certs))
	}
	if got := testutil.ToFloat64(f.svc.renewals.WithLabelValues(kindRenew, "issued")); got != 1 {
		t.Errorf("renewals issued = %v, want 1", got)
	}
	if got := testutil.ToFloat64(f.svc.renewals.WithLabelValues(kindRenew, "retry")); got != n-1 {
		t.Errorf("renewals retried = %v, want %d", got, n-1)
	}
}

// TestRenewRefusalHints: the refusals a device meets most say what to do
// with the serial to use.
func TestRenewRefusalHints(t *testing.T) {
	f := newFixture(t, Config{})
	d := f.enrollDevice(t, "dev-h")
	res, err := f.mtls(t, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Add(RetryWindow + time.Hour)
	_, err = f.mtls(t, d, nil)
	fe, ok := err.(*fault.Error)
	if !ok || fe.Kind != fault.Conflict || !strings.Contains(fe.Hint, SerialHex(res.Certificate)) {
		t.Errorf("renewal of the older certificate: %v; want Conflict whose hint names the newest serial %s", err, SerialHex(res.Certificate))
	}
	f.revoke(t, store.RevokeRequest{DeviceID: d.id, Reason: 5})
	_, err = f.mtls(t, device{id: d.id, cert: res.Certificate, key: d.key}, nil)
	if fe, ok := err.(*fault.Error); !ok || fe.Kind != fault.Forbidden || !strings.Contains(fe.Hint, "reset") {
		t.Errorf("renewal of a revoked device: %v; want Forbidden whose hint says to reset the device", err)
	}
}

// TestRenewTokenKeyTypes: a renewal token is signed with whatever key type
// enrollment accepts, with the algorithm that fits it.
func TestRenewTokenKeyTypes(t *testing.T) {
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		key  crypto.Signer
	}{{"ok/ed25519", ed}, {"ok/p384", p384}, {"ok/rsa2048-ps256", rsaKey}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			secret, _ := f.token(t, TokenRequest{DeviceID: "dev-k"})
			res, err := f.svc.Enroll(t.Context(), string(secret), csrFor(t, tc.key, "dev-k"))
			if err != nil {
				t.Fatal(err)
			}
			f.clock.Add(time.Second)
			d := device{id: "dev-k", cert: res.Certificate, key: tc.key}
			renewed, err := f.tokenRenew(t, d, f.claims(d), nil)
			if err != nil {
				t.Fatalf("Renew with a %s token: %v", tc.name, err)
			}
			checkRenewed(t, renewed, d, d.cert.SerialNumber, tc.key.Public())
		})
	}
	if algorithmFits(jose.HS256, newKey(t).Public()) || algorithmFits("none", newKey(t).Public()) || algorithmFits(jose.ES384, newKey(t).Public()) {
		t.Error("algorithmFits accepts HS256, none, or ES384 for a P-256 key")
	}
}

// TestRenewAfterDeviceReset: a certificate that had expired when its device
// was revoked (so the revocation left it unrevoked) does not renew after
// the device is reset, and the refusal does not send the device back to
// that certificate as its newest.
func TestRenewAfterDeviceReset(t *testing.T) {
	const day = 24 * time.Hour
	f := newFixture(t, Config{RenewAfterExpiry: 30 * day})
	d := f.enrollDevice(t, "dev-reset")
	f.clock.Add(d.cert.NotAfter.Sub(f.clock.Now()) + day)
	f.revoke(t, store.RevokeRequest{DeviceID: d.id, Reason: 1})
	f.clock.Add(time.Hour)
	if _, err := f.store.ResetDevice(t.Context(), d.id, f.clock.Now(), store.AuditEvent{Time: f.clock.Now(), Action: "device.reset", Actor: "admin", DeviceID: d.id}); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(time.Hour)
	_, err := f.tokenRenew(t, d, f.claims(d), nil)
	fe, ok := err.(*fault.Error)
	if !ok || fe.Kind != fault.Forbidden {
		t.Fatalf("token renewal of a certificate issued before its device's revocation: %v; want Forbidden", err)
	}
	if serial := SerialHex(d.cert); strings.Contains(fe.Hint, serial) {
		t.Errorf("hint %q names the refused certificate %s as the one to renew", fe.Hint, serial)
	}
}

// TestRenewalTokenPayloadNonce pins the nonce of a token without a jti
// (step's form): the hash of the signed payload as jose.Verify decodes it
// into a json.RawMessage, so that a token spent before still reads as
// spent.
func TestRenewalTokenPayloadNonce(t *testing.T) {
	f := newFixture(t, Config{})
	d := f.enrollDevice(t, "dev-1")
	claims := f.claims(d)
	claims.ID = ""
	for _, insecure := range []bool{false, true} {
		raw := mint(t, d.key, f.chain(d), claims, insecure)
		tok, err := f.svc.tokens.verify(raw, f.clock.Now(), nil)
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		jws, err := jose.ParseSigned(raw)
		if err != nil {
			t.Fatal(err)
		}
		var c jose.Claims
		var payload json.RawMessage
		if err := jose.Verify(jws, d.key.Public(), &c, &payload); err != nil {
			t.Fatal(err)
		}
		if want := sha256.Sum256(append([]byte("fleetca renewal token payload\x00"), payload...)); tok.nonce.Hash != want {
			t.Errorf("x5cInsecure %v: nonce %x, want the hash of the signed payload %x", insecure, tok.nonce.Hash, want)
		}
	}
}
