package storetest

import (
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/fleetca/fleetca/store"
)

// memTree is an audit tree's stored hashes, in memory: the suite's own
// computation, from the events' LeafData alone, of what a store keeps.
type memTree []tlog.Hash

// ReadHashes implements tlog.HashReader.
func (m memTree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(m)) {
			return nil, fmt.Errorf("stored hash %d of %d", x, len(m))
		}
		out[i] = m[x]
	}
	return out, nil
}

// treeOf returns the stored hashes of the tree whose leaves are the
// events' LeafData in order, and the tree hash after each event.
func treeOf(es []store.AuditEvent) (memTree, []tlog.Hash, error) {
	var m memTree
	roots := make([]tlog.Hash, len(es))
	for i, e := range es {
		hs, err := tlog.StoredHashes(int64(i), e.LeafData(), m)
		if err != nil {
			return nil, nil, err
		}
		m = append(m, hs...)
		if roots[i], err = tlog.TreeHash(int64(i+1), m); err != nil {
			return nil, nil, err
		}
	}
	return m, roots, nil
}

// rooted returns a copy of es, a whole audit log from Seq 1, with each
// event's Root set to the tree hash after it.
func rooted(es []store.AuditEvent) []store.AuditEvent {
	_, roots, err := treeOf(es)
	if err != nil {
		panic(err) // an in-memory tree reads only what it wrote
	}
	out := make([]store.AuditEvent, len(es))
	for i, e := range es {
		e.Root = roots[i]
		out[i] = e
	}
	return out
}
