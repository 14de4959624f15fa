package boltstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.etcd.io/bbolt"

	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "fleetca.db"), Options{})
	})
}

func TestCopy(t *testing.T) {
	newStore := func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "fleetca.db"), Options{})
	}
	storetest.RunCopy(t, newStore, newStore)
}

// open opens a store at path and registers a cleanup that checks the
// file's integrity and closes it (reopening it first if the test closed it).
func open(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%q) error = %v, want nil", path, err)
	}
	t.Cleanup(func() {
		// t.Context is already canceled here.
		ctx := context.WithoutCancel(t.Context())
		err := s.Check(ctx)
		if errors.Is(err, store.ErrClosed) {
			if s, err = Open(path, opts); err != nil {
				t.Errorf("reopen %q for the integrity check: %v", path, err)
				return
			}
			err = s.Check(ctx)
		}
		if err != nil {
			t.Errorf("integrity check of %q: %v", path, err)
		}
		if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("Close(%q) error = %v, want nil", path, err)
		}
	})
	return s
}

// reopenWithout closes s, the store at path, deletes buckets from its
// file, as a file written before they existed lacks them, and opens it
// again (open).
func reopenWithout(t *testing.T, s *Store, path string, buckets ...[]byte) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close error = %v, want nil", err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		var errs []error
		for _, b := range buckets {
			errs = append(errs, tx.DeleteBucket(b))
		}
		return errors.Join(errs...)
	})
	if cerr := db.Close(); err != nil || cerr != nil {
		t.Fatalf("delete the buckets %q: %v, %v", buckets, err, cerr)
	}
	return open(t, path, Options{})
}

var t0 = time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)

func TestReopenKeepsAcknowledgedWrites(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "fleetca.db")
	s := open(t, path, Options{})

	tok := store.Token{ID: "tok-1", Hash: store.TokenHash{1}, DeviceID: "dev-1", Uses: 2, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := s.CreateToken(ctx, tok, store.AuditEvent{Time: t0, Action: "token.create", Actor: "admin"}); err != nil {
		t.Fatalf("CreateToken error = %v, want nil", err)
	}
	serial := new(big.Int).Lsh(big.NewInt(3), 140)
	cert := store.Certificate{
		Serial: serial, DeviceID: "dev-1", KeyHash: store.KeyHash{2},
		NotBefore: t0, NotAfter: t0.Add(24 * time.Hour), IssuedAt: t0, DER: []byte("fake DER"),
	}
	is := store.Issuance{Certificate: cert, Token: tok.Hash, Now: t0, Audit: store.AuditEvent{Time: t0, Action: "certificate.issue", Actor: "token:tok-1"}}
	if err := s.Issue(ctx, is); err != nil {
		t.Fatalf("Issue error = %v, want nil", err)
	}
	if n, err := s.NextCounter(ctx, "crl"); n != 1 || err != nil {
		t.Fatalf("NextCounter = %d, %v, want 1, nil", n, err)
	}
	if err := s.PutMeta(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("PutMeta error = %v, want nil", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close error = %v, want nil", err)
	}

	s = open(t, path, Options{})
	gotCert, err := s.GetCertificate(ctx, serial)
	if err != nil {
		t.Fatalf("GetCertificate after reopen error = %v, want nil", err)
	}
	if diff := cmp.Diff(cert, gotCert, cmp.Comparer(func(a, b *big.Int) bool { return a.Cmp(b) == 0 })); diff != "" {
		t.Errorf("GetCertificate after reopen (-want +got):\n%s", diff)
	}
	if got, err := s.GetToken(ctx, tok.Hash); got.Spent != 1 || err != nil {
		t.Errorf("GetToken after reopen: Spent = %d, %v, want 1, nil", got.Spent, err)
	}
	if got, err := s.KeyOwner(ctx, cert.KeyHash); got != "dev-1" || err != nil {
		t.Errorf("KeyOwner after reopen = %q, %v, want %q, nil", got, err, "dev-1")
	}
	if got, err := s.GetMeta(ctx, "k"); string(got) != "v" || err != nil {
		t.Errorf("GetMeta after reopen = %q, %v, want %q, nil", got, err, "v")
	}
	// Counters and audit sequence numbers continue; they never repeat.
	if n, err := s.NextCounter(ctx, "crl"); n != 2 || err != nil {
		t.Errorf("NextCounter after reopen = %d, %v, want 2, nil", n, err)
	}
	if err := s.AppendAudit(ctx, store.AuditEvent{Time: t0, Action: "admin.auth_failed"}); err != nil {
		t.Fatalf("AppendAudit error = %v, want nil", err)
	}
	events, err := s.ListAudit(ctx, 0, 0)
	if err != nil {
		t.Fatalf("ListAudit error = %v, want nil", err)
	}
	var seqs []uint64
	for _, e := range events {
		seqs = append(seqs, e.Seq)
	}
	if diff := cmp.Diff([]uint64{1, 2, 3}, seqs); diff != "" {
		t.Errorf("audit Seqs after reopen (-want +got):\n%s", diff)
	}
}

func TestOpenLockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleetca.db")
	first := open(t, path, Options{})
	if s, err := Open(path, Options{Timeout: 50 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("second Open of a locked file error = %v, want ErrLocked", err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("Close error = %v, want nil", err)
	}
	open(t, path, Options{Timeout: 50 * time.Millisecond})
}

// TestOpenNotADatabase: a file of something else, small or large, is
// ErrNotDatabase (db copy says so in one line), and Open leaves it as it
// was.
func TestOpenNotADatabase(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines int
	}{
		{"small", 3},     // under two pages: bbolt's own error has no kind
		{"large", 10000}, // bbolt reads its meta pages and finds no magic
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "fleetca.yaml")
			want := bytes.Repeat([]byte("name: \"not a database\"\n"), tc.lines)
			if err := os.WriteFile(path, want, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(path, Options{})
			if err == nil {
				s.Close()
			}
			if !errors.Is(err, ErrNotDatabase) {
				t.Fatalf("Open(a YAML file) error = %v, want ErrNotDatabase", err)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, want) {
				t.Errorf("Open(a YAML file) changed the file")
			}
		})
	}
}

func TestOpenOptions(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		path string
		opts Options
	}{
		{"fail/negative-timeout", filepath.Join(dir, "a.db"), Options{Timeout: -time.Second}},
		{"fail/negative-batch-delay", filepath.Join(dir, "b.db"), Options{MaxBatchDelay: -time.Second}},
		{"fail/negative-batch-size", filepath.Join(dir, "c.db"), Options{MaxBatchSize: -1}},
		{"fail/missing-directory", filepath.Join(dir, "missing", "d.db"), Options{}},
		{"fail/not-a-database", "boltstore_test.go", Options{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(tc.path, tc.opts)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q, %+v) error = nil, want an error", tc.path, tc.opts)
			}
		})
	}
}

func TestSerialKeyOrder(t *testing.T) {
	var prev []byte
	for _, hex := range []string{"1", "2", "ff", "100", "101", "ffff", "10000", "7fffffffffffffffffffffffffffffff", "100000000000000000000000000000000"} {
		n, _ := new(big.Int).SetString(hex, 16)
		k, err := serialKey(n)
		if err != nil {
			t.Fatalf("serialKey(%s) error = %v, want nil", hex, err)
		}
		if prev != nil && string(prev) >= string(k) {
			t.Errorf("serialKey(%s) = %x sorts before or at the key of the smaller serial, %x", hex, k, prev)
		}
		prev = k
		back, err := parseSerialKey(k)
		if err != nil || back.Cmp(n) != 0 {
			t.Errorf("parseSerialKey(serialKey(%s)) = %v, %v, want %s, nil", hex, back, err, hex)
		}
	}
	if _, err := serialKey(new(big.Int).Lsh(big.NewInt(1), 8*maxSerialBytes)); err == nil {
		t.Errorf("serialKey(2^%d) error = nil, want an error", 8*maxSerialBytes)
	}
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleetca.db")
	open(t, path, Options{})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got&0o077 != 0 {
		t.Errorf("database file mode = %v, want no group or other permissions", got)
	}
}

// TestBatchInternalError checks the Batch discipline: a batched function
// that fails internally rolls back only itself, although bbolt re-runs the
// rest of its batch, in another order, which may turn an earlier refusal
// into a success (so the refusal must not stick).
func TestBatchInternalError(t *testing.T) {
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), "fleetca.db"), Options{MaxBatchDelay: 20 * time.Millisecond})
	tok := store.Token{ID: "tok-1", Hash: store.TokenHash{1}, DevicePattern: "dev-*", Uses: 8, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := s.CreateToken(ctx, tok, store.AuditEvent{Time: t0, Action: "token.create"}); err != nil {
		t.Fatalf("CreateToken error = %v, want nil", err)
	}
	errBoom := errors.New("boom")
	const n = 32
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if i%4 == 0 {
				errs[i] = s.batch(ctx, func(tx *bbolt.Tx) (cond, err error) {
					if err := tx.Bucket(bucketMeta).Put(fmt.Appendf(nil, "boom-%d", i), []byte("x")); err != nil {
						return nil, err
					}
					return nil, errBoom
				})
				return
			}
			id := fmt.Sprintf("dev-%02d", i)
			errs[i] = s.Issue(ctx, store.Issuance{
				Certificate: store.Certificate{
					Serial: big.NewInt(int64(100 + i)), DeviceID: id, KeyHash: store.KeyHash{byte(i)},
					NotAfter: t0.Add(time.Hour), DER: []byte("fake DER"),
				},
				Token: tok.Hash, Now: t0, Audit: store.AuditEvent{Time: t0, Action: "certificate.issue", DeviceID: id},
			})
		})
	}
	wg.Wait()

	var issued, usedUp int
	for i, err := range errs {
		switch {
		case i%4 == 0:
			if !errors.Is(err, errBoom) {
				t.Errorf("failing batch %d error = %v, want %v", i, err, errBoom)
			}
			if _, err := s.GetMeta(ctx, fmt.Sprintf("boom-%d", i)); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("GetMeta(boom-%d) error = %v, want ErrNotFound (rolled back)", i, err)
			}
		case err == nil:
			issued++
		case errors.Is(err, store.ErrTokenUsedUp):
			usedUp++
		default:
			t.Errorf("Issue %d error = %v, want nil or ErrTokenUsedUp", i, err)
		}
	}
	if issued != 8 || usedUp != n-n/4-8 {
		t.Errorf("Issue: %d succeeded, %d ErrTokenUsedUp, want 8, %d", issued, usedUp, n-n/4-8)
	}
	certs, err := s.ListCertificates(ctx, "", store.Page{})
	if err != nil || len(certs) != issued {
		t.Errorf("ListCertificates = %d certificates, %v, want %d, nil", len(certs), err, issued)
	}
	if got, err := s.GetToken(ctx, tok.Hash); got.Spent != issued || err != nil {
		t.Errorf("token Spent = %d, %v, want %d, nil", got.Spent, err, issued)
	}
	events, err := s.ListAudit(ctx, 0, 0)
	if err != nil || len(events) != 1+issued {
		t.Fatalf("ListAudit = %d events, %v, want %d, nil", len(events), err, 1+issued)
	}
	for i, e := range events {
		if e.Seq != uint64(i+1) {
			t.Errorf("audit event %d Seq = %d, want %d", i, e.Seq, i+1)
		}
	}
}
