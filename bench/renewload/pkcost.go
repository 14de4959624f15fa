package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"runtime"
	"time"

	"github.com/fleetca/fleetca/bench/benchutil"
)

// pkCost is the time of one P-256 operation of each kind the renewal and
// enrollment paths differ by, each the median of several timed runs on one
// locked OS thread: the yardstick of the bound the report prints beside
// each ratio.
type pkCost struct {
	verify time.Duration // ecdsa.VerifyASN1 of a SHA-256 digest (an ES256 JWT's, a CSR's, a certificate's, TLS's CertificateVerify)
	sign   time.Duration // ecdsa.SignASN1 of a SHA-256 digest (the client's TLS CertificateVerify)
}

// measurePK times a P-256 verification and signature, runs x each,
// interleaved so that a noisy moment hits both alike.
func measurePK(runs int, each time.Duration) (pkCost, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return pkCost{}, err
	}
	digest := sha256.Sum256([]byte("fleetca renewload"))
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		return pkCost{}, err
	}
	verify := func() error {
		if !ecdsa.VerifyASN1(&key.PublicKey, digest[:], sig) {
			return errors.New("P-256 signature does not verify")
		}
		return nil
	}
	sign := func() error {
		_, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
		return err
	}
	var vs, ss []time.Duration
	for range runs {
		v, err := benchutil.TimeOp(verify, each)
		if err != nil {
			return pkCost{}, err
		}
		s, err := benchutil.TimeOp(sign, each)
		if err != nil {
			return pkCost{}, err
		}
		vs, ss = append(vs, v), append(ss, s)
	}
	return pkCost{verify: benchutil.Median(vs), sign: benchutil.Median(ss)}, nil
}
