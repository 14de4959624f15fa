package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/client"
	"github.com/fleetca/fleetca/enroll"
	"github.com/fleetca/fleetca/internal/atomicfile"
	"github.com/fleetca/fleetca/internal/fault"
)

// tokenCSVHeader is the header of the CSV that token create
// --device-ids-file writes.
var tokenCSVHeader = []string{"device_id", "token_id", "token", "expires_at"}

// tokenBatch is one run of token create --device-ids-file.
type tokenBatch struct {
	idsFile, out string
	force        bool
	ttl          string
	format       string
}

// checkFlags refuses the flags that do not go with --device-ids-file.
func (b tokenBatch) checkFlags(cmd *cobra.Command, deviceID, pattern string, asJSON, anyDevice bool) error {
	switch {
	case deviceID != "" || pattern != "":
		return usagef("give one of --device-id, --device-pattern and --device-ids-file")
	case b.out == "":
		return usagef("--device-ids-file needs --out CSV, the file to write the tokens to")
	case cmd.Flags().Changed("uses"):
		return usagef("--device-ids-file mints one-use tokens: leave out --uses")
	case anyDevice:
		return usagef("--any-device goes with --device-pattern, not --device-ids-file")
	case asJSON:
		return usagef("--device-ids-file writes CSV to --out: leave out --json")
	}
	return nil
}

// checkOut refuses an --out that exists (without --force) or whose
// directory does not, before anything is minted.
func (b tokenBatch) checkOut() error {
	if fi, err := os.Stat(filepath.Dir(b.out)); err != nil || !fi.IsDir() {
		return flagUsage("--out", fmt.Errorf("the directory of %s does not exist", b.out))
	}
	if _, err := os.Lstat(b.out); err == nil && !b.force {
		return flagUsage("--out", fmt.Errorf("%s exists; give --force to replace it, or another file", b.out))
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("check %s: %w", b.out, err)
	}
	return nil
}

// run reads the IDs, mints their tokens in chunks of api.MaxTokenBatch
// (each chunk one request and one store transaction on the CA) and writes
// the CSV. If a chunk fails, the CSV holds exactly the tokens minted
// before it, and the error says how many those are.
func (b tokenBatch) run(ctx context.Context, e env, c *client.Client) error {
	f, err := os.Open(b.idsFile)
	if err != nil {
		return flagUsage("--device-ids-file", err)
	}
	ids, err := enroll.ParseDeviceIDList(f)
	f.Close()
	if err != nil {
		if fe, ok := errors.AsType[*fault.Error](err); ok {
			return flagUsage("--device-ids-file", fmt.Errorf("%s: %s (%s)", b.idsFile, fe.Detail, fe.Hint))
		}
		return flagUsage("--device-ids-file", fmt.Errorf("%s: %w", b.idsFile, err))
	}
	if err := b.checkOut(); err != nil {
		return err
	}
	now := time.Now
	if e.now != nil {
		now = e.now
	}
	start := now()
	bar := newProgress(e.stderr, len(ids))
	var rows [][]string
	var mintErr error
	for len(rows) < len(ids) {
		chunk := ids[len(rows):min(len(ids), len(rows)+api.MaxTokenBatch)]
		req := api.TokenBatchRequest{DeviceIDs: make([]string, len(chunk)), TTL: b.ttl, Format: b.format}
		for i, id := range chunk {
			req.DeviceIDs[i] = string(id)
		}
		toks, err := c.CreateTokens(ctx, req)
		if err != nil {
			mintErr = err
			break
		}
		for _, t := range toks {
			rows = append(rows, []string{t.DeviceID, t.ID, t.Token, t.ExpiresAt})
		}
		bar.set(len(rows))
	}
	bar.done()
	kind := "enrollment"
	if b.format == enroll.StepTokenFormat {
		kind = "step"
	}
	if mintErr != nil {
		return b.partial(rows, len(ids), mintErr)
	}
	if err := b.write(rows); err != nil {
		return fmt.Errorf("minted %d %s tokens, but could not write them (they are lost; revoke them with token revoke and mint again): %w", len(rows), kind, err)
	}
	fmt.Fprintf(e.stderr, "minted %d %s tokens for %d devices into %s in %s\n", len(rows), kind, len(ids), b.out, now().Sub(start).Round(100*time.Millisecond))
	return nil
}

// partial writes the tokens minted before a failed chunk and returns the
// error that says so.
func (b tokenBatch) partial(rows [][]string, total int, cause error) error {
	if len(rows) == 0 {
		return fmt.Errorf("no token was minted, and %s was not written: %w", b.out, cause)
	}
	if err := b.write(rows); err != nil {
		return errors.Join(fmt.Errorf("%d of %d tokens were minted before a failure (%w)", len(rows), total, cause),
			fmt.Errorf("and %s could not be written, so they are lost (revoke them with token revoke): %w", b.out, err))
	}
	detail := fmt.Sprintf("%d of %d tokens were minted, and %s holds exactly those (the first %d device IDs of %s); then: %s",
		len(rows), total, b.out, len(rows), b.idsFile, errorText(cause))
	hint := fmt.Sprintf("mint the rest from a file of the device IDs after %s, into another --out", rows[len(rows)-1][0])
	k, ok := fault.KindOf(cause)
	if !ok {
		k = fault.Unavailable
	}
	return &fault.Error{Kind: k, Detail: detail, Hint: hint, Err: cause}
}

// errorText is an error's detail and hint, or its text.
func errorText(err error) string {
	if fe, ok := errors.AsType[*fault.Error](err); ok {
		if fe.Hint == "" {
			return fe.Detail
		}
		return fe.Detail + " (" + fe.Hint + ")"
	}
	return err.Error()
}

// write writes the CSV, mode 0600, through a temporary file: without
// --force it never replaces a file (one made since checkOut included).
func (b tokenBatch) write(rows [][]string) error {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.Write(tokenCSVHeader); err != nil {
		return err
	}
	if err := w.WriteAll(rows); err != nil {
		return err
	}
	if b.force {
		return atomicfile.Write(b.out, buf.Bytes(), 0o600)
	}
	return atomicfile.WriteNew(b.out, buf.Bytes(), 0o600)
}

// progress draws a progress bar on a terminal, and nothing elsewhere.
type progress struct {
	w     io.Writer
	total int
	on    bool
}

func newProgress(w io.Writer, total int) *progress {
	f, ok := w.(*os.File)
	p := &progress{w: w, total: total, on: ok && term.IsTerminal(int(f.Fd()))}
	p.set(0)
	return p
}

func (p *progress) set(n int) {
	if !p.on {
		return
	}
	const width = 40
	fill := width * n / max(p.total, 1)
	fmt.Fprintf(p.w, "\rminting tokens [%s%s] %d/%d", strings.Repeat("=", fill), strings.Repeat(" ", width-fill), n, p.total)
}

func (p *progress) done() {
	if p.on {
		fmt.Fprintln(p.w)
	}
}
