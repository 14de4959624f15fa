package main

// The crash test: a real `fleetca serve` under concurrent enrollment and
// revocation load, killed with SIGKILL at a random moment, restarted, and
// checked: every write it acknowledged survived, and the store is sound.
// make test runs a few cycles; make soak runs many (its flags below).

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/store/boltstore"
)

// The size of TestCrashRecovery. make test takes the defaults (under a
// minute on two cores); make soak passes larger ones.
var (
	crashCycles  = flag.Int("crash.cycles", 4, "TestCrashRecovery: how many times the server is killed with SIGKILL and restarted")
	crashWorkers = flag.Int("crash.workers", 24, "TestCrashRecovery: concurrent HTTPS clients enrolling and revoking")
	crashWrites  = flag.Int("crash.writes", 200, "TestCrashRecovery: the kill comes after a random number from N to 2N of acknowledged writes per cycle")
)

// crashWait bounds one cycle's wait for its acknowledged writes: a server
// that stops acknowledging fails the test instead of hanging it.
const crashWait = 5 * time.Minute

// ledger is what the server acknowledged, across cycles.
type ledger struct {
	mu       sync.Mutex
	enrolled map[string]string // serial -> device ID, for every 201 enrollment
	revoked  map[string]bool   // serial, for every 200 revocation
	errs     []error           // answers that were neither an acknowledgement nor a lost connection
	acked    int               // acknowledged writes in this cycle
	target   int               // acked at which trip closes
	trip     chan struct{}
}

func (l *ledger) ack(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f()
	l.acked++
	if l.acked == l.target {
		close(l.trip)
	}
}

func (l *ledger) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) < 20 {
		l.errs = append(l.errs, err)
	}
}

func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	dbPath := filepath.Join(f.dataDir, "fleetca.db")
	l := &ledger{enrolled: map[string]string{}, revoked: map[string]bool{}}
	admin := f.adminToken()
	var lostTotal int
	for cycle := range *crashCycles {
		hc := f.loadClient(*crashWorkers, nil)
		token, _ := f.newToken(hc, api.TokenRequest{DevicePattern: fmt.Sprintf("crash-%d-*", cycle), Uses: 100_000})

		l.mu.Lock()
		l.acked, l.target, l.trip = 0, *crashWrites+mrand.IntN(*crashWrites+1), make(chan struct{})
		target, trip := l.target, l.trip
		l.mu.Unlock()

		ctx, cancel := context.WithCancel(t.Context())
		base := f.srv.httpsURL
		var workers sync.WaitGroup
		for w := range *crashWorkers {
			workers.Go(func() { crashWorker(ctx, hc, l, base, token, admin, cycle, w) })
		}
		select {
		case <-trip:
		case <-time.After(crashWait):
			cancel()
			workers.Wait()
			t.Fatalf("cycle %d: fewer than %d writes acknowledged within %s; answers: %v", cycle, target, crashWait, l.errs)
		}
		f.srv.kill(t)
		cancel()
		workers.Wait()
		hc.CloseIdleConnections()

		checkStoreFile(t, dbPath)
		// The audit log the kill left verifies: every row was appended in
		// its change's transaction, with its tree hashes; the rows since
		// the last checkpoint are young (the restart signs them).
		if r := f.fleetca("audit", "verify", "--dir", f.dataDir); r.code != 0 {
			t.Errorf("cycle %d: audit verify after kill -9: exit %d, stdout %s, stderr %s", cycle, r.code, r.stdout, r.stderr)
		}
		f.start()
		lost := f.lostWrites(l)
		lostTotal += lost
		l.mu.Lock()
		t.Logf("cycle %d: killed after %d acknowledged writes; acknowledged so far %d enrollments and %d revocations; lost %d",
			cycle, l.acked, len(l.enrolled), len(l.revoked), lost)
		l.mu.Unlock()
	}
	for _, err := range l.errs {
		t.Errorf("an answer that acknowledged nothing and was not a lost connection: %v", err)
	}
	t.Logf("crash test: %d kill -9 cycles, %d workers: acknowledged %d writes (%d enrollments, %d revocations), lost %d",
		*crashCycles, *crashWorkers, len(l.enrolled)+len(l.revoked), len(l.enrolled), len(l.revoked), lostTotal)
	if lostTotal != 0 {
		t.Errorf("lost %d acknowledged writes, want 0", lostTotal)
	}
}

// crashWorker enrolls new devices with the pattern token and revokes, every
// third request, a certificate it enrolled, until ctx ends. Only a 201
// enrollment and a 200 revocation acknowledge a write; a request the kill
// cut off acknowledged nothing.
func crashWorker(ctx context.Context, hc *http.Client, l *ledger, base, token, admin string, cycle, w int) {
	var mine []string
	for i := 0; ctx.Err() == nil; i++ {
		if i%3 == 2 && len(mine) > 0 {
			serial := mine[0]
			mine = mine[1:]
			a, err := send(ctx, hc, "POST", base+api.AdminPrefix+"/certificates/"+serial+"/revoke", adminHeader(admin),
				[]byte(`{"reason":"cessationOfOperation"}`))
			switch {
			case err != nil:
			case a.status == http.StatusOK:
				l.ack(func() { l.revoked[serial] = true })
			default:
				l.fail(fmt.Errorf("revoke %s: status %d, body %s; want 200", serial, a.status, a.body))
			}
			continue
		}
		device := fmt.Sprintf("crash-%d-%d-%d", cycle, w, i)
		csr, err := deviceCSR(device)
		if err != nil {
			l.fail(err)
			return
		}
		a, err := send(ctx, hc, "POST", base+api.EnrollPath, enrollHeader(token), csr)
		if err != nil {
			continue
		}
		var got api.EnrollResponse
		if a.status != http.StatusCreated || json.Unmarshal(a.body, &got) != nil || got.DeviceID != device || got.Serial == "" {
			l.fail(fmt.Errorf("enroll %s: status %d, body %s; want 201 for it", device, a.status, a.body))
			continue
		}
		l.ack(func() { l.enrolled[got.Serial] = device })
		mine = append(mine, got.Serial)
	}
}

// deviceCSR makes a P-256 key and a PEM CSR for CN=device; unlike
// newCSRPEM it may run on any goroutine.
func deviceCSR(device string) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: device}}, key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// kill ends the server with SIGKILL: no shutdown, no last write.
func (s *server) kill(t *testing.T) {
	t.Helper()
	s.stopped = true
	defer s.cancel()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("send SIGKILL to fleetca serve: %v", err)
	}
	<-s.eof
	var ee *exec.ExitError
	err := s.cmd.Wait()
	if !errors.As(err, &ee) {
		t.Fatalf("fleetca serve after SIGKILL: %v, want it killed", err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("fleetca serve after SIGKILL: %v, want it killed by SIGKILL", err)
	}
}

// checkStoreFile opens the bbolt file the killed server left and checks
// its pages and free list.
func checkStoreFile(t *testing.T, path string) {
	t.Helper()
	st, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		t.Fatalf("open the store a killed server left: %v", err)
	}
	if err := st.Check(t.Context()); err != nil {
		t.Errorf("the store a killed server left: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// lostWrites counts the acknowledged writes the restarted server does not
// have: an enrollment whose serial is not recorded for its device, or a
// revocation whose certificate is not revoked in the store, the revocation
// feed and the CRL. Each loss is also reported.
func (f *fixture) lostWrites(l *ledger) int {
	f.t.Helper()
	certs := map[string]api.Certificate{}
	after := ""
	for {
		var page api.CertificatePage
		f.adminGET(api.AdminPrefix+"/certificates?limit=1000&after="+url.QueryEscape(after), &page)
		for _, c := range page.Certificates {
			certs[c.Serial] = c
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	feed := map[string]bool{}
	var since uint64
	for {
		var page api.FeedResponse
		f.adminGET(api.FeedPath+"?"+api.FeedParamSince+"="+strconv.FormatUint(since, 10), &page)
		for _, e := range page.Revocations {
			feed[e.Serial] = true
		}
		if len(page.Revocations) == 0 {
			break
		}
		since = page.Last
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	poll := f.pollCRL(func(crl *x509.RevocationList) bool {
		n := 0
		for _, e := range crl.RevokedCertificateEntries {
			if l.revoked[e.SerialNumber.Text(16)] {
				n++
			}
		}
		return n == len(l.revoked)
	})
	inCRL := map[string]bool{}
	if poll.err != nil {
		f.t.Errorf("the restarted server's CRL: %v", poll.err)
	} else {
		for _, e := range poll.crl.RevokedCertificateEntries {
			inCRL[e.SerialNumber.Text(16)] = true
		}
	}
	lost := 0
	for serial, device := range l.enrolled {
		if c, ok := certs[serial]; !ok || c.DeviceID != device {
			f.t.Errorf("acknowledged enrollment of %s (serial %s) lost: the store has %+v", device, serial, c)
			lost++
		}
	}
	for serial := range l.revoked {
		if c := certs[serial]; c.RevokedAt == "" || !feed[serial] || (poll.err == nil && !inCRL[serial]) {
			f.t.Errorf("acknowledged revocation of %s lost: revoked_at %q, in the feed %v, in the CRL %v", serial, c.RevokedAt, feed[serial], inCRL[serial])
			lost++
		}
	}
	return lost
}
