package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/fleetca/fleetca/auditlog"
	"github.com/fleetca/fleetca/client"
	"github.com/fleetca/fleetca/internal/atomicfile"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// watchStateFile is, in the watcher's --state directory, the last
// checkpoint it accepted (the signed note, as fetched).
const watchStateFile = "checkpoint"

func newAuditWatchCmd(e env) *cobra.Command {
	var caURL, keyFile, stateDir string
	var once bool
	var every time.Duration
	cmd := &cobra.Command{
		Use:   "watch --ca URL --key audit.pub --state DIR [--once] [--every 1m]",
		Short: "Witness the CA's audit log: fetch its checkpoints and check each extends the last one seen",
		Long: `watch fetches the CA's latest audit checkpoint from its HTTP listener
(GET /v1/audit/checkpoint), checks its signature with --key (the CA's
audit.pub, pinned: never fetched), and checks that it extends the last
checkpoint it accepted, kept in --state DIR/checkpoint: the same tree, or a
larger one with a consistency proof (GET /v1/audit/proof) that the old tree is
its prefix. It then saves the new checkpoint there (atomically).

A smaller tree (a rolled-back store) or one whose history differs (a fork, an
edited row) makes it print "fleetca: audit log: ... rollback|fork ..." and
exit 1, and keeps the state as it was. Run it somewhere the CA's operators
cannot write, every few minutes (--every) or from cron (--once).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if caURL == "" || keyFile == "" || stateDir == "" {
				return usagef("watch needs --ca URL, --key audit.pub and --state DIR")
			}
			if every <= 0 {
				return flagUsage("--every", errors.New("must be positive"))
			}
			return runAuditWatch(cmd.Context(), e, caURL, keyFile, stateDir, once, every)
		},
	}
	f := cmd.Flags()
	f.StringVar(&caURL, "ca", "", "the CA's HTTP listener URL (http://HOST:8080)")
	f.StringVar(&keyFile, "key", "", "the audit key to pin (the CA's audit.pub)")
	f.StringVar(&stateDir, "state", "", "directory to keep the last checkpoint accepted in")
	f.BoolVar(&once, "once", false, "check once and exit")
	f.DurationVar(&every, "every", time.Minute, "how often to check")
	return cmd
}

func runAuditWatch(ctx context.Context, e env, caURL, keyFile, stateDir string, once bool, every time.Duration) error {
	key, err := readAuditKey(keyFile)
	if err != nil {
		return err
	}
	pub, err := client.NewAuditPublic(caURL, 0)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		err := watchOnce(ctx, e, pub, key, filepath.Join(stateDir, watchStateFile))
		if _, fork := errors.AsType[*auditlog.Problem](err); once || fork {
			if p, ok := errors.AsType[*auditlog.Problem](err); ok {
				return fault.New(fault.Conflict, "audit log: "+p.What, "the CA rewrote or rolled back its audit log: investigate before trusting it")
			}
			return err
		}
		if err != nil {
			fmt.Fprintln(e.stderr, "fleetca: "+errorLine(nil, err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// watchOnce fetches, checks and records one checkpoint. A fork or
// rollback is a *auditlog.Problem.
func watchOnce(ctx context.Context, e env, pub *client.AuditPublic, key note.Verifier, state string) error {
	msg, err := pub.Checkpoint(ctx)
	if err != nil {
		return err
	}
	next, err := auditlog.OpenCheckpoint(msg, key)
	if err != nil {
		return err
	}
	var prev store.Checkpoint
	switch b, err := os.ReadFile(state); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read state: %w", err)
	default:
		if prev, err = auditlog.OpenCheckpoint(b, key); err != nil {
			return fmt.Errorf("the saved checkpoint %s: %w", state, err)
		}
	}
	var proof tlog.TreeProof
	if prev.Size > 0 && next.Size > prev.Size {
		hs, err := pub.Proof(ctx, prev.Size, next.Size)
		if err != nil {
			return err
		}
		for _, s := range hs {
			h, err := tlog.ParseHash(s)
			if err != nil {
				return fault.Wrap(err, fault.Malformed, "the CA's consistency proof is not base64 hashes", "")
			}
			proof = append(proof, h)
		}
	}
	if err := auditlog.CheckConsistency(prev, next, proof); err != nil {
		return err
	}
	switch {
	case prev.Size == 0:
		fmt.Fprintf(e.stdout, "checkpoint size %d root %s: first seen, saved\n", next.Size, next.Root)
	case next.Size == prev.Size:
		fmt.Fprintf(e.stdout, "checkpoint size %d root %s: unchanged\n", next.Size, next.Root)
		return nil
	default:
		fmt.Fprintf(e.stdout, "checkpoint size %d root %s: consistent with size %d seen before, saved\n", next.Size, next.Root, prev.Size)
	}
	if err := atomicfile.Write(state, msg, 0o600); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	return nil
}
