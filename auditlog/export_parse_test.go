package auditlog

import (
	"encoding/json"
	"errors"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

func TestParseExportRow(t *testing.T) {
	good := `{"seq":3,"time":"2026-12-05T18:00:00.000001Z","action":"token.create","actor":"admin:admin","token_id":"t1","root":"` +
		tlog.RecordHash(nil).String() + `","tree_size":5,"proof":["` + tlog.RecordHash([]byte("a")).String() + `"]}`
	tests := []struct {
		name, line string
		ok         bool
	}{
		{"ok/row", good, true},
		{"fail/empty", ``, false},
		{"fail/not-json", `seq 3`, false},
		{"fail/unknown-field", `{"seq":1,"tree_size":1,"proof":[],"extra":1}`, false},
		{"fail/two-values", `{"seq":1,"tree_size":1,"proof":[]} {}`, false},
		{"fail/no-seq", `{"tree_size":1,"proof":[]}`, false},
		{"fail/seq-past-tree", `{"seq":6,"tree_size":5,"proof":[]}`, false},
		{"fail/bad-hash", `{"seq":1,"tree_size":1,"proof":["AAAA"]}`, false},
		{"fail/bad-root", `{"seq":1,"tree_size":1,"root":"!!","proof":[]}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseExportRow([]byte(tc.line))
			if !tc.ok {
				if !isKind(err, fault.Malformed) {
					t.Fatalf("ParseExportRow(%q) = %v, want Malformed", tc.line, err)
				}
				return
			}
			if err != nil || r.Seq != 3 || r.TreeSize != 5 || len(r.Proof) != 1 || r.TokenID != "t1" {
				t.Fatalf("ParseExportRow(%q) = %+v, %v", tc.line, r, err)
			}
		})
	}
}

// FuzzParseExportRow: no panic; a rejection is Malformed; what is accepted
// re-encodes to a line that parses to the same row.
func FuzzParseExportRow(f *testing.F) {
	row := ExportRow{AuditEvent: store.AuditEvent{Seq: 1, Action: "certificate.issue", Serial: "ab"}, TreeSize: 2,
		Proof: tlog.RecordProof{tlog.RecordHash([]byte("b"))}}
	b, err := json.Marshal(row)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"seq":1,"tree_size":1,"proof":[]}`))
	f.Add([]byte(`{"seq":18446744073709551615,"tree_size":9223372036854775807,"proof":null}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := ParseExportRow(line)
		if err != nil {
			var fe *fault.Error
			if !errors.As(err, &fe) || fe.Kind != fault.Malformed {
				t.Fatalf("ParseExportRow(%q) = %v, want a Malformed fault", line, err)
			}
			return
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := ParseExportRow(again)
		if err != nil {
			t.Fatalf("re-encoded %q does not parse: %v", again, err)
		}
		a, _ := json.Marshal(r2)
		if string(a) != string(again) {
			t.Fatalf("re-encoding changed the row: %s, then %s", again, a)
		}
	})
}
