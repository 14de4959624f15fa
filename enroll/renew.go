package enroll

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// RetryWindow is how long a renewal may be retried: the same certificate
// renewed again with the same key within it returns the certificate
// already issued (store.Renewal.RetryWindow).
const RetryWindow = 24 * time.Hour

// RenewRequest is a device's request to renew its certificate. The device
// proves it holds the certificate in one of two forms: the chain it
// presented over mutual TLS, or a renewal token (the only form once the
// certificate has expired, since its TLS handshake then fails).
type RenewRequest struct {
	// PeerCertificates is the chain the client presented in its TLS
	// handshake, leaf first (tls.ConnectionState.PeerCertificates), which
	// the listener verified to the fleet's intermediate
	// (tls.VerifyClientCertIfGiven): Renew verifies no signature of it, and
	// takes the handshake as the proof that the client holds the leaf's
	// key. Never pass a chain no handshake proved (one read from a header,
	// say): a certificate is public, and with a CSR it would rekey.
	PeerCertificates []*x509.Certificate
	// Token is a renewal token (api.RenewalTokenClaims), the bearer
	// credential of the request. When set, it is the proof, and
	// PeerCertificates are not looked at.
	Token string
	// CSR, if not empty, is a DER PKCS #10 request for a new key: a
	// rekey. Empty renews the certificate's own key.
	CSR []byte
	// NoTokenForm says that the request's protocol has no renewal-token
	// form (EST simplereenroll): an expired peer certificate is then
	// looked up like a current one, and refused Forbidden, saying whether
	// a renewal token (at /v1/renew or step's /renew) could still renew
	// it within Config.RenewAfterExpiry. A certificate this CA did not
	// record is refused Forbidden too: the request has no other
	// credential to try.
	NoTokenForm bool
}

// Renewal kinds, as the metric fleetca_enroll_renewals_total and the
// audit log name them.
const (
	kindRenew       = "renew"
	kindRekey       = "rekey"
	kindAfterExpiry = "after_expiry"
)

// renewal is what Renew learnt of a request, for its metric and log line,
// whether it succeeded or not.
type renewal struct {
	kind     string
	form     string // "mtls" or "token"
	deviceID string
	parent   *big.Int
}

// Renew renews a device certificate: the registration authority's
// renewal rules (issue 11), in this order.
//
//  1. The proof. With a Token (see tokenVerifier.verify): its chain proved
//     to the fleet's intermediate as of the certificate's own validity (by
//     the store's record of the leaf, or by its signatures), its
//     signature by the certificate's key, its claims, and (in the store's
//     transaction) its single use. Without one, the TLS peer chain, whose
//     signatures and key the caller's TLS listener verified (see
//     RenewRequest.PeerCertificates and verifyPeer): here its leaf must be
//     valid at now and for clientAuth (so that a server certificate cannot
//     renew). Refusals are fault.Unauthorized.
//  2. The certificate must be one this CA recorded for a device, byte for
//     byte (else Unauthorized). If it has expired, only a token may renew
//     it, and only within Config.RenewAfterExpiry of its NotAfter (else
//     Unauthorized over mutual TLS, Forbidden past the grace).
//  3. The key: the certificate's own, which must still pass the key
//     policy (BadKey), or for a rekey the CSR's, which passes the whole
//     CSR policy of enrollment for the certificate's device (BadCSR,
//     BadKey).
//  4. ca signs, with the device's names from the record (never the
//     request's) and the current profile and validity.
//  5. One store transaction (store.Renew) decides the rest and records
//     it: a retry of the same renewal (the same certificate and key within
//     RetryWindow) returns the certificate already issued (Result.Replayed,
//     and the certificate just signed is discarded); a revoked device or
//     certificate is Forbidden; a certificate that is not the device's
//     newest is Conflict; a device that renewed within
//     Config.RenewMinInterval is RateLimited with RetryAfter; a token used
//     before is Unauthorized; a blocked key Forbidden, another device's
//     key Conflict. Certificates beyond max_active_certificates are
//     revoked as superseded in the same transaction, and passed to
//     Deps.Revoked.
//
// On any refusal nothing is written and a token is not spent. Each
// renewal is counted by kind (renew, rekey, after_expiry) and outcome, and
// audited (certificate.renew, certificate.rekey, or
// certificate.renew_after_expiry) in its transaction.
func (s *Service) Renew(ctx context.Context, req RenewRequest) (*Result, error) {
	r := renewal{kind: kindRenew, form: "mtls"}
	if len(req.CSR) > 0 {
		r.kind = kindRekey
	}
	if req.Token != "" {
		r.form = "token"
	}
	res, err := s.renew(ctx, req, &r)
	parent := ""
	if r.parent != nil {
		parent = r.parent.Text(16)
	}
	if err != nil {
		outcome := "error"
		if kind, ok := fault.KindOf(err); ok {
			outcome = kind.String()
			s.log.InfoContext(ctx, "renewal refused", "device_id", r.deviceID, "serial", parent, "renewal_kind", r.kind, "form", r.form, "kind", outcome, "err", err)
		}
		s.renewals.WithLabelValues(r.kind, outcome).Inc()
		return nil, err
	}
	outcome := "issued"
	if res.Replayed {
		outcome = "retry"
	}
	s.renewals.WithLabelValues(r.kind, outcome).Inc()
	s.log.InfoContext(ctx, "certificate renewed", "device_id", r.deviceID, "serial", SerialHex(res.Certificate), "parent", parent,
		"renewal_kind", r.kind, "form", r.form, "retry", res.Replayed)
	return res, nil
}

func (s *Service) renew(ctx context.Context, req RenewRequest, r *renewal) (*Result, error) {
	now := s.now().UTC()
	var leaf *x509.Certificate
	var nonce *store.Nonce
	var recorded *store.Certificate
	if req.Token != "" {
		tok, err := s.tokens.verify(req.Token, now, func(serial *big.Int) (store.Certificate, bool) {
			rec, err := s.store.GetCertificate(ctx, serial)
			return rec, err == nil
		})
		if err != nil {
			return nil, err
		}
		leaf, nonce, recorded = tok.leaf, &tok.nonce, tok.record
	} else {
		var err error
		if leaf, err = s.verifyPeer(req.PeerCertificates, now, req.NoTokenForm); err != nil {
			return nil, err
		}
	}
	r.parent = leaf.SerialNumber

	rec, err := s.certificateOf(ctx, leaf, recorded)
	if errors.Is(err, store.ErrNotFound) || err == nil && !bytes.Equal(rec.DER, leaf.Raw) {
		kind := fault.Unauthorized
		if req.NoTokenForm {
			kind = fault.Forbidden
		}
		return nil, fault.Wrap(err, kind, fmt.Sprintf("certificate %s is not a device certificate this CA issued", leaf.SerialNumber.Text(16)),
			"renew with the device's certificate, or enroll the device with an enrollment token")
	}
	if err != nil {
		return nil, fmt.Errorf("read certificate %s: %w", leaf.SerialNumber.Text(16), err)
	}
	r.deviceID = rec.DeviceID
	id, err := api.ParseDeviceID(rec.DeviceID)
	if err != nil {
		return nil, fmt.Errorf("certificate %s records device %q: %w", leaf.SerialNumber.Text(16), rec.DeviceID, err)
	}

	if !now.Before(rec.NotAfter) {
		r.kind = kindAfterExpiry
		if err := s.expiredMayRenew(rec, nonce != nil, now); err != nil {
			return nil, noTokenForm(err, req.NoTokenForm)
		}
	}

	var pub crypto.PublicKey
	var keyHash store.KeyHash
	if len(req.CSR) > 0 {
		csr, err := checkCSR(req.CSR, binding{deviceID: id, names: s.names}, s.cfg.TrustDomain)
		if err != nil {
			return nil, err
		}
		pub, keyHash = csr.csr.PublicKey, csr.keyHash
	} else {
		if err := checkKey(leaf.PublicKey); err != nil {
			return nil, fault.Wrap(err, fault.BadKey, "the certificate's key is no longer accepted",
				"rekey: send a CSR for a new key with the renewal ("+keyHint+")")
		}
		pub, keyHash = leaf.PublicKey, sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	}

	cert, err := s.ca.SignDevice(ctx, ca.DeviceRequest{DeviceID: id, PublicKey: pub})
	if err != nil {
		if _, ok := fault.KindOf(err); ok {
			return nil, err
		}
		return nil, fmt.Errorf("sign renewal of %s for %q: %w", rec.Serial.Text(16), id, err)
	}
	action := map[string]string{kindRenew: "certificate.renew", kindRekey: "certificate.rekey", kindAfterExpiry: "certificate.renew_after_expiry"}[r.kind]
	form := "mtls"
	if nonce != nil {
		form = "token"
	}
	rr, err := s.store.Renew(ctx, store.Renewal{
		Parent: rec.Serial,
		Certificate: store.Certificate{
			Serial: cert.SerialNumber, DeviceID: string(id), KeyHash: keyHash,
			NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, IssuedAt: now, DER: cert.Raw,
			Partition: ca.PartitionOf(cert),
		},
		Now:         now,
		RetryWindow: RetryWindow,
		MinInterval: s.cfg.RenewMinInterval,
		MaxActive:   s.cfg.MaxActiveCertificates,
		Nonce:       nonce,
		Audit: store.AuditEvent{
			Time: now, Action: action, Actor: "device:" + string(id), DeviceID: string(id), Serial: SerialHex(cert),
			Detail: fmt.Sprintf("parent=%s form=%s rekey=%t", rec.Serial.Text(16), form, len(req.CSR) > 0),
		},
	})
	if err != nil {
		return nil, s.renewError(ctx, err, rec, now)
	}
	if len(rr.Superseded) > 0 {
		s.revoked(ctx, rr.Superseded)
	}
	res := &Result{DeviceID: id, Certificate: cert, Parent: rec.Serial, Replayed: rr.Replayed}
	if rr.Replayed {
		if res.Certificate, err = x509.ParseCertificate(rr.Certificate.DER); err != nil {
			return nil, fmt.Errorf("parse the certificate of renewal %s: %w", rr.Certificate.Serial.Text(16), err)
		}
	}
	schedule(res)
	return res, nil
}

// certificateOf returns the store's record of leaf: recorded, if the
// token's check read it already, else read now.
func (s *Service) certificateOf(ctx context.Context, leaf *x509.Certificate, recorded *store.Certificate) (store.Certificate, error) {
	if recorded != nil {
		return *recorded, nil
	}
	return s.store.GetCertificate(ctx, leaf.SerialNumber)
}

// verifyPeer returns the leaf of a TLS peer chain if it is a client
// certificate valid at now. It checks no signature: the TLS listener
// verified the chain to the fleet (VerifyClientCertIfGiven) and the
// handshake proved the key, and renew then accepts the leaf only if it is,
// byte for byte, a certificate this CA recorded for a device, which a
// forged or foreign certificate cannot be. Verifying the chain again here
// cost two ECDSA verifications per renewal, a third of the server's CPU on
// the mTLS path (make bench, renewload).
//
// With expiredOK (RenewRequest.NoTokenForm) an expired leaf passes here,
// for renew to refuse with the expiry rules of its record.
func (s *Service) verifyPeer(chain []*x509.Certificate, now time.Time, expiredOK bool) (*x509.Certificate, error) {
	if len(chain) == 0 {
		return nil, fault.New(fault.Unauthorized, "the request has no client certificate and no renewal token",
			"connect with the device's certificate and key (mutual TLS), or send Authorization: Bearer <renewal token>")
	}
	leaf := chain[0]
	switch {
	case !now.Before(leaf.NotAfter) && !expiredOK:
		return nil, fault.New(fault.Unauthorized, fmt.Sprintf("the client certificate %s expired at %s", leaf.SerialNumber.Text(16), leaf.NotAfter.UTC().Format(time.RFC3339)),
			"renew it with a renewal token (Authorization: Bearer), allowed within ca.renew_after_expiry of its expiry")
	case now.Before(leaf.NotBefore), !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth):
		return nil, fault.New(fault.Unauthorized, "the client certificate is not a device certificate of this CA",
			"connect with the device's certificate and key")
	}
	return leaf, nil
}

// expiredMayRenew applies the rules of a certificate that has expired: a
// renewal token only, within RenewAfterExpiry of its NotAfter.
func (s *Service) expiredMayRenew(rec store.Certificate, token bool, now time.Time) error {
	expired := fmt.Sprintf("certificate %s expired at %s", rec.Serial.Text(16), rec.NotAfter.UTC().Format(time.RFC3339))
	const enrollAgain = "enroll the device again with a new enrollment token"
	switch grace := s.cfg.RenewAfterExpiry; {
	case grace == 0:
		return fault.New(fault.Forbidden, expired+", and this CA does not renew expired certificates (ca.renew_after_expiry is 0)", enrollAgain)
	case now.After(rec.NotAfter.Add(grace)):
		return fault.New(fault.Forbidden, fmt.Sprintf("%s, more than ca.renew_after_expiry (%s) ago", expired, grace), enrollAgain)
	case !token:
		return fault.New(fault.Unauthorized, expired+"; an expired certificate renews only with a renewal token",
			"send Authorization: Bearer <renewal token signed with the certificate's key>")
	}
	return nil
}

// noTokenForm rewrites expiredMayRenew's refusal for a protocol without a
// renewal-token form: its Unauthorized (a token would do) becomes
// Forbidden, saying where a token still renews the certificate.
func noTokenForm(err error, on bool) error {
	fe, ok := err.(*fault.Error)
	if !on || !ok || fe.Kind != fault.Unauthorized {
		return err
	}
	return fault.New(fault.Forbidden, fe.Detail+", and this protocol has no renewal-token form",
		"renew it with a renewal token at /v1/renew or step's /renew within ca.renew_after_expiry, or enroll the device again")
}

// renewError turns the store's refusals of Renew into faults that say
// what to do.
func (s *Service) renewError(ctx context.Context, err error, parent store.Certificate, now time.Time) error {
	serial, id := parent.Serial.Text(16), parent.DeviceID
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fault.Wrap(err, fault.Unauthorized, fmt.Sprintf("certificate %s is not a device certificate this CA issued", serial),
			"enroll the device with an enrollment token")
	case errors.Is(err, store.ErrDeviceRevoked):
		return fault.Wrap(err, fault.Forbidden, fmt.Sprintf("device %q is revoked", id),
			fmt.Sprintf("ask an admin to reset the device (fleetca devices reset %s), then enroll it with a new enrollment token", id))
	case errors.Is(err, store.ErrCertificateRevoked):
		detail := fmt.Sprintf("certificate %s is revoked; a revoked certificate cannot renew", serial)
		if c, gerr := s.store.GetCertificate(ctx, parent.Serial); gerr == nil && !c.RevokedAt.IsZero() {
			detail = fmt.Sprintf("certificate %s was revoked at %s (%s); a revoked certificate cannot renew",
				serial, c.RevokedAt.UTC().Format(time.RFC3339), api.Reason(c.Reason))
		} else if gerr == nil {
			detail = fmt.Sprintf("certificate %s was issued before its device %q was revoked; no certificate of before a revocation renews", serial, id)
		}
		hint := "enroll the device again with a new enrollment token"
		if newest := s.newestSerial(ctx, id); newest != "" {
			hint = fmt.Sprintf("renew the device's newest certificate, serial %s, or enroll again with a new enrollment token", newest)
		}
		return fault.Wrap(err, fault.Forbidden, detail, hint)
	case errors.Is(err, store.ErrNotNewest):
		hint := "renew the device's newest certificate"
		if newest := s.newestSerial(ctx, id); newest != "" {
			hint += ", serial " + newest
		}
		return fault.Wrap(err, fault.Conflict, fmt.Sprintf("certificate %s is not the newest certificate of device %q: it was renewed or replaced since", serial, id), hint)
	case errors.Is(err, store.ErrRenewedRecently):
		fe := fault.Wrap(err, fault.RateLimited, fmt.Sprintf("device %q renewed less than ca.renew_min_interval (%s) ago", id, s.cfg.RenewMinInterval),
			"wait for Retry-After; a lost answer is recovered by retrying with the same key, which is not limited")
		fe.RetryAfter = s.cfg.RenewMinInterval
		if d, gerr := s.store.GetDevice(ctx, id); gerr == nil && !d.LastRenewalAt.IsZero() {
			next := d.LastRenewalAt.Add(s.cfg.RenewMinInterval)
			fe.Detail = fmt.Sprintf("device %q renewed at %s; it may renew again at %s (ca.renew_min_interval is %s)",
				id, d.LastRenewalAt.UTC().Format(time.RFC3339), next.UTC().Format(time.RFC3339), s.cfg.RenewMinInterval)
			fe.RetryAfter = max(next.Sub(now), time.Second)
		}
		return fe
	case errors.Is(err, store.ErrNonceSpent):
		return fault.Wrap(err, fault.Unauthorized, "the renewal token was used before; each token renews once",
			"sign a new renewal token (a new jti) for each request")
	case errors.Is(err, store.ErrKeyBlocked):
		return fault.Wrap(err, fault.Forbidden, "the public key was reported compromised and is blocked",
			"generate a new key pair on this device and rekey with a CSR for it")
	case errors.Is(err, store.ErrKeyInUse):
		return fault.Wrap(err, fault.Conflict, "the CSR's public key is already certified for another device",
			"generate a new key pair on this device; every device needs its own key")
	}
	return fmt.Errorf("record renewal of %s for %q: %w", serial, id, err)
}

// newestSerial returns the serial of the device's newest certificate that
// may renew (newest), "" if none or on error: for a hint only.
func (s *Service) newestSerial(ctx context.Context, id string) string {
	d, err := s.store.GetDevice(ctx, id)
	if err != nil {
		return ""
	}
	newest, ok, err := s.newest(ctx, d)
	if err != nil || !ok {
		return ""
	}
	return newest.Serial.Text(16)
}

// newest returns the device's newest unrevoked certificate, by IssuedAt
// then serial, as store.Renew judges it, leaving out those issued before
// the device's last revocation (d.RevokedAt), which store.Renew refuses.
func (s *Service) newest(ctx context.Context, d store.Device) (store.Certificate, bool, error) {
	id := d.ID
	var best store.Certificate
	found := false
	for after := ""; ; {
		certs, err := s.store.ListCertificates(ctx, id, store.Page{After: after, Limit: store.MaxPageLimit})
		if err != nil {
			return best, false, fmt.Errorf("list certificates of %q: %w", id, err)
		}
		for _, c := range certs {
			if !c.RevokedAt.IsZero() || !d.RevokedAt.IsZero() && !c.IssuedAt.After(d.RevokedAt) {
				continue
			}
			if !found || c.IssuedAt.After(best.IssuedAt) || c.IssuedAt.Equal(best.IssuedAt) && c.Serial.Cmp(best.Serial) > 0 {
				best, found = c, true
			}
		}
		if len(certs) < store.MaxPageLimit {
			return best, found, nil
		}
		after = certs[len(certs)-1].Serial.Text(16)
	}
}
