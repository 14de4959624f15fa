package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/note"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/auditlog"
	"github.com/fleetca/fleetca/internal/pgtest"
	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/boltstore"
)

// enrollSome enrolls n devices named prefix-0.. through the API with one
// pattern token and returns their serials.
func (f *fixture) enrollSome(prefix string, n int) []string {
	f.t.Helper()
	hc := f.loadClient(1, nil)
	tok, _ := f.newToken(hc, api.TokenRequest{DevicePattern: prefix + "-*", Uses: n})
	var serials []string
	for i := range n {
		device := fmt.Sprintf("%s-%d", prefix, i)
		csr, err := deviceCSR(device)
		if err != nil {
			f.t.Fatal(err)
		}
		a, err := send(f.t.Context(), hc, "POST", f.srv.httpsURL+api.EnrollPath, enrollHeader(tok), csr)
		var got api.EnrollResponse
		if err != nil || a.status != http.StatusCreated || json.Unmarshal(a.body, &got) != nil {
			f.t.Fatalf("enroll %s: %v, status %d, body %s", device, err, a.status, a.body)
		}
		serials = append(serials, got.Serial)
	}
	return serials
}

// httpGET fetches a URL of the HTTP listener.
func httpGET(t *testing.T, url string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// copyDataDir copies what audit verify --dir reads (fleetca.yaml,
// audit.pub, fleetca.db) of a stopped CA into a new directory.
func copyDataDir(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	for _, name := range []string{"fleetca.yaml", "audit.pub", "fleetca.db"} {
		b, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// editAudit changes the stored audit rows of dir's bbolt file with fn, as
// someone with write access to the file could.
func editAudit(t *testing.T, dir string, fn func(b *bbolt.Bucket) error) {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(dir, "fleetca.db"), 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bbolt.Tx) error { return fn(tx.Bucket([]byte("audit"))) }); err != nil {
		t.Fatal(err)
	}
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// withStore opens dir's store as a program with write access would.
func withStore(t *testing.T, dir string, fn func(st *boltstore.Store)) {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(dir, "fleetca.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fn(st)
}

var badSeq = regexp.MustCompile(`audit log: seq (\d+) \(leaf index \d+\)`)

// wantBadSeq runs audit verify --dir on dir and wants exit 1 naming seq,
// with what in its line.
func (f *fixture) wantBadSeq(dir string, seq uint64, what string) {
	f.t.Helper()
	r := f.fleetca("audit", "verify", "--dir", dir)
	m := badSeq.FindStringSubmatch(r.stderr)
	f.t.Logf("audit verify: %s", strings.TrimSpace(r.stderr))
	if r.code != 1 || m == nil || m[1] != fmt.Sprint(seq) || !strings.Contains(r.stderr, what) {
		f.t.Errorf("audit verify after tampering: exit %d, stderr %q; want exit 1 naming seq %d and %q", r.code, r.stderr, seq, what)
	}
}

// TestAuditLog: a real serve on a real bbolt file signs checkpoints and
// serves them; verify, export and watch accept its log; and each kind of
// tampering is detected, naming the right row.
func TestAuditLog(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	serials := f.enrollSome("aud", 3)
	hc := f.loadClient(1, nil)
	if a, err := send(t.Context(), hc, "POST", f.srv.httpsURL+api.AdminPrefix+"/certificates/"+serials[0]+"/revoke",
		adminHeader(f.adminToken()), []byte(`{"reason":"cessationOfOperation"}`)); err != nil || a.status != http.StatusOK {
		t.Fatalf("revoke: %v %d %s", err, a.status, a.body)
	}

	// The public routes: the key is audit.pub; the checkpoint signed at
	// start-up verifies with it; a bad proof request is a problem.
	pub := readFile(t, filepath.Join(f.dataDir, "audit.pub"))
	if code, _, body := httpGET(t, f.srv.httpURL+api.AuditKeyPath); code != 200 || string(body) != pub {
		t.Errorf("GET %s = %d %q, want audit.pub %q", api.AuditKeyPath, code, body, pub)
	}
	v, err := note.NewVerifier(strings.TrimSpace(pub))
	if err != nil {
		t.Fatal(err)
	}
	code, h, body := httpGET(t, f.srv.httpURL+api.AuditCheckpointPath)
	if code != 200 || h.Get("ETag") == "" || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET %s = %d %v", api.AuditCheckpointPath, code, h)
	}
	first, err := auditlog.OpenCheckpoint(body, v)
	if err != nil || first.Size < 1 {
		t.Fatalf("the served checkpoint: %+v, %v", first, err)
	}
	req, err := http.NewRequestWithContext(t.Context(), "GET", f.srv.httpURL+api.AuditCheckpointPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("If-None-Match", h.Get("ETag"))
	if resp, err := http.DefaultTransport.RoundTrip(req); err != nil || resp.StatusCode != http.StatusNotModified {
		t.Errorf("GET %s with If-None-Match its ETag: %v %v, want 304", api.AuditCheckpointPath, resp, err)
	} else {
		resp.Body.Close()
	}
	for _, q := range []string{"", "?from=0&to=1", "?from=2&to=1", "?from=1&to=x"} {
		code, h, body := httpGET(t, f.srv.httpURL+api.AuditProofPath+q)
		if code != 400 || h.Get("Content-Type") != "application/problem+json" {
			t.Errorf("GET %s%s = %d %s %s, want a 400 problem", api.AuditProofPath, q, code, h.Get("Content-Type"), body)
		}
	}

	state := t.TempDir()
	watch := func() result {
		return f.fleetca("audit", "watch", "--ca", f.srv.httpURL, "--key", filepath.Join(f.dataDir, "audit.pub"), "--state", state, "--once")
	}
	if r := watch(); r.code != 0 || !strings.Contains(r.stdout, "first seen") {
		t.Fatalf("audit watch --once: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// Through the admin API, while serve runs.
	if r := f.fleetca("audit", "verify", "--ca", f.srv.httpsURL, "--dir", f.dataDir); r.code != 0 || !strings.Contains(r.stdout, "audit log OK") {
		t.Fatalf("audit verify --ca: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	caOut := filepath.Join(f.work, "ca.jsonl")
	r0 := f.mustFleetca("audit", "export", "--ca", f.srv.httpsURL, "--dir", f.dataDir, "--out", caOut)
	if _, err := auditlog.OpenCheckpoint([]byte(r0.stdout), v); err != nil {
		t.Errorf("audit export --ca printed %q, want the checkpoint: %v", r0.stdout, err)
	}
	writeFile(t, filepath.Join(f.work, "ca.cp"), r0.stdout)
	f.mustFleetca("audit", "verify", "--export", caOut, "--checkpoint", filepath.Join(f.work, "ca.cp"), "--key", filepath.Join(f.dataDir, "audit.pub"))

	// A graceful stop signs the last rows: verify --dir passes, and an
	// export checks offline.
	f.srv.stop(t)
	r := f.mustFleetca("audit", "verify", "--dir", f.dataDir)
	t.Logf("audit verify:\n%s", r.stdout)
	if !strings.Contains(r.stdout, "audit log OK") || !strings.Contains(r.stdout, "3 certificates, 1 tokens, revocations: 1") {
		t.Errorf("audit verify --dir stdout = %q", r.stdout)
	}
	out, cp := filepath.Join(f.work, "audit.jsonl"), filepath.Join(f.work, "cp")
	f.mustFleetca("audit", "export", "--dir", f.dataDir, "--since", "2", "--out", out, "--checkpoint", cp)
	r = f.mustFleetca("audit", "verify", "--export", out, "--checkpoint", cp, "--key", filepath.Join(f.dataDir, "audit.pub"))
	if !strings.Contains(r.stdout, "export OK") {
		t.Errorf("audit verify --export stdout = %q", r.stdout)
	}
	exported := readFile(t, out)
	// An export with an edited row fails at that row.
	lines := strings.Split(strings.TrimSpace(exported), "\n")
	lines[1] = strings.Replace(lines[1], `"actor":"`, `"actor":"x`, 1)
	writeFile(t, out, strings.Join(lines, "\n")+"\n")
	r = f.fleetca("audit", "verify", "--export", out, "--checkpoint", cp, "--key", filepath.Join(f.dataDir, "audit.pub"))
	if r.code != 1 || !strings.Contains(r.stderr, "seq 4 ") {
		t.Errorf("audit verify --export of an edited row: exit %d, stderr %q; want exit 1 naming seq 4", r.code, r.stderr)
	}

	var size uint64
	withStore(t, f.dataDir, func(st *boltstore.Store) {
		n, _, err := st.AuditTree(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		size = uint64(n)
	})
	if size < 6 {
		t.Fatalf("audit tree size %d, want the rows of init, tokens, enrollments and a revocation", size)
	}

	t.Run("edited-row", func(t *testing.T) {
		d := copyDataDir(t, f.dataDir)
		// The row read through the store (whatever its encoding),
		// edited and written back as a JSON row, which the store reads
		// too (files written before its binary rows hold them).
		var e store.AuditEvent
		withStore(t, d, func(st *boltstore.Store) {
			es, err := st.ListAudit(t.Context(), 2, 1)
			if err != nil || len(es) != 1 {
				t.Fatalf("ListAudit after 2 = %v, %v, want row 3", es, err)
			}
			e = es[0]
		})
		e.Detail = "edited"
		editAudit(t, d, func(b *bbolt.Bucket) error {
			v, err := json.Marshal(e)
			if err != nil {
				return err
			}
			return b.Put(seqKey(3), v)
		})
		f.with(t).wantBadSeq(d, 3, "does not hash to its stored tree root")
	})
	t.Run("deleted-row", func(t *testing.T) {
		d := copyDataDir(t, f.dataDir)
		editAudit(t, d, func(b *bbolt.Bucket) error { return b.Delete(seqKey(4)) })
		f.with(t).wantBadSeq(d, 4, "row missing or moved")
	})
	t.Run("swapped-rows", func(t *testing.T) {
		d := copyDataDir(t, f.dataDir)
		editAudit(t, d, func(b *bbolt.Bucket) error {
			a, c := append([]byte(nil), b.Get(seqKey(2))...), append([]byte(nil), b.Get(seqKey(3))...)
			if err := b.Put(seqKey(2), c); err != nil {
				return err
			}
			return b.Put(seqKey(3), a)
		})
		f.with(t).wantBadSeq(d, 2, "row missing or moved")
	})
	t.Run("appended-without-checkpoint", func(t *testing.T) {
		d := copyDataDir(t, f.dataDir)
		withStore(t, d, func(st *boltstore.Store) {
			// Appended through the store (so the tree is right), but
			// never signed: older than a running CA would leave it.
			if err := st.AppendAudit(t.Context(), store.AuditEvent{Time: time.Now().Add(-time.Hour), Action: "certificate.revoke", Actor: "admin:mallory"}); err != nil {
				t.Fatal(err)
			}
		})
		f.with(t).wantBadSeq(d, size+1, "no checkpoint covers this row")
	})
	t.Run("checkpoint-by-another-key", func(t *testing.T) {
		d := copyDataDir(t, f.dataDir)
		withStore(t, d, func(st *boltstore.Store) {
			if err := st.AppendAudit(t.Context(), store.AuditEvent{Time: time.Now(), Action: "certificate.revoke", Actor: "admin:mallory"}); err != nil {
				t.Fatal(err)
			}
			n, root, err := st.AuditTree(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			skey, _, err := note.GenerateKey(nil, strings.SplitN(strings.TrimSpace(pub), "+", 2)[0])
			if err != nil {
				t.Fatal(err)
			}
			s, err := note.NewSigner(skey)
			if err != nil {
				t.Fatal(err)
			}
			c, err := auditlog.SignCheckpoint(s, n, root, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if err := st.PutCheckpoint(t.Context(), c); err != nil {
				t.Fatal(err)
			}
		})
		f.with(t).wantBadSeq(d, size+1, "not signed by the audit key")
	})
	t.Run("certificate-without-row", func(t *testing.T) {
		d := copyDataDir(t, f.dataDir)
		withStore(t, d, func(st *boltstore.Store) {
			// Recorded with a row that does not name it: the tree is
			// whole, the certificate has no issuance row.
			err := st.Issue(t.Context(), store.Issuance{
				Certificate: store.Certificate{Serial: big.NewInt(0xdead), DeviceID: "ghost", KeyHash: store.KeyHash{1},
					NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IssuedAt: time.Now(), DER: []byte{0x30}},
				Now: time.Now(), Audit: store.AuditEvent{Time: time.Now(), Action: "device.note", Actor: "admin:mallory"}})
			if err != nil {
				t.Fatal(err)
			}
		})
		r := f.fleetca("audit", "verify", "--dir", d)
		if r.code != 1 || !strings.Contains(r.stderr, "certificate dead (device ghost) has no audit row") {
			t.Errorf("audit verify of a certificate without its row: exit %d, stderr %q", r.code, r.stderr)
		}
	})

	// A rolled-back store: the CA moves on, the witness sees it; then an
	// older copy of fleetca.db is put back, and the witness notices.
	old := copyDataDir(t, f.dataDir)
	f.start()
	f.enrollSome("later", 2)
	f.srv.stop(t)
	f.start()
	if r := watch(); r.code != 0 || !strings.Contains(r.stdout, "consistent with size") {
		t.Fatalf("audit watch after growth: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	f.srv.stop(t)
	if err := os.WriteFile(filepath.Join(f.dataDir, "fleetca.db"), []byte(readFile(t, filepath.Join(old, "fleetca.db"))), 0o600); err != nil {
		t.Fatal(err)
	}
	f.start()
	r = watch()
	t.Logf("audit watch: %s", strings.TrimSpace(r.stderr))
	if r.code != 1 || !strings.Contains(r.stderr, "rollback") {
		t.Errorf("audit watch after a rollback: exit %d, stdout %q, stderr %q; want exit 1 and rollback", r.code, r.stdout, r.stderr)
	}
	// The rolled-back CA takes new rows: its history now differs from
	// what the witness saw, a fork.
	f.enrollSome("fork", 3)
	f.srv.stop(t)
	f.start()
	r = watch()
	t.Logf("audit watch: %s", strings.TrimSpace(r.stderr))
	if r.code != 1 || !strings.Contains(r.stderr, "fork") {
		t.Errorf("audit watch after a fork: exit %d, stdout %q, stderr %q; want exit 1 and fork", r.code, r.stdout, r.stderr)
	}
}

// TestAuditLogPostgres: audit verify of a PostgreSQL-backed CA, while it
// runs (the database is not locked as a bbolt file is) and through its
// admin API, after enrollments and a revocation.
func TestAuditLogPostgres(t *testing.T) {
	t.Parallel()
	f := initFixtureWith(t, "--store", pgtest.NewDatabase(t))
	f.start()
	serials := f.enrollSome("pg", 3)
	hc := f.loadClient(1, nil)
	if a, err := send(t.Context(), hc, "POST", f.srv.httpsURL+api.AdminPrefix+"/certificates/"+serials[1]+"/revoke",
		adminHeader(f.adminToken()), []byte(`{"reason":"superseded"}`)); err != nil || a.status != http.StatusOK {
		t.Fatalf("revoke: %v %d %s", err, a.status, a.body)
	}
	for _, args := range [][]string{
		{"audit", "verify", "--dir", f.dataDir},
		{"audit", "verify", "--ca", f.srv.httpsURL, "--dir", f.dataDir},
	} {
		r := f.fleetca(args...)
		if r.code != 0 || !strings.Contains(r.stdout, "audit log OK") {
			t.Errorf("fleetca %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}
	f.srv.stop(t)
	r := f.mustFleetca("audit", "verify", "--dir", f.dataDir)
	if !strings.Contains(r.stdout, "3 certificates, 1 tokens, revocations: 1") {
		t.Errorf("audit verify --dir after stop: stdout %q", r.stdout)
	}
}
