package boltstore

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"go.etcd.io/bbolt"
)

// TestGroupCommit checks that the calls arriving while a transaction
// commits share the next one, that a call whose function fails or panics
// gets its own error and rolls back only itself, and that the others
// commit.
func TestGroupCommit(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "fleetca.db"), Options{})
	g := s.group
	put := func(key string) func(*bbolt.Tx) error {
		return func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put([]byte(key), []byte("x")) }
	}
	errBoom := errors.New("boom")

	// The first call holds its transaction open until the others wait.
	release, entered := make(chan struct{}), make(chan int)
	var firstErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		firstErr = g.do(func(tx *bbolt.Tx) error {
			entered <- tx.ID()
			<-release
			return put("first")(tx)
		})
	})
	firstTx := <-entered

	const n = 12
	txs := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			key := fmt.Sprintf("k-%02d", i)
			errs[i] = g.do(func(tx *bbolt.Tx) error {
				txs[i] = tx.ID()
				if err := put(key)(tx); err != nil {
					return err
				}
				switch i {
				case 3:
					return errBoom
				case 7:
					panic("boom")
				}
				return nil
			})
		})
	}
	// Wait, without sleeping, until all n are queued behind the first.
	for {
		g.mu.Lock()
		queued := len(g.pending)
		g.mu.Unlock()
		if queued == n {
			break
		}
		runtime.Gosched()
	}
	close(release)
	wg.Wait()

	if firstErr != nil {
		t.Fatalf("first call error = %v, want nil", firstErr)
	}
	shared := -1
	err := s.db.View(func(tx *bbolt.Tx) error {
		for i := range n {
			key := fmt.Sprintf("k-%02d", i)
			got := tx.Bucket(bucketMeta).Get([]byte(key)) != nil
			switch i {
			case 3, 7:
				if errs[i] == nil || (i == 3 && !errors.Is(errs[i], errBoom)) {
					t.Errorf("call %d error = %v, want its own failure", i, errs[i])
				}
				if got {
					t.Errorf("call %d failed but its write %s is stored", i, key)
				}
			default:
				if errs[i] != nil || !got {
					t.Errorf("call %d error = %v, stored = %v; want nil, true", i, errs[i], got)
				}
				if txs[i] == firstTx {
					t.Errorf("call %d ran in the first call's transaction %d, which was under way when it came", i, firstTx)
				}
				if shared == -1 {
					shared = txs[i]
				} else if txs[i] != shared {
					t.Errorf("call %d committed in transaction %d, call before it in %d: want the %d queued calls in one", i, txs[i], shared, n)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
