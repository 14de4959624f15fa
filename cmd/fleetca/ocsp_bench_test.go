package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// BenchmarkOCSPHTTP measures POST /ocsp answered from the responder's
// cache through the real serve wiring (runServe: net/http, echo and its
// middleware, the JSON request log to a file, metrics), driven over
// loopback by 8 keep-alive connections, one request in flight on each:
// bench/revocationload's OCSP phase in process, so that it can be
// profiled. The client is a lean one (requests serialized up front),
// labelled side=client:
//
//	go test ./cmd/fleetca -run '^$' -bench OCSPHTTP -benchtime 200000x -cpuprofile cpu.out
//	go tool pprof -top -tagignore side=client,setup cpu.out
//
// b.N counts answers; each is checked for the successful response status.
func BenchmarkOCSPHTTP(b *testing.B) {
	const devices, conc = 200, 8
	bs := benchStartServe(b)
	httpsURL := bs.httpsURL
	inter := benchIntermediate(b, bs.dir)
	client := benchClient(bs.roots, 8, "h1")
	defer client.CloseIdleConnections()
	u, err := url.Parse(bs.httpURL + "/ocsp")
	if err != nil {
		b.Fatal(err)
	}
	reqs := make([][]byte, 0, devices)
	for _, j := range bs.jobs(b, devices) {
		cert := benchEnrollCert(b, client, httpsURL, j)
		der, err := ocsp.CreateRequest(cert, inter, nil)
		if err != nil {
			b.Fatal(err)
		}
		reqs = append(reqs, benchOCSPPost(u, der))
	}
	// Warm the cache: every answer is signed once.
	benchOCSPLoad(b, u.Host, reqs, conc, len(reqs))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	benchOCSPLoad(b, u.Host, reqs, conc, b.N)
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "answers/s")
}

// benchIntermediate reads the data directory's intermediate certificate.
func benchIntermediate(b *testing.B, dir string) *x509.Certificate {
	b.Helper()
	pemBytes, err := os.ReadFile(filepath.Join(dir, "intermediate.pem"))
	if err != nil {
		b.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		b.Fatal("intermediate.pem holds no PEM block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		b.Fatal(err)
	}
	return cert
}

// benchEnrollCert enrolls one device and returns its certificate.
func benchEnrollCert(b *testing.B, client *http.Client, httpsURL string, j benchJob) *x509.Certificate {
	b.Helper()
	req, err := http.NewRequestWithContext(b.Context(), http.MethodPost, httpsURL+"/v1/enroll", bytes.NewReader(j.body))
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+j.token)
	req.Header.Set("Content-Type", "application/x-pem-file")
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Certificate string `json:"certificate"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated {
		b.Fatalf("enroll: status %d, %v", resp.StatusCode, err)
	}
	block, _ := pem.Decode([]byte(out.Certificate))
	if block == nil {
		b.Fatal("enroll: no certificate PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		b.Fatal(err)
	}
	return cert
}

// benchOCSPPost serializes a POST of an OCSP request to u.
func benchOCSPPost(u *url.URL, der []byte) []byte {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/ocsp-request\r\nContent-Length: %d\r\n\r\n",
		u.RequestURI(), u.Host, len(der))
	buf.Write(der)
	return buf.Bytes()
}

// benchOCSPLoad sends n of the serialized requests reqs to addr, round
// robin, from conc workers with a keep-alive connection each, labelled
// side=client; an answer that is not 200 with a successful OCSP response
// fails the benchmark.
func benchOCSPLoad(b *testing.B, addr string, reqs [][]byte, conc, n int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	pprof.Do(b.Context(), pprof.Labels("side", "client"), func(context.Context) {
		for w := range conc {
			wg.Go(func() {
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					b.Error(err)
					return
				}
				defer conn.Close()
				br := bufio.NewReader(conn)
				var body []byte
				for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
					if _, err := conn.Write(reqs[(int(i)+w)%len(reqs)]); err != nil {
						b.Error(err)
						return
					}
					if body, err = benchReadAnswer(br, body); err != nil {
						b.Error(err)
						return
					}
					// SEQUENCE, length, ENUMERATED 0: successful (RFC 6960 §4.2.1).
					if len(body) < 7 || !bytes.Contains(body[:7], []byte{0x0a, 0x01, 0x00}) {
						b.Errorf("OCSP answer is not successful: % x", body[:min(len(body), 8)])
						return
					}
				}
			})
		}
	})
	wg.Wait()
}

// benchReadAnswer reads one HTTP/1.1 answer with a Content-Length into
// buf and returns its body; anything but 200 is an error.
func benchReadAnswer(br *bufio.Reader, buf []byte) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
		return nil, fmt.Errorf("status line %q", line)
	}
	length := -1
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(v))); err != nil || length > 1<<16 {
				return nil, fmt.Errorf("Content-Length %q", v)
			}
		}
	}
	if length < 0 {
		return nil, fmt.Errorf("answer without Content-Length")
	}
	if cap(buf) < length {
		buf = make([]byte, length)
	}
	buf = buf[:length]
	_, err = io.ReadFull(br, buf)
	return buf, err
}
