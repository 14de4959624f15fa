package auditlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// ExportRow is one line of an export (JSON Lines): the audit row's fields
// as store.AuditEvent encodes them (seq, time, action, actor, device_id,
// serial, token_id, detail, root), the size of the tree of the export's
// checkpoint, and the row's inclusion proof in that tree
// (tlog.ProveRecord: base64 hashes).
type ExportRow struct {
	store.AuditEvent
	TreeSize int64            `json:"tree_size"`
	Proof    tlog.RecordProof `json:"proof"`
}

// MaxExportLineBytes bounds one line of an export.
const MaxExportLineBytes = 64 << 10

// maxProofHashes bounds a proof: a tree of 2^63 leaves needs 63.
const maxProofHashes = 64

// ParseExportRow parses one line of an export strictly (unknown fields, a
// second value, a proof of more than 64 hashes are refused) as a
// fault.Malformed.
func ParseExportRow(line []byte) (ExportRow, error) {
	var r ExportRow
	bad := func(what string, err error) (ExportRow, error) {
		return ExportRow{}, fault.Wrap(err, fault.Malformed, "an export line is malformed: "+what, "export it again with fleetca audit export")
	}
	if len(line) > MaxExportLineBytes {
		return bad("longer than 64 KiB", nil)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return bad("not an export row", err)
	}
	if dec.More() {
		return bad("more than one value", nil)
	}
	switch {
	case r.Seq == 0 || r.Seq > math.MaxInt64:
		return bad("no seq, or one past 2^63", nil)
	case r.TreeSize < int64(r.Seq) || r.TreeSize < 1:
		return bad(fmt.Sprintf("seq %d is not in the tree of size %d", r.Seq, r.TreeSize), nil)
	case len(r.Proof) > maxProofHashes:
		return bad("the proof is too long", nil)
	}
	return r, nil
}

// Export writes the rows with Seq > since, up to the latest checkpoint's
// size, as JSON Lines with their inclusion proofs against that
// checkpoint, which it returns: an auditor checks the file with it and the
// audit key alone (VerifyExport). It recomputes the tree from the rows as
// Verify does and refuses (a *Problem) a log whose rows do not hash to the
// checkpoint's root. Rows after the checkpoint are not exported.
func Export(ctx context.Context, log Log, since uint64, w io.Writer) (store.Checkpoint, int64, error) {
	var latest store.Checkpoint
	for {
		cps, err := log.ListCheckpoints(ctx, latest.Size, store.MaxPageLimit)
		if err != nil {
			return latest, 0, fmt.Errorf("read checkpoints: %w", err)
		}
		if len(cps) > 0 {
			latest = cps[len(cps)-1]
		}
		if len(cps) < store.MaxPageLimit {
			break
		}
	}
	if latest.Size == 0 {
		return latest, 0, fault.New(fault.NotFound, "the audit log has no checkpoint yet", "start the CA once: it signs one at start-up")
	}
	t := &tree{}
	var last uint64
	for last < uint64(latest.Size) {
		page, err := log.ListAudit(ctx, last, pageRows)
		if err != nil {
			return latest, 0, fmt.Errorf("read audit rows after %d: %w", last, err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			if e.Seq != last+1 {
				return latest, 0, problemf(last+1, "row missing or out of order: the row after seq %d has seq %d", last, e.Seq)
			}
			if _, err := t.add(int64(e.Seq-1), e); err != nil {
				return latest, 0, err
			}
			last = e.Seq
			if last == uint64(latest.Size) {
				break
			}
		}
	}
	if last < uint64(latest.Size) || t.rootAt(latest.Size) != latest.Root {
		return latest, 0, problemf(min(last+1, uint64(latest.Size)), "the log's rows do not hash to the latest checkpoint's root (size %d): run fleetca audit verify", latest.Size)
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	var n int64
	for after := since; after < uint64(latest.Size); {
		page, err := log.ListAudit(ctx, after, pageRows)
		if err != nil {
			return latest, n, fmt.Errorf("read audit rows after %d: %w", after, err)
		}
		for _, e := range page {
			if e.Seq > uint64(latest.Size) {
				break
			}
			p, err := tlog.ProveRecord(latest.Size, int64(e.Seq-1), t)
			if err != nil {
				return latest, n, fmt.Errorf("prove seq %d: %w", e.Seq, err)
			}
			if err := enc.Encode(ExportRow{AuditEvent: e, TreeSize: latest.Size, Proof: p}); err != nil {
				return latest, n, err
			}
			n++
			after = e.Seq
		}
		if len(page) == 0 {
			break
		}
	}
	return latest, n, bw.Flush()
}

// ExportReport is what VerifyExport checked.
type ExportReport struct {
	Rows      int64  // rows whose inclusion proof checked
	First     uint64 // their first and last Seq
	Last      uint64
	TreeSize  int64 // the checkpoint's
	Signature string
}

// VerifyExport checks an export r against its checkpoint (a signed note)
// and the audit key: the checkpoint's signature, then for each row that it
// is in the checkpoint's tree (tlog.CheckRecord of its recomputed leaf),
// and that the rows' Seq are contiguous. It returns a *Problem naming the
// first bad row, a fault for a bad checkpoint or line.
func VerifyExport(r io.Reader, checkpoint []byte, key note.Verifier) (ExportReport, error) {
	var rep ExportReport
	cp, err := OpenCheckpoint(checkpoint, key)
	if err != nil {
		return rep, err
	}
	rep.TreeSize, rep.Signature = cp.Size, key.Name()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxExportLineBytes)
	line := 0
	for sc.Scan() {
		line++
		row, err := ParseExportRow(sc.Bytes())
		if err != nil {
			return rep, fmt.Errorf("line %d: %w", line, err)
		}
		switch {
		case rep.Rows > 0 && row.Seq != rep.Last+1:
			return rep, problemf(rep.Last+1, "row missing from the export: line %d has seq %d after seq %d", line, row.Seq, rep.Last)
		case row.TreeSize != cp.Size:
			return rep, problemf(row.Seq, "its proof is for a tree of size %d, the checkpoint's is %d", row.TreeSize, cp.Size)
		}
		if err := tlog.CheckRecord(row.Proof, cp.Size, cp.Root, int64(row.Seq-1), tlog.RecordHash(row.LeafData())); err != nil {
			return rep, problemf(row.Seq, "the row is not in the checkpoint's tree (its inclusion proof fails): it was changed")
		}
		if rep.Rows == 0 {
			rep.First = row.Seq
		}
		rep.Last = row.Seq
		rep.Rows++
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return rep, fault.Wrap(err, fault.Malformed, fmt.Sprintf("line %d of the export is longer than 64 KiB", line+1), "")
		}
		return rep, fmt.Errorf("read export: %w", err)
	}
	return rep, nil
}
