package api

import "time"

// The audit log's public routes, on the plain-HTTP listener, without
// authentication: they carry hashes and sizes only.
const (
	// AuditCheckpointPath serves the latest signed checkpoint (a C2SP
	// tlog-checkpoint note), text/plain, with an ETag.
	AuditCheckpointPath = "/v1/audit/checkpoint"
	// AuditKeyPath serves the audit key as a note verifier key, text/plain
	// (the CA's audit.pub).
	AuditKeyPath = "/v1/audit/key"
	// AuditProofPath?from=M&to=N serves the consistency proof from the
	// tree of size M to the tree of size N (1 <= M <= N), an AuditProof.
	AuditProofPath = "/v1/audit/proof"
)

// AuditProof is the JSON of AuditProofPath: the hashes (base64) of
// tlog.ProveTree(To, From), which tlog.CheckTree checks against the
// checkpoints of sizes From and To.
type AuditProof struct {
	From  int64    `json:"from"`
	To    int64    `json:"to"`
	Proof []string `json:"proof"`
}

// The admin API's audit routes (viewer), under AdminPrefix, for fleetca
// audit verify --ca and export --ca: GET /audit?after=SEQ&limit=N (an
// AuditEventPage, at most 1000), /audit/tree (an AuditTree),
// /audit/hashes?from=I&to=J (stored tree hashes [I, J), at most
// MaxAuditHashes: an AuditHashes), /audit/checkpoints?after=SIZE&limit=N
// (an AuditCheckpointPage, at most 1000).
const MaxAuditHashes = 8192

// AuditEvent is one audit row as the admin API carries it (the store's
// encoding): Root is the tree hash after it, base64.
type AuditEvent struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Action   string    `json:"action"`
	Actor    string    `json:"actor"`
	DeviceID string    `json:"device_id,omitempty"`
	Serial   string    `json:"serial,omitempty"`
	TokenID  string    `json:"token_id,omitempty"`
	Detail   string    `json:"detail,omitempty"`
	Root     string    `json:"root"`
}

// AuditEventPage is a page of audit rows in Seq order.
type AuditEventPage struct {
	Events []AuditEvent `json:"events"`
}

// AuditTree is the audit tree's size (its last Seq) and root, base64.
type AuditTree struct {
	Size int64  `json:"size"`
	Root string `json:"root"`
}

// AuditHashes are stored tree hashes (tlog.StoredHashIndex order) from
// index From on, base64.
type AuditHashes struct {
	From   int64    `json:"from"`
	Hashes []string `json:"hashes"`
}

// AuditCheckpoint is a stored checkpoint: Note is the signed note's text.
type AuditCheckpoint struct {
	Size int64     `json:"size"`
	Root string    `json:"root"`
	Time time.Time `json:"time"`
	Note string    `json:"note"`
}

// AuditCheckpointPage is a page of checkpoints in Size order.
type AuditCheckpointPage struct {
	Checkpoints []AuditCheckpoint `json:"checkpoints"`
}
