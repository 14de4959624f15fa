package proxy

import (
	"bufio"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fleetca/fleetca/verify"
)

// fakeClock is a settable clock with timers, for verify.CheckerDeps: its
// timers fire, synchronously, in advance.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at   time.Time
	f    func()
	done bool // fired or stopped; guarded by fakeClock.mu
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		stopped := !t.done
		t.done = true
		return stopped
	}
}

// advance moves the clock by d and runs the timers that are then due.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	for _, t := range c.timers {
		if !t.done && !t.at.After(c.now) {
			t.done = true
			due = append(due, t)
		}
	}
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

// writeCRL signs an empty CRL numbered n from pki's intermediate, valid
// [thisUpdate, thisUpdate+life), into path.
func (p *testPKI) writeCRL(t testing.TB, path string, n int64, thisUpdate time.Time, life time.Duration) {
	t.Helper()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(n), ThisUpdate: thisUpdate,
		NextUpdate: thisUpdate.Add(life)}, p.ca.Intermediate, p.ca.Signer)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

const staleMsg = "revocation data is stale: every device is refused and every open connection was closed"

// Connections let in while the CRL was fresh are closed at the instant it
// goes stale (past nextUpdate and the grace, here zero), HTTP keep-alive
// and TCP pipes alike, with one Error line and the metric; a fresher CRL
// loaded before the deadline keeps them open. A real verify.Checker runs
// on a fake clock whose timers the test fires.
func TestStaleClosesConnections(t *testing.T) {
	pki := newPKI(t, "Fleet")
	dev := pki.device(t, "dev-1")
	httpUp := newEchoUpstream(t)
	tcpUp := newTCPEchoUpstream(t, false)
	for _, tc := range []struct {
		name     string
		upstream string
		// open opens a connection and shows it works; use shows it still does.
		open func(t *testing.T, p *testProxy) (c net.Conn, use func())
	}{
		{"http-keep-alive", httpUp.URL, func(t *testing.T, p *testProxy) (net.Conn, func()) {
			cfg := pki.clientTLS(&dev)
			cfg.NextProtos = []string{"http/1.1"}
			c := p.dial(t, cfg)
			br := bufio.NewReader(c)
			rawGet(t, c, br, "/one")
			return c, func() { rawGet(t, c, br, "/again") }
		}},
		{"tcp-pipe", "tcp://" + tcpUp.addr, func(t *testing.T, p *testProxy) (net.Conn, func()) {
			c := p.dial(t, pki.clientTLS(&dev))
			echo(t, c, c, "before")
			return c, func() { echo(t, c, c, "again") }
		}},
	} {
		for _, fresh := range []bool{false, true} {
			name := tc.name + "/stale-closes"
			if fresh {
				name = tc.name + "/fresh-crl-keeps-open"
			}
			t.Run(name, func(t *testing.T) {
				clk := &fakeClock{now: time.Now()}
				path := filepath.Join(t.TempDir(), "crl.pem")
				pki.writeCRL(t, path, 1, clk.Now(), time.Hour)
				checker, err := verify.NewChecker(verify.CheckerConfig{CRL: path, Issuer: pki.ca.Intermediate, Grace: new(time.Duration(0))},
					verify.CheckerDeps{Now: clk.Now, AfterFunc: clk.AfterFunc})
				if err != nil {
					t.Fatal(err)
				}
				if err := checker.Refresh(t.Context()); err != nil {
					t.Fatal(err)
				}
				p := startProxy(t, pki, Config{Upstream: tc.upstream}, func(d *Deps) { d.Checker = checker; d.Now = clk.Now })
				c, use := tc.open(t, p)

				clk.advance(30 * time.Minute)
				if fresh {
					pki.writeCRL(t, path, 2, clk.Now(), time.Hour)
					if err := checker.Refresh(t.Context()); err != nil {
						t.Fatal(err)
					}
				}
				clk.advance(31 * time.Minute) // past CRL 1's nextUpdate (the timers have run when advance returns)
				if fresh {
					use()
					if got := testutil.ToFloat64(p.m.staleClosed); got != 0 {
						t.Errorf("stale_connections_closed_total = %v with a fresh CRL, want 0", got)
					}
					for _, e := range p.logs.all() {
						if e.matches(staleMsg) {
							t.Errorf("logged %q with a fresh CRL", staleMsg)
						}
					}
					return
				}
				waitClosed(t, c)
				if got := testutil.ToFloat64(p.m.staleClosed); got != 1 {
					t.Errorf("stale_connections_closed_total = %v, want 1", got)
				}
				e := p.logs.wait(t, staleMsg, "connections", int64(1))
				if e["level"] != "ERROR" || e["err"] == nil {
					t.Errorf("stale log line = %v, want level ERROR with the reason in err", e)
				}
				n := 0
				for _, e := range p.logs.all() {
					if e.matches(staleMsg) {
						n++
					}
				}
				if n != 1 {
					t.Errorf("%q logged %d times, want once", staleMsg, n)
				}
				// And a new handshake is refused.
				c2 := p.dial(t, pki.clientTLS(&dev))
				c2.SetReadDeadline(time.Now().Add(waitLimit))
				if _, err := c2.Read(make([]byte, 1)); !isRemoteAlert(err) {
					t.Fatalf("connect once stale: %v, want a TLS alert", err)
				}
			})
		}
	}
}
