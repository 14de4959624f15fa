package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fleetca/fleetca/bench/benchutil"
	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/verify"
)

// crlResult is the crl phase.
type crlResult struct {
	entries          int
	signTime         time.Duration // making the entries and SignCRL
	derBytes         int
	pemBytes         int
	parse            parseStats
	fleet, nginx     *reloadStats
	level            *levelResult
	fleetBig, fleetA string // target names
	nginxBig, nginxA string
}

// parseStats is verify.ParseCRL of the big CRL, in this process.
type parseStats struct {
	elapsed   time.Duration
	allocated uint64 // bytes allocated during the call
	retained  uint64 // live heap it adds once collected: the *CRL
}

// reloadStats is one proxy switching to the big CRL.
type reloadStats struct {
	refused     time.Duration // from the signal until the canary is refused
	settled     time.Duration // nginx: until the old workers are gone
	memBefore   int64         // fleetca: VmRSS; nginx: PSS of master and workers
	memAfter    int64         // the same once switched (and after the handshake runs)
	peak        int64         // fleetca: VmHWM
	err         string        // why it did not switch
	memAfterRun int64
}

// crlServer serves one CRL at /crl, with an ETag, and lets it be swapped:
// the big CRL's distribution point for the second fleetca proxy.
type crlServer struct {
	cur  atomic.Pointer[crlFile]
	srv  *http.Server
	addr string
}

type crlFile struct {
	der  []byte
	etag string
	mod  time.Time
}

func newCRLServer(der []byte) (*crlServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &crlServer{addr: ln.Addr().String()}
	s.set(der)
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

func (s *crlServer) set(der []byte) {
	sum := sha256.Sum256(der)
	s.cur.Store(&crlFile{der: der, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, mod: time.Now()})
}

func (s *crlServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := s.cur.Load()
	w.Header().Set("Content-Type", "application/pkix-crl")
	w.Header().Set("ETag", f.etag)
	http.ServeContent(w, r, "", f.mod, bytes.NewReader(f.der))
}

// runCRLPhase makes the big CRL, switches a second fleetca proxy and a
// second nginx to it, and measures handshakes with and without it.
func runCRLPhase(ctx context.Context, o options, e *env, tmp string, logf func(string, ...any)) (*crlResult, error) {
	res := &crlResult{entries: o.crlSize}
	smallDER, err := e.get(ctx, "/crl")
	if err != nil {
		return nil, err
	}
	small, err := x509.ParseRevocationList(smallDER)
	if err != nil {
		return nil, fmt.Errorf("the CA's CRL: %w", err)
	}

	// The second fleetca proxy and nginx start on the CA's CRL, as the
	// first ones did.
	cs, err := newCRLServer(smallDER)
	if err != nil {
		return nil, err
	}
	defer cs.srv.Close()
	res.fleetA, res.fleetBig = e.fleet.name, "fleetca proxy, big CRL"
	fb, fbAddr, err := e.startFleet(ctx, res.fleetBig, filepath.Join(tmp, "fleetca-proxy-bigcrl.log"), "http://"+cs.addr)
	if err != nil {
		return nil, err
	}
	defer fb.stop(15 * time.Second) // its memory, back for what follows
	fleetBig := &target{name: res.fleetBig, addr: fbAddr, tls: true, cpu: func() (benchutil.CPUTimes, error) { return benchutil.ProcCPU(fb.pid()) }}
	var ngBig *nginxInstance
	var nginxBig *target
	if e.nginx != nil {
		res.nginxA, res.nginxBig = e.nginx.name, "nginx, big CRL"
		if ngBig, err = e.startNginx(ctx, "nginx big CRL", e.smallCRL); err != nil {
			return nil, err
		}
		defer ngBig.stop(10 * time.Second)
		nginxBig = &target{name: res.nginxBig, addr: ngBig.addr, tls: true, cpu: func() (benchutil.CPUTimes, error) { return benchutil.TreeCPU(ngBig.pid()) }}
	}
	for _, t := range []*target{fleetBig, nginxBig} {
		if t == nil {
			continue
		}
		if status, err := newConn(t, e.canary.tls).oneShot(); err != nil || status != 200 {
			return nil, fmt.Errorf("%s: the canary is not let in before the big CRL: status %d, %v", t.name, status, err)
		}
	}

	logf("crl phase: signing a CRL of %d entries with the intermediate, in process", o.crlSize)
	der, err := bigCRL(ctx, e, o.crlSize, new(big.Int).Add(small.Number, big.NewInt(1_000_000)))
	if err != nil {
		return nil, err
	}
	res.signTime, res.derBytes = der.elapsed, len(der.der)
	bigPEM := append(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der.der}), e.rootCRL...)
	res.pemBytes = len(bigPEM)
	logf("signed in %v: %.1f MiB DER", der.elapsed.Round(time.Millisecond), float64(len(der.der))/(1<<20))
	res.parse, err = measureParse(der.der, e.inter)
	if err != nil {
		return nil, err
	}
	logf("verify.ParseCRL, in process: %v, %.0f MiB allocated, %.0f MiB retained",
		res.parse.elapsed.Round(time.Millisecond), mib(int64(res.parse.allocated)), mib(int64(res.parse.retained)))

	// fleetca: serve the big CRL where the proxy fetches its CRL, SIGHUP.
	res.fleet = &reloadStats{memBefore: benchutil.RSS(fb.pid())}
	cs.set(der.der)
	t0 := time.Now()
	if err := fb.signal(syscall.SIGHUP); err != nil {
		return nil, err
	}
	res.fleet.refused, err = waitRefused(ctx, fleetBig, e.canary, t0, 60*time.Second, o.poll)
	if err != nil {
		res.fleet.err = err.Error()
	}
	res.fleet.memAfter, res.fleet.peak = benchutil.RSS(fb.pid()), benchutil.PeakRSS(fb.pid())
	logf("fleetca proxy: SIGHUP -> canary refused in %v; RSS %.0f -> %.0f MiB (peak %.0f MiB)%s", res.fleet.refused.Round(time.Millisecond),
		mib(res.fleet.memBefore), mib(res.fleet.memAfter), mib(res.fleet.peak), errNote(res.fleet.err))

	// nginx: the new CRL file, then SIGHUP (nginx -s reload).
	if ngBig != nil {
		res.nginx = &reloadStats{memBefore: benchutil.TreePSS(ngBig.pid())}
		old := ngBig.workers()
		if err := os.WriteFile(ngBig.cfg.CRL, bigPEM, 0o644); err != nil {
			return nil, err
		}
		t0 := time.Now()
		if err := ngBig.signal(syscall.SIGHUP); err != nil {
			return nil, err
		}
		res.nginx.refused, err = waitRefused(ctx, nginxBig, e.canary, t0, 60*time.Second, o.poll)
		if err != nil {
			res.nginx.err = err.Error()
		} else if err := ngBig.waitWorkers(ctx, old, 60*time.Second); err != nil {
			res.nginx.err = err.Error()
		}
		res.nginx.settled = time.Since(t0)
		res.nginx.memAfter = benchutil.TreePSS(ngBig.pid())
		logf("nginx: SIGHUP -> canary refused in %v, old workers gone in %v; PSS %.0f -> %.0f MiB%s", res.nginx.refused.Round(time.Millisecond),
			res.nginx.settled.Round(time.Millisecond), mib(res.nginx.memBefore), mib(res.nginx.memAfter), errNote(res.nginx.err))
	}

	targets := []*target{e.fleet, fleetBig}
	if nginxBig != nil && res.nginx.err == "" {
		targets = append(targets, e.nginx, nginxBig)
	}
	logf("crl phase: handshakes at concurrency %d, %d x %v per target", o.crlConc, o.reps, o.duration)
	levels, err := runLevels(ctx, o, e, targets, []int{o.crlConc}, modeHandshake, logf)
	if err != nil {
		return nil, err
	}
	res.level = &levels[0]
	res.fleet.memAfterRun = benchutil.RSS(fb.pid())
	res.fleet.peak = benchutil.PeakRSS(fb.pid())
	if ngBig != nil {
		res.nginx.memAfterRun = benchutil.TreePSS(ngBig.pid())
	}
	if err := fb.alive(); err != nil {
		return nil, err
	}
	return res, nil
}

// signedCRL is the big CRL.
type signedCRL struct {
	der     []byte
	elapsed time.Duration
}

// bigCRL signs, with the data directory's intermediate, a CRL of n random
// 20-octet serials (revoked within the last 30 days, mixed reasons) plus
// the canary's, numbered number.
func bigCRL(ctx context.Context, e *env, n int, number *big.Int) (signedCRL, error) {
	auth, err := benchutil.OpenCA(ctx, e.srv.Dir)
	if err != nil {
		return signedCRL{}, err
	}
	defer auth.Close()
	start := time.Now()
	now := start.UTC().Truncate(time.Second)
	reasons := []int{0, 1, 3, 4, 5}
	entries := make([]x509.RevocationListEntry, n+1)
	buf := make([]byte, 20)
	for i := range n {
		_, _ = rand.Read(buf)
		buf[0] = buf[0]&0x7f | 0x01 // positive, 20 octets
		entries[i] = x509.RevocationListEntry{SerialNumber: new(big.Int).SetBytes(buf),
			RevocationTime: now.Add(-time.Duration(mrand.Int64N(int64(30 * 24 * time.Hour)))).Truncate(time.Second), ReasonCode: reasons[i%len(reasons)]}
	}
	// The canary in the middle, where a scan that stops early would not
	// find it by luck.
	mid := n / 2
	entries[n] = entries[mid]
	entries[mid] = x509.RevocationListEntry{SerialNumber: e.canary.cert.SerialNumber, RevocationTime: now, ReasonCode: 4}
	der, err := auth.SignCRL(ctx, ca.CRLTemplate{Number: number, ThisUpdate: now, NextUpdate: now.Add(24 * time.Hour), Entries: entries})
	if err != nil {
		return signedCRL{}, fmt.Errorf("sign the big CRL: %w", err)
	}
	return signedCRL{der: der, elapsed: time.Since(start)}, nil
}

// measureParse times verify.ParseCRL of der and the memory it
// allocates and keeps.
func measureParse(der []byte, issuer *x509.Certificate) (parseStats, error) {
	var before, after, kept runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	t0 := time.Now()
	crl, err := verify.ParseCRL(der, issuer)
	elapsed := time.Since(t0)
	if err != nil {
		return parseStats{}, fmt.Errorf("verify.ParseCRL of the big CRL: %w", err)
	}
	runtime.ReadMemStats(&after)
	runtime.GC()
	runtime.ReadMemStats(&kept)
	s := parseStats{elapsed: elapsed, allocated: after.TotalAlloc - before.TotalAlloc}
	if kept.HeapAlloc > before.HeapAlloc {
		s.retained = kept.HeapAlloc - before.HeapAlloc
	}
	runtime.KeepAlive(crl)
	debug.FreeOSMemory() // the client's memory back before the proxies load theirs
	return s, nil
}

// waitRefused tries a new handshake as dev through t every poll until one
// is refused, and returns the time from t0 to the end of that attempt.
func waitRefused(ctx context.Context, t *target, dev *device, t0 time.Time, timeout, poll time.Duration) (time.Duration, error) {
	c := newConn(t, dev.tls)
	deadline := t0.Add(timeout)
	for {
		start := time.Now()
		status, err := c.oneShot()
		if refusal(status, err) {
			return time.Since(t0), nil
		}
		if err != nil {
			return time.Since(t0), fmt.Errorf("%s: %w", t.name, err)
		}
		if time.Now().After(deadline) {
			return time.Since(t0), fmt.Errorf("%s still let %s in after %v", t.name, dev.id, timeout)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(poll - time.Since(start)):
		}
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func errNote(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}
