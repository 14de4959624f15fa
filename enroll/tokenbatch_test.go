package enroll

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

func TestCreateTokens(t *testing.T) {
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("dev-%05d", i)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		req  TokenBatchRequest
		want fault.Kind
	}{
		{"ok/one", TokenBatchRequest{DeviceIDs: []string{"dev-1"}}, 0},
		{"ok/max", TokenBatchRequest{DeviceIDs: ids(api.MaxTokenBatch), TTL: new(8 * time.Hour)}, 0},
		{"fail/empty", TokenBatchRequest{}, fault.Malformed},
		{"fail/too-many", TokenBatchRequest{DeviceIDs: ids(api.MaxTokenBatch + 1)}, fault.Malformed},
		{"fail/bad-id", TokenBatchRequest{DeviceIDs: []string{"dev-1", "-dev"}}, fault.Malformed},
		{"fail/repeated-id", TokenBatchRequest{DeviceIDs: []string{"dev-1", "dev-2", "dev-1"}}, fault.Malformed},
		{"fail/ttl-zero", TokenBatchRequest{DeviceIDs: []string{"dev-1"}, TTL: new(time.Duration(0))}, fault.Malformed},
		{"fail/unknown-format", TokenBatchRequest{DeviceIDs: []string{"dev-1"}, Format: "acme"}, fault.Malformed},
		// This fixture's CA has no step provisioner key.
		{"fail/step-without-provisioner", TokenBatchRequest{DeviceIDs: []string{"dev-1"}, Format: StepTokenFormat}, fault.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			secrets, toks, err := f.svc.CreateTokens(t.Context(), tc.req)
			if kindOf(err) != tc.want || (tc.want == 0 && err != nil) {
				t.Fatalf("CreateTokens kind = %v (err %v), want %v", kindOf(err), err, tc.want)
			}
			stored, lerr := f.store.ListTokens(t.Context(), store.Page{Limit: store.MaxPageLimit})
			if lerr != nil {
				t.Fatal(lerr)
			}
			if tc.want != 0 {
				if len(stored) != 0 {
					t.Errorf("a refused batch stored %d tokens, want 0", len(stored))
				}
				return
			}
			if len(secrets) != len(tc.req.DeviceIDs) || len(toks) != len(tc.req.DeviceIDs) || len(stored) != len(toks) {
				t.Fatalf("CreateTokens gave %d secrets, %d tokens, stored %d; want %d each", len(secrets), len(toks), len(stored), len(tc.req.DeviceIDs))
			}
			for i, s := range secrets {
				h, err := ParseToken(EnrollTokenPrefix, string(s))
				if err != nil || h != toks[i].Hash || toks[i].DeviceID != tc.req.DeviceIDs[i] || toks[i].Uses != 1 {
					t.Fatalf("token %d = %+v (parse err %v), want a one-use token of %s with the secret's hash", i, toks[i], err, tc.req.DeviceIDs[i])
				}
			}
			evs, err := f.store.ListAudit(t.Context(), 0, 2*api.MaxTokenBatch)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != len(toks) {
				t.Errorf("audit has %d rows, want one token.create per token (%d)", len(evs), len(toks))
			}
		})
	}
}

func TestCreateTokensNamesTheBadIndex(t *testing.T) {
	f := newFixture(t, Config{})
	_, _, err := f.svc.CreateTokens(t.Context(), TokenBatchRequest{DeviceIDs: []string{"dev-1", "dev-2", "bad id"}})
	fe, ok := err.(*fault.Error)
	if !ok || fe.Field != "device_ids" || !strings.HasPrefix(fe.Detail, "device_ids[2]") {
		t.Fatalf("CreateTokens error = %#v, want a fault on device_ids naming index 2", err)
	}
}
