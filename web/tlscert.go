package web

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/fleetca/fleetca/internal/tlsconf"
)

// ServerSigner issues the HTTPS listener's certificate; *ca.Authority is one.
type ServerSigner interface {
	SignServer(ctx context.Context, dns []string, ips []net.IP, pub crypto.PublicKey) (*x509.Certificate, error)
	IntermediateDER() []byte
}

// ServerCertConfig says what the HTTPS listener's certificate names.
type ServerCertConfig struct {
	DNSNames []string
	IPs      []net.IP
	// NewKey makes the certificate's key pair (a fresh one at each renewal).
	NewKey func() (crypto.Signer, error)
	// ClientCAs, if not empty, are the certificates a client certificate
	// may chain to: the listener then asks for one without requiring it,
	// so that a device renews over mutual TLS and enrollment without a
	// certificate keeps working. serve gives the intermediate alone, which
	// issues every device certificate: with the root too, Go checks a
	// device chain three times (the leaf against the intermediate in the
	// pool, again against the copy the client sends, and that copy against
	// the root), with the intermediate alone twice.
	ClientCAs []*x509.Certificate
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
}

// ServerCert keeps the HTTPS listener's certificate, issued by the
// intermediate with a fresh key, and renews it when two thirds of its
// lifetime have passed. It never touches disk: the key lives in memory only.
type ServerCert struct {
	cfg    ServerCertConfig
	signer ServerSigner
	cur    atomic.Pointer[tls.Certificate]
	// mfr is the handshake configuration while manufacturer CAs are set
	// (SetManufacturerCAs), nil otherwise.
	mfr atomic.Pointer[tls.Config]
}

// NewServerCert issues the first certificate.
func NewServerCert(ctx context.Context, signer ServerSigner, cfg ServerCertConfig) (*ServerCert, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	sc := &ServerCert{cfg: cfg, signer: signer}
	if err := sc.renew(ctx); err != nil {
		return nil, err
	}
	return sc, nil
}

func (sc *ServerCert) renew(ctx context.Context) error {
	key, err := sc.cfg.NewKey()
	if err != nil {
		return fmt.Errorf("make HTTPS key: %w", err)
	}
	cert, err := sc.signer.SignServer(ctx, sc.cfg.DNSNames, sc.cfg.IPs, key.Public())
	if err != nil {
		return fmt.Errorf("issue HTTPS certificate: %w", err)
	}
	sc.cur.Store(&tls.Certificate{
		Certificate: [][]byte{cert.Raw, sc.signer.IntermediateDER()},
		PrivateKey:  key,
		Leaf:        cert,
	})
	sc.cfg.Logger.InfoContext(ctx, "HTTPS certificate issued", "serial", cert.SerialNumber.Text(16), "not_after", cert.NotAfter)
	return nil
}

// Current returns the certificate being served.
func (sc *ServerCert) Current() *tls.Certificate { return sc.cur.Load() }

// GetCertificate is for tls.Config.GetCertificate.
func (sc *ServerCert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return sc.cur.Load(), nil
}

// renewAt is when a certificate valid over [nb, na) is renewed: at two
// thirds of its lifetime.
func renewAt(leaf *x509.Certificate) time.Time {
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotBefore.Add(life * 2 / 3)
}

// renewRetry is the wait after a failed renewal.
const renewRetry = time.Minute

// Run renews the certificate until ctx ends. A failed renewal is logged at
// Warn and retried every minute; the old certificate is served meanwhile.
func (sc *ServerCert) Run(ctx context.Context) error {
	for {
		wait := renewAt(sc.Current().Leaf).Sub(sc.cfg.Now())
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		for {
			err := sc.renew(ctx)
			if err == nil {
				break
			}
			sc.cfg.Logger.WarnContext(ctx, "HTTPS certificate renewal failed; retrying", "err", err, "not_after", sc.Current().Leaf.NotAfter)
			t := time.NewTimer(renewRetry)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
	}
}

// TLSConfig returns the HTTPS listener's TLS configuration: TLS 1.2 or
// newer with, for TLS 1.2, only ECDHE and AEAD suites (internal/tlsconf),
// the certificate from sc, and, with ClientCAs, a client
// certificate asked for (tls.VerifyClientCertIfGiven). crypto/tls refuses
// the handshake of a client certificate that does not verify (expired,
// another CA's, not for clientAuth): such a device renews with a renewal
// token, without a certificate. Revocation is not checked here (a resumed
// session would skip it): handlers that take a certificate as proof ask
// the store.
//
// Once SetManufacturerCAs has given manufacturer CAs, each handshake
// (GetConfigForClient) uses the configuration it built instead, which also
// accepts a certificate that chains to one of them: see SetManufacturerCAs.
func (sc *ServerCert) TLSConfig() *tls.Config {
	cfg := sc.baseTLSConfig()
	if cfg.ClientCAs != nil {
		cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return sc.mfr.Load(), nil }
	}
	return cfg
}

// baseTLSConfig is TLSConfig without GetConfigForClient.
func (sc *ServerCert) baseTLSConfig() *tls.Config {
	cfg := &tls.Config{
		MinVersion:     tlsconf.MinVersion,
		CipherSuites:   tlsconf.CipherSuites(),
		GetCertificate: sc.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
	if len(sc.cfg.ClientCAs) > 0 {
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		cfg.ClientCAs = x509.NewCertPool()
		for _, c := range sc.cfg.ClientCAs {
			cfg.ClientCAs.AddCert(c)
		}
	}
	return cfg
}

// SetManufacturerCAs sets the manufacturer CAs (enroll.Deps.ManufacturerCAs)
// whose devices may present their factory certificate to enroll. With
// none, handshakes use TLSConfig as it is. With some, a handshake asks for
// a client certificate (tls.RequestClientCert) and checks it itself: it
// must chain to ClientCAs for clientAuth, as before, or to a manufacturer
// CA with any extended key usage (an IDevID often has none, or no
// clientAuth), valid now; anything else fails the handshake. Both kinds of
// CA are named in the certificate request. enroll checks a manufacturer
// certificate again, against the manufacturer it names. It is safe to call
// while the listener serves; a listener without ClientCAs ignores it.
//
// serve calls it through enroll.Deps.ManufacturerCAs: after an add or a
// remove through this replica at once, and, for one through another
// replica sharing the store, within enroll.ManufacturerRefresh (10s), when
// enroll's Run re-reads the manufacturers. Meanwhile this listener's
// handshake may still refuse a newly added manufacturer's device, or let a
// removed one's through to enroll, which reads the store and refuses it.
func (sc *ServerCert) SetManufacturerCAs(cas []*x509.Certificate) {
	if len(cas) == 0 || len(sc.cfg.ClientCAs) == 0 {
		sc.mfr.Store(nil)
		return
	}
	cfg := sc.baseTLSConfig()
	fleet, mfr, all := x509.NewCertPool(), x509.NewCertPool(), x509.NewCertPool()
	for _, c := range sc.cfg.ClientCAs {
		fleet.AddCert(c)
		all.AddCert(c)
	}
	for _, c := range cas {
		mfr.AddCert(c)
		all.AddCert(c)
	}
	cfg.ClientAuth = tls.RequestClientCert
	cfg.ClientCAs = all
	// VerifyConnection, not VerifyPeerCertificate: it runs on resumed
	// sessions too, so a certificate that expired since the first
	// handshake is not let in again by a session ticket.
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		certs := cs.PeerCertificates
		if len(certs) == 0 {
			return nil
		}
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		now := sc.cfg.Now()
		_, err := certs[0].Verify(x509.VerifyOptions{Roots: fleet, Intermediates: inter, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err == nil {
			return nil
		}
		if _, merr := certs[0].Verify(x509.VerifyOptions{Roots: mfr, Intermediates: inter, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); merr == nil {
			return nil
		}
		return fmt.Errorf("client certificate: %w", err)
	}
	sc.mfr.Store(cfg)
}
