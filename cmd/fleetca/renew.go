package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/fleetca/fleetca/agent"
	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/client"
	"github.com/fleetca/fleetca/internal/fault"
)

// renewOptions are the inputs of `fleetca renew`.
type renewOptions struct {
	caURL, fingerprint, root string
	cert, key, execCmd       string
	rekey, force, daemon     bool
	checkInterval            time.Duration
}

// maxCheckInterval bounds --check-interval: an admin's renew-now must be
// seen within a day.
const maxCheckInterval = 24 * time.Hour

func newRenewCmd(e env) *cobra.Command {
	var o renewOptions
	cmd := &cobra.Command{
		Use:   "renew --ca URL (--root FILE | --fingerprint SHA256) --cert F --key F [--rekey] [--force] [--daemon] [--exec CMD]",
		Short: "On a device: renew its certificate before it expires, once or as a daemon",
		Long: `renew keeps a device's certificate valid: it asks the CA for a new one
before the old one expires, proving who it is with the current certificate
and key (mutual TLS) or, once the certificate has expired, with a renewal
token signed by the key. The CA decides what the new certificate says. The
--cert file (certificate then chain, as 'fleetca enroll' wrote it) and,
with --rekey, the --key file are replaced so that a crash at any point
never leaves a key that does not match its certificate.

Without --daemon it renews once if the certificate is inside its renewal
window (the CA's, or two thirds into its validity when the CA cannot say),
or with --force, and otherwise says when it will be due; exit 0 either way.
For cron or a systemd timer.

With --daemon it runs until stopped: it sleeps until the window, looking at
the CA's window at least every --check-interval so that an admin's
'fleetca devices renew-now' is seen, renews, and starts over, logging JSON
lines on stderr. While the CA cannot be reached it tries again with capped
exponential backoff. A refusal that trying again cannot change (the
certificate or the device revoked, a certificate that is not the device's
newest, one expired longer ago than the CA allows) stops it with exit 1 and
a line that says what to do.

--rekey makes a new key at each renewal (of the same type and size, mode
0600). After each renewal --exec runs through sh -c, with FLEETCA_CERT_FILE
and FLEETCA_KEY_FILE set: the command that makes the service reread them,
e.g. 'systemctl reload myservice'.

The CA is trusted only through its root: --root, or the root whose SHA-256
is --fingerprint, fetched from the CA. The key must be unencrypted PEM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRenew(cmd.Context(), e, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.caURL, "ca", "", "the CA's HTTPS URL, e.g. https://ca.example.com:8443")
	f.StringVar(&o.fingerprint, "fingerprint", "", "SHA-256 fingerprint of the CA's root (hex)")
	f.StringVar(&o.root, "root", "", "root certificate file to trust instead of --fingerprint")
	f.StringVar(&o.cert, "cert", "", "the device's certificate and chain, replaced on renewal")
	f.StringVar(&o.key, "key", "", "the certificate's private key (replaced on --rekey, mode 0600)")
	f.BoolVar(&o.rekey, "rekey", false, "make a new key at each renewal")
	f.BoolVar(&o.force, "force", false, "renew now, whether or not the certificate is due")
	f.BoolVar(&o.daemon, "daemon", false, "keep running and renew each time the certificate is due")
	f.StringVar(&o.execCmd, "exec", "", "shell command to run after each renewal, e.g. 'systemctl reload myservice'")
	f.DurationVar(&o.checkInterval, "check-interval", agent.DefaultCheckInterval,
		fmt.Sprintf("with --daemon, the longest wait between two looks at the CA's renewal window (%s to %s)", agent.MinCheckInterval, maxCheckInterval))
	return cmd
}

func runRenew(ctx context.Context, e env, o renewOptions) error {
	switch {
	case o.caURL == "":
		return usagef("renew needs --ca https://HOST:PORT")
	case (o.fingerprint == "") == (o.root == ""):
		return usagef("give exactly one of --fingerprint SHA256 and --root FILE")
	case o.cert == "":
		return usagef("renew needs --cert FILE, the device's certificate")
	case o.key == "":
		return usagef("renew needs --key FILE, the certificate's private key")
	case o.checkInterval < agent.MinCheckInterval || o.checkInterval > maxCheckInterval:
		return usagef("--check-interval %s is outside %s..%s", o.checkInterval, agent.MinCheckInterval, maxCheckInterval)
	}
	cert, err := filepath.Abs(o.cert)
	if err != nil {
		return err
	}
	key, err := filepath.Abs(o.key)
	if err != nil {
		return err
	}
	logger := slog.New(slog.DiscardHandler)
	if o.daemon {
		logger = newDaemonLogger(e)
	}
	ca, err := renewCA(ctx, o, logger)
	if err != nil {
		return err
	}
	deps := agent.Deps{CA: ca, Logger: logger, Now: time.Now}
	if o.execCmd != "" {
		deps.Exec = func(ctx context.Context) error {
			return runReloadCommand(ctx, e, o.execCmd, []string{"FLEETCA_CERT_FILE=" + cert, "FLEETCA_KEY_FILE=" + key},
				"fix the command; the certificate was renewed and is in place")
		}
	}
	cfg := agent.Config{CertFile: cert, KeyFile: key, Rekey: o.rekey, Force: o.force, CheckInterval: o.checkInterval}
	r, err := agent.New(cfg, deps)
	if err != nil {
		return err
	}
	if !o.daemon {
		out, err := r.Once(ctx)
		printOutcome(e.stdout, out, err)
		return err
	}
	if o.force {
		out, err := r.Once(ctx)
		if err != nil {
			return err
		}
		logger.Info("renewed (--force)", "device_id", out.DeviceID, "serial", out.Serial, "parent_serial", out.ParentSerial, "not_after", out.NotAfter.UTC())
	}
	logger.Info("renewing", "ca", o.caURL, "cert", cert, "key", key, "rekey", o.rekey, "check_interval", o.checkInterval.String())
	return r.Run(ctx)
}

// printOutcome is one-shot renew's output: a line per thing done (err is
// Once's: after an error, only what was done before it).
func printOutcome(w io.Writer, out agent.Outcome, err error) {
	if out.Repaired != "" {
		fmt.Fprintln(w, "repaired: "+out.Repaired)
	}
	switch {
	case out.Renewed:
		var how []string
		if out.Rekeyed {
			how = append(how, "with a new key")
		}
		if out.AfterExpiry {
			how = append(how, "after expiry, with a renewal token")
		}
		if out.Retry {
			how = append(how, "the CA's answer to an earlier try")
		}
		extra := ""
		if len(how) > 0 {
			extra = " (" + strings.Join(how, "; ") + ")"
		}
		fmt.Fprintf(w, "renewed device %s: serial %s, valid until %s, was %s%s\n", out.DeviceID, out.Serial, rfc3339(out.NotAfter), out.ParentSerial, extra)
	case err == nil:
		fmt.Fprintf(w, "device %s: certificate %s (valid until %s) is due for renewal at %s, by %s; nothing to do\n",
			out.DeviceID, out.Serial, rfc3339(out.NotAfter), rfc3339(out.Due), out.DueFrom)
	}
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// renewCA returns the client renew uses. With --root it trusts that file.
// With --fingerprint it fetches the root from the CA: at once in one-shot
// mode; in daemon mode at the first use that finds the CA reachable, so
// that a device that boots offline keeps trying, but a fingerprint that
// the CA does not have stops it at start if the CA can be reached.
func renewCA(ctx context.Context, o renewOptions, logger *slog.Logger) (agent.CA, error) {
	if o.root != "" || !o.daemon {
		return enrollClient(ctx, o.caURL, o.root, o.fingerprint)
	}
	fp, err := parseFingerprint(o.fingerprint)
	if err != nil {
		return nil, err
	}
	b := &bootstrapCA{url: o.caURL, fingerprint: fp}
	if _, err := b.client(ctx); err != nil {
		if k, _ := fault.KindOf(err); k != fault.Unavailable {
			return nil, err // not an HTTPS URL, or not the CA of this root
		}
		logger.Warn("cannot fetch the CA's root yet; trying again at each renewal", "err", err)
	}
	return b, nil
}

// bootstrapCA is the CA of a daemon that trusts a fingerprint: it fetches
// the root at its first use that succeeds.
type bootstrapCA struct {
	url         string
	fingerprint []byte
	mu          sync.Mutex
	c           *client.Client
}

func (b *bootstrapCA) client(ctx context.Context) (*client.Client, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.c != nil {
		return b.c, nil
	}
	root, err := client.Bootstrap(ctx, b.url, b.fingerprint)
	if err != nil {
		return nil, err
	}
	c, err := client.New(client.Config{URL: b.url, Roots: []*x509.Certificate{root}})
	if err != nil {
		return nil, err
	}
	b.c = c
	return c, nil
}

func (b *bootstrapCA) Renew(ctx context.Context, req client.RenewRequest) (*client.Renewal, error) {
	c, err := b.client(ctx)
	if err != nil {
		return nil, err
	}
	return c.Renew(ctx, req)
}

func (b *bootstrapCA) RenewalInfo(ctx context.Context, serial string) (api.RenewalInfo, time.Duration, error) {
	c, err := b.client(ctx)
	if err != nil {
		return api.RenewalInfo{}, 0, err
	}
	return c.RenewalInfo(ctx, serial)
}
