package pgstore

// A temporary shim of branch audit-tree, so that the module builds while
// pgstore's audit tree is written on branch audit-pg, which deletes this
// file.

import (
	"context"
	"errors"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/fleetca/fleetca/store"
)

var errAuditTreeTODO = errors.New("pgstore: audit tree not implemented")

// AuditTree is not implemented yet.
func (s *Store) AuditTree(context.Context) (int64, tlog.Hash, error) {
	return 0, tlog.Hash{}, errAuditTreeTODO
}

// AuditHashes is not implemented yet.
func (s *Store) AuditHashes(context.Context, []int64) ([]tlog.Hash, error) {
	return nil, errAuditTreeTODO
}

// PutCheckpoint is not implemented yet.
func (s *Store) PutCheckpoint(context.Context, store.Checkpoint) error { return errAuditTreeTODO }

// ListCheckpoints is not implemented yet.
func (s *Store) ListCheckpoints(context.Context, int64, int) ([]store.Checkpoint, error) {
	return nil, errAuditTreeTODO
}

// LatestCheckpoint is not implemented yet.
func (s *Store) LatestCheckpoint(context.Context) (store.Checkpoint, error) {
	return store.Checkpoint{}, errAuditTreeTODO
}
