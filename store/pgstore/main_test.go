package pgstore

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/fleetca/fleetca/internal/pgtest"
	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/boltstore"
	"github.com/fleetca/fleetca/store/storetest"
)

func TestMain(m *testing.M) {
	pgtest.Main(m, func(ctx context.Context, dsn string) error {
		_, _, err := Migrate(ctx, dsn, "")
		return err
	})
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, pgtest.NewDatabase(t))
	})
}

// open opens a store on the database dsn and registers its Close.
func open(t testing.TB, dsn string) *Store {
	t.Helper()
	return openWith(t, Options{DSN: dsn, MaxConns: 8})
}

// openWith opens a store with o and registers its Close.
func openWith(t testing.TB, o Options) *Store {
	t.Helper()
	s, err := Open(t.Context(), o)
	if err != nil {
		t.Fatalf("Open error = %v, want nil", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("Close error = %v, want nil", err)
		}
	})
	return s
}

func TestCopy(t *testing.T) {
	newPG := func(t *testing.T) store.Store { return open(t, pgtest.NewDatabase(t)) }
	newBolt := func(t *testing.T) store.Store {
		s, err := boltstore.Open(filepath.Join(t.TempDir(), "fleetca.db"), boltstore.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	t.Run("postgres-to-postgres", func(t *testing.T) { storetest.RunCopy(t, newPG, newPG) })
	t.Run("bolt-to-postgres", func(t *testing.T) { storetest.RunCopy(t, newBolt, newPG) })
	t.Run("postgres-to-bolt", func(t *testing.T) { storetest.RunCopy(t, newPG, newBolt) })
}
