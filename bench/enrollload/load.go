package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/bench/benchutil"
	"github.com/fleetca/fleetca/client"
)

// job is one enrollment, ready to send.
type job struct {
	id  string // the device ID, the CSR's CN
	req request
}

// generator makes jobs with device IDs b-00000001, b-00000002, ... that
// are unique over the run (whatever the client kind), each with a new
// P-256 key.
type generator struct {
	tokens *benchutil.TokenMinter // pattern tokens, for native and EST
	admin  *client.Client         // mints step tokens, one per device
	stepCA *stepCA                // mints step-ca's tokens, one per device; nil when it does not run
	// bareToken is the bare server's one token, for every request to it.
	bareToken string
	seq       int
}

// devicePrefix starts every device ID; tokenPattern matches them all.
const (
	devicePrefix = "b-"
	tokenPattern = devicePrefix + "*"
)

// stepMintConc is how many batches of step tokens are minted at once
// through the admin API.
const stepMintConc = 2

// make returns n jobs of kind k, their CSRs generated on every core and
// their tokens minted through the admin API, all before timing.
func (g *generator) make(ctx context.Context, k clientKind, n int) ([]job, error) {
	var toks []string
	var err error
	switch k.name {
	case stepClient.name:
		toks, err = g.stepTokens(ctx, g.seq+1, n)
	case stepCAClient.name:
		toks, err = g.stepCA.tokens(g.seq+1, n)
	case bareClient.name:
		toks = slices.Repeat([]string{g.bareToken}, n)
	default:
		toks, err = g.tokens.Take(ctx, n)
	}
	if err != nil {
		return nil, err
	}
	csrs, err := makeCSRs(ctx, k, g.seq+1, n)
	if err != nil {
		return nil, err
	}
	jobs := make([]job, n)
	for i := range jobs {
		id := benchutil.DeviceID(devicePrefix, g.seq+i+1)
		r, err := newRequest(k, id, toks[i], csrs[i])
		if err != nil {
			return nil, err
		}
		jobs[i] = job{id: id, req: r}
	}
	g.seq += n
	return jobs, nil
}

// stepTokens mints a step token for each of the n devices from
// DeviceID(devicePrefix, first) on, as a factory station does (`fleetca
// token create --format step --device-ids-file`): through the admin API,
// api.MaxTokenBatch devices per request, each chunk one transaction.
func (g *generator) stepTokens(ctx context.Context, first, n int) ([]string, error) {
	out := make([]string, n)
	chunks := (n + api.MaxTokenBatch - 1) / api.MaxTokenBatch
	err := benchutil.ForEach(ctx, stepMintConc, chunks, func(c int) error {
		lo := c * api.MaxTokenBatch
		hi := min(lo+api.MaxTokenBatch, n)
		ids := make([]string, hi-lo)
		for i := range ids {
			ids[i] = benchutil.DeviceID(devicePrefix, first+lo+i)
		}
		toks, err := g.admin.CreateTokens(ctx, api.TokenBatchRequest{DeviceIDs: ids, Format: stepClient.name, TTL: "1h"})
		if err != nil {
			return fmt.Errorf("create step tokens for %s..%s: %w", ids[0], ids[len(ids)-1], err)
		}
		for i, t := range toks {
			if t.Token == "" || t.DeviceID != ids[i] {
				return fmt.Errorf("the CA answered step token %s for %q without its secret or for another device (asked for %s)", t.ID, t.DeviceID, ids[i])
			}
			out[lo+i] = t.Token
		}
		return nil
	})
	return out, err
}

// runPhase runs conc workers that send jobs of kind k, in order, with s
// until d has passed (requests under way then are finished and counted)
// or the jobs run out, on connections opened afresh before it starts, and
// measures them (benchutil.RunPhase). The first
// success of the phase is checked as k's client reads it: a certificate
// for the device the CSR named.
func runPhase(ctx context.Context, s *sender, k clientKind, jobs []job, conc int, d time.Duration, pid int) (benchutil.Phase, error) {
	if err := s.reopen(); err != nil {
		return benchutil.Phase{}, fmt.Errorf("%s: open the connections: %w", k.name, err)
	}
	return benchutil.RunPhase(ctx, pid, d, benchutil.Load{Conc: conc, Jobs: len(jobs),
		Do: func(w, i int, keep bool) ([]byte, error) {
			j := jobs[i]
			body, err := s.post(ctx, w, k, j.req, keep)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", k.name, j.id, err)
			}
			return body, nil
		},
		Check: func(i int, body []byte) error {
			_, err := checkAnswer(k, body, jobs[i].id)
			return err
		},
	})
}
