package pgstore

// TEMPORARY, until branch audit-tree lands backend.AppendAudit: the same
// contract, written here so that this branch builds. Deleted at the merge.

import (
	"golang.org/x/mod/sumdb/tlog"

	"github.com/fleetca/fleetca/store"
)

func backendAppendAudit(size int64, events []store.AuditEvent, r tlog.HashReader) ([]tlog.Hash, error) {
	base := tlog.StoredHashIndex(0, size)
	var out []tlog.Hash
	rd := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		hs := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			if x >= base {
				hs[i] = out[x-base]
				continue
			}
			h, err := r.ReadHashes([]int64{x})
			if err != nil {
				return nil, err
			}
			hs[i] = h[0]
		}
		return hs, nil
	})
	for i := range events {
		e := &events[i]
		n := size + int64(i)
		e.Seq = uint64(n) + 1
		e.Time = e.Time.UTC().Truncate(store.AuditTimePrecision)
		hs, err := tlog.StoredHashesForRecordHash(n, tlog.RecordHash(e.LeafData()), rd)
		if err != nil {
			return nil, err
		}
		out = append(out, hs...)
		if e.Root, err = tlog.TreeHash(n+1, rd); err != nil {
			return nil, err
		}
	}
	return out, nil
}
