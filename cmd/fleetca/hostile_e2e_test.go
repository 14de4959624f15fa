package main

// Hostile HTTP inputs through the real server: each a raw request, each
// refused with a 4xx problem (or, below the handlers, a 4xx in Go's own
// text/plain), and none writes anything: the token sent with them still
// enrolls its device at the end.

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetca/fleetca/api"
)

// hostileDevice is the device the hostile requests try to enroll.
const hostileDevice = "hostile-1"

// csrWith makes a P-256 CSR for cn with extra extension requests.
func csrWith(t *testing.T, cn string, exts ...pkix.Extension) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader,
		&x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, ExtraExtensions: exts}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func pemCSR(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// extension is a CSR extension request of oid whose value is v, DER.
func extension(t *testing.T, oid asn1.ObjectIdentifier, v any) pkix.Extension {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oid, Value: b}
}

func TestHostileInputs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	hc := f.loadClient(4, nil)
	token, tokenID := f.newToken(hc, api.TokenRequest{DeviceID: hostileDevice})
	admin := f.adminToken()
	auditEvents := func() int {
		var page struct{ Events []json.RawMessage }
		f.adminGET(api.AdminPrefix+"/audit?limit=1000", &page)
		return len(page.Events)
	}
	audited := auditEvents()

	good := newCSRPEM(t, hostileDevice)
	badSig := csrWith(t, hostileDevice)
	badSig[len(badSig)-1] ^= 0xff // the last byte of the signature
	goodJSON, err := json.Marshal(map[string]string{"csr": string(good)})
	if err != nil {
		t.Fatal(err)
	}
	caTrue := extension(t, asn1.ObjectIdentifier{2, 5, 29, 19}, struct {
		IsCA bool `asn1:"optional"`
	}{true})
	keyCertSign := extension(t, asn1.ObjectIdentifier{2, 5, 29, 15}, asn1.BitString{Bytes: []byte{0x04}, BitLength: 6})
	serverAuth := extension(t, asn1.ObjectIdentifier{2, 5, 29, 37}, []asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 1}})
	with := func(h http.Header, k, v string) http.Header {
		h = h.Clone()
		h.Set(k, v)
		return h
	}
	enrollH, adminH := enrollHeader(token), adminHeader(admin)
	adminNoType := http.Header{"Authorization": {"Bearer " + admin}}

	for _, tc := range []struct {
		name   string
		method string
		path   string // on the HTTPS listener
		header http.Header
		body   []byte
		status int
		// problem is the problem type, or "" for a refusal Go's net/http
		// server answers itself, in text/plain, before any handler runs.
		problem string
	}{
		// Enrollment bodies.
		{name: "oversized body", method: "POST", path: api.EnrollPath, header: enrollH,
			body: bytes.Repeat([]byte("A"), 200<<10), status: 413, problem: "tooLarge"},
		{name: "CSR sent as image/png", method: "POST", path: api.EnrollPath, header: with(enrollH, "Content-Type", "image/png"),
			body: good, status: 400, problem: "malformed"},
		{name: "PEM sent as application/json", method: "POST", path: api.EnrollPath, header: with(enrollH, "Content-Type", "application/json"),
			body: good, status: 400, problem: "malformed"},
		{name: "unparseable Content-Type", method: "POST", path: api.EnrollPath, header: with(enrollH, "Content-Type", "text/plain; ;="),
			body: good, status: 400, problem: "malformed"},
		{name: "no Content-Type and no PEM", method: "POST", path: api.EnrollPath, header: http.Header{"Authorization": {"Bearer " + token}},
			body: []byte("hello"), status: 400, problem: "malformed"},
		{name: "application/pkcs10 that is not base64", method: "POST", path: api.EnrollPath, header: with(enrollH, "Content-Type", "application/pkcs10"),
			body: []byte("!!not base64!!"), status: 400, problem: "malformed"},
		{name: "garbage CSR", method: "POST", path: api.EnrollPath, header: enrollH,
			body: pemCSR([]byte("this is not DER at all, nor a CSR")), status: 400, problem: "badCSR"},
		{name: "garbage CSR in base64 DER", method: "POST", path: api.EnrollPath, header: with(enrollH, "Content-Type", "application/pkcs10"),
			body: []byte(base64.StdEncoding.EncodeToString([]byte{0x30, 0x82, 0xff, 0xff, 0})), status: 400, problem: "badCSR"},
		{name: "CSR with a bad signature", method: "POST", path: api.EnrollPath, header: enrollH,
			body: pemCSR(badSig), status: 400, problem: "badCSR"},
		{name: "two CSRs in one body", method: "POST", path: api.EnrollPath, header: enrollH,
			body: append(append([]byte{}, good...), good...), status: 400, problem: "malformed"},
		{name: "a certificate instead of a CSR", method: "POST", path: api.EnrollPath, header: enrollH,
			body: []byte(readFile(t, f.root)), status: 400, problem: "malformed"},
		{name: "CSR for another device", method: "POST", path: api.EnrollPath, header: enrollH,
			body: newCSRPEM(t, "hostile-2"), status: 400, problem: "badCSR"},
		{name: "SQL injection in the CSR's common name", method: "POST", path: api.EnrollPath, header: enrollH,
			body: newCSRPEM(t, "hostile-1' OR '1'='1"), status: 400, problem: "badCSR"},
		{name: "JSON enrollment with an unknown member", method: "POST", path: api.EnrollPath, header: with(enrollH, "Content-Type", "application/json"),
			body: []byte(`{"csr":` + string(mustJSON(t, string(good))) + `,"device_id":"hostile-2"}`), status: 400, problem: "malformed"},
		{name: "JSON enrollment with data after its object", method: "POST", path: api.EnrollPath, header: with(enrollH, "Content-Type", "application/json"),
			body: append(append([]byte{}, goodJSON...), []byte(` {"csr":"x"}`)...), status: 400, problem: "malformed"},
		{name: "JSON enrollment with a stray closing brace", method: "POST", path: api.EnrollPath, header: with(enrollH, "Content-Type", "application/json"),
			body: append(append([]byte{}, goodJSON...), '}'), status: 400, problem: "malformed"},
		{name: "CSR asking for CA:TRUE", method: "POST", path: api.EnrollPath, header: enrollH,
			body: pemCSR(csrWith(t, hostileDevice, caTrue)), status: 400, problem: "badCSR"},
		{name: "CSR asking for keyCertSign", method: "POST", path: api.EnrollPath, header: enrollH,
			body: pemCSR(csrWith(t, hostileDevice, keyCertSign)), status: 400, problem: "badCSR"},
		{name: "CSR asking for serverAuth", method: "POST", path: api.EnrollPath, header: enrollH,
			body: pemCSR(csrWith(t, hostileDevice, serverAuth)), status: 400, problem: "badCSR"},
		{name: "no enrollment token", method: "POST", path: api.EnrollPath, header: http.Header{"Content-Type": {"application/x-pem-file"}},
			body: good, status: 401, problem: "unauthorized"},
		{name: "a made-up enrollment token", method: "POST", path: api.EnrollPath, header: with(enrollH, "Authorization", "Bearer fleetca-et-AAAA' OR 1=1 --"),
			body: good, status: 401, problem: "unauthorized"},

		// The admin API: IDs, serials, routes and bodies.
		{name: "SQL injection in a device ID", method: "GET", path: api.AdminPrefix + "/devices/x'%20OR%20'1'%3D'1", header: adminH,
			status: 400, problem: "malformed"},
		{name: "path traversal in a device ID", method: "GET", path: api.AdminPrefix + "/devices/..%2F..%2Fetc%2Fpasswd", header: adminH,
			status: 400, problem: "malformed"},
		{name: "JSON injection in a token's device ID", method: "POST", path: api.AdminPrefix + "/tokens", header: adminH,
			body: []byte(`{"device_id":"a\",\"uses\":1000,\"x\":\""}`), status: 400, problem: "malformed"},
		{name: "a token for a device ID with a NUL", method: "POST", path: api.AdminPrefix + "/tokens", header: adminH,
			body: []byte(`{"device_id":"a\u0000b"}`), status: 400, problem: "malformed"},
		{name: "unknown admin route", method: "GET", path: api.AdminPrefix + "/nope", header: adminH,
			status: 404, problem: "notFound"},
		// echo answers a wrong method on an admin route 404, not 405:
		// the admin group's middleware routes what its routes do not take
		// to echo's not-found handler. A refusal all the same.
		{name: "a method no admin route takes", method: "DELETE", path: api.AdminPrefix + "/tokens", header: adminH,
			status: 404, problem: "notFound"},
		{name: "a method no route takes", method: "DELETE", path: api.EnrollPath, header: enrollH,
			status: 405, problem: "methodNotAllowed"},
		{name: "bad serial", method: "GET", path: api.AdminPrefix + "/certificates/not-hex", header: adminH,
			status: 400, problem: "malformed"},
		{name: "serial longer than any", method: "POST", path: api.AdminPrefix + "/certificates/" + strings.Repeat("f", 65) + "/revoke", header: adminH,
			status: 400, problem: "malformed"},
		{name: "revoking an unknown serial", method: "POST", path: api.AdminPrefix + "/certificates/0123456789abcdef/revoke", header: adminH,
			status: 404, problem: "notFound"},
		{name: "token list limit out of range", method: "GET", path: api.AdminPrefix + "/tokens?limit=100000", header: adminH,
			status: 400, problem: "malformed"},
		{name: "feed since that is not a number", method: "GET", path: api.FeedPath + "?since=-1", status: 400, problem: "malformed"},
		{name: "admin body with an unknown member", method: "POST", path: api.AdminPrefix + "/tokens", header: adminH,
			body: []byte(`{"device_id":"a10","admin":true}`), status: 400, problem: "malformed"},
		{name: "admin body as text/plain", method: "POST", path: api.AdminPrefix + "/tokens",
			header: with(adminH, "Content-Type", "text/plain"), body: []byte(`{"device_id":"a10"}`), status: 400, problem: "malformed"},
		{name: "admin body without a Content-Type", method: "POST", path: api.AdminPrefix + "/tokens",
			header: adminNoType, body: []byte(`{"device_id":"a10"}`), status: 400, problem: "malformed"},
		{name: "trailing JSON after an admin body", method: "POST", path: api.AdminPrefix + "/tokens", header: adminH,
			body: []byte(`{"device_id":"a10"} {"device_id":"a11"}`), status: 400, problem: "malformed"},
		{name: "ttl of 0s", method: "POST", path: api.AdminPrefix + "/tokens", header: adminH,
			body: []byte(`{"device_id":"a10","ttl":"0s"}`), status: 400, problem: "malformed"},
		{name: "negative ttl", method: "POST", path: api.AdminPrefix + "/tokens", header: adminH,
			body: []byte(`{"device_id":"a10","ttl":"-1h"}`), status: 400, problem: "malformed"},
		{name: "a * pattern token", method: "POST", path: api.AdminPrefix + "/tokens", header: adminH,
			body: []byte(`{"device_pattern":"*","uses":10}`), status: 400, problem: "malformed"},
		{name: "a ?* pattern token", method: "POST", path: api.AdminPrefix + "/tokens", header: adminH,
			body: []byte(`{"device_pattern":"?*","uses":10}`), status: 400, problem: "malformed"},
		{name: "any_device with a narrow pattern", method: "POST", path: api.AdminPrefix + "/tokens", header: adminH,
			body: []byte(`{"device_pattern":"line3-*","any_device":true}`), status: 400, problem: "malformed"},

		// Below the handlers: Go's net/http refuses a header block larger
		// than MaxHeaderBytes (64 KiB, plus the 4 KiB slack net/http adds)
		// with 431 in text/plain, before fleetca sees the request: an
		// exception to "every refusal is problem JSON" that web/doc.go
		// ("Transport-level refusals") documents (issue 12, item 12). A NUL
		// in the request line is another, checked over a raw connection
		// below.
		{name: "huge header", method: "GET", path: api.HealthPath,
			header: http.Header{"X-Big": {strings.Repeat("a", 128<<10)}}, status: 431},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := send(t.Context(), hc, tc.method, f.srv.httpsURL+tc.path, tc.header, tc.body)
			if err != nil {
				t.Fatalf("%s %s: %v", tc.method, tc.path, err)
			}
			wantRefusal(t, a, tc.status, tc.problem)
		})
	}

	t.Run("NUL in the request line", func(t *testing.T) {
		a := rawRequest(t, f, "GET /v1/admin/devices/a\x00b HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+admin+"\r\n\r\n")
		wantRefusal(t, a, 400, "")
	})

	// Nothing was written: no token minted, no device, no certificate, no
	// audit event; the token sent with every enrollment above kept its
	// use, and works.
	if n := auditEvents(); n != audited {
		t.Errorf("audit events after the hostile requests = %d, want %d as before them", n, audited)
	}
	var tokens api.TokenPage
	f.adminGET(api.AdminPrefix+"/tokens", &tokens)
	var ids []string
	for _, tk := range tokens.Tokens {
		ids = append(ids, tk.ID)
	}
	if diff := cmp.Diff([]string{tokenID}, ids); diff != "" {
		t.Errorf("tokens after the hostile requests (-want +got):\n%s", diff)
	}
	var devices api.DevicePage
	f.adminGET(api.AdminPrefix+"/devices", &devices)
	if len(devices.Devices) != 0 {
		t.Errorf("devices after the hostile requests = %+v, want none", devices.Devices)
	}
	if n := f.tokenSpent(tokenID); n != 0 {
		t.Errorf("the token's spent uses after the hostile requests = %d, want 0", n)
	}
	a, err := send(t.Context(), hc, "POST", f.srv.httpsURL+api.EnrollPath, enrollH, good)
	if err != nil {
		t.Fatal(err)
	}
	var got api.EnrollResponse
	if a.status != http.StatusCreated || json.Unmarshal(a.body, &got) != nil || got.DeviceID != hostileDevice {
		t.Errorf("enrollment with the token after the hostile requests: status %d, body %s; want 201 for %s", a.status, a.body, hostileDevice)
	}
}

// wantRefusal checks a refusal: its status, and its problem type (kind), or
// for kind "" Go's own text/plain answer.
func wantRefusal(t *testing.T, a answer, status int, kind string) {
	t.Helper()
	if a.status != status {
		t.Errorf("status = %d, want %d; Content-Type %q, body %.300q", a.status, status, a.header.Get("Content-Type"), a.body)
	}
	if kind == "" {
		if ct := a.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
			t.Errorf("Content-Type = %q, want Go's net/http text/plain; charset=utf-8", ct)
		}
		return
	}
	if got := a.problemType(); got != kind {
		t.Errorf("problem type = %q, want %q; Content-Type %q, body %.300q", got, kind, a.header.Get("Content-Type"), a.body)
	}
	var p problem
	if json.Unmarshal(a.body, &p) == nil && (p.Status != status || p.Detail == "") {
		t.Errorf("problem status, detail = %d, %q, want %d and a detail", p.Status, p.Detail, status)
	}
}

// rawRequest writes req as is over a TLS connection to f's HTTPS listener
// and reads one response.
func rawRequest(t *testing.T, f *fixture, req string) answer {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(readCerts(t, f.root)[0])
	host := strings.TrimPrefix(f.srv.httpsURL, "https://")
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: cmdTimeout}, Config: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}}
	conn, err := d.DialContext(t.Context(), "tcp", host)
	if err != nil {
		t.Fatalf("dial %s: %v", host, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(cmdTimeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatalf("write: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read the response: %v", err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	if _, err := body.ReadFrom(resp.Body); err != nil {
		t.Fatalf("read the response body: %v", err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: body.Bytes()}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
