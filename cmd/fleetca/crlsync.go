package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/revocation"
)

// crlSyncOptions are the inputs of `fleetca crl sync`.
type crlSyncOptions struct {
	url, issuer, out string
	every            time.Duration
	execCmd          string
	haproxySocket    string
	once             bool
}

func newCRLSyncCmd(e env) *cobra.Command {
	var o crlSyncOptions
	cmd := &cobra.Command{
		Use:   "sync --url URL --issuer FILE --out FILE [--every 1m | --once] [--exec CMD] [--haproxy-socket PATH]",
		Short: "Keep a verifier's CRL file (nginx, HAProxy, Mosquitto, Envoy) fresh",
		Long: `sync fetches the device CRL (URL/crl) and the root CRL (URL/root.crl) from
the CA's HTTP listener, checks each one's signature against its issuer in
the --issuer bundle (the ca.pem that 'fleetca export' wrote), and writes both,
PEM, to --out through a temporary file and a rename. nginx and HAProxy want a
CRL for every CA in the chain, hence both.

A CRL that is badly signed, expired, or older (a lower CRL number) than the
one installed is refused, and the last good file is kept. When the file's
content changed, sync runs --exec (through sh -c, with FLEETCA_CRL_FILE set)
or pushes the new CRLs into HAProxy through its runtime API (--haproxy-socket,
'set ssl crl-file' then 'commit ssl crl-file'; --out must be the crl-file
path in haproxy.cfg). A failed reload is retried at the next sync.

Without --once it syncs every --every until interrupted, logging each change.
With --once (for cron) it syncs once and exits 1 when the verifier has no
valid CRL: none could be had yet, or the installed one is past its
nextUpdate and no fresh one could be had.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCRLSync(cmd.Context(), e, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.url, "url", "", "the CA's HTTP listener, e.g. http://ca.example:8080")
	f.StringVar(&o.issuer, "issuer", "", "PEM bundle of the fleet root and intermediate, to check the CRLs' signatures")
	f.StringVar(&o.out, "out", "", "the CRL file the verifier reads (PEM, device CRL then root CRL)")
	f.DurationVar(&o.every, "every", time.Minute, "how often to sync, without --once (1s to 24h)")
	f.StringVar(&o.execCmd, "exec", "", "shell command that makes the verifier reread --out, run when it changed, e.g. 'nginx -s reload'")
	f.StringVar(&o.haproxySocket, "haproxy-socket", "", "HAProxy stats socket (level admin) to update the CRL through the runtime API")
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
	case o.execCmd != "" && o.haproxySocket != "":
		return usagef("give at most one of --exec and --haproxy-socket")
	}
	tb, err := loadTrustBundle(o.issuer, time.Now())
	if err != nil {
		return err
	}
	out, err := filepath.Abs(o.out)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	deps := revocation.SyncDeps{Client: &http.Client{Timeout: time.Minute}, Logger: logger}
	switch {
	case o.execCmd != "":
		deps.Reload = func(ctx context.Context, _ []byte) error { return runReloadCommand(ctx, e, o.execCmd, out) }
	case o.haproxySocket != "":
		deps.Reload = func(ctx context.Context, pem []byte) error { return haproxySetCRL(ctx, o.haproxySocket, out, pem) }
	}
	s, err := revocation.NewSyncer(revocation.SyncConfig{URL: o.url, Issuers: tb.certs, Out: out}, deps)
	if err != nil {
		return err
	}
	if !o.once {
		logger.Info("syncing CRLs", "url", redactURLString(o.url), "file", out, "every", o.every.String())
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
func describeCRLStatus(st revocation.CRLStatus) string {
	if st.Number == nil {
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

// runReloadCommand runs the user's reload command through sh -c, with the
// CRL file in FLEETCA_CRL_FILE, its output on our stderr.
func runReloadCommand(ctx context.Context, e env, command, file string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, "sh", "-c", command)
	c.Env = append(os.Environ(), "FLEETCA_CRL_FILE="+file)
	var out bytes.Buffer
	c.Stdout, c.Stderr = io.MultiWriter(e.stderr, &out), io.MultiWriter(e.stderr, &out)
	if err := c.Run(); err != nil {
		last := strings.TrimSpace(out.String())
		if i := strings.LastIndexByte(last, '\n'); i >= 0 {
			last = last[i+1:]
		}
		if last != "" {
			return fmt.Errorf("reload command %q: %w: %s", command, err, last)
		}
		return fmt.Errorf("reload command %q: %w", command, err)
	}
	return nil
}

// haproxySetCRL replaces the CRLs HAProxy (2.5+) loaded from file with pem
// through its runtime API, without a reload: 'set ssl crl-file' opens a
// transaction with the new content, 'commit ssl crl-file' applies it to
// every bind line that uses the file. The socket must be at level admin.
func haproxySetCRL(ctx context.Context, socket, file string, pem []byte) error {
	// The payload ends at the first empty line; PEM has none.
	var set bytes.Buffer
	fmt.Fprintf(&set, "set ssl crl-file %s <<\n", file)
	set.Write(bytes.TrimRight(pem, "\n"))
	set.WriteString("\n\n")
	ans, err := haproxyCommand(ctx, socket, set.Bytes())
	if err != nil {
		return err
	}
	if a := strings.ToLower(ans); !strings.Contains(a, "transaction created") && !strings.Contains(a, "transaction updated") {
		return fault.New(fault.Unavailable, fmt.Sprintf("HAProxy refused the new CRLs for %s: %s", file, firstLine(ans)),
			"--out must be the crl-file path exactly as haproxy.cfg names it, and the socket must be 'level admin'")
	}
	ans, err = haproxyCommand(ctx, socket, fmt.Appendf(nil, "commit ssl crl-file %s\n", file))
	if err != nil {
		return err
	}
	if !strings.Contains(strings.ToLower(ans), "success") {
		return fault.New(fault.Unavailable, fmt.Sprintf("HAProxy did not commit the new CRLs for %s: %s", file, firstLine(ans)), "")
	}
	return nil
}

// haproxyCommand sends one command to HAProxy's stats socket and returns
// its whole answer (HAProxy closes the connection after one command).
func haproxyCommand(ctx context.Context, socket string, cmd []byte) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return "", fault.Wrap(err, fault.Unavailable, fmt.Sprintf("cannot reach HAProxy's stats socket %s: %v", socket, err),
			"add 'stats socket PATH mode 600 level admin' to haproxy.cfg's global section and pass that PATH")
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if _, err := conn.Write(cmd); err != nil {
		return "", fmt.Errorf("HAProxy stats socket %s: %w", socket, err)
	}
	b, err := io.ReadAll(bufio.NewReader(conn))
	if err != nil {
		return "", fmt.Errorf("HAProxy stats socket %s: %w", socket, err)
	}
	return string(b), nil
}

// firstLine is s's first non-empty line.
func firstLine(s string) string {
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return "(no answer)"
}
