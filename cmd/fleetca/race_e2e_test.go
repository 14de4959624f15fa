package main

// Races through the real server: 64 clients released together at one
// limit (a token's uses, max_active_certificates, one key, one renewal)
// must leave exactly the count the limit allows, in the answers and in the
// store afterwards.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetca/fleetca/api"
)

// racers is how many clients each race releases at once.
const racers = 64

func TestRaces(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	hc := f.loadClient(racers, nil)

	// enrollRace sends csrs[i] with token from racer i, and returns the
	// answers; a request that failed fails the test.
	enrollRace := func(t *testing.T, token string, csrs [][]byte) []answer {
		t.Helper()
		answers := make([]answer, len(csrs))
		errs := make([]error, len(csrs))
		race(len(csrs), func(i int) {
			answers[i], errs[i] = send(t.Context(), hc, "POST", f.srv.httpsURL+api.EnrollPath, enrollHeader(token), csrs[i])
		})
		for _, err := range errs {
			if err != nil {
				t.Fatalf("enrollment racer: %v", err)
			}
		}
		return answers
	}
	// wantCounts checks the statuses, and that every refusal is a problem
	// of the given type.
	wantCounts := func(t *testing.T, what string, answers []answer, want map[int]int, refusal string) {
		t.Helper()
		if diff := cmp.Diff(want, countStatuses(answers)); diff != "" {
			t.Errorf("%s: statuses (-want +got):\n%s", what, diff)
		}
		for _, a := range answers {
			if a.status >= 400 && a.problemType() != refusal {
				t.Errorf("%s: a refusal is %d %s %q, want a %s problem", what, a.status, a.header.Get("Content-Type"), a.body, refusal)
				break
			}
		}
	}
	csrsFor := func(t *testing.T, ids func(i int) string) [][]byte {
		csrs := make([][]byte, racers)
		for i := range csrs {
			csrs[i] = newCSRPEM(t, ids(i))
		}
		return csrs
	}

	t.Run("a single-use token", func(t *testing.T) {
		f := f.with(t)
		token, id := f.newToken(hc, api.TokenRequest{DeviceID: "race-one"})
		answers := enrollRace(t, token, csrsFor(t, func(int) string { return "race-one" }))
		wantCounts(t, "64 enrollments with one single-use token", answers, map[int]int{201: 1, 401: racers - 1}, "unauthorized")
		if n := f.tokenSpent(id); n != 1 {
			t.Errorf("the token's spent uses = %d, want 1", n)
		}
		if n := len(f.deviceCerts("race-one")); n != 1 {
			t.Errorf("race-one has %d certificates, want 1", n)
		}
	})

	t.Run("a pattern token with 5 uses", func(t *testing.T) {
		f := f.with(t)
		const uses = 5
		token, id := f.newToken(hc, api.TokenRequest{DevicePattern: "race-p-*", Uses: uses})
		answers := enrollRace(t, token, csrsFor(t, func(i int) string { return fmt.Sprintf("race-p-%02d", i) }))
		wantCounts(t, "64 enrollments with a 5-use pattern token", answers, map[int]int{201: uses, 401: racers - uses}, "unauthorized")
		if n := f.tokenSpent(id); n != uses {
			t.Errorf("the token's spent uses = %d, want %d", n, uses)
		}
		certs := 0
		for i := range racers {
			certs += len(f.deviceCerts(fmt.Sprintf("race-p-%02d", i)))
		}
		if certs != uses {
			t.Errorf("the race-p-* devices have %d certificates, want %d", certs, uses)
		}
	})

	t.Run("max_active_certificates", func(t *testing.T) {
		f := f.with(t)
		const maxActive = 3 // enroll.max_active_certificates' default
		token, id := f.newToken(hc, api.TokenRequest{DeviceID: "race-max", Uses: 1 + 2*racers})
		if a := enrollRace(t, token, [][]byte{newCSRPEM(t, "race-max")}); a[0].status != http.StatusCreated {
			t.Fatalf("first enrollment of race-max: status %d, body %s; want 201", a[0].status, a[0].body)
		}
		// One live certificate: two more fit.
		answers := enrollRace(t, token, csrsFor(t, func(int) string { return "race-max" }))
		wantCounts(t, "64 enrollments of a device with 1 live certificate", answers, map[int]int{201: maxActive - 1, 409: racers - maxActive + 1}, "conflict")
		// Three: none fits.
		answers = enrollRace(t, token, csrsFor(t, func(int) string { return "race-max" }))
		wantCounts(t, "64 enrollments of a device with 3 live certificates", answers, map[int]int{409: racers}, "conflict")
		if certs := f.deviceCerts("race-max"); len(certs) != maxActive || live(certs) != maxActive {
			t.Errorf("race-max has %d certificates, %d live; want %d, all live", len(certs), live(certs), maxActive)
		}
		if n := f.tokenSpent(id); n != maxActive {
			t.Errorf("the token's spent uses = %d, want %d (a refusal spends none)", n, maxActive)
		}
	})

	t.Run("one key for 64 devices", func(t *testing.T) {
		f := f.with(t)
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		token, id := f.newToken(hc, api.TokenRequest{DevicePattern: "race-k-*", Uses: racers})
		csrs := make([][]byte, racers)
		for i := range csrs {
			der, err := x509.CreateCertificateRequest(rand.Reader,
				&x509.CertificateRequest{Subject: pkix.Name{CommonName: fmt.Sprintf("race-k-%02d", i)}}, key)
			if err != nil {
				t.Fatal(err)
			}
			csrs[i] = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
		}
		answers := enrollRace(t, token, csrs)
		wantCounts(t, "64 devices with one key", answers, map[int]int{201: 1, 409: racers - 1}, "conflict")
		certs := 0
		for i := range racers {
			certs += len(f.deviceCerts(fmt.Sprintf("race-k-%02d", i)))
		}
		if certs != 1 {
			t.Errorf("the race-k-* devices have %d certificates, want 1", certs)
		}
		if n := f.tokenSpent(id); n != 1 {
			t.Errorf("the token's spent uses = %d, want 1", n)
		}
	})

	t.Run("64 identical renewals", func(t *testing.T) {
		f := f.with(t)
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "race-r"}}, key)
		if err != nil {
			t.Fatal(err)
		}
		token, _ := f.newToken(hc, api.TokenRequest{DeviceID: "race-r"})
		first := enrollRace(t, token, [][]byte{pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})})[0]
		var enrolled api.EnrollResponse
		if first.status != http.StatusCreated || json.Unmarshal(first.body, &enrolled) != nil {
			t.Fatalf("enroll race-r: status %d, body %s; want 201", first.status, first.body)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		cert := tlsCertFromPEM(t, enrolled.Chain, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
		mtls := f.loadClient(racers, &cert)

		answers := make([]answer, racers)
		errs := make([]error, racers)
		race(racers, func(i int) {
			answers[i], errs[i] = send(t.Context(), mtls, "POST", f.srv.httpsURL+api.RenewPath, nil, nil)
		})
		for _, err := range errs {
			if err != nil {
				t.Fatalf("renewal racer: %v", err)
			}
		}
		wantCounts(t, "64 identical renewals", answers, map[int]int{201: 1, 200: racers - 1}, "")
		serials := map[string]int{}
		for _, a := range answers {
			var got api.EnrollResponse
			if err := json.Unmarshal(a.body, &got); err != nil || got.ParentSerial != enrolled.Serial {
				t.Errorf("renewal answer %d %s: parent_serial %q (%v), want %s", a.status, a.body, got.ParentSerial, err, enrolled.Serial)
			}
			serials[got.Serial]++
		}
		if len(serials) != 1 {
			t.Errorf("64 identical renewals answered serials %v, want one serial", serials)
		}
		if certs := f.deviceCerts("race-r"); len(certs) != 2 {
			t.Errorf("race-r has %d certificates, want 2 (the enrollment and one renewal)", len(certs))
		}
	})
}
