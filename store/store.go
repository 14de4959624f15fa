package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// Sentinel errors. Test with errors.Is. Every condition error (of Issue,
// RevokeToken, Revoke and ResetDevice) wraps ErrConflict, so
// errors.Is(err, ErrConflict) is true for each of them too.
var (
	// ErrNotFound: the record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrTokenNotFound: the token to spend does not exist. It wraps
	// ErrNotFound, so that a caller of Revoke with a Token can tell an
	// unknown token from an unknown certificate.
	ErrTokenNotFound = fmt.Errorf("%w: token not found", ErrNotFound)
	// ErrConflict: a duplicate, or a condition that a concurrent change made false.
	ErrConflict = errors.New("conflict")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store closed")

	// ErrTokenExpired: the token's ExpiresAt is not after Issuance.Now.
	ErrTokenExpired = fmt.Errorf("%w: token expired", ErrConflict)
	// ErrTokenUsedUp: the token has no uses left.
	ErrTokenUsedUp = fmt.Errorf("%w: token used up", ErrConflict)
	// ErrTokenRevoked: the token was revoked by an admin.
	ErrTokenRevoked = fmt.Errorf("%w: token revoked", ErrConflict)
	// ErrDeviceExists: Issuance.RequireNewDevice was set and the device exists.
	ErrDeviceExists = fmt.Errorf("%w: device exists", ErrConflict)
	// ErrDeviceRevoked: the device's Status is DeviceRevoked.
	ErrDeviceRevoked = fmt.Errorf("%w: device revoked", ErrConflict)
	// ErrTooManyCertificates: the device already has Issuance.MaxActive live certificates.
	ErrTooManyCertificates = fmt.Errorf("%w: too many live certificates", ErrConflict)
	// ErrKeyInUse: the public key is certified for another device.
	ErrKeyInUse = fmt.Errorf("%w: key certified for another device", ErrConflict)
	// ErrKeyBlocked: the public key was blocked by a Revoke with BlockKeys
	// (keyCompromise).
	ErrKeyBlocked = fmt.Errorf("%w: key blocked", ErrConflict)
	// ErrAlreadyRevoked: Revoke of a certificate (or device) revoked before.
	ErrAlreadyRevoked = fmt.Errorf("%w: already revoked", ErrConflict)
	// ErrNotRevoked: ResetDevice on a device that is not revoked.
	ErrNotRevoked = fmt.Errorf("%w: not revoked", ErrConflict)
	// ErrCertificateRevoked: Renew of a certificate that is revoked.
	ErrCertificateRevoked = fmt.Errorf("%w: certificate revoked", ErrConflict)
	// ErrNotNewest: Renew of a certificate that is not the newest
	// unrevoked certificate of its device (a renewal or enrollment after it
	// exists), other than a retry (Renewal.RetryWindow).
	ErrNotNewest = fmt.Errorf("%w: not the newest certificate of the device", ErrConflict)
	// ErrRenewedRecently: the device renewed less than Renewal.MinInterval
	// ago (Device.LastRenewalAt).
	ErrRenewedRecently = fmt.Errorf("%w: renewed recently", ErrConflict)
	// ErrNonceSpent: Renewal.Nonce was spent before (a renewal token used twice).
	ErrNonceSpent = fmt.Errorf("%w: nonce spent", ErrConflict)
	// ErrManufacturerCertUsed: Issuance.Manufacturer names a manufacturer
	// certificate that enrolled a device before (and no ResetDevice of
	// that device released it since).
	ErrManufacturerCertUsed = fmt.Errorf("%w: manufacturer certificate used", ErrConflict)
	// ErrAdminDisabled: DisableAdmin or RotateAdmin of a disabled admin.
	ErrAdminDisabled = fmt.Errorf("%w: admin disabled", ErrConflict)
	// ErrLastOwner: DisableAdmin of the last active owner.
	ErrLastOwner = fmt.Errorf("%w: last active owner", ErrConflict)
)

// Role is an admin's role. Each role may do what the roles before it may.
type Role string

// Admin roles, in increasing power.
const (
	// RoleViewer reads.
	RoleViewer Role = "viewer"
	// RoleOperator also mints tokens, revokes, resets devices and renews now.
	RoleOperator Role = "operator"
	// RoleOwner also manages admins and manufacturers.
	RoleOwner Role = "owner"
)

// Rank orders roles: 1 viewer, 2 operator, 3 owner, 0 for anything else.
func (r Role) Rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleOperator:
		return 2
	case RoleOwner:
		return 3
	}
	return 0
}

// Admin is a named admin, who authenticates with a personal admin token,
// stored only as its hash.
type Admin struct {
	// Name is unique: [a-z0-9][a-z0-9._-]{0,63}.
	Name string `json:"name"`
	Role Role   `json:"role"`
	// TokenHash is the SHA-256 of the admin's token; unique.
	TokenHash  TokenHash `json:"token_hash"`
	CreatedAt  time.Time `json:"created_at"`
	DisabledAt time.Time `json:"disabled_at,omitzero"`
	// RotatedAt is when the token was last replaced; zero if never.
	RotatedAt time.Time `json:"rotated_at,omitzero"`
}

// Active reports whether a is not disabled.
func (a Admin) Active() bool { return a.DisabledAt.IsZero() }

// DeviceStatus is a device's life-cycle state.
type DeviceStatus string

// Device states.
const (
	DeviceActive  DeviceStatus = "active"
	DeviceRevoked DeviceStatus = "revoked"
)

// Device is one enrolled device. It is created by the first Issue that names
// its ID.
type Device struct {
	ID        string       `json:"id"`
	Status    DeviceStatus `json:"status"`
	CreatedAt time.Time    `json:"created_at"`
	UpdatedAt time.Time    `json:"updated_at"`
	// LastRenewalAt is when the device last renewed (Renew that issued a
	// certificate, not a retry); zero if it never did.
	LastRenewalAt time.Time `json:"last_renewal_at,omitzero"`
	// RenewNowAt is when an admin last asked this device to renew now
	// (RenewNow); zero if never.
	RenewNowAt time.Time `json:"renew_now_at,omitzero"`
	// RevokedAt is when the device was last revoked (Revoke by DeviceID);
	// zero if never, or if that was before fleetca recorded it. ResetDevice
	// keeps it: Renew refuses every certificate issued before it.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	// Manufacturer is the manufacturer certificate the device last
	// enrolled with (Issuance.Manufacturer); nil if it never did.
	Manufacturer *ManufacturerCert `json:"manufacturer,omitempty"`
	// NotAfter is the end of the validity of the device's newest
	// certificate (the last one Issue or Renew wrote for it), and RenewBy
	// the end of that certificate's natural renewal window
	// (RenewalWindow): a device still holding it after RenewBy has
	// stopped renewing. The store maintains both; ResetDevice zeroes them
	// (a reset device has no live certificate until it enrolls again).
	// Revoking a single certificate leaves them as they are.
	NotAfter time.Time `json:"not_after,omitzero"`
	RenewBy  time.Time `json:"renew_by,omitzero"`
}

// RenewalWindow is the natural renewal window of a certificate valid over
// [notBefore, notAfter): from 2/3 - 1 % to 2/3 + 1 % of the validity,
// whole seconds (what enroll tells devices, in the manner of ACME ARI).
func RenewalWindow(notBefore, notAfter time.Time) (start, end time.Time) {
	v := notAfter.Sub(notBefore)
	mid := notBefore.Add(v / 3 * 2)
	return mid.Add(-v / 100).Truncate(time.Second), mid.Add(v / 100).Truncate(time.Second)
}

// Stats are the fleet's numbers the console's overview shows. A store
// keeps them as counters it maintains in the transactions that change
// them, so that Stats costs the same with ten devices or ten million;
// counters of time may round each counted time down to the whole hour
// (UTC), so a count near an hour's boundary may be off by that hour.
type Stats struct {
	// Active and Revoked count devices by Status.
	Active, Revoked int
	// Certificates counts every certificate ever issued (Issue and Renew).
	Certificates int
	// Expiring7d and Expiring30d count active devices whose NotAfter is
	// in (now, now+7 days] and (now, now+30 days]; Expired counts active
	// devices whose NotAfter is at or before now (devices with a zero
	// NotAfter are in none of them).
	Expiring7d, Expiring30d, Expired int
	// StoppedRenewing counts active devices whose RenewBy is at or before
	// now (it includes the expired ones).
	StoppedRenewing int
	// Revoked24h counts certificates revoked in (now-24h, now] with any
	// reason but superseded (4), which renewal writes routinely.
	Revoked24h int
	// Enrollments counts Issue calls (enrollments, not renewals) per UTC
	// day of the certificate's IssuedAt: Enrollments[29] is now's day,
	// Enrollments[0] the day 29 days before it.
	Enrollments [30]int
}

// DeviceSort is an order QueryDevices can list devices in.
type DeviceSort string

const (
	// SortID lists by device ID, ascending (byte order); the default.
	SortID DeviceSort = "id"
	// SortIDDesc lists by device ID, descending.
	SortIDDesc DeviceSort = "-id"
	// SortRenewBy lists active devices with a RenewBy, soonest RenewBy
	// first (ties by ID): the ones that stopped renewing come first.
	SortRenewBy DeviceSort = "renew_by"
	// SortCreatedDesc lists by CreatedAt, newest first (ties by ID,
	// descending).
	SortCreatedDesc DeviceSort = "-created"
)

// DeviceQuery selects a page of devices. Every combination it allows is
// answered from an index: a page costs the same at any fleet size.
type DeviceQuery struct {
	// Prefix keeps devices whose ID starts with it; only with SortID and
	// SortIDDesc.
	Prefix string
	// Status keeps devices with this status; "" keeps all. SortRenewBy
	// lists active devices only, and takes "" or DeviceActive.
	Status DeviceStatus
	// Sort is the order; "" means SortID.
	Sort DeviceSort
	// RenewByBefore, with SortRenewBy, keeps devices whose RenewBy is at
	// or before it (the devices that stopped renewing, given now); zero
	// keeps all.
	RenewByBefore time.Time
	// After is the cursor QueryDevices returned with the previous page
	// (opaque, printable ASCII); "" starts at the beginning.
	After string
	// Limit as Page.Limit.
	Limit int
}

// AuditQuery selects audit events, newest first. Every filter given must
// match; empty ones match all.
type AuditQuery struct {
	Actor    string
	Action   string
	DeviceID string
	// Since and Until keep events with Time in [Since, Until); zero is
	// unbounded.
	Since, Until time.Time
	// BeforeSeq keeps events with Seq < BeforeSeq; 0 starts at the newest.
	BeforeSeq uint64
	// Limit as Page.Limit.
	Limit int
}

// AuditScanLimit bounds how many events QueryAudit may examine for one
// call that no index answers (filters other than DeviceID alone): it then
// returns what it found with a cursor to continue, so that a rare match
// in a long log costs several pages, not one slow one.
const AuditScanLimit = 20000

// ErrBadQuery is returned by QueryDevices for a combination of fields it
// does not serve.
var ErrBadQuery = errors.New("unsupported query")

// ManufacturerCert identifies a manufacturer (factory, IDevID) certificate
// that a device enrolled with.
type ManufacturerCert struct {
	// Manufacturer is the name of the Manufacturer whose CA issued it.
	Manufacturer string `json:"manufacturer"`
	// Serial is its serial number, lowercase hex without colons.
	Serial string `json:"serial"`
	// Fingerprint is the SHA-256 of its DER: the key of the one-use rule.
	Fingerprint [32]byte `json:"fingerprint"`
}

// Manufacturer is a CA whose certificates (device identities installed in
// the factory) may enroll a device instead of an enrollment token.
type Manufacturer struct {
	// Name is unique: [A-Za-z0-9][A-Za-z0-9._-]{0,63}.
	Name string `json:"name"`
	// CAPEM is the manufacturer's CA certificate(s), PEM.
	CAPEM string `json:"ca_pem"`
	// DeviceIDFrom says where the device ID is read: "cn" or "serialNumber"
	// (the subject's serialNumber attribute).
	DeviceIDFrom string `json:"device_id_from"`
	// DevicePattern, if set, is a glob the device ID must match.
	DevicePattern string    `json:"device_pattern,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
}

// KeyHash is the SHA-256 of a public key's DER SubjectPublicKeyInfo.
type KeyHash [32]byte

// Certificate is one issued certificate.
type Certificate struct {
	// Serial is the certificate's serial number, positive.
	Serial *big.Int `json:"-"`
	// DeviceID names the device the certificate was issued to.
	DeviceID string `json:"device_id"`
	// KeyHash identifies the certified public key.
	KeyHash   KeyHash   `json:"key_hash"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// IssuedAt is when the CA signed it (the clock's now, not NotBefore,
	// which is backdated).
	IssuedAt time.Time `json:"issued_at"`
	// DER is the whole certificate.
	DER []byte `json:"der"`
	// RevokedAt is zero while the certificate is not revoked.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	// Reason is the RFC 5280 §5.3.1 CRLReason code; meaningful only when
	// RevokedAt is set.
	Reason int `json:"reason,omitempty"`
	// Parent is the serial of the certificate this one renewed (its
	// predecessor in the device's lineage); nil for an enrollment.
	Parent *big.Int `json:"-"`
}

// Live reports whether c is unrevoked and not yet expired at now.
func (c Certificate) Live(now time.Time) bool {
	return c.RevokedAt.IsZero() && now.Before(c.NotAfter)
}

// TokenHash is the SHA-256 of an enrollment token's secret. Tokens are
// stored only as hashes.
type TokenHash [32]byte

// Token is an enrollment token, by its hash.
type Token struct {
	// ID is a short public handle for the token (a prefix of the hex
	// hash): safe to show and log, useless to enroll with. Unique.
	ID   string    `json:"id"`
	Hash TokenHash `json:"hash"`
	// Exactly one of DeviceID and DevicePattern is set.
	DeviceID      string `json:"device_id,omitempty"`
	DevicePattern string `json:"device_pattern,omitempty"`
	// Uses is how many certificates the token may obtain; Spent how many it has.
	Uses      int       `json:"uses"`
	Spent     int       `json:"spent"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// RevokedAt is zero unless an admin revoked the token.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// AuditEvent is one row of the append-only audit log.
type AuditEvent struct {
	// Seq is assigned by the store: 1, 2, 3, ... in commit order.
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Action names what happened: "token.create", "token.revoke",
	// "certificate.issue", "admin.auth_failed", ...
	Action string `json:"action"`
	// Actor names who did it: "admin:<name>", "token:<token id>",
	// "device:<id>", "remote:<address>" (a failed admin authentication).
	Actor    string `json:"actor"`
	DeviceID string `json:"device_id,omitempty"`
	// Serial is lowercase hex without colons.
	Serial  string `json:"serial,omitempty"`
	TokenID string `json:"token_id,omitempty"`
	Detail  string `json:"detail,omitempty"`
	// Root is the audit tree's hash after this event: the RFC 6962 tree
	// (golang.org/x/mod/sumdb/tlog) whose leaves are the LeafData of the
	// events 1..Seq, in Seq order; leaf index = Seq-1. The store computes
	// it, in the transaction that appends the event, and ignores what the
	// caller set.
	Root tlog.Hash `json:"root"`
}

// AuditTimePrecision is the precision a store keeps an audit event's Time
// to (PostgreSQL's timestamptz keeps microseconds): a store truncates Time
// to it, in UTC, before it computes the event's leaf, so that the leaf
// recomputes from the stored row on any backend.
const AuditTimePrecision = time.Microsecond

// LeafData is the event's leaf in the audit tree: a canonical encoding of
// every field but Root (Seq included, so a renumbered row changes its
// leaf; Time in UTC to AuditTimePrecision). tlog.RecordHash(e.LeafData())
// is the leaf hash.
func (e AuditEvent) LeafData() []byte {
	// JSON of a struct with fixed field order and no omitted fields:
	// stable, and readable by an auditor with any JSON tool.
	b, err := json.Marshal(struct {
		Seq      uint64 `json:"seq"`
		Time     string `json:"time"`
		Action   string `json:"action"`
		Actor    string `json:"actor"`
		DeviceID string `json:"device_id"`
		Serial   string `json:"serial"`
		TokenID  string `json:"token_id"`
		Detail   string `json:"detail"`
	}{e.Seq, e.Time.UTC().Truncate(AuditTimePrecision).Format("2006-01-02T15:04:05.000000Z"), e.Action, e.Actor, e.DeviceID, e.Serial, e.TokenID, e.Detail})
	if err != nil {
		panic(err) // strings and numbers always marshal
	}
	return b
}

// Checkpoint is a signed statement of the audit tree's size and root: a
// C2SP tlog-checkpoint note (golang.org/x/mod/sumdb/note), signed with
// the CA's audit key. The store keeps them in Size order and checks only
// that order; the signature and the root are the caller's to check.
type Checkpoint struct {
	// Size is the tree size (the last Seq) it covers; Root its tree hash.
	Size int64     `json:"size"`
	Root tlog.Hash `json:"root"`
	// Time is when it was signed.
	Time time.Time `json:"time"`
	// Note is the signed note's text, exactly as signed.
	Note []byte `json:"note"`
}

// ErrStaleCheckpoint is returned by PutCheckpoint for a checkpoint no
// larger than the latest stored one (another replica signed first).
var ErrStaleCheckpoint = fmt.Errorf("%w: checkpoint not newer than the latest", ErrConflict)

// Issuance is everything Issue records, and the conditions it checks
// atomically with the write. Besides those set here, Issue always refuses
// a blocked key (ErrKeyBlocked), checked after the token and the device
// and before ErrKeyInUse.
type Issuance struct {
	// Certificate to record. Serial, DeviceID, KeyHash, NotAfter and DER are
	// required.
	Certificate Certificate
	// Token, if non-zero, is the hash of the token to spend one use of. The
	// token must exist (ErrNotFound), not be revoked (ErrTokenRevoked), be
	// unexpired at Now (ErrTokenExpired) and have a use left (ErrTokenUsedUp).
	Token TokenHash
	// Now is the time against which expiry and liveness are judged.
	Now time.Time
	// RequireNewDevice refuses with ErrDeviceExists if the device exists.
	RequireNewDevice bool
	// MaxActive, if > 0, refuses with ErrTooManyCertificates when the device
	// already has MaxActive live certificates (Certificate.Live at Now).
	MaxActive int
	// Manufacturer, if set, is the manufacturer certificate that
	// authorises the issuance instead of a token. Its Fingerprint must not
	// have enrolled a device before (ErrManufacturerCertUsed, checked
	// before the device conditions); if the device exists it must have
	// enrolled with this same certificate, released since by ResetDevice
	// (ErrDeviceExists otherwise). The store records it as used and as the
	// device's Manufacturer.
	Manufacturer *ManufacturerCert
	// Audit is appended in the same transaction; the store sets Seq.
	Audit AuditEvent
}

// Renewal is everything Renew records, and the conditions it checks
// atomically with the write.
type Renewal struct {
	// Parent is the serial of the certificate being renewed. Required.
	Parent *big.Int
	// Certificate is the new certificate. Serial, KeyHash, NotAfter,
	// IssuedAt and DER are required; DeviceID must be the Parent's device's
	// (an error wrapping no sentinel otherwise). Renew sets its Parent.
	Certificate Certificate
	// Now is the time against which liveness and intervals are judged.
	// Required: it becomes LastRenewalAt and the RevokedAt of what
	// MaxActive supersedes.
	Now time.Time
	// RetryWindow: if an unrevoked certificate whose Parent is r.Parent
	// and whose KeyHash is r.Certificate.KeyHash was issued (IssuedAt) less
	// than RetryWindow before Now, Renew records nothing and returns that
	// certificate (the newest such) with Replayed set: a retry of a
	// renewal whose answer was lost. A revoked one is never returned: the
	// retry is then judged as a new renewal. Zero means no retries are
	// recognised.
	RetryWindow time.Duration
	// MinInterval, if > 0, refuses with ErrRenewedRecently when the
	// device's LastRenewalAt is after Now - MinInterval. Retries are exempt.
	MinInterval time.Duration
	// MaxActive, if > 0: when the device would have more than MaxActive
	// live certificates (Certificate.Live at Now) with the new one, its
	// oldest live ones (by IssuedAt, then serial) are revoked, reason
	// superseded (4), at Now, with their Revocation log entries, in the
	// same transaction, until it has MaxActive.
	MaxActive int
	// Nonce, if set, is spent in the same transaction: ErrNonceSpent if it
	// was spent before and has not expired. A renewal token's hash.
	Nonce *Nonce
	// Audit is appended in the same transaction (not on a retry); the
	// store sets Seq.
	Audit AuditEvent
}

// Nonce is a one-time value, remembered until Expires (after which it
// could not be accepted anyway, and the store may forget it).
type Nonce struct {
	Hash    [32]byte
	Expires time.Time
}

// RenewResult is what Renew did.
type RenewResult struct {
	// Certificate is the new certificate, or on a retry the one issued
	// before (Replayed).
	Certificate Certificate
	// Replayed is set when Renew recognised a retry and wrote nothing
	// (except spending Nonce).
	Replayed bool
	// Superseded are the log entries of the certificates revoked to keep
	// the device within MaxActive, in Seq order.
	Superseded []Revocation
}

// Revocation is one entry of the revocation log: a certificate revoked, in
// the order of the revocations. Only Revoke and Renew (superseding, see
// Renewal.MaxActive) write entries, one per certificate they revoke, so a
// serial has at most one entry; a certificate that Issue recorded already
// revoked has none.
type Revocation struct {
	// Seq is assigned by the store: 1, 2, 3, ... in commit order, without
	// gaps. It is the cursor of ListRevocations (and of the proxy's
	// revocation feed).
	Seq uint64 `json:"seq"`
	// Serial and DeviceID are the certificate's. A backend stores Serial
	// in a form that keeps every bit (it is longer than 64).
	Serial   *big.Int `json:"-"`
	DeviceID string   `json:"device_id"`
	// RevokedAt and Reason (RFC 5280 §5.3.1 CRLReason code) as recorded on
	// the certificate.
	RevokedAt time.Time `json:"revoked_at"`
	Reason    int       `json:"reason"`
	// NotAfter of the certificate: once it has passed and one CRL issued
	// after it has listed the entry, the entry leaves the CRL (RFC 5280 §3.3).
	NotAfter time.Time `json:"not_after"`
}

// RevokeRequest says what Revoke revokes: one certificate by Serial, or a
// device by DeviceID (exactly one of them is set).
type RevokeRequest struct {
	Serial   *big.Int
	DeviceID string
	// At is the revocation time, required (a zero RevokedAt means "not
	// revoked"); it is also the time at which a device's certificates are
	// judged Live. Reason is the RFC 5280 §5.3.1 CRLReason code, recorded
	// as given: the store does not check it.
	At     time.Time
	Reason int
	// BlockKeys blocks the public key of every certificate revoked, so that
	// Issue refuses it (ErrKeyBlocked) for any device (keyCompromise).
	BlockKeys bool
	// Audit is appended in the same transaction; the store sets Seq, and,
	// for a Serial, DeviceID from the certificate when it is empty.
	Audit AuditEvent
	// Token, if non-zero, is the hash of a token to spend one use of in
	// the same transaction (a step revocation token), under Issue's
	// conditions (ErrTokenNotFound, ErrTokenRevoked, ErrTokenExpired at
	// At, ErrTokenUsedUp), checked before the certificate's or device's.
	// A refusal of either spends nothing.
	Token TokenHash
}

// Page selects a slice of a listing ordered by key: the records after After
// (exclusive; "" for the first page), at most Limit of them (<= 0 means 100,
// and at most 1000 are returned).
type Page struct {
	After string
	Limit int
}

// Limits of a Page.
const (
	DefaultPageLimit = 100
	MaxPageLimit     = 1000
)

// Limits of ListRevocations: a CRL or a verifier catching up reads the log
// in pages much larger than a Page.
const (
	DefaultRevocationLimit = 1000
	MaxRevocationLimit     = 100000
)

// RevocationLimit returns limit bounded to (0, MaxRevocationLimit],
// DefaultRevocationLimit if limit <= 0.
func RevocationLimit(limit int) int {
	switch {
	case limit <= 0:
		return DefaultRevocationLimit
	case limit > MaxRevocationLimit:
		return MaxRevocationLimit
	}
	return limit
}

// PageLimit returns p.Limit bounded to (0, MaxPageLimit], DefaultPageLimit if unset.
func (p Page) PageLimit() int {
	switch {
	case p.Limit <= 0:
		return DefaultPageLimit
	case p.Limit > MaxPageLimit:
		return MaxPageLimit
	}
	return p.Limit
}

// Store is fleetca's persistence. Implementations are safe for concurrent
// use. Every method honours ctx cancellation before it commits; once a
// write method returns nil its change is durable (fsynced) and survives a
// crash. Records returned are copies: the caller may keep and change them.
type Store interface {
	// Issue records an issued certificate: it checks the conditions in
	// is, spends one use of is.Token if set, creates the device (active)
	// if it does not exist, binds the key to the device, stores the
	// certificate and appends is.Audit, in one transaction. It returns a
	// condition error (ErrTokenUsedUp, ErrDeviceExists, ErrKeyBlocked, ...
	// or ErrNotFound for an unknown token) and writes nothing if any
	// condition fails, and ErrConflict if the serial exists.
	Issue(ctx context.Context, is Issuance) error

	// CreateToken stores t and appends audit. ErrConflict if a token with
	// the same Hash or ID exists.
	CreateToken(ctx context.Context, t Token, audit AuditEvent) error
	// CreateTokens stores every token of ts and appends audits[i] for
	// ts[i], in one transaction: all of them or none. len(audits) must be
	// len(ts). ErrConflict, and nothing written, if any token's Hash or ID
	// exists or appears twice in ts.
	CreateTokens(ctx context.Context, ts []Token, audits []AuditEvent) error
	// GetToken returns the token with hash h, or ErrNotFound.
	GetToken(ctx context.Context, h TokenHash) (Token, error)
	// ListTokens returns tokens ordered by ID.
	ListTokens(ctx context.Context, p Page) ([]Token, error)
	// RevokeToken sets RevokedAt of the token with the given ID to at and
	// appends audit; it returns the updated token. ErrNotFound for an
	// unknown ID; revoking a revoked token changes nothing and returns it
	// with ErrTokenRevoked.
	RevokeToken(ctx context.Context, id string, at time.Time, audit AuditEvent) (Token, error)

	// GetDevice returns the device, or ErrNotFound.
	GetDevice(ctx context.Context, id string) (Device, error)
	// ListDevices returns devices ordered by ID.
	ListDevices(ctx context.Context, p Page) ([]Device, error)
	// QueryDevices returns a page of the devices q selects, in q's order,
	// and the cursor of the next page ("" when there is none). A
	// combination DeviceQuery does not allow is an error wrapping
	// ErrBadQuery.
	QueryDevices(ctx context.Context, q DeviceQuery) ([]Device, string, error)
	// Stats returns the fleet's counters as of now.
	Stats(ctx context.Context, now time.Time) (Stats, error)

	// GetCertificate returns the certificate with the serial, or ErrNotFound.
	GetCertificate(ctx context.Context, serial *big.Int) (Certificate, error)
	// ListCertificates returns the certificates of deviceID ("" for every
	// device) ordered by serial; Page.After is a serial in lowercase hex.
	ListCertificates(ctx context.Context, deviceID string, p Page) ([]Certificate, error)
	// KeyOwner returns the ID of the device whose certificate certifies the
	// key, or ErrNotFound.
	KeyOwner(ctx context.Context, h KeyHash) (string, error)

	// Revoke revokes, in one transaction: for a Serial, that certificate
	// (ErrNotFound if unknown; ErrAlreadyRevoked, writing nothing, if it was
	// revoked before); for a DeviceID, every certificate of the device that
	// is Live at r.At, and the device's Status becomes DeviceRevoked and
	// its UpdatedAt r.At (ErrNotFound if unknown; ErrAlreadyRevoked, writing
	// nothing, if the device is revoked already). Each certificate revoked
	// (a device's in serial order) gets RevokedAt = r.At and Reason =
	// r.Reason, a Revocation log entry, and, with BlockKeys, its key
	// blocked. It appends r.Audit and returns the log entries it wrote, in
	// Seq order (possibly none, for a device with no live certificate). A
	// refusal returns no entries.
	//
	// By Serial, the certificate is revoked whether or not it has expired,
	// and its device is left as it is (Status and UpdatedAt). Setting both
	// or neither of Serial and DeviceID, or a zero At, is an error that
	// wraps no sentinel; a serial that cannot exist (not positive) is
	// ErrNotFound, as in GetCertificate.
	Revoke(ctx context.Context, r RevokeRequest) ([]Revocation, error)
	// Renew records a renewal of r.Parent, in one transaction. In this
	// order: ErrNotFound if r.Parent is unknown (or not positive);
	// ErrDeviceRevoked if the device is revoked (so a revoked device gets
	// nothing, not even a retry's answer); a retry (see
	// ErrCertificateRevoked if r.Parent was issued before the device's
	// RevokedAt (a certificate that had expired when its device was
	// revoked stays unrevoked, and must not renew after a ResetDevice); a
	// retry (see Renewal.RetryWindow) returns the earlier certificate, Replayed, and
	// writes nothing but the nonce (unless spent already: a retry may
	// repeat its renewal token); ErrCertificateRevoked if r.Parent is
	// revoked; ErrNotNewest if the device has an unrevoked certificate
	// issued after r.Parent (by IssuedAt, then serial); ErrRenewedRecently
	// (see MinInterval); ErrNonceSpent; ErrKeyBlocked; ErrKeyInUse if the
	// key is certified for another device; ErrConflict if the serial
	// exists. Then it stores the certificate with Parent set, binds the key
	// to the device, sets the device's LastRenewalAt (and UpdatedAt) to
	// Now, revokes what MaxActive requires, spends the nonce and appends
	// Audit. A refusal writes nothing and returns a zero RenewResult.
	// r.Parent may have expired: whether
	// that is allowed is the caller's rule. A certificate DeviceID other
	// than the parent's, or a missing required field, is an error that
	// wraps no sentinel.
	Renew(ctx context.Context, r Renewal) (RenewResult, error)
	// RenewNow records that an admin asked a device (deviceID: its
	// RenewNowAt, nothing else of it) or, with deviceID "", the whole fleet
	// (FleetRenewNow) to renew now, at at, and appends audit. ErrNotFound
	// for an unknown device; a zero at is an error that wraps no sentinel.
	RenewNow(ctx context.Context, deviceID string, at time.Time, audit AuditEvent) error
	// FleetRenewNow returns the time of the last RenewNow for the whole
	// fleet, zero if none.
	FleetRenewNow(ctx context.Context) (time.Time, error)

	// ResetDevice makes a revoked device active again (Status DeviceActive,
	// UpdatedAt at), appends audit and returns the device, so it may
	// enroll; its revoked certificates stay revoked, blocked keys stay
	// blocked, and its RevokedAt is kept. The manufacturer certificate it
	// enrolled with (if any) is released: it may enroll the device once
	// more. ErrNotFound if unknown; ErrNotRevoked, writing nothing and
	// returning the device as stored, if it is not revoked.
	ResetDevice(ctx context.Context, id string, at time.Time, audit AuditEvent) (Device, error)
	// ListRevocations returns log entries with Seq > afterSeq in Seq order,
	// at most limit (bounded by RevocationLimit: <= 0 means 1000, at most
	// 100000 per call).
	ListRevocations(ctx context.Context, afterSeq uint64, limit int) ([]Revocation, error)
	// KeyBlocked reports whether a Revoke with BlockKeys blocked the key.
	// Blocks are never lifted.
	KeyBlocked(ctx context.Context, h KeyHash) (bool, error)

	// CreateManufacturer stores m and appends audit. ErrConflict if a
	// manufacturer with the same Name exists.
	CreateManufacturer(ctx context.Context, m Manufacturer, audit AuditEvent) error
	// ListManufacturers returns every manufacturer, ordered by Name.
	ListManufacturers(ctx context.Context) ([]Manufacturer, error)
	// DeleteManufacturer removes the manufacturer named name and appends
	// audit. ErrNotFound if unknown. Devices it enrolled keep their record
	// of it, and its certificates stay used.
	DeleteManufacturer(ctx context.Context, name string, audit AuditEvent) error

	// CreateAdmin stores a and appends audit. ErrConflict if an admin with
	// the same Name or TokenHash exists.
	CreateAdmin(ctx context.Context, a Admin, audit AuditEvent) error
	// GetAdminByTokenHash returns the admin (active or not) whose
	// TokenHash is h, or ErrNotFound.
	GetAdminByTokenHash(ctx context.Context, h TokenHash) (Admin, error)
	// ListAdmins returns every admin, ordered by Name.
	ListAdmins(ctx context.Context) ([]Admin, error)
	// DisableAdmin sets DisabledAt of the admin named name to at, appends
	// audit and returns the admin. ErrNotFound if unknown;
	// ErrAdminDisabled if disabled already; ErrLastOwner if it is the last
	// active owner. A refusal writes nothing.
	DisableAdmin(ctx context.Context, name string, at time.Time, audit AuditEvent) (Admin, error)
	// RotateAdmin replaces the TokenHash of the admin named name with h,
	// sets RotatedAt to at, appends audit and returns the admin.
	// ErrNotFound if unknown; ErrAdminDisabled if disabled; ErrConflict if
	// another admin has h. A refusal writes nothing.
	RotateAdmin(ctx context.Context, name string, h TokenHash, at time.Time, audit AuditEvent) (Admin, error)

	// AppendAudit appends e (the store sets Seq) on its own, for events
	// that change nothing else (an admin authentication failure).
	AppendAudit(ctx context.Context, e AuditEvent) error
	// ListAudit returns events with Seq > afterSeq in Seq order, at most
	// limit (<= 0 means 100, at most 1000).
	ListAudit(ctx context.Context, afterSeq uint64, limit int) ([]AuditEvent, error)
	// QueryAudit returns up to q.Limit events that match q, newest first,
	// and next: when non-zero, more matches may have Seq < next (query
	// again with BeforeSeq = next). A query by DeviceID alone (with or
	// without times) is answered from an index; any other may examine up
	// to AuditScanLimit events per call, and so return fewer than Limit
	// matches with a non-zero next.
	QueryAudit(ctx context.Context, q AuditQuery) (events []AuditEvent, next uint64, err error)

	// AuditTree returns the audit tree's size (the last Seq; 0 when the
	// log is empty) and its root hash, read in one transaction.
	AuditTree(ctx context.Context) (size int64, root tlog.Hash, err error)
	// AuditHashes returns the stored hashes at the given tlog stored-hash
	// indexes (tlog.StoredHashIndex), in that order: with it a
	// tlog.HashReader proves inclusion (tlog.ProveRecord) and consistency
	// (tlog.ProveTree). An index past the tree is an error wrapping
	// ErrNotFound. The store writes, with each event, the hashes
	// tlog.StoredHashes gives for its leaf, in the event's transaction.
	AuditHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
	// PutCheckpoint stores c if c.Size is larger than the latest stored
	// checkpoint's, else returns an error wrapping ErrStaleCheckpoint. c.Size
	// must not exceed the tree's size.
	PutCheckpoint(ctx context.Context, c Checkpoint) error
	// ListCheckpoints returns checkpoints with Size > afterSize in Size
	// order, at most limit (bounded like Page.PageLimit).
	ListCheckpoints(ctx context.Context, afterSize int64, limit int) ([]Checkpoint, error)
	// LatestCheckpoint returns the largest checkpoint, or an error wrapping
	// ErrNotFound when there is none.
	LatestCheckpoint(ctx context.Context) (Checkpoint, error)

	// NextCounter increments the named counter and returns its new value
	// (the first call returns 1). Values never repeat, across restarts too.
	NextCounter(ctx context.Context, name string) (uint64, error)
	// GetMeta returns the value stored under key, or ErrNotFound.
	GetMeta(ctx context.Context, key string) ([]byte, error)
	// PutMeta stores value under key, replacing any earlier value.
	PutMeta(ctx context.Context, key string, value []byte) error

	// Replication: one CRL signer across replicas, and what they must
	// learn from each other.
	Replication

	// Close releases the store; later calls return ErrClosed. It waits for
	// transactions under way.
	Close() error
}
