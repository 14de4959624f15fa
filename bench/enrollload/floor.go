package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetca/fleetca/bench/benchutil"
)

// floorResult is the crypto an enrollment cannot do without, per
// certificate, for a P-256 device key and a P-256 intermediate (fleetca's
// defaults), each the median of several timed runs on one core.
type floorResult struct {
	csrCheck   time.Duration // csr.CheckSignature on a parsed P-256 CSR
	rawSign    time.Duration // SHA-256 of a device TBSCertificate + ecdsa.SignASN1
	createCert time.Duration // x509.CreateCertificate of a device-like template
	floorA     time.Duration // csrCheck + rawSign, timed together
	floorB     time.Duration // csrCheck + createCert, timed together
	// floorIssue is issue 19's floor, what any Go CA pays: the CSR's
	// parse and signature check plus x509.CreateCertificate, timed together.
	floorIssue time.Duration
	// floorIssueAll is floor I's CPU time per certificate with one worker
	// per CPU running it at once: the load keeps every core busy, and
	// cores that share caches and power run slower together.
	floorIssueAll time.Duration
	tbsBytes      int
	runs          int // timed runs behind each median (the fewest of any operation)
}

// measureFloor times the floor's operations, interleaved run by run so
// that a noisy moment hits all of them alike, on one locked OS thread.
//
// Floor A is the issue's definition: the CSR's signature check plus one
// ECDSA signature over a typical TBSCertificate. Floor B replaces the raw
// signature with x509.CreateCertificate, which is what a Go CA calls: it
// also encodes the certificate and verifies the signature it made (one
// more P-256 verification), which no Go CA can opt out of.
func measureFloor(runs int, each time.Duration) (floorResult, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	dev, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return floorResult{}, err
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "b-00000001"}}, dev)
	if err != nil {
		return floorResult{}, err
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return floorResult{}, err
	}
	caKey, issuer, err := floorIssuer()
	if err != nil {
		return floorResult{}, err
	}
	tmpl := deviceTemplate(issuer, &dev.PublicKey, "b-00000001", time.Now())
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &dev.PublicKey, caKey)
	if err != nil {
		return floorResult{}, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return floorResult{}, err
	}
	tbs := cert.RawTBSCertificate

	check := func() error { return csr.CheckSignature() }
	sign := func() error {
		digest := sha256.Sum256(tbs)
		_, err := ecdsa.SignASN1(rand.Reader, caKey, digest[:])
		return err
	}
	create := func() error {
		_, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &dev.PublicKey, caKey)
		return err
	}
	ops := []func() error{
		check,
		sign,
		create,
		func() error { return errors.Join(check(), sign()) },
		func() error { return errors.Join(check(), create()) },
		func() error {
			c, err := x509.ParseCertificateRequest(csrDER)
			if err != nil {
				return err
			}
			return errors.Join(c.CheckSignature(), create())
		},
	}
	samples := make([][]time.Duration, len(ops)+1)
	all := len(ops)
	for range runs {
		for i, op := range ops {
			d, err := benchutil.TimeOp(op, each)
			if err != nil {
				return floorResult{}, fmt.Errorf("crypto floor: %w", err)
			}
			samples[i] = append(samples[i], d)
		}
		d, err := timeOpAllCPUs(ops[len(ops)-1], each)
		if err != nil {
			return floorResult{}, fmt.Errorf("crypto floor: %w", err)
		}
		samples[all] = append(samples[all], d)
	}
	counts := make([]int, len(samples))
	for i := range samples {
		counts[i] = len(samples[i])
	}
	return floorResult{
		csrCheck:      benchutil.Median(samples[0]),
		rawSign:       benchutil.Median(samples[1]),
		createCert:    benchutil.Median(samples[2]),
		floorA:        benchutil.Median(samples[3]),
		floorB:        benchutil.Median(samples[4]),
		floorIssue:    benchutil.Median(samples[5]),
		floorIssueAll: benchutil.Median(samples[all]),
		tbsBytes:      len(tbs),
		runs:          slices.Min(counts),
	}, nil
}

// timeOpAllCPUs runs op in one goroutine per CPU for about d and returns
// this process's CPU time (getrusage) per call. The goroutines are not
// locked to threads: the CPU time, not the wall time, is what it divides.
func timeOpAllCPUs(op func() error, d time.Duration) (time.Duration, error) {
	workers := runtime.NumCPU()
	var (
		calls atomic.Int64
		errs  = make([]error, workers)
		wg    sync.WaitGroup
	)
	start, cpu0 := time.Now(), benchutil.SelfCPU()
	for w := range workers {
		wg.Go(func() {
			for { // at least one call each, however late the goroutine starts
				if err := op(); err != nil {
					errs[w] = err
					return
				}
				calls.Add(1)
				if time.Since(start) >= d {
					return
				}
			}
		})
	}
	wg.Wait()
	cpu := benchutil.SelfCPU().Sub(cpu0).Total()
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	if calls.Load() == 0 || cpu <= 0 {
		return 0, errors.New("no CPU time measured for the all-CPU floor")
	}
	return cpu / time.Duration(calls.Load()), nil
}

// floorIssuer makes a self-signed P-256 CA certificate that stands in for
// the intermediate.
func floorIssuer() (*ecdsa.PrivateKey, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Bench Intermediate CA", Organization: []string{"Bench"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(5 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          keyID(&key.PublicKey),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return key, cert, err
}

// deviceTemplate is a certificate like the ones ca.SignDevice issues
// (docs/ARCHITECTURE.md, "The contract"): CN and SPIFFE URI SAN, KU
// digitalSignature, EKU clientAuth, key identifiers, AIA, CRL distribution
// point, a 159-bit serial; for device id, issued at now.
func deviceTemplate(issuer *x509.Certificate, pub *ecdsa.PublicKey, id string, now time.Time) *x509.Certificate {
	const base = "http://127.0.0.1:8080"
	serial := make([]byte, 20)
	_, _ = rand.Read(serial)
	serial[0] &= 0x7f
	return &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(serial),
		Subject:               pkix.Name{CommonName: id},
		URIs:                  []*url.URL{{Scheme: "spiffe", Host: "bench", Path: "/device/" + id}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(90 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		SubjectKeyId:          keyID(pub),
		AuthorityKeyId:        issuer.SubjectKeyId,
		OCSPServer:            []string{base + "/ocsp"},
		IssuingCertificateURL: []string{base + "/intermediate.crt"},
		CRLDistributionPoints: []string{base + "/crl"},
		SignatureAlgorithm:    x509.ECDSAWithSHA256,
	}
}

// keyID is RFC 5280 §4.2.1.2 method 1 (SHA-1 of the public key bits), for
// an uncompressed P-256 point.
func keyID(pub *ecdsa.PublicKey) []byte {
	b, _ := pub.Bytes()
	sum := sha1.Sum(b)
	return sum[:]
}
