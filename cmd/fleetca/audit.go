package main

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/auditlog"
	"github.com/fleetca/fleetca/ca"
	"github.com/fleetca/fleetca/client"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

func newAuditCmd(e env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Verify, export and witness the tamper-evident audit log",
		Long: `The audit log is a Merkle tree (RFC 6962) of every audit row, with
checkpoints of its size and root signed by the CA's audit key (DIR/audit.pub,
GET /v1/audit/key on the HTTP listener).

  fleetca audit verify --dir DIR                     the whole log, from the store
  fleetca audit verify --ca https://HOST:8443        the same, through the admin API
  fleetca audit export --dir DIR --since N --out audit.jsonl --checkpoint cp
  fleetca audit verify --export audit.jsonl --key audit.pub --checkpoint cp
  fleetca audit watch --ca http://HOST:8080 --key audit.pub --state DIR`,
	}
	cmd.AddCommand(newAuditVerifyCmd(e), newAuditExportCmd(e), newAuditWatchCmd(e))
	return cmd
}

// auditSource is where verify and export read the log: a store opened
// from --dir, or the admin API at --ca.
type auditSource struct {
	dir, caURL, root, tokenFile string
}

func (s *auditSource) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&s.dir, "dir", "", "data directory whose store (bbolt or PostgreSQL, as fleetca.yaml says) to read; with --ca, where to find the root and admin token (default $FLEETCA_DIR, or ./fleetca-data)")
	f.StringVar(&s.caURL, "ca", "", "read the log through the admin API of the CA at this HTTPS URL instead of the store (a viewer's admin token)")
	f.StringVar(&s.root, "root", "", "with --ca: root certificate to trust (default $FLEETCA_ROOT, or from --dir)")
	f.StringVar(&s.tokenFile, "admin-token-file", "", "with --ca: file with the admin token (default $FLEETCA_ADMIN_TOKEN, or DIR/admin-token)")
}

// open returns the log and the records to check, the audit key's default
// file, the grace for rows after the latest checkpoint, and a closer.
func (s *auditSource) open(ctx context.Context, e env) (auditlog.Log, auditlog.Records, string, time.Duration, func(), error) {
	dir, err := dataDir(s.dir, e.getenv)
	if err != nil {
		return nil, nil, "", 0, nil, err
	}
	keyFile := filepath.Join(dir, ca.AuditPublicKeyFile)
	if s.caURL != "" {
		a := adminFlags{dir: s.dir, url: s.caURL, root: s.root, tokenFile: s.tokenFile}
		c, err := a.client(e)
		if err != nil {
			return nil, nil, "", 0, nil, err
		}
		r := &remoteLog{c: c}
		return r, r, keyFile, 0, func() {}, nil
	}
	cfg, err := loadConfig(dir)
	if err != nil {
		return nil, nil, "", 0, nil, err
	}
	st, err := openStore(ctx, dir, cfg.Store, storeOptions{})
	if err != nil {
		return nil, nil, "", 0, nil, err
	}
	return st, st, keyFile, auditlog.GraceFor(cfg.Audit.CheckpointEvery), func() { st.Close() }, nil
}

// readAuditKey reads a note verifier key file (audit.pub).
func readAuditKey(file string) (note.Verifier, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fault.Wrap(err, fault.NotFound, fmt.Sprintf("cannot read the audit key %s", file),
			"pass the CA's audit.pub with --key (GET /v1/audit/key serves it)")
	}
	return auditlog.NewVerifier(b)
}

func newAuditVerifyCmd(e env) *cobra.Command {
	var src auditSource
	var keyFile, exportFile, cpFile string
	cmd := &cobra.Command{
		Use:   "verify (--dir DIR | --ca URL | --export FILE --checkpoint FILE) [--key audit.pub]",
		Short: "Check the audit log: every leaf, root, stored hash and checkpoint, and that every record has its row",
		Long: `verify reads the whole audit log and checks that its rows' seq run 1, 2, 3...
without a gap, that every row hashes (RFC 6962, as stored) to the tree root
stored with it, every stored tree hash, every checkpoint's signature (with
--key, default DIR/audit.pub), root, and consistency with the checkpoint
before it, and that every certificate, enrollment token and revocation in
the store has its audit row (over --ca: certificates and tokens).

Rows after the latest checkpoint are fine while young: the CA signs one
within audit.checkpoint_every, at start-up and at shutdown. The first of them
older than 2 x audit.checkpoint_every + 1m is reported: the CA would have
signed it, so it was appended outside the CA (or the CA has not run since a
crash: start it and verify again).

It prints what it checked and exits 0, or names the first bad seq (leaf
index = seq - 1) and what is wrong and exits 1.

With --export FILE --checkpoint FILE --key audit.pub it checks an export
offline (fleetca audit export): the checkpoint's signature, and each row's
inclusion proof against it.

--dir reads the store directly: stop serve first on bbolt (it locks the
file); PostgreSQL may be read while the CA runs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if exportFile != "" {
				return runVerifyExport(e, exportFile, cpFile, keyFile)
			}
			if cpFile != "" {
				return usagef("--checkpoint goes with --export")
			}
			return runAuditVerify(cmd.Context(), e, &src, keyFile)
		},
	}
	src.register(cmd)
	f := cmd.Flags()
	f.StringVar(&keyFile, "key", "", "the audit key (a note verifier key: the CA's audit.pub; default DIR/audit.pub)")
	f.StringVar(&exportFile, "export", "", "check this export (JSON Lines from fleetca audit export) offline")
	f.StringVar(&cpFile, "checkpoint", "", "with --export: the checkpoint the export was made against")
	return cmd
}

func runAuditVerify(ctx context.Context, e env, src *auditSource, keyFile string) error {
	log, recs, defKey, grace, closeFn, err := src.open(ctx, e)
	if err != nil {
		return err
	}
	defer closeFn()
	key, err := readAuditKey(firstOf(keyFile, defKey))
	if err != nil {
		return err
	}
	now := time.Now
	if e.now != nil {
		now = e.now
	}
	rep, err := auditlog.Verify(ctx, log, auditlog.Options{Key: key, Records: recs, Now: now(), Grace: grace})
	printVerifyReport(e, rep, src.caURL != "")
	if p, ok := errors.AsType[*auditlog.Problem](err); ok {
		return fault.New(fault.Conflict, "audit log: "+p.Error(), "")
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "audit log OK")
	return nil
}

func printVerifyReport(e env, r auditlog.Report, remote bool) {
	revs := fmt.Sprint(r.Revocations)
	if remote {
		revs = "not checked over --ca"
	}
	fmt.Fprintf(e.stdout, "rows:          %d (leaves and roots recomputed, seq contiguous)\n", r.Rows)
	fmt.Fprintf(e.stdout, "stored hashes: %d\n", r.StoredHashes)
	fmt.Fprintf(e.stdout, "checkpoints:   %d (signature, root, consistency with the previous); the latest covers %d rows\n", r.Checkpoints, r.Covered)
	fmt.Fprintf(e.stdout, "with their audit row: %d certificates, %d tokens, revocations: %s\n", r.Certificates, r.Tokens, revs)
}

func runVerifyExport(e env, exportFile, cpFile, keyFile string) error {
	if cpFile == "" || keyFile == "" {
		return usagef("--export needs --checkpoint FILE and --key audit.pub")
	}
	key, err := readAuditKey(keyFile)
	if err != nil {
		return err
	}
	cp, err := os.ReadFile(cpFile)
	if err != nil {
		return fault.Wrap(err, fault.NotFound, "cannot read the checkpoint "+cpFile, "pass the file fleetca audit export wrote with --checkpoint")
	}
	f, err := os.Open(exportFile)
	if err != nil {
		return fault.Wrap(err, fault.NotFound, "cannot read the export "+exportFile, "")
	}
	defer f.Close()
	rep, err := auditlog.VerifyExport(f, cp, key)
	if p, ok := errors.AsType[*auditlog.Problem](err); ok {
		return fault.New(fault.Conflict, "export: "+p.Error(), "")
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "checkpoint: size %d, signed by %s\nrows:       %d (seq %d to %d), each in the checkpoint's tree\nexport OK\n",
		rep.TreeSize, rep.Signature, rep.Rows, rep.First, rep.Last)
	return nil
}

// remoteLog reads the audit log and the records through the admin API.
type remoteLog struct{ c *client.Client }

func (r *remoteLog) ListAudit(ctx context.Context, after uint64, limit int) ([]store.AuditEvent, error) {
	evs, err := r.c.AuditEvents(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]store.AuditEvent, len(evs))
	for i, v := range evs {
		root, err := tlog.ParseHash(v.Root)
		if err != nil {
			return nil, fmt.Errorf("audit row %d: root: %w", v.Seq, err)
		}
		out[i] = store.AuditEvent{Seq: v.Seq, Time: v.Time, Action: v.Action, Actor: v.Actor, DeviceID: v.DeviceID,
			Serial: v.Serial, TokenID: v.TokenID, Detail: v.Detail, Root: root}
	}
	return out, nil
}

func (r *remoteLog) AuditTree(ctx context.Context) (int64, tlog.Hash, error) {
	t, err := r.c.AuditTree(ctx)
	if err != nil {
		return 0, tlog.Hash{}, err
	}
	h, err := tlog.ParseHash(t.Root)
	return t.Size, h, err
}

// AuditHashes asks for the smallest range holding indexes, in pieces of
// api.MaxAuditHashes (Verify asks for contiguous ranges).
func (r *remoteLog) AuditHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	lo, hi := indexes[0], indexes[0]
	for _, x := range indexes {
		lo, hi = min(lo, x), max(hi, x)
	}
	got := make(map[int64]tlog.Hash, hi-lo+1)
	for from := lo; from <= hi; from += api.MaxAuditHashes {
		to := min(from+api.MaxAuditHashes, hi+1)
		hs, err := r.c.AuditHashes(ctx, from, to)
		if err != nil {
			return nil, err
		}
		for i, s := range hs {
			h, err := tlog.ParseHash(s)
			if err != nil {
				return nil, fmt.Errorf("stored hash %d: %w", from+int64(i), err)
			}
			got[from+int64(i)] = h
		}
	}
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		out[i] = got[x]
	}
	return out, nil
}

func (r *remoteLog) ListCheckpoints(ctx context.Context, after int64, limit int) ([]store.Checkpoint, error) {
	cps, err := r.c.AuditCheckpoints(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]store.Checkpoint, len(cps))
	for i, c := range cps {
		root, err := tlog.ParseHash(c.Root)
		if err != nil {
			return nil, fmt.Errorf("checkpoint %d: root: %w", c.Size, err)
		}
		out[i] = store.Checkpoint{Size: c.Size, Root: root, Time: c.Time, Note: []byte(c.Note)}
	}
	return out, nil
}

// ListCertificates returns every certificate at the first page (the
// client follows the API's pages), nothing after.
func (r *remoteLog) ListCertificates(ctx context.Context, _ string, p store.Page) ([]store.Certificate, error) {
	if p.After != "" {
		return nil, nil
	}
	certs, err := r.c.ListCertificates(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make([]store.Certificate, 0, len(certs))
	for _, ct := range certs {
		s, ok := new(big.Int).SetString(ct.Serial, 16)
		if !ok {
			return nil, fmt.Errorf("certificate serial %q is not hex", ct.Serial)
		}
		out = append(out, store.Certificate{Serial: s, DeviceID: ct.DeviceID})
	}
	return out, nil
}

// ListTokens: as ListCertificates.
func (r *remoteLog) ListTokens(ctx context.Context, p store.Page) ([]store.Token, error) {
	if p.After != "" {
		return nil, nil
	}
	toks, err := r.c.ListTokens(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]store.Token, len(toks))
	for i, t := range toks {
		out[i] = store.Token{ID: t.ID}
	}
	return out, nil
}

// ListRevocations: the admin API does not list revocations with their
// devices, so over --ca they are not checked.
func (r *remoteLog) ListRevocations(context.Context, uint64, int) ([]store.Revocation, error) {
	return nil, nil
}
