package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/fleetca/fleetca/bench/benchutil"
)

// job is one enrollment, ready to send.
type job struct {
	id    string // the device ID, the CSR's CN
	token string
	body  []byte // the CSR, PEM
}

// generator makes jobs with device IDs b-00000001, b-00000002, ... that
// are unique over the run, each with a new P-256 key.
type generator struct {
	tokens *benchutil.TokenMinter
	seq    int
}

// devicePrefix starts every device ID; tokenPattern matches them all.
const (
	devicePrefix = "b-"
	tokenPattern = devicePrefix + "*"
)

// make returns n jobs, their CSRs generated on every core.
func (g *generator) make(ctx context.Context, n int) ([]job, error) {
	toks, err := g.tokens.Take(ctx, n)
	if err != nil {
		return nil, err
	}
	csrs, err := benchutil.MakeCSRs(ctx, devicePrefix, g.seq+1, n)
	if err != nil {
		return nil, err
	}
	jobs := make([]job, n)
	for i := range jobs {
		jobs[i] = job{id: benchutil.DeviceID(devicePrefix, g.seq+i+1), token: toks[i], body: csrs[i]}
	}
	g.seq += n
	return jobs, nil
}

// runPhase runs conc workers that send jobs, in order, until d has passed
// (requests under way then are finished and counted) or the jobs run out,
// and measures them (benchutil.RunPhase). The first 201 of the phase is
// checked: a certificate for the device the CSR named.
func runPhase(ctx context.Context, client *http.Client, url string, jobs []job, conc int, d time.Duration, pid int) (benchutil.Phase, error) {
	return benchutil.RunPhase(ctx, pid, d, benchutil.Load{Conc: conc, Jobs: len(jobs),
		Do: func(_, i int, keep bool) ([]byte, error) {
			j := jobs[i]
			body, err := benchutil.PostCSR(ctx, client, url, j.token, j.body, keep)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", j.id, err)
			}
			return body, nil
		},
		Check: func(i int, body []byte) error {
			_, err := benchutil.ParseEnrollment(body, jobs[i].id)
			return err
		},
	})
}
