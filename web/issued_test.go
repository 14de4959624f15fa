package web

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/enroll"
)

// TestAppendIssuedIsEncodingJSON checks that the enrollment answer written
// by hand is byte for byte what json.Encoder (c.JSON) writes for
// s.issued(res): an enrollment, a renewal (parent_serial), no renew_after,
// and strings that need escaping (HTML characters, non-ASCII, quotes).
func TestAppendIssuedIsEncodingJSON(t *testing.T) {
	f := newFixture(t)
	cert, _ := f.enrollKey(t, "dev-json")
	start := time.Date(2026, 5, 1, 10, 0, 0, 123, time.UTC)
	info := api.RenewalInfo{SuggestedWindow: api.Window{Start: start, End: start.Add(time.Hour)}}
	for _, tc := range []struct {
		name string
		res  enroll.Result
	}{
		{"enroll", enroll.Result{DeviceID: "dev-json", Certificate: cert, RenewAfter: start, RenewalInfo: info}},
		{"renew", enroll.Result{DeviceID: "dev-json", Certificate: cert, Parent: big.NewInt(0xabcdef), RenewAfter: start, RenewalInfo: info}},
		{"no-renew-after", enroll.Result{DeviceID: "dev-json", Certificate: cert}},
		{"escapes", enroll.Result{DeviceID: `d<&>"\é` + "\u2028\x01", Certificate: cert,
			RenewalInfo: api.RenewalInfo{SuggestedWindow: info.SuggestedWindow, ExplanationURL: "https://x.test/?a=1&b=<2>"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want bytes.Buffer
			if err := json.NewEncoder(&want).Encode(f.srv.issued(&tc.res)); err != nil {
				t.Fatal(err)
			}
			got, err := f.srv.appendIssued(nil, &tc.res)
			if err != nil {
				t.Fatalf("appendIssued: %v", err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Errorf("appendIssued =\n%s\nwant (json.Encoder)\n%s", got, want.Bytes())
			}
		})
	}
}

// TestAppendStepSignedIsEncodingJSON checks that the /sign answer written
// by hand is, byte for byte, what json.Encoder writes for the
// api.StepSignResponse (c.JSON's encoding, which ?pretty still uses).
func TestAppendStepSignedIsEncodingJSON(t *testing.T) {
	f := newFixture(t)
	cert, _ := f.enrollKey(t, "dev-step-json")
	var want bytes.Buffer
	if err := json.NewEncoder(&want).Encode(f.srv.stepSigned(cert.Raw)); err != nil {
		t.Fatal(err)
	}
	if got := f.srv.appendStepSigned(nil, cert.Raw); !bytes.Equal(got, want.Bytes()) {
		t.Errorf("appendStepSigned =\n%s\nwant (json.Encoder)\n%s", got, want.Bytes())
	}
}

// TestEnrollAnswerPretty checks that ?pretty still indents the answer (the
// hand-written answer is only for requests without a query).
func TestEnrollAnswerPretty(t *testing.T) {
	f := newFixture(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rec := do(f.srv.HTTPSHandler(), "POST", api.EnrollPath+"?pretty", f.token(t, "dev-pretty"), "application/x-pem-file", csrPEMFor(t, key, "dev-pretty"))
	if rec.Code != http.StatusCreated {
		t.Fatalf("enroll: %d %s", rec.Code, rec.Body)
	}
	if !bytes.HasPrefix(rec.Body.Bytes(), []byte("{\n  \"device_id\"")) {
		t.Errorf("?pretty answer = %.40q..., want indented JSON", rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
}
