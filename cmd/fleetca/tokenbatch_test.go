package main

// Unit tests of token create --device-ids-file against a fake CA: the
// chunking, the CSV, and a failure part-way.

import (
	"bytes"
	"crypto/x509"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/client"
)

// fakeTokenCA answers POST /v1/admin/tokens/batch with made-up tokens, and
// with failAt's problem from its failAt-th request (1-based; 0: never).
type fakeTokenCA struct {
	mu       sync.Mutex
	requests int
	failAt   int
	sizes    []int
}

func (f *fakeTokenCA) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	if r.URL.Path != api.AdminPrefix+"/tokens/batch" || r.Method != http.MethodPost {
		http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
		return
	}
	if f.failAt != 0 && f.requests >= f.failAt {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"the store is closing","hint":"try again"}`)
		return
	}
	var req api.TokenBatchRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.sizes = append(f.sizes, len(req.DeviceIDs))
	var out api.TokenBatch
	for _, id := range req.DeviceIDs {
		out.Tokens = append(out.Tokens, api.Token{ID: "id-" + id, DeviceID: id, Uses: 1, ExpiresAt: "2026-01-02T00:00:00Z", Token: "secret-" + id})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(out)
}

func newFakeTokenCA(t *testing.T, failAt int) (*fakeTokenCA, *client.Client) {
	t.Helper()
	fake := &fakeTokenCA{failAt: failAt}
	srv := httptest.NewTLSServer(fake)
	t.Cleanup(srv.Close)
	c, err := client.New(client.Config{URL: srv.URL, Roots: []*x509.Certificate{srv.Certificate()}, AdminToken: "fleetca_admin_test"})
	if err != nil {
		t.Fatal(err)
	}
	return fake, c
}

// writeIDs writes n device IDs (dev-00000, ...) to a file in dir.
func writeIDs(t *testing.T, dir string, n int) (string, []string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("# station 3\n\n")
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("dev-%05d", i)
		b.WriteString(ids[i] + "\n")
	}
	path := filepath.Join(dir, "ids.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, ids
}

// readTokenCSV reads the CSV and checks its header and mode.
func readTokenCSV(t *testing.T, path string) [][]string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s mode = %v, want 0600", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil || len(rows) == 0 || strings.Join(rows[0], ",") != "device_id,token_id,token,expires_at" {
		t.Fatalf("%s = %q (%v), want CSV with the header device_id,token_id,token,expires_at", path, b, err)
	}
	return rows[1:]
}

func TestTokenBatchChunks(t *testing.T) {
	dir := t.TempDir()
	idsFile, ids := writeIDs(t, dir, 2*api.MaxTokenBatch+7)
	fake, c := newFakeTokenCA(t, 0)
	var stderr bytes.Buffer
	b := tokenBatch{idsFile: idsFile, out: filepath.Join(dir, "tokens.csv"), format: "step"}
	if err := b.run(t.Context(), env{stderr: &stderr}, c); err != nil {
		t.Fatalf("run error = %v, want nil", err)
	}
	if want := []int{api.MaxTokenBatch, api.MaxTokenBatch, 7}; fmt.Sprint(fake.sizes) != fmt.Sprint(want) {
		t.Errorf("chunk sizes = %v, want %v", fake.sizes, want)
	}
	rows := readTokenCSV(t, b.out)
	if len(rows) != len(ids) {
		t.Fatalf("CSV has %d rows, want %d", len(rows), len(ids))
	}
	for i, r := range rows {
		if want := []string{ids[i], "id-" + ids[i], "secret-" + ids[i], "2026-01-02T00:00:00Z"}; strings.Join(r, ",") != strings.Join(want, ",") {
			t.Fatalf("CSV row %d = %q, want %q", i+1, r, want)
		}
	}
	// Not a terminal: one summary line, no progress bar.
	if got := stderr.String(); strings.Count(got, "\n") != 1 || !strings.HasPrefix(got, fmt.Sprintf("minted %d step tokens for %d devices into %s in ", len(ids), len(ids), b.out)) {
		t.Errorf("stderr = %q, want one summary line", got)
	}

	// Without --force, an existing CSV is refused before anything is minted.
	before := fake.requests
	err := b.run(t.Context(), env{stderr: &stderr}, c)
	if err == nil || !strings.Contains(err.Error(), "exists") || fake.requests != before {
		t.Errorf("second run without --force: error %v, %d requests; want a refusal naming the existing file, and no request", err, fake.requests-before)
	}
	b.force = true
	if err := b.run(t.Context(), env{stderr: &stderr}, c); err != nil {
		t.Errorf("run with --force error = %v, want nil", err)
	}
}

func TestTokenBatchFailsPartWay(t *testing.T) {
	dir := t.TempDir()
	idsFile, ids := writeIDs(t, dir, 3*api.MaxTokenBatch)
	_, c := newFakeTokenCA(t, 3)
	b := tokenBatch{idsFile: idsFile, out: filepath.Join(dir, "tokens.csv")}
	err := b.run(t.Context(), env{stderr: new(bytes.Buffer)}, c)
	minted := 2 * api.MaxTokenBatch
	want := fmt.Sprintf("%d of %d tokens were minted, and %s holds exactly those", minted, len(ids), b.out)
	if err == nil || !strings.Contains(errorLine(nil, err), want) || !strings.Contains(errorLine(nil, err), "the store is closing") ||
		!strings.Contains(errorLine(nil, err), ids[minted-1]) {
		t.Fatalf("run error = %v, want one saying %q, the cause and the last device minted", err, want)
	}
	rows := readTokenCSV(t, b.out)
	if len(rows) != minted || rows[minted-1][0] != ids[minted-1] {
		t.Errorf("CSV has %d rows, want exactly the %d minted", len(rows), minted)
	}
}

func TestTokenBatchFailsAtOnce(t *testing.T) {
	dir := t.TempDir()
	idsFile, _ := writeIDs(t, dir, 3)
	_, c := newFakeTokenCA(t, 1)
	b := tokenBatch{idsFile: idsFile, out: filepath.Join(dir, "tokens.csv")}
	if err := b.run(t.Context(), env{stderr: new(bytes.Buffer)}, c); err == nil || !strings.Contains(err.Error(), "no token was minted") {
		t.Errorf("run error = %v, want one saying no token was minted", err)
	}
	if _, err := os.Stat(b.out); !os.IsNotExist(err) {
		t.Errorf("after no token was minted, %s exists (%v); want no file", b.out, err)
	}
}

func TestTokenBatchRefusesBadFileUpFront(t *testing.T) {
	dir := t.TempDir()
	idsFile := filepath.Join(dir, "ids.txt")
	if err := os.WriteFile(idsFile, []byte("dev-1\ndev-2\ndev 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fake, c := newFakeTokenCA(t, 0)
	b := tokenBatch{idsFile: idsFile, out: filepath.Join(dir, "tokens.csv")}
	err := b.run(t.Context(), env{stderr: new(bytes.Buffer)}, c)
	if err == nil || !strings.Contains(errorLine(nil, err), "line 3") || fake.requests != 0 {
		t.Errorf("run error = %v after %d requests, want a refusal naming line 3 and no request", err, fake.requests)
	}
}
