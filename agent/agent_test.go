package agent

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.step.sm/crypto/minica"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/client"
	"github.com/fleetca/fleetca/internal/fault"
)

// fakeCA implements CA with the renewal contract's rules, on the clock of
// the test's bubble: only the newest certificate of a device renews
// (else Conflict), a retry (same predecessor, same key) returns the
// certificate already issued, a revoked device is Forbidden. Scripted
// failures come first.
type fakeCA struct {
	t        *testing.T
	mca      *minica.CA
	validity time.Duration

	mu sync.Mutex
	// fail are the errors the next Renew calls return, in order.
	fail []error
	// loseAnswer issues the next certificate, then returns Unavailable,
	// as if the answer were lost on the way.
	loseAnswer bool
	revoked    bool
	// renewNow moves the window of every certificate issued before it to
	// start at it (an admin's renew-now).
	renewNow   time.Time
	retryAfter time.Duration // renewal-info's Retry-After
	infoErr    error

	certs  map[string]*x509.Certificate // by serial
	newest string
	issued map[string]*client.Renewal // by predecessor serial and key
	calls  []renewCall
	checks []time.Time // when renewal-info was asked
}

type renewCall struct {
	at     time.Time
	serial string
	token  bool
	rekey  bool
}

func newFakeCA(t *testing.T, validity time.Duration) *fakeCA {
	t.Helper()
	mca, err := minica.New()
	if err != nil {
		t.Fatal(err)
	}
	return &fakeCA{t: t, mca: mca, validity: validity, certs: map[string]*x509.Certificate{}, issued: map[string]*client.Renewal{}}
}

// issue signs a certificate for pub valid from now for the CA's validity.
func (f *fakeCA) issue(cn string, pub crypto.PublicKey, parent string) *client.Renewal {
	now := time.Now()
	leaf, err := f.mca.Sign(&x509.Certificate{Subject: pkix.Name{CommonName: cn}, PublicKey: pub, NotBefore: now, NotAfter: now.Add(f.validity),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature})
	if err != nil {
		f.t.Fatal(err)
	}
	chain := []*x509.Certificate{leaf, f.mca.Intermediate}
	f.certs[serialHex(leaf)] = leaf
	f.newest = serialHex(leaf)
	return &client.Renewal{EnrollResponse: api.EnrollResponse{DeviceID: cn, Serial: serialHex(leaf), Chain: chainPEM(chain), ParentSerial: parent}, Certs: chain}
}

// device enrolls a new device: it writes its key and certificate into a
// new directory, and returns cfg with their files.
func (f *fakeCA) device(cfg Config) Config {
	f.t.Helper()
	dir := f.t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	ren := f.issue("dev-1", key.Public(), "")
	f.mu.Unlock()
	cfg.CertFile, cfg.KeyFile = filepath.Join(dir, "device.crt"), filepath.Join(dir, "device.key")
	b, err := keyPEM(key)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(cfg.KeyFile, b, 0o600); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(cfg.CertFile, []byte(ren.Chain), 0o644); err != nil {
		f.t.Fatal(err)
	}
	return cfg
}

func (f *fakeCA) Renew(_ context.Context, req client.RenewRequest) (*client.Renewal, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	leaf := req.Chain[0]
	f.calls = append(f.calls, renewCall{at: time.Now(), serial: serialHex(leaf), token: req.Token, rekey: req.CSR != nil})
	if len(f.fail) > 0 {
		err := f.fail[0]
		f.fail = f.fail[1:]
		return nil, err
	}
	if !req.Token && !time.Now().Before(leaf.NotAfter) {
		return nil, fault.Wrap(client.ErrCertificateExpired, fault.Unauthorized, "expired", "use the token")
	}
	if f.revoked {
		return nil, fault.New(fault.Forbidden, "device dev-1 is revoked", "")
	}
	pub := leaf.PublicKey
	if req.CSR != nil {
		csr, err := x509.ParseCertificateRequest(req.CSR)
		if err != nil || csr.CheckSignature() != nil {
			return nil, fault.New(fault.BadCSR, "bad CSR", "")
		}
		pub = csr.PublicKey
	}
	spki, _ := x509.MarshalPKIXPublicKey(pub)
	id := fmt.Sprintf("%s/%x", serialHex(leaf), sha256.Sum256(spki))
	if prev, ok := f.issued[id]; ok {
		again := *prev
		again.Retry = true
		return &again, nil
	}
	if serialHex(leaf) != f.newest {
		return nil, fault.New(fault.Conflict, "certificate "+serialHex(leaf)+" is not the newest of dev-1", "")
	}
	ren := f.issue(leaf.Subject.CommonName, pub, serialHex(leaf))
	f.issued[id] = ren
	if f.loseAnswer {
		f.loseAnswer = false
		return nil, fault.New(fault.Unavailable, "the answer was lost", "try again")
	}
	return ren, nil
}

func (f *fakeCA) RenewalInfo(_ context.Context, serial string) (api.RenewalInfo, time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checks = append(f.checks, time.Now())
	if f.infoErr != nil {
		return api.RenewalInfo{}, 0, f.infoErr
	}
	c, ok := f.certs[serial]
	if !ok {
		return api.RenewalInfo{}, 0, fault.New(fault.NotFound, "no certificate "+serial, "")
	}
	start := twoThirds(c)
	if !f.renewNow.IsZero() && c.NotBefore.Before(f.renewNow) {
		start = f.renewNow
	}
	return api.RenewalInfo{SuggestedWindow: api.Window{Start: start, End: c.NotAfter}}, f.retryAfter, nil
}

// callTimes are the times of the Renew calls, relative to t0.
func (f *fakeCA) callTimes(t0 time.Time) []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []time.Duration
	for _, c := range f.calls {
		out = append(out, c.at.Sub(t0))
	}
	return out
}

func chainPEM(certs []*x509.Certificate) string {
	var b strings.Builder
	for _, c := range certs {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	return b.String()
}

// agentRun is a Renewer running Run in the background.
type agentRun struct {
	r      *Renewer
	cancel context.CancelFunc
	done   chan error
	execs  int
}

// startRun starts Run on ca's device files, stopping it after the
// renewals-th renewal's exec (0: never; the test cancels).
func startRun(t *testing.T, ca *fakeCA, cfg Config, deps Deps, renewals int, afterExec func(n int)) *agentRun {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	a := &agentRun{cancel: cancel, done: make(chan error, 1)}
	deps.CA = ca
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	deps.Exec = func(context.Context) error {
		a.execs++
		if afterExec != nil {
			afterExec(a.execs)
		}
		if a.execs == renewals {
			cancel()
		}
		return nil
	}
	r := newRenewer(t, cfg, deps)
	a.r = r
	go func() { a.done <- r.Run(ctx) }()
	return a
}

// newRenewer is New, failing the test on error.
func newRenewer(t *testing.T, cfg Config, deps Deps) *Renewer {
	t.Helper()
	r, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (a *agentRun) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-a.done:
		return err
	case <-t.Context().Done():
		t.Fatal("Run did not return")
		return nil
	}
}

func noJitter() float64 { return 0 }

// TestRunSleepsUntilTheWindow: a fresh certificate is renewed when its
// window opens, not before; the window is looked at every check interval
// meanwhile.
func TestRunSleepsUntilTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		ca := newFakeCA(t, 240*time.Hour) // window at 160h, two thirds
		cfg := ca.device(Config{CheckInterval: 6 * time.Hour})
		a := startRun(t, ca, cfg, Deps{Rand: noJitter}, 1, nil)
		if err := a.wait(t); err != nil {
			t.Fatalf("Run = %v, want nil once stopped", err)
		}
		if got, want := ca.callTimes(t0), []time.Duration{160 * time.Hour}; !cmp.Equal(got, want) {
			t.Errorf("renewed at %v after enrollment, want %v (the window's start)", got, want)
		}
		var want []time.Duration
		for h := time.Duration(0); h < 160*time.Hour; h += 6 * time.Hour {
			want = append(want, h)
		}
		want = append(want, 160*time.Hour, 160*time.Hour) // the window opens; the new certificate's window
		var got []time.Duration
		for _, c := range ca.checks {
			got = append(got, c.Sub(t0))
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("renewal-info checks after enrollment (-want +got):\n%s", diff)
		}
		if a.execs != 1 {
			t.Errorf("exec ran %d times, want once", a.execs)
		}
	})
}

// TestRunSeesRenewNow: an admin's renew-now is seen at the next check.
func TestRunSeesRenewNow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		ca := newFakeCA(t, 90*24*time.Hour)
		cfg := ca.device(Config{})
		time.AfterFunc(13*time.Hour, func() { ca.mu.Lock(); ca.renewNow = time.Now(); ca.mu.Unlock() })
		a := startRun(t, ca, cfg, Deps{Rand: noJitter}, 1, nil)
		if err := a.wait(t); err != nil {
			t.Fatal(err)
		}
		if got, want := ca.callTimes(t0), []time.Duration{18 * time.Hour}; !cmp.Equal(got, want) {
			t.Errorf("renewed at %v after enrollment, want %v (the first check after the renew-now at 13h)", got, want)
		}
	})
}

// TestRunHonoursRetryAfter: a renewal-info Retry-After shorter than the
// check interval sets the next check; a 429's Retry-After sets the next
// try.
func TestRunHonoursRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		ca := newFakeCA(t, 90*24*time.Hour)
		ca.retryAfter = time.Hour
		ca.fail = []error{&fault.Error{Kind: fault.RateLimited, Detail: "renewed too recently", RetryAfter: 45 * time.Minute}}
		cfg := ca.device(Config{RetryMin: time.Second, RetryMax: time.Second})
		time.AfterFunc(13*time.Hour+30*time.Minute, func() { ca.mu.Lock(); ca.renewNow = time.Now(); ca.mu.Unlock() })
		a := startRun(t, ca, cfg, Deps{Rand: noJitter}, 1, nil)
		if err := a.wait(t); err != nil {
			t.Fatal(err)
		}
		want := []time.Duration{14 * time.Hour, 14*time.Hour + 45*time.Minute}
		if got := ca.callTimes(t0); !cmp.Equal(got, want) {
			t.Errorf("renewal tries at %v after enrollment, want %v (the hourly check after the renew-now, then the 429's Retry-After)", got, want)
		}
	})
}

// TestRunBacksOff: while the CA is unavailable the tries space out
// exponentially with jitter up to the cap; after a success the backoff
// starts over.
func TestRunBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ca := newFakeCA(t, 90*24*time.Hour)
		down := fault.New(fault.Unavailable, "cannot reach the CA", "")
		ca.fail = []error{down, down, down, down, down}
		cfg := ca.device(Config{RetryMin: 10 * time.Second, RetryMax: time.Minute})
		time.Sleep(time.Second)
		t0 := time.Now()
		ca.renewNow = t0 // due at once
		jitter := []float64{0, 0.5, 0.25, 0.75, 0.5}
		rnd := func() float64 {
			if len(jitter) == 0 {
				return 0
			}
			j := jitter[0]
			jitter = jitter[1:]
			return j
		}
		var second time.Time
		a := startRun(t, ca, cfg, Deps{Rand: rnd}, 2,
			func(n int) {
				if n == 1 { // due again in a second, and the CA is down once more
					ca.mu.Lock()
					second = time.Now().Add(time.Second)
					ca.renewNow, ca.fail = second, []error{down}
					ca.mu.Unlock()
				}
			})
		if err := a.wait(t); err != nil {
			t.Fatal(err)
		}
		// Waits: 10s·[1/2,1) = 5s, 20s → 15s, 40s → 25s, 60s (capped from 80s) → 52.5s, 60s → 45s.
		want := []time.Duration{0, 5 * time.Second, 20 * time.Second, 45 * time.Second, 97500 * time.Millisecond, 142500 * time.Millisecond}
		// After the success: a try when due, then 10s·1/2 = 5s again.
		want = append(want, second.Sub(t0), second.Sub(t0)+5*time.Second)
		if got := ca.callTimes(t0); !cmp.Equal(got, want) {
			t.Errorf("tries at %v, want %v", got, want)
		}
	})
}

// TestRunUsesTheTokenAfterExpiry: a device back after its certificate
// expired renews with the renewal token; one whose CA finds it expired
// first (clock skew) switches to the token at once.
func TestRunUsesTheTokenAfterExpiry(t *testing.T) {
	for _, tc := range []struct {
		name    string
		offline time.Duration
		fail    []error
		want    []bool // token, per try
	}{
		{"expired", 11 * 24 * time.Hour, nil, []bool{true}},
		{"expired-by-the-CA-clock", 9 * 24 * time.Hour, []error{fault.Wrap(client.ErrCertificateExpired, fault.Unauthorized, "expired", "")}, []bool{false, true}},
		{"valid", 9 * 24 * time.Hour, nil, []bool{false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ca := newFakeCA(t, 10*24*time.Hour)
				cfg := ca.device(Config{})
				ca.fail = tc.fail
				time.Sleep(tc.offline)
				a := startRun(t, ca, cfg, Deps{}, 1, nil)
				if err := a.wait(t); err != nil {
					t.Fatal(err)
				}
				var got []bool
				for _, c := range ca.calls {
					got = append(got, c.token)
				}
				if !cmp.Equal(got, tc.want) {
					t.Errorf("tries with a token: %v, want %v", got, tc.want)
				}
			})
		})
	}
}

// TestRunStopsOnRefusal: a refusal that trying again cannot change ends
// Run with that fault and a hint; unavailable is tried again.
func TestRunStopsOnRefusal(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		tries int
		kind  fault.Kind // 0: Run goes on
	}{
		{"revoked", fault.New(fault.Forbidden, "device dev-1 is revoked", "enroll it again"), 1, fault.Forbidden},
		{"revoked/no-hint", fault.New(fault.AlreadyRevoked, "certificate 1a is revoked", ""), 1, fault.AlreadyRevoked},
		{"older-certificate", fault.New(fault.Conflict, "not the newest", ""), 1, fault.Conflict},
		{"past-grace", fault.New(fault.Unauthorized, "expired too long ago", ""), 1, fault.Unauthorized},
		{"bad-request", fault.New(fault.Malformed, "bad", ""), 1, fault.Malformed},
		{"unavailable", fault.New(fault.Unavailable, "cannot reach the CA", ""), 2, 0},
		{"rate-limited", fault.New(fault.RateLimited, "renewed too recently", ""), 2, 0},
		{"internal", errors.New("disk full"), 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ca := newFakeCA(t, 24*time.Hour)
				cfg := ca.device(Config{})
				ca.renewNow = time.Now().Add(time.Nanosecond)
				ca.fail = []error{tc.err}
				a := startRun(t, ca, cfg, Deps{}, 1, nil)
				err := a.wait(t)
				if len(ca.calls) != tc.tries {
					t.Errorf("%d tries, want %d", len(ca.calls), tc.tries)
				}
				if tc.kind == 0 {
					if err != nil {
						t.Errorf("Run = %v, want it to try again and renew", err)
					}
					return
				}
				fe, ok := errors.AsType[*fault.Error](err)
				if !ok || fe.Kind != tc.kind || fe.Hint == "" {
					t.Errorf("Run = %#v, want a %v fault with a hint", err, tc.kind)
				}
			})
		})
	}
}

// TestOnce: not due, it says when; forced, it renews (and rekeys); when
// the CA cannot say, it is due at two thirds of the validity.
func TestOnce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		infoErr error
		later   time.Duration
		renewed bool
		dueFrom string
		due     time.Duration // after enrollment
	}{
		{"not-due", Config{}, nil, time.Hour, false, "the CA", 160 * time.Hour},
		{"not-due/ca-cannot-say", Config{}, fault.New(fault.Unavailable, "down", ""), time.Hour, false, "two thirds of its validity", 160 * time.Hour},
		{"due", Config{}, nil, 161 * time.Hour, true, "", 0},
		{"forced", Config{Force: true}, nil, time.Hour, true, "", 0},
		{"forced/rekey", Config{Force: true, Rekey: true}, nil, time.Hour, true, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				t0 := time.Now()
				ca := newFakeCA(t, 240*time.Hour)
				ca.infoErr = tc.infoErr
				cfg := ca.device(tc.cfg)
				before := readState(t, cfg)
				time.Sleep(tc.later)
				execs := 0
				r := newRenewer(t, cfg, Deps{CA: ca, Exec: func(context.Context) error { execs++; return nil }})
				out, err := r.Once(t.Context())
				if err != nil {
					t.Fatalf("Once = %v", err)
				}
				after := readState(t, cfg)
				if !tc.renewed {
					if out.Renewed || out.DueFrom != tc.dueFrom || !out.Due.Equal(t0.Add(tc.due)) || execs != 0 || after.serial != before.serial {
						t.Errorf("Once = %+v, %d execs, want not renewed, due at +%v from %s, no exec", out, execs, tc.due, tc.dueFrom)
					}
					return
				}
				if !out.Renewed || out.Serial != after.serial || out.ParentSerial != before.serial || after.serial == before.serial || execs != 1 {
					t.Errorf("Once = %+v, %d execs; files %s, was %s; want renewed, the new serial in the file, one exec", out, execs, after.serial, before.serial)
				}
				if rekeyed := after.key != before.key; rekeyed != tc.cfg.Rekey || out.Rekeyed != tc.cfg.Rekey {
					t.Errorf("key changed %v, Outcome.Rekeyed %v, want %v", rekeyed, out.Rekeyed, tc.cfg.Rekey)
				}
			})
		})
	}
}

// fileState is what the device's files hold, checked to match.
type fileState struct {
	serial, key string
}

func readState(t *testing.T, cfg Config) fileState {
	t.Helper()
	st, err := (files{cert: cfg.CertFile, key: cfg.KeyFile}).load()
	if err != nil {
		t.Fatalf("the device's files: %v", err)
	}
	info, err := os.Stat(cfg.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("%s mode %04o, want 0600", cfg.KeyFile, info.Mode().Perm())
	}
	spki, _ := x509.MarshalPKIXPublicKey(st.key.Public())
	return fileState{serial: serialHex(st.chain[0]), key: fmt.Sprintf("%x", sha256.Sum256(spki))}
}

// TestCrashSafeSwap: a crash at any step of a renewal leaves files that,
// once the agent starts again, hold a key that matches its certificate;
// the renewal then completes without a second certificate where the CA
// had issued one already.
func TestCrashSafeSwap(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rekey bool
		crash string // the step that does not happen; "answer" = the CA's answer is lost
		// after a restart without --force: renewed by a retry, or repaired
		// (the new certificate installed without asking the CA again)
		retry, repaired bool
	}{
		{"rekey/before-key.next", true, "write key.next", false, false},
		{"rekey/answer-lost", true, "answer", true, false},
		{"rekey/before-cert.next", true, "write cert.next", true, false},
		{"rekey/before-key-install", true, "install key", false, true},
		{"rekey/before-cert-install", true, "install cert", false, true},
		{"renew/answer-lost", false, "answer", false, false},
		{"renew/before-cert", false, "write cert", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ca := newFakeCA(t, 240*time.Hour)
				cfg := ca.device(Config{Rekey: tc.rekey, Force: true})
				first := readState(t, cfg)
				r := newRenewer(t, cfg, Deps{CA: ca})
				steps := []string{}
				r.files.step = func(name string) error {
					steps = append(steps, name)
					if name == tc.crash {
						return errCrash
					}
					return nil
				}
				ca.loseAnswer = tc.crash == "answer"
				if _, err := r.Once(t.Context()); err == nil {
					t.Fatalf("Once with a crash at %q = nil, want it to stop there (steps %q)", tc.crash, steps)
				}

				// The restart: a new process, without --force.
				cfg.Force = false
				r = newRenewer(t, cfg, Deps{CA: ca})
				out, err := r.Once(t.Context())
				if err != nil {
					t.Fatalf("Once after the crash = %v, want the files repaired", err)
				}
				got := readState(t, cfg) // fails unless key and certificate match
				ca.mu.Lock()
				issued := len(ca.issued)
				newest := ca.newest
				ca.mu.Unlock()
				switch {
				case tc.retry || tc.repaired:
					if issued != 1 || got.serial != newest || out.Retry != tc.retry || (out.Repaired != "") != tc.repaired {
						t.Errorf("after the restart: %d issued, file serial %s (newest %s), Outcome %+v; want the one certificate issued, retry %v, repaired %v",
							issued, got.serial, newest, out, tc.retry, tc.repaired)
					}
					if (got.key != first.key) != tc.rekey {
						t.Errorf("key changed = %v, want %v", got.key != first.key, tc.rekey)
					}
				case tc.crash == "write key.next":
					// Nothing had happened: not due, nothing to do.
					if issued != 0 || out.Renewed || got != first {
						t.Errorf("after the restart: %d issued, Outcome %+v, want nothing done", issued, out)
					}
				default:
					// A same-key renewal whose answer never arrived: the old
					// certificate is still installed, not due; a forced
					// renewal is a retry.
					if got != first || out.Renewed {
						t.Errorf("after the restart: files %+v, Outcome %+v, want the old certificate, not renewed", got, out)
					}
					cfg.Force = true
					r, _ = New(cfg, Deps{CA: ca})
					if out, err = r.Once(t.Context()); err != nil || !out.Retry || readState(t, cfg).serial != newest {
						t.Errorf("forced renewal after the restart = %+v, %v, want the certificate already issued (a retry)", out, err)
					}
				}
				for _, f := range []string{cfg.CertFile + nextSuffix, cfg.KeyFile + nextSuffix} {
					if _, err := os.Stat(f); err == nil {
						t.Errorf("%s is left after the restart", filepath.Base(f))
					}
				}
			})
		})
	}
}

// TestRecoverRemovesAStrayCertificate: a CERT.next that matches neither
// key is removed, and the files are left as they were.
func TestRecoverRemovesAStrayCertificate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ca := newFakeCA(t, 240*time.Hour)
		cfg := ca.device(Config{})
		before := readState(t, cfg)
		other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		ca.mu.Lock()
		stray := ca.issue("dev-1", other.Public(), "")
		ca.mu.Unlock()
		if err := os.WriteFile(cfg.CertFile+nextSuffix, []byte(stray.Chain), 0o644); err != nil {
			t.Fatal(err)
		}
		r := newRenewer(t, cfg, Deps{CA: ca})
		out, err := r.Once(t.Context())
		if err != nil || !strings.Contains(out.Repaired, "removed") {
			t.Errorf("Once = %+v, %v, want the stray certificate removed", out, err)
		}
		if got := readState(t, cfg); got != before {
			t.Errorf("files %+v, want %+v as before", got, before)
		}
	})
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		name    string
		attempt int
		rnd     float64
		want    time.Duration
	}{
		{"first/low", 0, 0, 5 * time.Second},
		{"first/high", 0, 0.999, 9995 * time.Millisecond},
		{"third", 2, 0.5, 30 * time.Second},
		{"capped", 10, 0, 15 * time.Minute},
		{"capped/far", 1000, 0.5, 1350 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := backoff(10*time.Second, 30*time.Minute, tc.attempt, tc.rnd); got != tc.want {
				t.Errorf("backoff(10s, 30m, %d, %v) = %v, want %v", tc.attempt, tc.rnd, got, tc.want)
			}
		})
	}
}

func TestNewRefusesABadConfig(t *testing.T) {
	ca := &fakeCA{}
	for _, tc := range []struct {
		name  string
		cfg   Config
		field string
	}{
		{"no-cert", Config{KeyFile: "k"}, "cert"},
		{"no-key", Config{CertFile: "c"}, "key"},
		{"check-too-often", Config{CertFile: "c", KeyFile: "k", CheckInterval: time.Second}, "check_interval"},
		{"retry-inverted", Config{CertFile: "c", KeyFile: "k", RetryMin: time.Hour, RetryMax: time.Minute}, "retry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, Deps{CA: ca})
			fe, ok := errors.AsType[*fault.Error](err)
			if !ok || fe.Kind != fault.Malformed || fe.Field != tc.field {
				t.Errorf("New(%+v) = %v, want a Malformed fault about %q", tc.cfg, err, tc.field)
			}
		})
	}
}
