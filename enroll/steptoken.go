package enroll

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"strings"
	"time"

	"go.step.sm/crypto/jose"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// StepTokenFormat is TokenRequest.Format for a token in the step CLI's
// JWK-provisioner form (see StepProvisioner).
const StepTokenFormat = "step"

// MaxStepTokenBytes bounds a presented step token: a header, a handful of
// claims and an ES256 signature are well under 2 KiB.
const MaxStepTokenBytes = 8 << 10

// stepTokenHint is the hint of every refused step token.
const stepTokenHint = "ask an admin for a new token (token create with format step)"

// StepProvisioner is fleetca's step JWK provisioner: the key that signs the
// one-time tokens `step ca certificate --token` redeems at /sign.
type StepProvisioner struct {
	// Name is the tokens' iss (ca.step_provisioner, default "fleetca").
	Name string
	// Key is the ES256 provisioner key; its RFC 7638 thumbprint is the
	// tokens' kid.
	Key *ecdsa.PrivateKey
	// SignURLs are the URLs a token's aud may name (StepSignURLs); the
	// first is the one minted tokens carry.
	SignURLs []string
}

// stepVerifier mints and checks step tokens.
type stepVerifier struct {
	name      string
	key       *ecdsa.PrivateKey
	kid       string
	mintAud   string
	audiences []audience
	rootSHA   string
	// revokeAud and revokeAuds are mintAud and audiences for revocation
	// tokens: each sign URL with /revoke for /sign.
	revokeAud  string
	revokeAuds []audience
}

// stepClaims are the claims fleetca puts in a step token beyond the
// registered ones: sans (the device ID) and sha (the root's fingerprint,
// from which the step CLI bootstraps its trust).
type stepClaims struct {
	SANs []string `json:"sans,omitempty"`
	SHA  string   `json:"sha,omitempty"`
}

func newStepVerifier(p *StepProvisioner, rootDER []byte) (*stepVerifier, error) {
	if p.Key == nil || p.Key.Curve != elliptic.P256() {
		return nil, errors.New("enroll: the step provisioner key must be an ECDSA P-256 key")
	}
	if p.Name == "" || len(p.SignURLs) == 0 {
		return nil, errors.New("enroll: the step provisioner needs a name and sign URLs")
	}
	auds, err := parseAudiences(p.SignURLs)
	if err != nil {
		return nil, err
	}
	kid, err := jose.Thumbprint(&jose.JSONWebKey{Key: p.Key.Public()})
	if err != nil {
		return nil, fmt.Errorf("step provisioner kid: %w", err)
	}
	revokeURLs := make([]string, len(p.SignURLs))
	for i, u := range p.SignURLs {
		base, ok := strings.CutSuffix(u, api.StepSignPath)
		if !ok {
			return nil, fmt.Errorf("enroll: the step sign URL %q does not end in %s", u, api.StepSignPath)
		}
		revokeURLs[i] = base + api.StepRevokePath
	}
	revokeAuds, err := parseAudiences(revokeURLs)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(rootDER)
	return &stepVerifier{name: p.Name, key: p.Key, kid: kid, mintAud: p.SignURLs[0], audiences: auds, rootSHA: hex.EncodeToString(sum[:]),
		revokeAud: revokeURLs[0], revokeAuds: revokeAuds}, nil
}

// StepSignURLs returns the URLs a step token's aud may name for an HTTPS
// listener on port with the given host names: /1.0/sign and /sign on each.
func StepSignURLs(hosts []string, port string) []string {
	var out []string
	for _, h := range hosts {
		for _, p := range []string{api.StepPrefix + api.StepSignPath, api.StepSignPath} {
			out = append(out, "https://"+net.JoinHostPort(h, port)+p)
		}
	}
	return out
}

// stepJTIHash is the stored hash of a step token: derived from its jti, so
// the jti is stored only hashed, apart from native tokens' hashes.
func stepJTIHash(jti string) store.TokenHash {
	return sha256.Sum256([]byte("fleetca step jti\x00" + jti))
}

// mint signs a step token for t (a one-device token) and returns it with
// the hash to store.
func (v *stepVerifier) mint(t store.Token) (Secret, store.TokenHash, error) {
	return v.sign(t, t.DeviceID, v.mintAud, []string{t.DeviceID})
}

// mintRevoke signs a step revocation token for the certificate with the
// serial: sub is the serial in decimal (as step ca revoke sends it), aud
// the revoke URL, no sans.
func (v *stepVerifier) mintRevoke(t store.Token, serial *big.Int) (Secret, store.TokenHash, error) {
	return v.sign(t, serial.String(), v.revokeAud, nil)
}

// sign signs a step token with sub, aud and sans, the times of t, a new
// jti and the root's fingerprint.
func (v *stepVerifier) sign(t store.Token, sub, aud string, sans []string) (Secret, store.TokenHash, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", store.TokenHash{}, fmt.Errorf("read random jti: %w", err)
	}
	jti := hex.EncodeToString(b[:])
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: v.key},
		new(jose.SignerOptions).WithType("JWT").WithHeader("kid", v.kid))
	if err != nil {
		return "", store.TokenHash{}, fmt.Errorf("step token signer: %w", err)
	}
	claims := jose.Claims{
		Issuer: v.name, Subject: sub, Audience: jose.Audience{aud}, ID: jti,
		NotBefore: jose.NewNumericDate(t.CreatedAt), IssuedAt: jose.NewNumericDate(t.CreatedAt), Expiry: jose.NewNumericDate(t.ExpiresAt),
	}
	tok, err := jose.Signed(signer).Claims(claims).Claims(stepClaims{SANs: sans, SHA: v.rootSHA}).Serialize()
	if err != nil {
		return "", store.TokenHash{}, fmt.Errorf("sign step token: %w", err)
	}
	return Secret(tok), stepJTIHash(jti), nil
}

// ParseStepToken checks a step token's signature (by the provisioner key
// its kid names), iss, aud, sub, sans and times (1 min leeway), and returns
// its device and stored hash. It does not look the token up. Every refusal
// is fault.Unauthorized and never repeats the token.
func (v *stepVerifier) parse(tok string, now time.Time) (api.DeviceID, store.TokenHash, error) {
	refuse := func(detail string) (api.DeviceID, store.TokenHash, error) {
		return "", store.TokenHash{}, fault.New(fault.Unauthorized, "the step token "+detail, stepTokenHint)
	}
	c, extra, err := v.verify(tok, now, v.audiences, "sign")
	if err != nil {
		return "", store.TokenHash{}, err
	}
	id, err := api.ParseDeviceID(c.Subject)
	if err != nil {
		return refuse("has a sub that is not a device ID")
	}
	for _, s := range extra.SANs {
		if s != string(id) {
			return refuse(fmt.Sprintf("has a SAN %q other than its device %q", truncate(s), id))
		}
	}
	return id, stepJTIHash(c.ID), nil
}

// parseRevoke checks a step revocation token as parse checks a sign token,
// but for the revoke URL (aud), and returns the serial its sub names (in
// decimal, as step sends it) and its stored hash.
func (v *stepVerifier) parseRevoke(tok string, now time.Time) (*big.Int, store.TokenHash, error) {
	c, extra, err := v.verify(tok, now, v.revokeAuds, "revoke")
	if err != nil {
		return nil, store.TokenHash{}, err
	}
	serial, ok := new(big.Int).SetString(c.Subject, 10)
	if !ok || serial.Sign() <= 0 || serial.String() != c.Subject {
		return nil, store.TokenHash{}, fault.New(fault.Unauthorized, "the step revocation token has a sub that is not a certificate serial in decimal", stepRevokeTokenHint)
	}
	if len(extra.SANs) != 0 {
		return nil, store.TokenHash{}, fault.New(fault.Unauthorized, "the step revocation token names SANs; a revocation token names a serial only", stepRevokeTokenHint)
	}
	return serial, stepJTIHash(c.ID), nil
}

// stepRevokeTokenHint is the hint of a refused step revocation token.
const stepRevokeTokenHint = "ask an admin for a revocation token for the certificate (token create with format step and revoke_serial)"

// verify checks a step token's form, signature (by the provisioner key its
// kid names), iss, aud (one of auds: what is "sign" or "revoke"), times
// (1 min leeway) and jti, and returns its claims. Every refusal is
// fault.Unauthorized and never repeats the token.
func (v *stepVerifier) verify(tok string, now time.Time, auds []audience, what string) (jose.Claims, stepClaims, error) {
	// The registered and fleetca's claims, decoded from the payload at once.
	var all struct {
		jose.Claims
		stepClaims
	}
	c, extra := &all.Claims, &all.stepClaims
	refuse := func(detail string) (jose.Claims, stepClaims, error) {
		return *c, *extra, fault.New(fault.Unauthorized, "the step token "+detail, stepTokenHint)
	}
	if tok == "" {
		return refuse("is missing (ott)")
	}
	if len(tok) > MaxStepTokenBytes {
		return refuse(fmt.Sprintf("is %d bytes, more than %d", len(tok), MaxStepTokenBytes))
	}
	jwt, err := jose.ParseSigned(tok)
	if err != nil {
		return refuse("is not a signed JWT")
	}
	if len(jwt.Headers) != 1 || jwt.Headers[0].Algorithm != string(jose.ES256) {
		return refuse("is not signed with ES256")
	}
	if jwt.Headers[0].KeyID != v.kid {
		return refuse("names a provisioner key (kid) this CA does not have")
	}
	if err := jose.Verify(jwt, &v.key.PublicKey, &all); err != nil {
		return refuse("signature does not verify with this CA's provisioner key")
	}
	if c.Issuer != v.name {
		return refuse(fmt.Sprintf("is issued by %q, not by this CA's provisioner %q", truncate(c.Issuer), v.name))
	}
	audOK := false
	for _, a := range c.Audience {
		if u, err := url.Parse(a); err == nil {
			for _, want := range auds {
				if want.matches(u) {
					audOK = true
				}
			}
		}
	}
	if !audOK {
		return refuse("is not for this CA's " + what + " URL (aud)")
	}
	if c.NotBefore == nil || c.Expiry == nil {
		return refuse("has no nbf or exp")
	}
	if err := c.ValidateWithLeeway(jose.Expected{Time: now}, time.Minute); err != nil {
		if errors.Is(err, jose.ErrExpired) {
			return refuse(fmt.Sprintf("expired at %s", c.Expiry.Time().UTC().Format(time.RFC3339)))
		}
		return refuse("is not valid yet")
	}
	if c.ID == "" {
		return refuse("has no jti")
	}
	return *c, *extra, nil
}

// stepTokenRequest refuses a step token this CA cannot mint: no
// provisioner, a pattern, or more than one use.
func (s *Service) stepTokenRequest(t store.Token) error {
	switch {
	case s.step == nil:
		return fault.New(fault.Unavailable, "this CA has no step provisioner key", "set ca.step_provisioner_key and restart the server")
	case t.DeviceID == "":
		return fault.WithField(fault.New(fault.Malformed, "a step token is for one device ID, not a pattern", "give device_id with format step"), "device_pattern")
	case t.Uses != 1:
		return fault.WithField(fault.New(fault.Malformed, fmt.Sprintf("a step token has one use, not %d", t.Uses), "leave uses unset with format step"), "uses")
	}
	return nil
}

// StepSignRequest is a step CLI's /sign: a DER CSR, a step token, and the
// validity it asks for ("" = the profile's).
type StepSignRequest struct {
	Token               string
	CSR                 []byte
	NotBefore, NotAfter string
	// PeerCertificates is the chain the client presented in its TLS
	// handshake, leaf first. Without a Token, it is taken for a
	// manufacturer certificate (EnrollWithManufacturer), as /v1/enroll and
	// EST simpleenroll take it.
	PeerCertificates []*x509.Certificate
}

// EnrollStep redeems a step token (minted by CreateToken with
// StepTokenFormat) for a device certificate of fleetca's profile. The token
// is spent in the issuance transaction, once, only on success. A request
// with no token and a TLS client certificate enrolls with that certificate
// as a manufacturer certificate (EnrollWithManufacturer), under the same
// validity rule.
func (s *Service) EnrollStep(ctx context.Context, req StepSignRequest) (*Result, error) {
	if req.Token == "" && len(req.PeerCertificates) > 0 {
		if err := stepValidity(req); err != nil {
			s.refused.WithLabelValues(fault.Malformed.String()).Inc()
			s.log.InfoContext(ctx, "enrollment refused", "kind", fault.Malformed.String(), "err", err, "format", StepTokenFormat)
			return nil, err
		}
		return s.EnrollWithManufacturer(ctx, req.PeerCertificates, req.CSR)
	}
	res, tokenID, err := s.enrollStep(ctx, req)
	if err != nil {
		if kind, ok := fault.KindOf(err); ok {
			s.refused.WithLabelValues(kind.String()).Inc()
			s.log.InfoContext(ctx, "enrollment refused", "token_id", tokenID, "kind", kind.String(), "err", err, "format", StepTokenFormat)
		}
		return nil, err
	}
	s.issued.Inc()
	s.log.InfoContext(ctx, "certificate issued", "device_id", res.DeviceID, "serial", SerialHex(res.Certificate), "token_id", tokenID, "format", StepTokenFormat)
	return res, nil
}

func (s *Service) enrollStep(ctx context.Context, req StepSignRequest) (*Result, string, error) {
	if s.step == nil {
		return nil, "", fault.New(fault.Unauthorized, "this CA has no step provisioner, so it accepts no step token", "set ca.step_provisioner_key and restart the server")
	}
	if err := stepValidity(req); err != nil {
		return nil, "", err
	}
	_, h, err := s.step.parse(req.Token, s.now())
	if err != nil {
		return nil, "", err
	}
	return s.redeem(ctx, h, req.CSR, true)
}

// stepValidity refuses a /sign that asks for a validity of its own.
func stepValidity(req StepSignRequest) error {
	if req.NotBefore == "" && req.NotAfter == "" {
		return nil
	}
	return fault.WithField(fault.New(fault.Malformed, fmt.Sprintf("the request asks for validity notBefore=%q notAfter=%q; fleetca issues its profile's validity (ca.device_validity) only",
		truncate(req.NotBefore), truncate(req.NotAfter)), "leave notBefore and notAfter empty"), "notAfter")
}

// revokeTokenRequest checks a request for a step revocation token and
// returns it for the device of the certificate it revokes.
func (s *Service) revokeTokenRequest(ctx context.Context, req TokenRequest) (TokenRequest, error) {
	const field = "revoke_serial"
	serial := req.RevokeSerial
	switch {
	case req.Format != StepTokenFormat:
		return req, fault.WithField(fault.New(fault.Malformed, "a revocation token is a step token",
			`give format "step" with revoke_serial`), "format")
	case req.DeviceID != "" || req.DevicePattern != "" || req.AnyDevice:
		return req, fault.WithField(fault.New(fault.Malformed, "a revocation token names a certificate serial, not a device",
			"give revoke_serial without device_id, device_pattern or any_device"), field)
	case serial.Sign() <= 0:
		return req, fault.WithField(fault.New(fault.Malformed, fmt.Sprintf("the serial %s is not a certificate serial", serial.Text(16)),
			"give the certificate's serial in hex"), field)
	}
	rec, err := s.store.GetCertificate(ctx, serial)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return req, fault.WithField(fault.Wrap(err, fault.NotFound, fmt.Sprintf("no certificate has serial %s", serial.Text(16)),
			"list the device's certificates to find its serial"), field)
	case err != nil:
		return req, fmt.Errorf("read certificate %s: %w", serial.Text(16), err)
	case !rec.RevokedAt.IsZero():
		return req, fault.WithField(fault.New(fault.AlreadyRevoked, fmt.Sprintf("certificate %s was revoked at %s", serial.Text(16), rec.RevokedAt.UTC().Format(time.RFC3339)),
			""), field)
	}
	req.DeviceID = rec.DeviceID
	return req, nil
}

// ParseStepRevokeToken checks a step revocation token (minted by
// CreateToken with RevokeSerial) without spending it, and returns the
// serial it revokes, the hash to spend in the revocation's transaction
// (revocation.RevokeRequest.Token) and its token ID. Refusals are
// fault.Unauthorized; with no step provisioner every token is refused.
func (s *Service) ParseStepRevokeToken(tok string) (*big.Int, store.TokenHash, string, error) {
	if s.step == nil {
		return nil, store.TokenHash{}, "", fault.New(fault.Unauthorized, "this CA has no step provisioner, so it accepts no step token",
			"set ca.step_provisioner_key and restart the server")
	}
	serial, h, err := s.step.parseRevoke(tok, s.now())
	if err != nil {
		return nil, store.TokenHash{}, "", err
	}
	return serial, h, TokenID(h), nil
}
