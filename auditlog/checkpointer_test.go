package auditlog

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/boltstore"
)

func openStore(t *testing.T) *boltstore.Store {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "fleetca.db"), boltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func appendN(t *testing.T, st *boltstore.Store, n int) {
	t.Helper()
	for range n {
		if err := st.AppendAudit(t.Context(), store.AuditEvent{Time: time.Now(), Action: "admin.auth_failed", Actor: "remote:192.0.2.1"}); err != nil {
			t.Fatal(err)
		}
	}
}

func latestSize(t *testing.T, st *boltstore.Store) int64 {
	t.Helper()
	c, err := st.LatestCheckpoint(t.Context())
	if errors.Is(err, store.ErrNotFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return c.Size
}

// TestCheckpointer: a checkpoint at start-up, then at most one per
// checkpoint_every and only when the tree grew; each opens with the key.
func TestCheckpointer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := openStore(t)
		s, v := testKey(t, "test/fleetca-audit")
		cp, err := NewCheckpointer(Config{CheckpointEvery: time.Minute}, Deps{Store: st, Signer: s})
		if err != nil {
			t.Fatal(err)
		}
		if signed, err := cp.Sign(t.Context()); signed || err != nil {
			t.Fatalf("Sign of an empty log = %v, %v; want nothing signed", signed, err)
		}
		appendN(t, st, 2)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- cp.Run(ctx) }()
		synctest.Wait()
		if got := latestSize(t, st); got != 2 {
			t.Fatalf("after start-up the latest checkpoint has size %d, want 2", got)
		}
		appendN(t, st, 1)
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if got := latestSize(t, st); got != 2 {
			t.Fatalf("30s after the last checkpoint: size %d, want 2 (at most one per minute)", got)
		}
		time.Sleep(31 * time.Second)
		synctest.Wait()
		if got := latestSize(t, st); got != 3 {
			t.Fatalf("a minute after: size %d, want 3", got)
		}
		time.Sleep(3 * time.Minute)
		synctest.Wait()
		cps, err := st.ListCheckpoints(t.Context(), 0, 100)
		if err != nil || len(cps) != 2 {
			t.Fatalf("checkpoints = %d (%v), want 2: none without growth", len(cps), err)
		}
		for _, c := range cps {
			got, err := OpenCheckpoint(c.Note, v)
			if err != nil || got.Size != c.Size || got.Root != c.Root {
				t.Errorf("stored checkpoint %d opens as %+v, %v", c.Size, got, err)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run after cancel = %v, want nil", err)
		}
	})
}

// TestVerify: a whole log passes; a checkpoint signed with the right key
// over a root the rows do not hash to is named by its size.
func TestVerify(t *testing.T) {
	st := openStore(t)
	s, v := testKey(t, "test/fleetca-audit")
	cp, err := NewCheckpointer(Config{}, Deps{Store: st, Signer: s})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, st, 5)
	if _, err := cp.Sign(t.Context()); err != nil {
		t.Fatal(err)
	}
	appendN(t, st, 1500) // more than a page
	if _, err := cp.Sign(t.Context()); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(t.Context(), st, Options{Key: v, Records: st})
	if err != nil || rep.Rows != 1505 || rep.Checkpoints != 2 || rep.Covered != 1505 || rep.StoredHashes != tlog.StoredHashCount(1505) {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	appendN(t, st, 1)
	bad, err := SignCheckpoint(s, 1506, tlog.RecordHash([]byte("another history")), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutCheckpoint(t.Context(), bad); err != nil {
		t.Fatal(err)
	}
	_, err = Verify(t.Context(), st, Options{Key: v})
	if p, ok := errors.AsType[*Problem](err); !ok || p.Seq != 1506 {
		t.Fatalf("Verify with a checkpoint of another root = %v, want a problem at seq 1506", err)
	}
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		every time.Duration
		ok    bool
	}{
		{"ok/default", 0, true},
		{"ok/min", time.Second, true},
		{"ok/max", 24 * time.Hour, true},
		{"fail/too-short", 999 * time.Millisecond, false},
		{"fail/too-long", 25 * time.Hour, false},
		{"fail/negative", -time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Config{CheckpointEvery: tc.every}.Validate()
			if tc.ok != (err == nil) {
				t.Fatalf("Validate(%s) = %v, want ok %v", tc.every, err, tc.ok)
			}
			if err != nil {
				fe, ok := errors.AsType[*fault.Error](err)
				if !ok || fe.Kind != fault.Malformed || fe.Key != "audit.checkpoint_every" {
					t.Errorf("Validate(%s) = %v, want Malformed about audit.checkpoint_every", tc.every, err)
				}
			}
		})
	}
	if got := (Config{}).WithDefaults().CheckpointEvery; got != time.Minute {
		t.Errorf("default checkpoint_every = %s, want 1m", got)
	}
}
