package enroll

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/internal/adminctx"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// Where a manufacturer certificate's device ID is read (Manufacturer.DeviceIDFrom).
const (
	DeviceIDFromCN           = api.DeviceIDFromCN
	DeviceIDFromSerialNumber = api.DeviceIDFromSerialNumber
)

// ManufacturerRequest registers a manufacturer.
type ManufacturerRequest struct {
	// Name is unique, with the syntax of a device ID.
	Name string
	// CAPEM is one or more CA certificates, PEM: a device certificate
	// that chains to one of them (through intermediates the device sends)
	// may enroll.
	CAPEM string
	// DeviceIDFrom is DeviceIDFromCN or DeviceIDFromSerialNumber.
	DeviceIDFrom string
	// DevicePattern, if set, is a glob every device ID must match.
	DevicePattern string
}

// AddManufacturer checks and stores a manufacturer, audits it, and tells
// Deps.ManufacturerCAs the new set of CA certificates.
func (s *Service) AddManufacturer(ctx context.Context, req ManufacturerRequest) (store.Manufacturer, error) {
	m := store.Manufacturer{CreatedAt: s.now().UTC(), DevicePattern: req.DevicePattern}
	name, err := api.ParseDeviceID(req.Name)
	if err != nil {
		return m, fault.WithField(fault.New(fault.Malformed, fmt.Sprintf("the manufacturer name %q is not valid", req.Name),
			"give a name of letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64 characters"), "name")
	}
	m.Name = string(name)
	if _, err := parseCAPEM(req.CAPEM); err != nil {
		return m, fault.WithField(err, "ca")
	}
	m.CAPEM = req.CAPEM
	switch req.DeviceIDFrom {
	case DeviceIDFromCN, DeviceIDFromSerialNumber:
		m.DeviceIDFrom = req.DeviceIDFrom
	default:
		return m, fault.WithField(fault.New(fault.Malformed, fmt.Sprintf("device_id_from is %q", req.DeviceIDFrom),
			`give device_id_from "cn" (the subject common name) or "serialNumber" (the subject serial number)`), "device_id_from")
	}
	if req.DevicePattern != "" {
		if err := checkPattern(req.DevicePattern); err != nil {
			return m, fault.WithField(err, "device_pattern")
		}
	}
	detail := "device_id_from=" + m.DeviceIDFrom
	if m.DevicePattern != "" {
		detail += " pattern=" + m.DevicePattern
	}
	audit := store.AuditEvent{Time: m.CreatedAt, Action: "manufacturer.add", Actor: adminctx.Actor(ctx), Detail: "manufacturer=" + m.Name + " " + detail}
	if err := s.store.CreateManufacturer(ctx, m, audit); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return m, fault.Wrap(err, fault.Conflict, fmt.Sprintf("a manufacturer named %q exists", m.Name), "remove it first, or choose another name")
		}
		return m, fmt.Errorf("add manufacturer: %w", err)
	}
	s.log.InfoContext(ctx, "manufacturer added", "manufacturer", m.Name, "device_id_from", m.DeviceIDFrom, "device_pattern", m.DevicePattern)
	s.manufacturersChanged(ctx)
	return m, nil
}

// ListManufacturers lists the manufacturers by name.
func (s *Service) ListManufacturers(ctx context.Context) ([]store.Manufacturer, error) {
	return s.store.ListManufacturers(ctx)
}

// RemoveManufacturer removes a manufacturer: its certificates enroll no
// more. Devices it enrolled keep their certificates.
func (s *Service) RemoveManufacturer(ctx context.Context, name string) error {
	now := s.now().UTC()
	err := s.store.DeleteManufacturer(ctx, name, store.AuditEvent{Time: now, Action: "manufacturer.remove", Actor: adminctx.Actor(ctx), Detail: "manufacturer=" + name})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fault.Wrap(err, fault.NotFound, fmt.Sprintf("no manufacturer is named %q", name), "list the manufacturers to find its name")
	case err != nil:
		return fmt.Errorf("remove manufacturer %q: %w", name, err)
	}
	s.log.InfoContext(ctx, "manufacturer removed", "manufacturer", name)
	s.manufacturersChanged(ctx)
	return nil
}

// ManufacturerCAs returns the CA certificates of every manufacturer, for
// the HTTPS listener to accept their devices' certificates.
func (s *Service) ManufacturerCAs(ctx context.Context) ([]*x509.Certificate, error) {
	ms, err := s.store.ListManufacturers(ctx)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for _, m := range ms {
		cas, err := parseCAPEM(m.CAPEM)
		if err != nil {
			return nil, fmt.Errorf("manufacturer %q: %w", m.Name, err)
		}
		out = append(out, cas...)
	}
	return out, nil
}

// ManufacturerRefresh is how often Run re-reads the manufacturers and
// tells Deps.ManufacturerCAs of a change: a manufacturer added or removed
// through another replica sharing the store reaches this one's HTTPS
// listener within it (through this one, at once).
const ManufacturerRefresh = 10 * time.Second

// manufacturersChanged tells Deps.ManufacturerCAs the current set.
func (s *Service) manufacturersChanged(ctx context.Context) {
	if err := s.reloadManufacturerCAs(ctx); err != nil {
		s.log.WarnContext(ctx, "manufacturer CAs not reloaded", "err", err)
	}
}

// reloadManufacturerCAs reads the manufacturers' CA certificates and
// tells Deps.ManufacturerCAs, unless they are the set it told last. The
// read and the telling are one step (mfrMu), so that a slower reload
// never tells an older set after a newer one.
func (s *Service) reloadManufacturerCAs(ctx context.Context) error {
	if s.mfrCAs == nil {
		return nil
	}
	s.mfrMu.Lock()
	defer s.mfrMu.Unlock()
	cas, err := s.ManufacturerCAs(ctx)
	if err != nil {
		return err
	}
	h := sha256.New()
	for _, c := range cas {
		h.Write(c.Raw) // DER delimits itself: the concatenation is unambiguous
	}
	sum := h.Sum(nil)
	if s.mfrTold != nil && bytes.Equal(sum, s.mfrTold) {
		return nil
	}
	s.mfrTold = sum
	s.mfrCAs(cas)
	return nil
}

// manufacturerLoop reloads the manufacturer CAs every ManufacturerRefresh
// until ctx ends; a failure is logged at Warn and retried at the next.
func (s *Service) manufacturerLoop(ctx context.Context) {
	if s.mfrCAs == nil {
		return
	}
	for {
		t := time.NewTimer(ManufacturerRefresh)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := s.reloadManufacturerCAs(ctx); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "manufacturer CAs not reloaded", "err", err)
		}
	}
}

// parseCAPEM returns the CA certificates of a PEM bundle: at least one,
// only CERTIFICATE blocks, each a CA (basic constraints CA:TRUE).
func parseCAPEM(p string) ([]*x509.Certificate, error) {
	const hint = "give the manufacturer's CA certificate(s) as PEM in ca"
	var out []*x509.Certificate
	rest := []byte(p)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fault.New(fault.Malformed, fmt.Sprintf("the CA PEM holds a %s block", block.Type), hint)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fault.Wrap(err, fault.Malformed, "a CA certificate cannot be parsed", hint)
		}
		if !c.BasicConstraintsValid || !c.IsCA {
			return nil, fault.New(fault.Malformed, fmt.Sprintf("the certificate %q is not a CA (no basic constraints CA:TRUE)", c.Subject.String()), hint)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fault.New(fault.Malformed, "the CA PEM holds no certificate", hint)
	}
	return out, nil
}

// EnrollWithManufacturer enrolls the device named by a manufacturer
// certificate (IDevID) instead of a token. chain is what the client
// presented in its TLS handshake, leaf first
// (tls.ConnectionState.PeerCertificates); csrDER is the CSR. Every entry
// point that takes a manufacturer certificate (POST /v1/enroll, EST
// simpleenroll, step /sign) calls this.
//
// It checks, itself (whatever the TLS layer did): that the leaf chains,
// through the other certificates of chain, to the CA of a registered
// manufacturer (the first that verifies), valid at now (the leaf and each
// certificate of the chain), with any extended key usage (IDevIDs often
// have none, or not clientAuth); that the device ID read from the
// manufacturer's DeviceIDFrom field is a valid device ID and matches its
// DevicePattern; then the CSR as for a token of that device. The store
// refuses a manufacturer certificate that enrolled a device before
// (fault.Conflict, until an admin resets that device), and a device that
// exists and did not enroll with this certificate (fault.Conflict). The
// certificate's serial and SHA-256 are recorded with the device and in
// the audit row.
func (s *Service) EnrollWithManufacturer(ctx context.Context, chain []*x509.Certificate, csrDER []byte) (*Result, error) {
	res, mfr, err := s.enrollWithManufacturer(ctx, chain, csrDER)
	if err != nil {
		if kind, ok := fault.KindOf(err); ok {
			s.refused.WithLabelValues(kind.String()).Inc()
			s.log.InfoContext(ctx, "enrollment refused", "manufacturer", mfr.Manufacturer, "manufacturer_serial", mfr.Serial, "kind", kind.String(), "err", err)
		}
		return nil, err
	}
	s.issued.Inc()
	s.log.InfoContext(ctx, "certificate issued", "device_id", res.DeviceID, "serial", SerialHex(res.Certificate),
		"manufacturer", mfr.Manufacturer, "manufacturer_serial", mfr.Serial)
	return res, nil
}

func (s *Service) enrollWithManufacturer(ctx context.Context, chain []*x509.Certificate, csrDER []byte) (*Result, store.ManufacturerCert, error) {
	now := s.now().UTC()
	m, leaf, err := s.manufacturerOf(ctx, chain, now)
	if err != nil {
		return nil, store.ManufacturerCert{}, err
	}
	mc := store.ManufacturerCert{Manufacturer: m.Name, Serial: SerialHex(leaf), Fingerprint: sha256.Sum256(leaf.Raw)}
	id, err := manufacturerDeviceID(m, leaf)
	if err != nil {
		return nil, mc, err
	}
	req, err := checkCSR(csrDER, binding{deviceID: id, names: s.names}, s.cfg.TrustDomain)
	if err != nil {
		return nil, mc, err
	}
	cert, err := s.ca.SignDevice(ctx, ca.DeviceRequest{DeviceID: req.deviceID, PublicKey: req.csr.PublicKey})
	if err != nil {
		return nil, mc, fmt.Errorf("sign certificate for %q: %w", req.deviceID, err)
	}
	is := store.Issuance{
		Certificate: store.Certificate{
			Serial: cert.SerialNumber, DeviceID: string(req.deviceID), KeyHash: req.keyHash,
			NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, IssuedAt: now, DER: cert.Raw,
			Partition: ca.PartitionOf(cert),
		},
		Now:          now,
		MaxActive:    s.cfg.MaxActiveCertificates,
		Manufacturer: &mc,
		Audit: store.AuditEvent{
			Time: now, Action: "certificate.issue", Actor: "manufacturer:" + m.Name,
			DeviceID: string(req.deviceID), Serial: SerialHex(cert),
			Detail: fmt.Sprintf("manufacturer=%s manufacturer_serial=%s manufacturer_sha256=%s", m.Name, mc.Serial, hex.EncodeToString(mc.Fingerprint[:])),
		},
	}
	if err := s.store.Issue(ctx, is); err != nil {
		return nil, mc, s.manufacturerIssueError(err, mc, req.deviceID, now)
	}
	res := &Result{DeviceID: req.deviceID, Certificate: cert}
	schedule(res)
	return res, mc, nil
}

// manufacturerOf returns the registered manufacturer whose CA the chain's
// leaf verifies to at now, and the leaf.
func (s *Service) manufacturerOf(ctx context.Context, chain []*x509.Certificate, now time.Time) (store.Manufacturer, *x509.Certificate, error) {
	const hint = "present a certificate issued by a registered manufacturer's CA, or send an enrollment token"
	if len(chain) == 0 {
		return store.Manufacturer{}, nil, fault.New(fault.Unauthorized, "the request has no enrollment token and no client certificate", hint)
	}
	leaf := chain[0]
	ms, err := s.store.ListManufacturers(ctx)
	if err != nil {
		return store.Manufacturer{}, nil, fmt.Errorf("read manufacturers: %w", err)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	var expired error
	for _, m := range ms {
		cas, err := parseCAPEM(m.CAPEM)
		if err != nil {
			return store.Manufacturer{}, nil, fmt.Errorf("manufacturer %q: %w", m.Name, err)
		}
		roots := x509.NewCertPool()
		for _, c := range cas {
			roots.AddCert(c)
		}
		_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err == nil {
			return m, leaf, nil
		}
		if ie, ok := errors.AsType[x509.CertificateInvalidError](err); ok && ie.Reason == x509.Expired {
			expired = fault.Wrap(err, fault.Unauthorized,
				fmt.Sprintf("the manufacturer certificate (serial %s) of %s is expired or not yet valid (valid %s to %s)", SerialHex(leaf), m.Name,
					leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339)),
				"enroll this device with an enrollment token")
		}
	}
	if expired != nil {
		return store.Manufacturer{}, leaf, expired
	}
	return store.Manufacturer{}, nil, fault.New(fault.Unauthorized,
		fmt.Sprintf("the client certificate %q (serial %s) is not issued by a registered manufacturer's CA", leaf.Subject.String(), SerialHex(leaf)), hint)
}

// manufacturerDeviceID reads the device ID from the leaf as m says, and
// checks it against m's pattern.
func manufacturerDeviceID(m store.Manufacturer, leaf *x509.Certificate) (api.DeviceID, error) {
	field, raw := "common name", leaf.Subject.CommonName
	if m.DeviceIDFrom == DeviceIDFromSerialNumber {
		field, raw = "serialNumber", leaf.Subject.SerialNumber
	}
	id, err := api.ParseDeviceID(raw)
	if err != nil {
		return "", fault.Wrap(err, fault.Forbidden, fmt.Sprintf("the manufacturer certificate's subject %s %q is not a valid device ID", field, raw),
			fmt.Sprintf("check device_id_from of manufacturer %s, or enroll this device with an enrollment token", m.Name))
	}
	if m.DevicePattern != "" && !matchPattern(m.DevicePattern, id) {
		return "", fault.New(fault.Forbidden, fmt.Sprintf("device ID %q does not match device_pattern %q of manufacturer %s", id, m.DevicePattern, m.Name),
			fmt.Sprintf("check device_pattern of manufacturer %s, or enroll this device with an enrollment token", m.Name))
	}
	return id, nil
}

// manufacturerIssueError turns the store's condition errors of a
// manufacturer Issue into faults.
func (s *Service) manufacturerIssueError(err error, mc store.ManufacturerCert, id api.DeviceID, now time.Time) error {
	switch {
	case errors.Is(err, store.ErrManufacturerCertUsed):
		return fault.Wrap(err, fault.Conflict, fmt.Sprintf("the manufacturer certificate (serial %s) of %s has enrolled a device already; it enrolls once", mc.Serial, mc.Manufacturer),
			fmt.Sprintf("to enroll device %q again with it, an admin must revoke and reset the device", id))
	case errors.Is(err, store.ErrDeviceExists):
		return fault.Wrap(err, fault.Conflict, fmt.Sprintf("device %q is already enrolled, not with this manufacturer certificate", id),
			fmt.Sprintf("ask an admin for an enrollment token whose device_id is %q", id))
	}
	return s.issueError(err, store.Token{}, id, now)
}
