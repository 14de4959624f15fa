package enroll

import (
	"bytes"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
)

// inputKinds are the fault kinds a refusal of untrusted input may have.
var inputKinds = map[fault.Kind]bool{
	fault.Malformed: true, fault.BadCSR: true, fault.BadKey: true, fault.Forbidden: true,
	fault.TooLarge: true, fault.Unauthorized: true,
}

// FuzzCheckCSR feeds arbitrary DER to the CSR policy. Invariants: no panic;
// a refusal is a *fault.Error of an input kind; an accepted CSR is the
// input itself (it re-encodes to the same bytes) and names its device.
func FuzzCheckCSR(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "*.pem"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		if block, _ := pem.Decode(b); block != nil {
			f.Add(block.Bytes, false)
			f.Add(block.Bytes, true)
		}
	}
	f.Fuzz(func(t *testing.T, der []byte, pattern bool) {
		b := binding{deviceID: "dev-1"}
		if pattern {
			b = binding{pattern: "*"}
		}
		req, err := checkCSR(der, b, testTrustDomain)
		if err != nil {
			if k, ok := fault.KindOf(err); !ok || !inputKinds[k] {
				t.Fatalf("checkCSR refusal is not an input fault: %v (%T)", err, err)
			}
			return
		}
		if !bytes.Equal(req.csr.Raw, der) {
			t.Fatalf("accepted CSR does not re-encode to its input")
		}
		if _, err := api.ParseDeviceID(string(req.deviceID)); err != nil {
			t.Fatalf("accepted CSR for an invalid device ID %q", req.deviceID)
		}
		if err := checkKey(req.csr.PublicKey); err != nil {
			t.Fatalf("accepted CSR with a refused key: %v", err)
		}
	})
}

// FuzzParseToken: no panic; a refusal is Unauthorized; an accepted token
// re-encodes to itself (its prefix plus 43 base64url characters).
func FuzzParseToken(f *testing.F) {
	good, err := newSecret(EnrollTokenPrefix)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{string(good), "", EnrollTokenPrefix, string(good) + "=", string(good)[:20], AdminTokenPrefix + "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseToken(EnrollTokenPrefix, s)
		if err != nil {
			if k, ok := fault.KindOf(err); !ok || k != fault.Unauthorized {
				t.Fatalf("ParseToken refusal kind = %v, want Unauthorized", err)
			}
			if bytes.Contains([]byte(err.Error()), []byte(s)) && len(s) > 8 {
				t.Fatalf("ParseToken error repeats the token: %v", err)
			}
			return
		}
		if h != hashSecret(Secret(s)) || len(s) != len(EnrollTokenPrefix)+encodedLen {
			t.Fatalf("accepted token %q has the wrong hash or length", s)
		}
	})
}
