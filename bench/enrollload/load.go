package main

import (
	"context"
	"fmt"
	"net/http"
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
	seq    int
}

// devicePrefix starts every device ID; tokenPattern matches them all.
const (
	devicePrefix = "b-"
	tokenPattern = devicePrefix + "*"
)

// stepMintConc is how many step tokens are minted at once through the
// admin API: each is its own store transaction.
const stepMintConc = 8

// make returns n jobs of kind k, their CSRs generated on every core and
// their tokens minted through the admin API, all before timing.
func (g *generator) make(ctx context.Context, k clientKind, n int) ([]job, error) {
	var toks []string
	var err error
	if k.name == stepClient.name {
		toks, err = g.stepTokens(ctx, g.seq+1, n)
	} else {
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

// stepTokens mints a step token (`fleetca token create --format step`,
// through the admin API) for each of the n devices from
// DeviceID(devicePrefix, first) on.
func (g *generator) stepTokens(ctx context.Context, first, n int) ([]string, error) {
	out := make([]string, n)
	err := benchutil.ForEach(ctx, stepMintConc, n, func(i int) error {
		id := benchutil.DeviceID(devicePrefix, first+i)
		t, err := g.admin.CreateToken(ctx, api.TokenRequest{DeviceID: id, Format: stepClient.name, TTL: "1h"})
		if err != nil {
			return fmt.Errorf("create a step token for %s: %w", id, err)
		}
		if t.Token == "" {
			return fmt.Errorf("the CA created step token %s without its secret", t.ID)
		}
		out[i] = t.Token
		return nil
	})
	return out, err
}

// runPhase runs conc workers that send jobs of kind k, in order, to url
// until d has passed (requests under way then are finished and counted)
// or the jobs run out, and measures them (benchutil.RunPhase). The first
// success of the phase is checked as k's client reads it: a certificate
// for the device the CSR named.
func runPhase(ctx context.Context, client *http.Client, url string, k clientKind, jobs []job, conc int, d time.Duration, pid int) (benchutil.Phase, error) {
	return benchutil.RunPhase(ctx, pid, d, benchutil.Load{Conc: conc, Jobs: len(jobs),
		Do: func(_, i int, keep bool) ([]byte, error) {
			j := jobs[i]
			body, err := post(ctx, client, url, k, j.req, keep)
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
