package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/internal/redact"
	"github.com/fleetca/fleetca/internal/tlsconf"
	"github.com/fleetca/fleetca/verify"
)

// crlSyncOptions are the inputs of `fleetca crl sync`.
type crlSyncOptions struct {
	url, issuer, out string
	every            time.Duration
	execCmd          string
	feed             string
	once             bool
}

func newCRLSyncCmd(e env) *cobra.Command {
	var o crlSyncOptions
	cmd := &cobra.Command{
		Use:   "sync --url URL --issuer FILE --out FILE [--every 1m | --once] [--exec CMD] [--revocation-feed URL]",
		Short: "Keep a verifier's CRL file (nginx, HAProxy, Mosquitto, Envoy) fresh",
		Long: `sync fetches the device CRL (URL/crl) and the root CRL (URL/root.crl) from
the CA's HTTP listener, whose base URL --url is (http://CA:8080, as proxy
--crl-url takes it), checks each one's signature against its issuer in
the --issuer bundle (the ca.pem that 'fleetca export' wrote), and writes both,
PEM, to --out through a temporary file and a rename. nginx and HAProxy want a
CRL for every CA in the chain, hence both.

With a CA that partitions its CRLs (revocation.crl_partitions, listed at
URL/crl/partitions), --out holds every partition's CRL (URL/crl/0, ...), the
full CRL only while some live certificate has no partition, then the root
CRL. Each partition CRL names its URL in an Issuing Distribution Point, so
OpenSSL checks each device against its own partition only; a partition CRL
without it is refused. Only a changed partition is fetched again.

A CRL that is badly signed, expired, or older (a lower CRL number) than the
one installed is refused, and the last good file is kept. When the file's
content changed, sync runs --exec (through sh -c, with FLEETCA_CRL_FILE set),
the command that makes the verifier reread it ('nginx -s reload',
'systemctl reload haproxy', 'pkill -HUP -x mosquitto'; Envoy needs none). A
failed reload is retried at the next sync, and by the next --once run.

Without --once it syncs every --every until interrupted, logging each change
as JSON lines on stderr.
With --revocation-feed https://CA:8443 it also follows the CA's revocation
feed (a long-poll on its HTTPS listener, trusted through the root in
--issuer) and syncs as soon as a revocation is announced: the verifier
refuses the device within a second or so, not at the next --every.
With --once (for cron) it syncs once and exits 1 when the verifier has no
valid CRL: none could be had yet, or the installed one is past its
nextUpdate and no fresh one could be had.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCRLSync(cmd.Context(), e, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.url, "url", "", "the CA's HTTP listener, e.g. http://ca.example:8080 (its base URL: /crl and /root.crl are fetched under it)")
	f.StringVar(&o.issuer, "issuer", "", "PEM bundle of the fleet root and intermediate, to check the CRLs' signatures")
	f.StringVar(&o.out, "out", "", "the CRL file the verifier reads (PEM: the device CRL or every partition's, then the root CRL)")
	f.DurationVar(&o.every, "every", time.Minute, "how often to sync, without --once (1s to 24h)")
	f.StringVar(&o.execCmd, "exec", "", "shell command that makes the verifier reread --out, run when it changed, e.g. 'nginx -s reload'")
	f.StringVar(&o.feed, "revocation-feed", "", "the CA's HTTPS listener, e.g. https://ca.example:8443: follow its revocation feed and sync at once on a revocation (without --once)")
	f.BoolVar(&o.once, "once", false, "sync once and exit (1 if the verifier has no valid CRL)")
	return cmd
}

func runCRLSync(ctx context.Context, e env, o crlSyncOptions) error {
	switch {
	case o.url == "":
		return usagef("crl sync needs --url, the CA's HTTP listener (e.g. http://ca.example:8080)")
	case o.issuer == "":
		return usagef("crl sync needs --issuer FILE, the fleet's root and intermediate (ca.pem from 'fleetca export')")
	case o.out == "":
		return usagef("crl sync needs --out FILE, the CRL file the verifier reads")
	case o.every < time.Second || o.every > 24*time.Hour:
		return usagef("--every %s is outside 1s..24h", o.every)
	case o.feed != "" && o.once:
		return usagef("--revocation-feed needs the running mode: leave out --once")
	}
	if _, err := verify.BaseURL(o.url, "http", "https"); err != nil {
		return flagUsage("--url", err)
	}
	if err := checkCAURLs("", o.feed); err != nil {
		return err
	}
	tb, err := loadTrustBundle(o.issuer, time.Now())
	if err != nil {
		return err
	}
	out, err := filepath.Abs(o.out)
	if err != nil {
		return err
	}
	logger := newDaemonLogger(e)
	// The CRLs: the default transport (proxy settings from the
	// environment, the system's roots for an https --url behind a load
	// balancer); their signatures are what is trusted. The feed: the CA's
	// own HTTPS listener, trusted through the fleet's roots only; its
	// requests are held open about 20 s.
	client := &http.Client{Timeout: time.Minute, Transport: http.DefaultTransport.(*http.Transport).Clone()}
	defer client.CloseIdleConnections()
	feedTransport := http.DefaultTransport.(*http.Transport).Clone()
	feedTransport.TLSClientConfig = &tls.Config{RootCAs: tb.roots, MinVersion: tlsconf.MinVersion, CipherSuites: tlsconf.CipherSuites()}
	feedClient := &http.Client{Timeout: time.Minute, Transport: feedTransport}
	defer feedClient.CloseIdleConnections()
	deps := verify.SyncDeps{Client: client, FeedClient: feedClient, Logger: logger}
	if o.execCmd != "" {
		deps.Reload = func(ctx context.Context, _ []byte) error {
			return runReloadCommand(ctx, e, o.execCmd, []string{"FLEETCA_CRL_FILE=" + out},
				"fix the command or the verifier; crl sync runs it again at the next sync")
		}
	}
	s, err := verify.NewSyncer(verify.SyncConfig{URL: o.url, Issuers: tb.certs, Out: out, Feed: o.feed}, deps)
	if err != nil {
		return err
	}
	if !o.once {
		logger.Info("syncing CRLs", "url", redact.URL(o.url), "file", out, "every", o.every.String(), "feed", redact.URL(o.feed))
		if err := s.Run(ctx, o.every); !errors.Is(err, context.Canceled) {
			return err
		}
		return nil
	}
	res, err := s.Sync(ctx)
	for _, st := range res.CRLs {
		fmt.Fprintln(e.stdout, describeCRLStatus(st))
	}
	switch {
	case res.Changed && res.Reloaded:
		fmt.Fprintf(e.stdout, "%s updated; verifier reloaded\n", out)
	case res.Changed:
		fmt.Fprintf(e.stdout, "%s updated\n", out)
	case res.Reloaded:
		fmt.Fprintf(e.stdout, "%s unchanged; verifier reloaded (the last reload had failed)\n", out)
	default:
		fmt.Fprintf(e.stdout, "%s unchanged\n", out)
	}
	return err
}

// describeCRLStatus is one line on what a sync did with one CRL.
func describeCRLStatus(st verify.CRLStatus) string {
	if st.Number == nil {
		if st.Err == nil {
			return st.Name + ": none installed"
		}
		return fmt.Sprintf("%s: none installed: %v", st.Name, st.Err)
	}
	s := fmt.Sprintf("%s: number %s, %d entries, next update %s", st.Name, st.Number, st.Entries, st.NextUpdate.UTC().Format(time.RFC3339))
	switch {
	case st.Updated:
		return s + ": installed"
	case st.Err != nil:
		return s + ": kept (warning: " + st.Err.Error() + ")"
	}
	return s + ": up to date"
}

// runReloadCommand runs the user's reload command (crl sync's and renew's
// --exec) through sh -c, with vars added to our environment, its output on
// our stderr, for at most 2 minutes. A failure is an Unavailable fault
// whose hint is again.
func runReloadCommand(ctx context.Context, e env, command string, vars []string, again string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, "sh", "-c", command)
	c.Env = append(os.Environ(), vars...)
	var out bytes.Buffer
	c.Stdout, c.Stderr = io.MultiWriter(e.stderr, &out), io.MultiWriter(e.stderr, &out)
	if err := c.Run(); err != nil {
		last := strings.TrimSpace(out.String())
		if i := strings.LastIndexByte(last, '\n'); i >= 0 {
			last = last[i+1:]
		}
		detail := fmt.Sprintf("the reload command %q could not be run", command)
		switch exitErr, exited := errors.AsType[*exec.ExitError](err); {
		case ctx.Err() != nil:
			detail = fmt.Sprintf("the reload command %q did not finish within 2 minutes", command)
		case exited && exitErr.ExitCode() >= 0:
			detail = fmt.Sprintf("the reload command %q failed with exit status %d", command, exitErr.ExitCode())
		case exited:
			detail = fmt.Sprintf("the reload command %q was ended by a signal", command)
		}
		if last != "" {
			detail += ": " + last
		}
		return fault.Wrap(err, fault.Unavailable, detail, again)
	}
	return nil
}
