package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/auditlog"
)

// auditServer is f's server with the audit log published, and its key.
func auditServer(t *testing.T, f *fixture) (*Server, note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(nil, "test/fleetca-audit")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{}, Deps{Enroll: f.svc, CA: f.authty, Records: f.store, Revocation: f.rev, Now: f.clock.Now,
		Version: testVersion, Audit: auditlog.NewPublic(f.store, vkey)})
	if err != nil {
		t.Fatal(err)
	}
	return srv, s, v
}

func TestAuditRoutes(t *testing.T) {
	f := newFixture(t)
	srv, s, v := auditServer(t, f)
	h, admin := srv.HTTPHandler(), srv.HTTPSHandler()

	rec := do(h, "GET", api.AuditCheckpointPath, "", "", "")
	if rec.Code != http.StatusNotFound {
		t.Fatalf("checkpoint before any was signed: %d, want 404", rec.Code)
	}
	problemOf(t, rec)

	for range 5 {
		f.token(t, "dev-1") // an audit row each
	}
	cp, err := auditlog.NewCheckpointer(auditlog.Config{}, auditlog.Deps{Store: f.store, Signer: s, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Sign(t.Context()); err != nil {
		t.Fatal(err)
	}
	size, _, err := f.store.AuditTree(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	rec = do(h, "GET", api.AuditCheckpointPath, "", "", "")
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") || rec.Header().Get("ETag") == "" {
		t.Fatalf("GET checkpoint = %d %v", rec.Code, rec.Header())
	}
	got, err := auditlog.OpenCheckpoint(rec.Body.Bytes(), v)
	if err != nil || got.Size != size {
		t.Fatalf("served checkpoint = %+v, %v; want size %d", got, err, size)
	}
	r := do304(h, api.AuditCheckpointPath, rec.Header().Get("ETag"))
	if r.Code != http.StatusNotModified {
		t.Errorf("GET checkpoint with If-None-Match its ETag = %d, want 304", r.Code)
	}
	if rec := do(h, "GET", api.AuditKeyPath, "", "", ""); rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != srv.deps.Audit.Key() {
		t.Errorf("GET key = %d %q", rec.Code, rec.Body)
	}

	for _, tc := range []struct {
		name, query string
		status      int
		pointer     string
	}{
		{"fail/none", "", 400, "#/from"},
		{"fail/from-zero", "?from=0&to=1", 400, "#/from"},
		{"fail/from-text", "?from=a&to=1", 400, "#/from"},
		{"fail/to-before-from", "?from=3&to=2", 400, "#/to"},
		{"fail/to-huge", "?from=1&to=99999999999999999999", 400, "#/to"},
		{"fail/past-the-tree", fmt.Sprintf("?from=1&to=%d", size+1), 404, "#/to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(h, "GET", api.AuditProofPath+tc.query, "", "", "")
			if rec.Code != tc.status {
				t.Fatalf("GET proof%s = %d, want %d", tc.query, rec.Code, tc.status)
			}
			if p := problemOf(t, rec); p.Pointer != tc.pointer {
				t.Errorf("problem pointer = %q, want %q", p.Pointer, tc.pointer)
			}
		})
	}
	rec = do(h, "GET", fmt.Sprintf("%s?from=2&to=%d", api.AuditProofPath, size), "", "", "")
	var ap api.AuditProof
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &ap) != nil {
		t.Fatalf("GET proof = %d %s", rec.Code, rec.Body)
	}
	proof := make(tlog.TreeProof, len(ap.Proof))
	for i, s := range ap.Proof {
		if proof[i], err = tlog.ParseHash(s); err != nil {
			t.Fatal(err)
		}
	}
	old, err := f.store.ListAudit(t.Context(), 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.CheckTree(proof, size, got.Root, 2, old[0].Root); err != nil {
		t.Errorf("the served proof from 2 to %d does not check: %v", size, err)
	}

	// The admin side, for viewers.
	for _, tc := range []struct {
		name, path string
		status     int
	}{
		{"ok/tree", "/audit/tree", 200},
		{"ok/hashes", "/audit/hashes?from=0&to=3", 200},
		{"ok/checkpoints", "/audit/checkpoints?after=0", 200},
		{"fail/hashes-none", "/audit/hashes", 400},
		{"fail/hashes-too-many", fmt.Sprintf("/audit/hashes?from=0&to=%d", api.MaxAuditHashes+1), 400},
		{"fail/hashes-past", "/audit/hashes?from=0&to=1000", 404},
		{"fail/checkpoints-after", "/audit/checkpoints?after=-1", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(admin, "GET", api.AdminPrefix+tc.path, f.admin, "", "")
			if rec.Code != tc.status {
				t.Fatalf("GET %s = %d %s, want %d", tc.path, rec.Code, rec.Body, tc.status)
			}
			if tc.status != 200 {
				problemOf(t, rec)
			}
		})
	}
	if rec := do(admin, "GET", api.AdminPrefix+"/audit/tree", "", "", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("GET /audit/tree without a token = %d, want 401", rec.Code)
	}
}

// do304 sends a conditional GET.
func do304(h http.Handler, path, etag string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set("If-None-Match", etag)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}
