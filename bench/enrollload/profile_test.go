package main

import (
	"strings"
	"testing"
)

// TestClassify checks that a stack goes to the first area that names one
// of its functions.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		stack string // functions, leaf first
		want  string
	}{
		{"syscall.Fdatasync\ngo.etcd.io/bbolt.fdatasync\ngo.etcd.io/bbolt.(*Tx).Commit", "fsync (CPU in fdatasync; its wait is off-CPU)"},
		{"encoding/json.Marshal\ngithub.com/fleetca/fleetca/store/boltstore.encodeRecord\ngithub.com/fleetca/fleetca/store/boltstore.putRecord", "store: record encoding (binary; JSON for the rest)"},
		{"github.com/fleetca/fleetca/store/boltstore.(*enc).string\ngithub.com/fleetca/fleetca/store/boltstore.encodeCertificate", "store: record encoding (binary; JSON for the rest)"},
		{"encoding/json.(*encodeState).marshal\nencoding/json.Marshal\ngithub.com/fleetca/fleetca/web.(*Server).enroll", "HTTP/JSON, echo, request log"},
		{"go.etcd.io/bbolt.(*node).spill", "store: bbolt (pages, write) and other store work"},
		{"crypto/sha256.Sum256\ngithub.com/fleetca/fleetca/store/internal/backend.AppendLeaves", "store: audit tree hashing"},
		{"crypto/ecdsa.VerifyASN1\ncrypto/x509.(*CertificateRequest).CheckSignature\ngithub.com/fleetca/fleetca/enroll.checkCSR", "CSR parse + signature check"},
		{"crypto/ecdsa.VerifyASN1\ncrypto/x509.checkSignature\ncrypto/x509.CreateCertificate", "signing: CreateCertificate's check of its signature"},
		{"crypto/ecdsa.SignASN1\ncrypto/x509.signTBS\ncrypto/x509.CreateCertificate", "signing: ECDSA signature"},
		{"encoding/asn1.Marshal\ncrypto/x509.CreateCertificate", "x509 encoding (template, ASN.1, serial)"},
		{"crypto/tls.(*Conn).Write", "TLS"},
		{"runtime.scanobject\nruntime.gcDrain\nruntime.gcBgMarkWorker", "GC (mark workers, assists, sweep)"},
		{"runtime.memmove", "other"},
	} {
		got := "other"
		if i := classify(tc.stack); i < len(profileAreas) {
			got = profileAreas[i].name
		}
		if got != tc.want {
			t.Errorf("classify(%q) = %q, want %q", tc.stack, got, tc.want)
		}
	}
}

// TestGroupProfile reads pprof -raw text: inlined functions count, and the
// load generator's samples are dropped.
func TestGroupProfile(t *testing.T) {
	raw := `PeriodType: cpu nanoseconds
Period: 10000000
Samples:
samples/count cpu/nanoseconds
          3   30000000: 1 2 
                side:[server]
          1   10000000: 3 
          5   50000000: 4 
                side:[client]
Locations
     1: 0x4d9f59 M=1 go.etcd.io/bbolt.fdatasync /x/bolt.go:1:0 s=0
     2: 0x4d9f60 M=1 go.etcd.io/bbolt.(*Tx).Commit /x/tx.go:1:0 s=0
     3: 0x4d9f70 M=1 crypto/x509.signTBS /x/x509.go:1:0 s=0
             crypto/x509.CreateCertificate /x/x509.go:2:0 s=0
     4: 0x4d9f80 M=1 crypto/tls.(*Conn).Read /x/conn.go:1:0 s=0
Mappings
     1: 0x400000/0x1000000/0x0 /x/fleetca.test
`
	r, err := groupProfile([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if r.samples != 4 {
		t.Errorf("groupProfile() samples = %d, want 4 (the client's 5 dropped)", r.samples)
	}
	got := map[string]float64{}
	for _, a := range r.areas {
		got[a.name] = a.share
	}
	if got["fsync (CPU in fdatasync; its wait is off-CPU)"] != 0.75 || got["signing: ECDSA signature"] != 0.25 || got["TLS"] != 0 {
		t.Errorf("groupProfile() areas = %v, want fsync 0.75, ECDSA signature 0.25, TLS 0", r.areas)
	}
	if !strings.HasPrefix(r.areas[0].name, "fsync") {
		t.Errorf("groupProfile() areas[0] = %v, want the largest first", r.areas[0])
	}
}
