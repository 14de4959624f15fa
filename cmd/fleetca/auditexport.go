package main

import (
	"bufio"
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/fleetca/fleetca/auditlog"
	"github.com/fleetca/fleetca/internal/atomicfile"
)

func newAuditExportCmd(e env) *cobra.Command {
	var src auditSource
	var since uint64
	var out, cpFile string
	cmd := &cobra.Command{
		Use:   "export (--dir DIR | --ca URL) --out audit.jsonl [--since N] [--checkpoint FILE]",
		Short: "Write audit rows with inclusion proofs against the latest checkpoint, for an offline audit",
		Long: `export writes the audit rows with seq > --since, up to the latest signed
checkpoint, as JSON Lines: each row's fields (seq, time, action, actor,
device_id, serial, token_id, detail, root), tree_size (the checkpoint's) and
proof (its RFC 6962 inclusion proof, base64 hashes). It writes the checkpoint
(a signed note) to --checkpoint, or prints it. Rows after the latest
checkpoint are left for the next export.

An auditor checks the two files with the CA's audit.pub alone:
  fleetca audit verify --export audit.jsonl --checkpoint cp --key audit.pub`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("--out FILE is required")
			}
			return runAuditExport(cmd.Context(), e, &src, since, out, cpFile)
		},
	}
	src.register(cmd)
	f := cmd.Flags()
	f.Uint64Var(&since, "since", 0, "export rows with seq greater than this (0: all)")
	f.StringVar(&out, "out", "", "the export file to write (JSON Lines)")
	f.StringVar(&cpFile, "checkpoint", "", "write the checkpoint here (default: print it)")
	return cmd
}

func runAuditExport(ctx context.Context, e env, src *auditSource, since uint64, out, cpFile string) error {
	log, _, _, _, closeFn, err := src.open(ctx, e)
	if err != nil {
		return err
	}
	defer closeFn()
	tmp := out + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("create export: %w", err)
	}
	defer os.Remove(tmp)
	w := bufio.NewWriterSize(f, 1<<20)
	cp, n, err := auditlog.Export(ctx, log, since, w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("write export: %w", err)
	}
	if cpFile != "" {
		if err := atomicfile.Write(cpFile, cp.Note, 0o644); err != nil {
			return fmt.Errorf("write checkpoint: %w", err)
		}
		fmt.Fprintf(e.stdout, "wrote %d rows (seq %d to %d) to %s, with proofs against the checkpoint of size %d in %s\n", n, since+1, cp.Size, out, cp.Size, cpFile)
		return nil
	}
	fmt.Fprintf(e.stderr, "wrote %d rows (seq %d to %d) to %s, with proofs against this checkpoint of size %d:\n", n, since+1, cp.Size, out, cp.Size)
	_, err = e.stdout.Write(cp.Note)
	return err
}
