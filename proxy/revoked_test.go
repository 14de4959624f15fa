package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/big"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/verify"
)

// keyCompromised is a Checker that refuses every certificate as revoked
// for keyCompromise at a fixed time.
type keyCompromised struct{ at time.Time }

func (k keyCompromised) Check(_ context.Context, leaf *x509.Certificate) error {
	return &verify.RefusedError{Refusal: verify.Revoked, Serial: leaf.SerialNumber, Reason: api.ReasonKeyCompromise, RevokedAt: k.at}
}

func (keyCompromised) Subscribe(func(*big.Int)) {}

func (keyCompromised) SubscribeStale(func(error)) {}

// alertCertificateRevoked and alertBadCertificate are the TLS alerts
// certificate_revoked and bad_certificate (RFC 8446 §6.2).
const (
	alertBadCertificate     = 42
	alertCertificateRevoked = 44
)

// A revoked device gets the TLS alert bad_certificate, not
// certificate_revoked: crypto/tls sends bad_certificate for any error of
// VerifyConnection (see doc.go). So the proxy's log line and metric say
// plainly that the certificate is revoked, with its serial and reason. If
// this test finds certificate_revoked one day, crypto/tls has learnt to
// send it: drop the caveat from doc.go.
func TestRevokedRefusalSaysRevoked(t *testing.T) {
	pki := newPKI(t, "Fleet")
	up := newEchoUpstream(t)
	revokedAt := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	dev := pki.device(t, "dev-lost")
	serial := dev.Leaf.SerialNumber.Text(16)
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			p := startProxy(t, pki, Config{Upstream: up.URL}, func(d *Deps) { d.Checker = keyCompromised{revokedAt} })
			cfg := pki.clientTLS(&dev)
			cfg.MaxVersion = version
			d := &tls.Dialer{Config: cfg}
			c, err := d.DialContext(t.Context(), "tcp", p.addr)
			if err == nil {
				// TLS 1.3: the alert comes after the client's handshake.
				defer c.Close()
				c.SetReadDeadline(time.Now().Add(waitLimit))
				_, err = c.Read(make([]byte, 1))
			}
			switch got := remoteAlert(err); got {
			case alertBadCertificate:
			case alertCertificateRevoked:
				t.Errorf("the client got certificate_revoked: crypto/tls now sends it; update the caveat in doc.go and this test")
			default:
				t.Fatalf("client error = %v (alert %d), want the TLS alert bad_certificate (%d)", err, got, alertBadCertificate)
			}
			p.logs.wait(t, "client refused", "reason", reasonRevoked, "serial", serial, "device_id", "dev-lost",
				"revocation_reason", "keyCompromise", "revoked_at", revokedAt, "tls_alert", "bad_certificate")
			if got := p.handshakes(outcomeRefused, reasonRevoked); got != 1 {
				t.Errorf("handshakes{refused,revoked} = %v, want 1", got)
			}
		})
	}
}

// remoteAlert is the number of the TLS alert the peer sent, as err holds
// it, or -1. crypto/tls reports it as a net.OpError "remote error" whose
// Err is its unexported alert type, a uint8.
func remoteAlert(err error) int {
	oe, ok := errors.AsType[*net.OpError](err)
	if !ok || oe.Op != "remote error" {
		return -1
	}
	v := reflect.ValueOf(oe.Err)
	if v.Kind() != reflect.Uint8 {
		return -1
	}
	return int(v.Uint())
}
