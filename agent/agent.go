package agent

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/client"
	"github.com/fleetca/fleetca/internal/fault"
)

// CA is what the agent needs of the CA; *client.Client implements it.
// Errors are the client's: a *fault.Error of the CA's kind (RateLimited,
// with RetryAfter, for a device that renewed too recently), Unavailable
// when the CA cannot be reached.
type CA interface {
	Renew(ctx context.Context, req client.RenewRequest) (*client.Renewal, error)
	RenewalInfo(ctx context.Context, serial string) (api.RenewalInfo, time.Duration, error)
}

// Defaults and bounds of Config.
const (
	DefaultCheckInterval = 6 * time.Hour
	MinCheckInterval     = time.Minute
	DefaultRetryMin      = 10 * time.Second
	DefaultRetryMax      = 30 * time.Minute
)

// checkJitter is the share of the check interval taken off at random, so
// that devices started together do not ask together for ever.
const checkJitter = 0.1

// Config says which files the agent keeps renewed and how.
type Config struct {
	// CertFile holds the device certificate then its chain (leaf first,
	// root excluded), as `fleetca enroll` writes it. Required.
	CertFile string
	// KeyFile holds the certificate's private key, unencrypted PEM.
	// Required.
	KeyFile string
	// Rekey makes a new key (of the same type and size) at each renewal.
	Rekey bool
	// Force renews in Once whether or not the certificate is due.
	Force bool
	// CheckInterval is the longest Run waits between two looks at the
	// CA's renewal window, so that an admin's renew-now is seen; a shorter
	// Retry-After from the CA wins. Default DefaultCheckInterval, at least
	// MinCheckInterval.
	CheckInterval time.Duration
	// RetryMin and RetryMax bound the exponential backoff (with jitter)
	// between tries when the CA cannot be reached. Defaults
	// DefaultRetryMin and DefaultRetryMax; RetryMin at most RetryMax.
	RetryMin, RetryMax time.Duration
}

// Deps are the agent's collaborators.
type Deps struct {
	// CA is the CA to renew with. Required.
	CA CA
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx ends (then returning its error); nil
	// means a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand returns a number in [0, 1) for jitter; nil means math/rand/v2.
	Rand func() float64
	// Exec, if set, runs after each renewal, once the new files are in
	// place (the service reload). An error is reported; Run tries again
	// at its next check.
	Exec func(ctx context.Context) error
	// Logger receives Run's events (and Once's repairs); nil discards.
	Logger *slog.Logger
}

// Renewer keeps one device certificate renewed. It is not safe for
// concurrent use, nor for two processes on the same files.
type Renewer struct {
	cfg   Config
	ca    CA
	now   func() time.Time
	sleep func(context.Context, time.Duration) error
	rand  func() float64
	exec  func(context.Context) error
	log   *slog.Logger
	files files
}

// New returns a Renewer of the files cfg names. It reads every field of
// cfg and deps, and touches no file. A Malformed fault for a bad Config
// (Field names the setting: "cert", "key", "check_interval", "retry").
func New(cfg Config, deps Deps) (*Renewer, error) {
	if deps.CA == nil {
		return nil, errors.New("agent.New: no CA")
	}
	if cfg.CheckInterval == 0 {
		cfg.CheckInterval = DefaultCheckInterval
	}
	if cfg.RetryMin == 0 {
		cfg.RetryMin = DefaultRetryMin
	}
	if cfg.RetryMax == 0 {
		cfg.RetryMax = max(DefaultRetryMax, cfg.RetryMin)
	}
	switch {
	case cfg.CertFile == "":
		return nil, &fault.Error{Kind: fault.Malformed, Detail: "no certificate file to renew", Hint: "name the file that fleetca enroll wrote", Field: "cert"}
	case cfg.KeyFile == "":
		return nil, &fault.Error{Kind: fault.Malformed, Detail: "no key file to renew with", Hint: "name the file that fleetca enroll wrote", Field: "key"}
	case cfg.CheckInterval < MinCheckInterval:
		return nil, &fault.Error{Kind: fault.Malformed, Detail: fmt.Sprintf("the check interval %s is under %s", cfg.CheckInterval, MinCheckInterval),
			Hint: "check the CA's renewal window every few hours", Field: "check_interval"}
	case cfg.RetryMin <= 0 || cfg.RetryMax < cfg.RetryMin:
		return nil, &fault.Error{Kind: fault.Malformed, Detail: fmt.Sprintf("the retry backoff %s to %s is not a range", cfg.RetryMin, cfg.RetryMax),
			Hint: "give a positive minimum no larger than the maximum", Field: "retry"}
	}
	r := &Renewer{cfg: cfg, ca: deps.CA, now: deps.Now, sleep: deps.Sleep, rand: deps.Rand, exec: deps.Exec, log: deps.Logger,
		files: files{cert: cfg.CertFile, key: cfg.KeyFile}}
	if r.now == nil {
		r.now = time.Now
	}
	if r.sleep == nil {
		r.sleep = sleep
	}
	if r.rand == nil {
		r.rand = mrand.Float64
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Outcome is what Once did.
type Outcome struct {
	// DeviceID, Serial and NotAfter describe the certificate in the file
	// now: the new one if Renewed.
	DeviceID string
	Serial   string
	NotAfter time.Time
	// Renewed is true when a new certificate was installed.
	Renewed bool
	// ParentSerial is the certificate it renewed.
	ParentSerial string
	// Rekeyed: with a new key. AfterExpiry: the certificate had expired
	// and the renewal token renewed it. Retry: the CA returned the
	// certificate it had issued for an earlier try whose answer was lost.
	Rekeyed, AfterExpiry, Retry bool
	// Due, when not Renewed, is when the certificate is due for renewal,
	// and DueFrom who said so: "the CA", or "two thirds of its validity"
	// when the CA could not say.
	Due     time.Time
	DueFrom string
	// Repaired, if not empty, says how a swap of key and certificate that
	// a crash interrupted was finished or undone first.
	Repaired string
}

// Once renews the certificate if it is due (or Config.Force, or a rekey
// was interrupted), making one try, and runs Deps.Exec after a renewal.
// It first repairs a swap a crash interrupted. A refusal is the CA's
// fault, with a hint that says what to do.
func (r *Renewer) Once(ctx context.Context) (Outcome, error) {
	repaired, err := r.files.recover()
	if err != nil {
		return Outcome{}, fmt.Errorf("repair an interrupted swap of %s and %s: %w", r.cfg.CertFile, r.cfg.KeyFile, err)
	}
	st, err := r.files.load()
	if err != nil {
		return Outcome{Repaired: repaired}, err
	}
	leaf := st.chain[0]
	out := Outcome{DeviceID: leaf.Subject.CommonName, Serial: serialHex(leaf), NotAfter: leaf.NotAfter, Repaired: repaired}
	if !r.cfg.Force && st.pending == nil {
		due, _, from := r.due(ctx, st)
		if r.now().Before(due) {
			out.Due, out.DueFrom = due, from
			return out, nil
		}
	}
	res, err := r.renew(ctx, st)
	if err != nil {
		return out, refusal(err)
	}
	out = res.outcome(repaired)
	return out, r.runExec(ctx)
}

// Run keeps the certificate renewed until ctx ends (then it returns nil)
// or the CA refuses for good (then it returns the refusal, a fault whose
// hint says what to do). It sleeps until the renewal window, looking at
// the CA's window at least every Config.CheckInterval (sooner if the CA's
// Retry-After says so); renews, retrying with capped exponential backoff
// and jitter while the CA cannot be reached, and honouring a 429's
// Retry-After; switches to the renewal token once the certificate has
// expired; installs the new files (see files.go) and runs Deps.Exec.
func (r *Renewer) Run(ctx context.Context) error {
	repaired, err := r.files.recover()
	if err != nil {
		return fmt.Errorf("repair an interrupted swap of %s and %s: %w", r.cfg.CertFile, r.cfg.KeyFile, err)
	}
	if repaired != "" {
		r.log.Warn("repaired an interrupted swap of key and certificate", "what", repaired, "cert", r.cfg.CertFile, "key", r.cfg.KeyFile)
	}
	var lastDue time.Time
	execPending := false
	for {
		st, err := r.files.load()
		if err != nil {
			return err
		}
		leaf := st.chain[0]
		if execPending && r.runExec(ctx) == nil {
			execPending = false
		}
		now := r.now()
		due, after, from := now, time.Duration(0), "a rekey in progress"
		if st.pending == nil {
			due, after, from = r.due(ctx, st)
			now = r.now()
		}
		if now.Before(due) {
			next := now.Add(r.checkWait(after))
			if due.Before(next) {
				next = due
			}
			level := slog.LevelDebug
			if !due.Equal(lastDue) {
				level = slog.LevelInfo
			}
			lastDue = due
			r.log.Log(ctx, level, "waiting for the renewal window", "device_id", leaf.Subject.CommonName, "serial", serialHex(leaf),
				"not_after", leaf.NotAfter.UTC(), "due", due.UTC(), "due_from", from, "next_check", next.UTC())
			if err := r.sleep(ctx, next.Sub(now)); err != nil {
				return nil
			}
			continue
		}
		res, err := r.renewWithRetry(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err // the caller says it: one line, what happened and what to do
		}
		o := res.outcome("")
		r.log.Info("renewed", "device_id", o.DeviceID, "serial", o.Serial, "parent_serial", o.ParentSerial, "not_after", o.NotAfter.UTC(),
			"kind", res.kind(), "after_expiry", o.AfterExpiry, "retry", o.Retry)
		if err := r.runExec(ctx); err != nil {
			r.log.Error("the command run after renewal failed; trying again at the next check", "err", err)
			execPending = true
		}
		lastDue = time.Time{}
	}
}

// renewWithRetry renews until it succeeds, ctx ends, or the CA refuses for
// good.
func (r *Renewer) renewWithRetry(ctx context.Context) (*result, error) {
	for attempt := 0; ; attempt++ {
		st, err := r.files.load()
		if err != nil {
			return nil, err
		}
		res, err := r.renew(ctx, st)
		if err == nil || ctx.Err() != nil {
			return res, err
		}
		wait, again := r.retryWait(err, attempt)
		if !again {
			return nil, refusal(err)
		}
		r.log.Warn("renewal failed; trying again", "device_id", st.chain[0].Subject.CommonName, "serial", serialHex(st.chain[0]),
			"err", err, "attempt", attempt+1, "retry_in", wait.String())
		if err := r.sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// result is one renewal.
type result struct {
	ren         *client.Renewal
	parent      *x509.Certificate
	rekey       bool
	afterExpiry bool
}

func (res *result) kind() string {
	if res.rekey {
		return "rekey"
	}
	return "renew"
}

func (res *result) outcome(repaired string) Outcome {
	leaf := res.ren.Certs[0]
	return Outcome{DeviceID: leaf.Subject.CommonName, Serial: serialHex(leaf), NotAfter: leaf.NotAfter, Renewed: true,
		ParentSerial: serialHex(res.parent), Rekeyed: res.rekey, AfterExpiry: res.afterExpiry, Retry: res.ren.Retry, Repaired: repaired}
}

// renew makes one try: over mutual TLS while the certificate is valid by
// our clock, with the renewal token after (and at once when the CA refuses
// the handshake as expired); with a new key if rekeying (a pending one
// first); and installs the answer.
func (r *Renewer) renew(ctx context.Context, st state) (*result, error) {
	leaf := st.chain[0]
	req := client.RenewRequest{Chain: st.chain, Key: st.key, Token: !r.now().Before(leaf.NotAfter)}
	newKey := st.pending
	if newKey == nil && r.cfg.Rekey {
		k, err := newKeyLike(st.key.Public())
		if err != nil {
			return nil, err
		}
		if err := r.files.savePending(k); err != nil {
			return nil, err
		}
		newKey = k
	}
	if newKey != nil {
		csr, err := makeCSR(newKey, leaf.Subject.CommonName)
		if err != nil {
			return nil, err
		}
		req.CSR = csr
	}
	ren, err := r.ca.Renew(ctx, req)
	if errors.Is(err, client.ErrCertificateExpired) && !req.Token {
		r.log.Info("the CA finds the certificate expired; renewing with a renewal token", "serial", serialHex(leaf))
		req.Token = true
		ren, err = r.ca.Renew(ctx, req)
	}
	if err != nil {
		return nil, err
	}
	if err := r.files.install(st, []byte(ren.Chain), newKey != nil); err != nil {
		return nil, err
	}
	return &result{ren: ren, parent: leaf, rekey: newKey != nil, afterExpiry: req.Token}, nil
}

// due returns when the certificate is due for renewal, the CA's
// Retry-After (zero if none), and who said so. When the CA cannot say, it
// is due at two thirds of its validity.
func (r *Renewer) due(ctx context.Context, st state) (time.Time, time.Duration, string) {
	leaf := st.chain[0]
	info, after, err := r.ca.RenewalInfo(ctx, serialHex(leaf))
	if err == nil {
		return info.SuggestedWindow.Start, after, "the CA"
	}
	if ctx.Err() == nil {
		r.log.Warn("the CA cannot say when to renew; due at two thirds of the validity", "serial", serialHex(leaf), "err", err)
	}
	return twoThirds(leaf), 0, "two thirds of its validity"
}

// twoThirds is the point two thirds into a certificate's validity.
func twoThirds(c *x509.Certificate) time.Time {
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) * 2 / 3)
}

// checkWait is how long to wait before looking at the window again: the
// CA's Retry-After if it is shorter than the check interval, else the
// check interval less up to checkJitter of it; at least MinCheckInterval.
func (r *Renewer) checkWait(retryAfter time.Duration) time.Duration {
	if retryAfter > 0 && retryAfter < r.cfg.CheckInterval {
		return max(retryAfter, MinCheckInterval)
	}
	jitter := time.Duration(float64(r.cfg.CheckInterval) * checkJitter * r.rand())
	return max(r.cfg.CheckInterval-jitter, MinCheckInterval)
}

// retryWait says whether a failed try is worth another, and after how
// long. Worth one: the CA is unavailable or rate-limits (RateLimited), or
// the error is ours (writing a file, say); then the wait is the CA's
// Retry-After if it gave one, else the backoff of attempt (counted from
// 0). A refusal of any other kind is final.
func (r *Renewer) retryWait(err error, attempt int) (time.Duration, bool) {
	fe, isFault := errors.AsType[*fault.Error](err)
	switch {
	case isFault && fe.Kind != fault.Unavailable && fe.Kind != fault.RateLimited:
		return 0, false
	case isFault && fe.RetryAfter > 0:
		return fe.RetryAfter, true
	}
	return backoff(r.cfg.RetryMin, r.cfg.RetryMax, attempt, r.rand()), true
}

// backoff is the wait before try attempt+1 (attempt counted from 0): lo
// doubled attempt times, capped at hi, then scaled by a jitter in [1/2,
// 1) from rnd in [0, 1) ("equal jitter").
func backoff(lo, hi time.Duration, attempt int, rnd float64) time.Duration {
	d := lo
	for i := 0; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + time.Duration(float64(d/2)*rnd)
}

// runExec runs Deps.Exec, if set.
func (r *Renewer) runExec(ctx context.Context) error {
	if r.exec == nil {
		return nil
	}
	return r.exec(ctx)
}

// refusal makes sure a final refusal says what to do: the CA's hint, or
// one for its kind.
func refusal(err error) error {
	fe, ok := errors.AsType[*fault.Error](err)
	if !ok || fe.Hint != "" {
		return err
	}
	c := *fe
	switch fe.Kind {
	case fault.Forbidden, fault.AlreadyRevoked, fault.Unauthorized:
		c.Hint = "the CA will not renew this certificate: enroll the device again with a new enrollment token"
	case fault.Conflict:
		c.Hint = "this is not the device's newest certificate: use the newest one, or enroll the device again with a new enrollment token"
	case fault.Unavailable, fault.RateLimited:
		c.Hint = "try again later"
		if fe.RetryAfter > 0 {
			c.Hint = "try again in " + fe.RetryAfter.String()
		}
	default:
		c.Hint = "check the certificate and key files, and that the CA is the one that issued them"
	}
	return &c
}

// makeCSR is a CSR for key naming the device (the CA decides the
// subject; naming the device keeps the CSR to what the CA accepts).
func makeCSR(key crypto.Signer, deviceID string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: deviceID}}, key)
	if err != nil {
		return nil, fmt.Errorf("make the rekey CSR: %w", err)
	}
	return der, nil
}

func serialHex(c *x509.Certificate) string { return c.SerialNumber.Text(16) }
