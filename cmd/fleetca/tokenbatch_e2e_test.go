package main

// End-to-end test of a factory station's bulk step tokens: token create
// --format step --device-ids-file with 2500 IDs (several chunks) against the
// real serve, every token read back, one redeemed with the real step CLI;
// a bad ID file refused whole; native tokens in bulk too.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.step.sm/crypto/jose"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/testenv"
)

func TestTokenBatchEndToEnd(t *testing.T) {
	t.Parallel()
	testenv.NeedStep(t)
	f := newFixture(t)
	const n = 2500 // five chunks of api.MaxTokenBatch
	idsFile, ids := writeIDs(t, f.work, n)

	t.Run("step tokens", func(t *testing.T) {
		f := f.with(t)
		r := f.mustFleetca("token", "create", "--dir", f.dataDir, "--format", "step", "--device-ids-file", idsFile, "--out", "tokens.csv")
		if !strings.HasPrefix(r.stderr, fmt.Sprintf("minted %d step tokens for %d devices into tokens.csv in ", n, n)) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("stderr = %q, want one summary line", r.stderr)
		}
		if r.stdout != "" {
			t.Errorf("stdout = %q, want nothing (the tokens are in the CSV)", r.stdout)
		}
		rows := readTokenCSV(t, filepath.Join(f.work, "tokens.csv"))
		if len(rows) != n {
			t.Fatalf("tokens.csv has %d rows, want %d", len(rows), n)
		}
		for i, row := range rows {
			checkStepTokenRow(t, i+1, row, ids[i])
		}
		var page api.TokenPage
		f.adminGET(api.AdminPrefix+"/tokens?limit=1000", &page)
		if len(page.Tokens) != 1000 || page.Next == "" {
			t.Errorf("GET tokens: %d tokens, next %q; want a full page and more", len(page.Tokens), page.Next)
		}

		s := newStepCLI(t, f)
		pick := rows[n-1]
		s.must("ca", "certificate", pick[0], "dev.crt", "dev.key", "--token", pick[2])
		certs := readCerts(t, filepath.Join(f.work, "dev.crt"))
		checkDeviceCert(t, certs[0], pick[0], certs[0].SerialNumber.Text(16))
		if got := f.tokenSpent(pick[1]); got != 1 {
			t.Errorf("token %s spent %d, want 1", pick[1], got)
		}

		// The CSV is not replaced without --force.
		before := readFile(t, filepath.Join(f.work, "tokens.csv"))
		r = f.fleetca("token", "create", "--dir", f.dataDir, "--format", "step", "--device-ids-file", idsFile, "--out", "tokens.csv")
		if r.code != exitUsage || !strings.Contains(r.stderr, "--force") {
			t.Errorf("token create onto an existing CSV: exit %d, stderr %q; want a usage error naming --force", r.code, r.stderr)
		}
		if readFile(t, filepath.Join(f.work, "tokens.csv")) != before {
			t.Errorf("a refused token create changed tokens.csv")
		}
	})

	t.Run("a bad ID refuses the file", func(t *testing.T) {
		f := f.with(t)
		writeFile(t, filepath.Join(f.work, "bad.txt"), "ok-1\nok-2\n# fine\nnot ok\n")
		r := f.fleetca("token", "create", "--dir", f.dataDir, "--device-ids-file", "bad.txt", "--out", "bad.csv")
		if r.code != exitUsage || !strings.Contains(r.stderr, "line 4") {
			t.Errorf("token create with a bad ID file: exit %d, stderr %q; want a usage error naming line 4", r.code, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(f.work, "bad.csv")); !os.IsNotExist(err) {
			t.Errorf("bad.csv exists after a refused file (%v)", err)
		}
		list := f.mustFleetca("token", "list", "--dir", f.dataDir)
		for _, id := range []string{"ok-1", "ok-2"} {
			if strings.Contains(list.stdout, id) {
				t.Errorf("token list shows a token for %s after a refused file", id)
			}
		}
	})

	t.Run("native tokens", func(t *testing.T) {
		testenv.Need(t, "openssl")
		f := f.with(t)
		writeFile(t, filepath.Join(f.work, "native.txt"), "nat-1\nnat-2\nnat-3\n")
		f.mustFleetca("token", "create", "--dir", f.dataDir, "--device-ids-file", "native.txt", "--out", "native.csv", "--ttl", "2h")
		rows := readTokenCSV(t, filepath.Join(f.work, "native.csv"))
		if len(rows) != 3 || rows[1][0] != "nat-2" {
			t.Fatalf("native.csv rows = %q, want nat-1..3", rows)
		}
		serial := f.fleetcaEnroll(rows[1][2], "nat")
		checkDeviceCert(t, readCerts(t, filepath.Join(f.work, "nat.crt"))[0], "nat-2", serial)
	})
}

// checkStepTokenRow checks a CSV row: a step token for device whose jti
// hashes to the row's token ID and whose exp is the row's expires_at.
func checkStepTokenRow(t *testing.T, line int, row []string, device string) {
	t.Helper()
	if len(row) != 4 || row[0] != device {
		t.Fatalf("row %d = %q, want device %s first", line, row, device)
	}
	tok, err := jose.ParseSigned(row[2])
	if err != nil {
		t.Fatalf("row %d: token does not parse: %v", line, err)
	}
	var c jose.Claims
	var extra struct {
		SANs []string `json:"sans"`
		SHA  string   `json:"sha"`
	}
	if err := tok.UnsafeClaimsWithoutVerification(&c, &extra); err != nil {
		t.Fatalf("row %d: claims: %v", line, err)
	}
	sum := sha256.Sum256([]byte("fleetca step jti\x00" + c.ID))
	exp, err := time.Parse(time.RFC3339, row[3])
	switch {
	case err != nil || c.Expiry == nil || !c.Expiry.Time().Equal(exp):
		t.Fatalf("row %d: exp %v, expires_at %q (%v); want the same time", line, c.Expiry, row[3], err)
	case c.Subject != device || len(extra.SANs) != 1 || extra.SANs[0] != device:
		t.Fatalf("row %d: sub %q sans %q, want %s", line, c.Subject, extra.SANs, device)
	case hex.EncodeToString(sum[:8]) != row[1]:
		t.Fatalf("row %d: token_id %s is not its jti's", line, row[1])
	case len(c.Audience) != 1 || !strings.HasSuffix(c.Audience[0], "/1.0/sign") || extra.SHA == "":
		t.Fatalf("row %d: aud %q sha %q, want the sign URL and the root fingerprint", line, c.Audience, extra.SHA)
	}
}
